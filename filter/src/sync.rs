//! The singleton service (`bootstrap_extensions`, `envoy.bootstrap.wasm`, `singleton: true`, on
//! Envoy's main thread): keeps one long-poll `GET /v1/policy` open to the control plane,
//! validates each snapshot with the `policy` crate and writes the good ones to shared data for
//! the workers. Once it holds a policy it asks for deltas (`deltas=1`): a change then travels
//! as what changed, is validated by applying it to the singleton's own policy, and is appended
//! to the shared delta log that workers apply; after [`MAX_LOG_DELTAS`] deltas or
//! [`MAX_LOG_BYTES`] it asks for the whole snapshot once more and starts a new log. It also
//! drains the audit queue into a bounded buffer and ships it in batches (`POST /v1/audit`).
//! Both calls retry with exponential back-off and jitter; the last good
//! policy stays in shared data whatever happens to the control plane.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use policy::snapshot::{SnapshotDelta, DELTAS_MEDIA_TYPE};
use policy::Policy;

use policy::audit::GapReason;

use crate::audit::{AuditBuffer, BatchMark, IdSource, QUEUE};
use crate::backoff::{mix, Backoff, FailureLog};
use crate::config::SyncConfig;
use crate::shared_policy::{apply_deltas, base_value, DELTAS_KEY, SNAPSHOT_KEY, VERSION_KEY};

/// How often the service looks at its timers (retries, audit shipping).
pub const TICK: Duration = Duration::from_millis(200);
/// Extra time a long-poll call gets beyond the wait the control plane is asked for.
const POLL_GRACE_SECONDS: u64 = 5;
/// A poll that comes back with nothing new sooner than this (a control plane that does not
/// hold the request) waits out the rest, so a misbehaving server cannot cause a busy loop.
const MIN_POLL_SPACING_MS: u64 = 1_000;
/// 503 means "up, but no snapshot compiled yet" (or starting): retried at least twice a second,
/// so the first snapshot is picked up quickly.
const NOT_READY_CAP_MS: u64 = 500;
/// Upper bound of one audit batch's body (the control plane accepts 8 MiB): big enough that
/// a backlog drains in few round trips.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Failures of a run retried at once, before any back-off: the cluster may list several
/// control planes, and Envoy's load balancer sends the retry to another one, so a replica
/// that just died costs no delay (and its health check takes it out within about a second).
const FAILOVER_RETRIES: u32 = 1;
/// Longest wait between two attempts while no control plane answers. Short, so a control
/// plane that comes back is used within a couple of seconds (a refused connection to a dead
/// one costs next to nothing).
const MAX_RETRY_MS: u64 = 2_000;
const AUDIT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deltas kept in the shared log before the whole snapshot is fetched again (a worker that
/// starts, or falls behind, applies the base and every delta after it).
pub const MAX_LOG_DELTAS: usize = 64;
/// And the log's size bound.
pub const MAX_LOG_BYTES: usize = 1 << 20;

/// Metrics of the singleton, defined once (prefixed `wasmcustom.` by Envoy).
#[derive(Clone, Copy)]
enum Metric {
    Accepted,
    Refused,
    Errors,
    Version,
    Shipped,
    Dropped,
    AuditErrors,
    DroppedBufferFull,
    DroppedRefused,
    DroppedMalformed,
    Buffered,
    BufferedBytes,
}

const METRICS: [(&str, MetricType); 12] = [
    ("portcullis.sync.accepted", MetricType::Counter),
    ("portcullis.sync.refused", MetricType::Counter),
    ("portcullis.sync.errors", MetricType::Counter),
    ("portcullis.sync.version", MetricType::Gauge),
    ("portcullis.audit.shipped", MetricType::Counter),
    ("portcullis.audit.dropped", MetricType::Counter),
    ("portcullis.audit.ship_errors", MetricType::Counter),
    ("portcullis.audit.dropped.buffer_full", MetricType::Counter),
    ("portcullis.audit.dropped.refused", MetricType::Counter),
    ("portcullis.audit.dropped.malformed", MetricType::Counter),
    ("portcullis.audit.buffered", MetricType::Gauge),
    ("portcullis.audit.buffered_bytes", MetricType::Gauge),
];

struct Metrics {
    ids: [Option<u32>; METRICS.len()],
}

impl Metrics {
    fn define() -> Metrics {
        let mut ids = [None; METRICS.len()];
        for (slot, (name, kind)) in ids.iter_mut().zip(METRICS) {
            *slot = hostcalls::define_metric(kind, name).ok();
        }
        Metrics { ids }
    }

    fn add(&self, metric: Metric, n: u64) {
        if let Some(id) = self.ids[metric as usize] {
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Events lost, in the total and in the counter of their reason.
    fn dropped(&self, reason: GapReason, n: u64) {
        if n == 0 {
            return;
        }
        self.add(Metric::Dropped, n);
        self.add(
            match reason {
                GapReason::BufferFull => Metric::DroppedBufferFull,
                GapReason::Refused => Metric::DroppedRefused,
                GapReason::Malformed => Metric::DroppedMalformed,
            },
            n,
        );
    }

    fn set(&self, metric: Metric, value: u64) {
        if let Some(id) = self.ids[metric as usize] {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}

/// Milliseconds since the Unix epoch and some entropy for jitter, from one host call.
fn now() -> (u64, u64) {
    let since = hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
    (ms, mix(u64::from(since.subsec_nanos()) ^ ms))
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Status and headers of the response to a dispatched call; no status means the call failed
/// (timeout, connection refused or reset).
fn call_response() -> (Option<u32>, Vec<(String, String)>) {
    let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status = header(&headers, ":status").and_then(|s| s.parse().ok());
    (status, headers)
}

fn describe_failure(status: Option<u32>) -> String {
    match status {
        None => "no response (timeout, connection refused or reset)".into(),
        Some(401) => "HTTP 401: the control plane refused the sync token".into(),
        Some(503) => {
            "HTTP 503: the control plane is not ready (no snapshot or sync disabled)".into()
        }
        Some(s) => format!("HTTP {s}"),
    }
}

struct PollState {
    /// Token and start time of the call in flight.
    in_flight: Option<(u32, u64)>,
    next_at_ms: u64,
    /// ETag of the last snapshot accepted or refused, sent as `If-None-Match`.
    etag: Option<String>,
    accepted_version: Option<u64>,
    /// The policy in shared data, compiled here too, with its ETag: what deltas apply to.
    policy: Option<(Policy, String)>,
    /// The deltas in shared data since the base snapshot.
    log: Vec<u8>,
    log_deltas: usize,
    /// Fetch the whole snapshot on the next poll (the log is full, or a delta did not fit).
    want_whole: bool,
    /// Whether the poll in flight asked for deltas.
    asked_deltas: bool,
    /// The control plane refused `deltas=1` (one from before deltas): whole snapshots only.
    deltas_refused: bool,
    backoff: Backoff,
    failures: FailureLog,
}

struct AuditState {
    queue: Option<u32>,
    buffer: AuditBuffer,
    in_flight: Option<(u32, BatchMark)>,
    next_at_ms: u64,
    /// Events per batch; halved when the control plane says a batch is too large.
    batch_events: usize,
    backoff: Backoff,
    failures: FailureLog,
    warned_bad_item: bool,
}

pub struct SyncService {
    config: SyncConfig,
    metrics: Metrics,
    poll: PollState,
    audit: AuditState,
}

impl SyncService {
    /// Registers the audit queue and defines the metrics; the first poll goes out on the first
    /// tick (the cluster manager may not be up yet while bootstrap extensions are configured).
    pub fn start(config: SyncConfig) -> SyncService {
        let queue = hostcalls::register_shared_queue(QUEUE).ok();
        if queue.is_none() {
            log::error!("portcullis: cannot register the audit queue {QUEUE}");
        }
        log::info!(
            "portcullis: sync singleton started (cluster {}, long-poll {} s, audit buffer {} events / {} bytes)",
            config.cluster,
            config.poll_seconds,
            config.audit_buffer_events,
            config.audit_buffer_bytes
        );
        let (start_ms, _) = now();
        SyncService {
            metrics: Metrics::define(),
            poll: PollState {
                in_flight: None,
                next_at_ms: 0,
                etag: None,
                accepted_version: None,
                policy: None,
                log: Vec::new(),
                log_deltas: 0,
                want_whole: false,
                asked_deltas: false,
                deltas_refused: false,
                backoff: Backoff::failover(FAILOVER_RETRIES, MAX_RETRY_MS),
                failures: FailureLog::default(),
            },
            audit: AuditState {
                queue,
                buffer: AuditBuffer::new(
                    config.audit_buffer_events,
                    config.audit_buffer_bytes,
                    IdSource::random(start_ms),
                ),
                in_flight: None,
                next_at_ms: 0,
                batch_events: config.audit_batch_events,
                backoff: Backoff::failover(FAILOVER_RETRIES, MAX_RETRY_MS),
                failures: FailureLog::default(),
                warned_bad_item: false,
            },
            config,
        }
    }

    pub fn on_tick(&mut self) {
        let (now_ms, entropy) = now();
        if self.poll.in_flight.is_none() && now_ms >= self.poll.next_at_ms {
            self.start_poll(now_ms, entropy);
        }
        // Also drains here: a missed queue notification must not strand events.
        self.drain_queue();
        self.ship(now_ms, entropy, false);
    }

    pub fn on_queue_ready(&mut self, queue_id: u32) {
        if self.audit.queue != Some(queue_id) {
            return;
        }
        self.drain_queue();
        if self.audit.buffer.len() >= self.audit.batch_events {
            let (now_ms, entropy) = now();
            self.ship(now_ms, entropy, true);
        }
    }

    pub fn on_http_call_response(&mut self, token: u32, body_size: usize) {
        let (now_ms, entropy) = now();
        if let Some((in_flight, started_ms)) = self.poll.in_flight {
            if in_flight == token {
                self.poll.in_flight = None;
                self.poll_response(now_ms, entropy, started_ms, body_size);
                return;
            }
        }
        if self
            .audit
            .in_flight
            .as_ref()
            .is_some_and(|(t, _)| *t == token)
        {
            if let Some((_, mark)) = self.audit.in_flight.take() {
                self.ship_response(now_ms, entropy, mark);
            }
        }
    }

    // ---- policy ----

    fn start_poll(&mut self, now_ms: u64, entropy: u64) {
        let config = &self.config;
        let poll = &self.poll;
        // Deltas apply to the policy held here: asked for only while that is what the last
        // answer was (not after a refused snapshot).
        let deltas = !poll.want_whole
            && !poll.deltas_refused
            && poll
                .policy
                .as_ref()
                .is_some_and(|(_, at)| poll.etag.as_ref() == Some(at));
        let path = match deltas {
            true => format!("/v1/policy?wait={}&deltas=1", config.poll_seconds),
            false => format!("/v1/policy?wait={}", config.poll_seconds),
        };
        let authorization = format!("Bearer {}", config.token);
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", config.authority.as_str()),
            ("authorization", authorization.as_str()),
        ];
        if let (Some(etag), false) = (&poll.etag, poll.want_whole) {
            headers.push(("if-none-match", etag.as_str()));
        }
        let timeout = Duration::from_secs(config.poll_seconds + POLL_GRACE_SECONDS);
        match hostcalls::dispatch_http_call(&config.cluster, headers, None, vec![], timeout) {
            Ok(token) => {
                self.poll.in_flight = Some((token, now_ms));
                self.poll.asked_deltas = deltas;
            }
            Err(status) => {
                let what = format!("cannot call cluster {:?} ({status:?})", config.cluster);
                self.poll_failed(now_ms, entropy, &what, u64::MAX);
            }
        }
    }

    fn poll_response(&mut self, now_ms: u64, entropy: u64, started_ms: u64, body_size: usize) {
        let (status, headers) = call_response();
        match status {
            Some(200) => {
                let Some(etag) = header(&headers, "etag").map(str::to_owned) else {
                    self.poll_failed(now_ms, entropy, "HTTP 200 without an ETag", u64::MAX);
                    return;
                };
                self.poll_succeeded();
                let unchanged =
                    self.poll.etag.as_deref() == Some(etag.as_str()) && !self.poll.want_whole;
                if !unchanged {
                    let body =
                        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                    let deltas = header(&headers, "content-type")
                        .is_some_and(|t| t.starts_with(DELTAS_MEDIA_TYPE));
                    match deltas {
                        true => self.receive_deltas(&body, etag),
                        false => self.receive_snapshot(&body, etag),
                    }
                }
                if unchanged {
                    self.poll_again_spaced(now_ms, entropy, started_ms);
                } else {
                    self.start_poll(now_ms, entropy);
                }
            }
            Some(304) => {
                self.poll_succeeded();
                self.poll_again_spaced(now_ms, entropy, started_ms);
            }
            Some(400) if self.poll.asked_deltas => {
                // A control plane from before deltas refuses the parameter it does not know:
                // it still serves whole snapshots.
                log::warn!(
                    "portcullis: policy sync: the control plane does not take deltas=1 (an older version); asking for whole snapshots"
                );
                self.poll.deltas_refused = true;
                self.poll_succeeded();
                self.start_poll(now_ms, entropy);
            }
            Some(503) => {
                self.poll_failed(now_ms, entropy, &describe_failure(status), NOT_READY_CAP_MS);
            }
            _ => self.poll_failed(now_ms, entropy, &describe_failure(status), u64::MAX),
        }
    }

    fn poll_again_spaced(&mut self, now_ms: u64, entropy: u64, started_ms: u64) {
        let earliest = started_ms.saturating_add(MIN_POLL_SPACING_MS);
        if now_ms >= earliest {
            self.start_poll(now_ms, entropy);
        } else {
            self.poll.next_at_ms = earliest;
        }
    }

    /// Validates a snapshot and publishes it as the new base, or refuses it and keeps the last
    /// good one.
    fn receive_snapshot(&mut self, body: &[u8], etag: String) {
        let rebase = std::mem::take(&mut self.poll.want_whole);
        match Policy::from_json(body) {
            Ok(policy) => {
                let version = policy.version;
                // The key is the ETag (version and content hash), not the bare version: a
                // control plane whose database was reset reuses version numbers for other
                // content, and workers must still notice.
                // Snapshot first: a worker that sees the new version key finds its snapshot.
                let written =
                    hostcalls::set_shared_data(SNAPSHOT_KEY, Some(&base_value(&etag, body)), None)
                        .and_then(|()| hostcalls::set_shared_data(DELTAS_KEY, Some(b""), None))
                        .and_then(|()| {
                            hostcalls::set_shared_data(VERSION_KEY, Some(etag.as_bytes()), None)
                        });
                if let Err(status) = written {
                    log::error!("portcullis: cannot write policy version {version} to shared data ({status:?})");
                    self.poll.policy = None;
                    return;
                }
                self.metrics.add(Metric::Accepted, 1);
                self.metrics.set(Metric::Version, version);
                if rebase {
                    log::info!(
                        "portcullis: policy version {version} fetched whole again as the new base of the delta log ({etag})"
                    );
                } else if self.poll.accepted_version != Some(version) {
                    log::info!(
                        "portcullis: policy version {version} accepted from the control plane ({etag}; {} issuers, {} servers)",
                        policy.issuers.len(),
                        policy.server_count()
                    );
                }
                self.poll.accepted_version = Some(version);
                self.poll.policy = Some((policy, etag.clone()));
                self.poll.log.clear();
                self.poll.log_deltas = 0;
            }
            Err(error) => {
                // The error names a field and a problem; snapshots hold no secrets (API keys
                // only as hashes), and the body itself is not logged.
                log::error!("portcullis: refused policy snapshot {etag}: {error}");
                self.metrics.add(Metric::Refused, 1);
            }
        }
        // Accepted or refused, wait for the next change rather than this one again.
        self.poll.etag = Some(etag);
    }

    /// Validates deltas by applying them to the policy held here and appends them to the
    /// shared log, or refuses them and fetches the whole snapshot next.
    fn receive_deltas(&mut self, body: &[u8], etag: String) {
        let applied = match &self.poll.policy {
            None => Err("there is no policy to apply them to".to_owned()),
            Some((policy, at)) => SnapshotDelta::parse_lines(body)
                .map_err(|e| e.to_string())
                .and_then(|deltas| {
                    let n = deltas.len();
                    apply_deltas(policy, at, &deltas).map(|(policy, reached)| (policy, reached, n))
                })
                .and_then(|(policy, reached, n)| match reached == etag {
                    true => Ok((policy, n)),
                    false => Err(format!("they reach {reached}, the answer says {etag}")),
                }),
        };
        let (policy, n) = match applied {
            Ok(applied) => applied,
            Err(error) => {
                log::error!(
                    "portcullis: refused policy deltas to {etag}: {error}; fetching the whole snapshot"
                );
                self.metrics.add(Metric::Refused, 1);
                self.poll.want_whole = true;
                return;
            }
        };
        let version = policy.version;
        let mut log = std::mem::take(&mut self.poll.log);
        log.extend_from_slice(body);
        if !log.ends_with(b"\n") {
            log.push(b'\n');
        }
        // The log first: a worker that sees the new version key finds the deltas to it.
        let written = hostcalls::set_shared_data(DELTAS_KEY, Some(&log), None)
            .and_then(|()| hostcalls::set_shared_data(VERSION_KEY, Some(etag.as_bytes()), None));
        if let Err(status) = written {
            log::error!(
                "portcullis: cannot write policy version {version} to shared data ({status:?}); fetching the whole snapshot"
            );
            self.poll.want_whole = true;
            return;
        }
        self.metrics.add(Metric::Accepted, 1);
        self.metrics.set(Metric::Version, version);
        log::info!(
            "portcullis: policy version {version} accepted from the control plane ({etag}; {n} deltas, {} bytes; {} issuers, {} servers)",
            body.len(),
            policy.issuers.len(),
            policy.server_count()
        );
        self.poll.accepted_version = Some(version);
        self.poll.log_deltas += n;
        self.poll.want_whole = self.poll.log_deltas >= MAX_LOG_DELTAS || log.len() >= MAX_LOG_BYTES;
        self.poll.log = log;
        self.poll.policy = Some((policy, etag.clone()));
        self.poll.etag = Some(etag);
    }

    fn poll_succeeded(&mut self) {
        self.poll.backoff.reset();
        // A control plane answers: audit shipping waiting out a back-off goes now (on the next
        // tick at the latest) instead of finding out by itself.
        if self.audit.in_flight.is_none() {
            self.audit.next_at_ms = 0;
        }
        let failures = self.poll.failures.succeeded();
        if failures > 0 {
            log::info!("portcullis: policy sync: control plane reachable again after {failures} failed attempts");
        }
    }

    fn poll_failed(&mut self, now_ms: u64, entropy: u64, what: &str, cap_ms: u64) {
        self.metrics.add(Metric::Errors, 1);
        let delay = self.poll.backoff.fail(entropy, cap_ms);
        self.poll.next_at_ms = now_ms.saturating_add(delay);
        if delay == 0 {
            // Fail over at once: the next failure of this run backs off, so this cannot loop.
            self.start_poll(now_ms, entropy);
            return;
        }
        if let Some(unlogged) = self.poll.failures.failed(now_ms) {
            let last_good = self
                .poll
                .accepted_version
                .map_or_else(|| "none yet".to_owned(), |v| v.to_string());
            log::warn!(
                "portcullis: policy sync: {what}; retrying in {delay} ms (policy version in force: {last_good}; {unlogged} similar failures not logged)"
            );
        }
    }

    // ---- audit ----

    fn drain_queue(&mut self) {
        let Some(queue) = self.audit.queue else {
            return;
        };
        while let Ok(Some(item)) = hostcalls::dequeue_shared_queue(queue) {
            // An item is one worker's batch of events, one JSON object per line.
            for event in crate::audit::split_batch(&item) {
                // One malformed event would make the control plane refuse whole batches
                // forever; the time is what a gap record needs if the event is lost later.
                let time_ms = (event.first() == Some(&b'{'))
                    .then(|| serde_json::from_slice::<EventTime>(event).ok())
                    .flatten()
                    .map(|e| e.time_ms);
                let Some(time_ms) = time_ms else {
                    let (now_ms, _) = now();
                    self.audit
                        .buffer
                        .lose(GapReason::Malformed, now_ms, now_ms, 1);
                    self.metrics.dropped(GapReason::Malformed, 1);
                    if !std::mem::replace(&mut self.audit.warned_bad_item, true) {
                        log::error!("portcullis: dropped a malformed item from the audit queue");
                    }
                    continue;
                };
                let dropped = self.audit.buffer.push(time_ms, event);
                self.metrics.dropped(GapReason::BufferFull, dropped);
            }
        }
        self.metrics
            .set(Metric::Buffered, self.audit.buffer.len() as u64);
        self.metrics
            .set(Metric::BufferedBytes, self.audit.buffer.bytes() as u64);
    }

    /// Sends the next batch if none is in flight, the back-off allows, and there is something
    /// to send (`only_full`: only a full batch).
    fn ship(&mut self, now_ms: u64, entropy: u64, only_full: bool) {
        let audit = &mut self.audit;
        if audit.in_flight.is_some() || now_ms < audit.next_at_ms {
            return;
        }
        if !audit.buffer.has_work() || (only_full && audit.buffer.len() < audit.batch_events) {
            return;
        }
        let Some((body, mark)) = audit.buffer.batch(audit.batch_events, MAX_BATCH_BYTES) else {
            return;
        };
        let authorization = format!("Bearer {}", self.config.token);
        let headers = vec![
            (":method", "POST"),
            (":path", "/v1/audit"),
            (":authority", self.config.authority.as_str()),
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
        ];
        match hostcalls::dispatch_http_call(
            &self.config.cluster,
            headers,
            Some(&body),
            vec![],
            AUDIT_CALL_TIMEOUT,
        ) {
            Ok(token) => self.audit.in_flight = Some((token, mark)),
            Err(status) => {
                let what = format!("cannot call cluster {:?} ({status:?})", self.config.cluster);
                self.ship_failed(now_ms, entropy, &what);
            }
        }
    }

    fn ship_response(&mut self, now_ms: u64, entropy: u64, mark: BatchMark) {
        let (status, _) = call_response();
        match status {
            Some(s) if (200..300).contains(&s) => {
                let shipped = self.audit.buffer.acknowledge(&mark);
                self.metrics.add(Metric::Shipped, shipped as u64);
                self.metrics
                    .set(Metric::Buffered, self.audit.buffer.len() as u64);
                self.metrics
                    .set(Metric::BufferedBytes, self.audit.buffer.bytes() as u64);
                self.audit.backoff.reset();
                // The long-poll waiting out a back-off goes now too.
                if self.poll.in_flight.is_none() {
                    self.poll.next_at_ms = 0;
                }
                let failures = self.audit.failures.succeeded();
                if failures > 0 {
                    log::info!(
                        "portcullis: audit: control plane accepts events again after {failures} failed attempts ({} buffered)",
                        self.audit.buffer.len()
                    );
                }
                // More than a batch waiting (after an outage): keep going without a tick, so
                // the backlog drains at the control plane's ingest rate.
                if self.audit.buffer.len() >= self.audit.batch_events {
                    self.ship(now_ms, entropy, true);
                }
            }
            Some(413) if mark.events > 1 => {
                self.audit.batch_events = (mark.events / 2).max(1);
                log::warn!(
                    "portcullis: audit: a batch of {} events was too large for the control plane; sending {} per batch",
                    mark.events,
                    self.audit.batch_events
                );
                self.ship(now_ms, entropy, false);
            }
            Some(400 | 413) => {
                // Retrying the same events cannot succeed: drop them, counted and reported.
                let dropped = self.audit.buffer.discard(&mark);
                self.metrics.dropped(GapReason::Refused, dropped as u64);
                log::error!(
                    "portcullis: audit: the control plane refused a batch of {dropped} events ({}); they are dropped and counted",
                    describe_failure(status)
                );
            }
            _ => self.ship_failed(now_ms, entropy, &describe_failure(status)),
        }
    }

    fn ship_failed(&mut self, now_ms: u64, entropy: u64, what: &str) {
        self.metrics.add(Metric::AuditErrors, 1);
        let delay = self.audit.backoff.fail(entropy, u64::MAX);
        self.audit.next_at_ms = now_ms.saturating_add(delay);
        if delay == 0 {
            // Fail over at once (to another endpoint of the cluster); the next failure of this
            // run backs off, so this cannot loop.
            self.ship(now_ms, entropy, false);
            return;
        }
        if let Some(unlogged) = self.audit.failures.failed(now_ms) {
            log::warn!(
                "portcullis: audit: {what}; {} events buffered, retrying in {delay} ms ({unlogged} similar failures not logged)",
                self.audit.buffer.len()
            );
        }
    }
}

/// The one field of a queued event the singleton reads: its time, for gap records.
#[derive(serde::Deserialize)]
struct EventTime {
    time_ms: u64,
}

/// Unix milliseconds of a host time (for the filter's audit events).
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
