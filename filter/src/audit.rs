//! Audit events: one per request the filter decides, built from the decision (never from the
//! credential: no token or API key ever goes in), serialised to JSON and pushed to the shared
//! queue `portcullis.audit`. The singleton drains the queue into an [`AuditBuffer`] and ships
//! batches to the control plane (`POST /v1/audit`, see `sync`).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use proxy_wasm::hostcalls;

pub use policy::audit::AuditEvent;
use policy::audit::{storable, storable_list, AuditGap, Decision, GapReason};
use policy::{Identity, Policy, ServerId};

use crate::metrics::Metrics;

/// Name of the shared queue the singleton registers and filters enqueue on.
pub const QUEUE: &str = "portcullis.audit";
/// The `vm_id` the shipped configurations use for both the filter and the singleton. The
/// queue is first looked up under the filter's own `vm_id` (an empty name means "mine" to the
/// host), which also works when an operator picks another one; this is the fallback.
pub const VM_ID: &str = "portcullis";
/// The property each decision's event is written to (one JSON object). Envoy keeps a wasm
/// property as filter state `wasm.<name>`: an access log writes it with
/// `%FILTER_STATE(wasm.portcullis.audit:PLAIN)%`.
pub const ACCESS_LOG_PROPERTY: &str = "portcullis.audit";

/// What the filter knows about a request before deciding it; captured from the one header read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// `x-request-id` (Envoy sets one on every request).
    pub request_id: Option<String>,
    pub http_method: String,
    /// The path without query or fragment.
    pub path: String,
}

impl RequestFacts {
    /// From the header bytes: invalid UTF-8 is recorded as U+FFFD, never refused here.
    pub fn from_bytes(
        request_id: Option<&[u8]>,
        http_method: Option<&[u8]>,
        path: Option<&[u8]>,
    ) -> Self {
        fn text(bytes: Option<&[u8]>) -> Option<Cow<'_, str>> {
            bytes.map(String::from_utf8_lossy)
        }
        RequestFacts::new(
            text(request_id).as_deref(),
            text(http_method).as_deref(),
            text(path).as_deref(),
        )
    }

    pub fn new(request_id: Option<&str>, http_method: Option<&str>, path: Option<&str>) -> Self {
        let path = path.unwrap_or_default();
        RequestFacts {
            request_id: request_id.map(str::to_owned),
            http_method: http_method.unwrap_or_default().to_owned(),
            path: path.split(['?', '#']).next().unwrap_or_default().to_owned(),
        }
    }
}

/// How a request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome<'a> {
    /// The HTTP status the filter answered; 200 when it let the request through.
    pub status: u32,
    /// `"allowed"`, or the reply's reason (`missing_credentials`, `unknown_kid`, …).
    pub reason: &'a str,
    /// JSON-RPC method (for a batch, the refused message's, or `"batch"`).
    pub method: Option<&'a str>,
    pub tool: Option<&'a str>,
}

impl<'a> Outcome<'a> {
    pub fn allowed(method: Option<&'a str>, tool: Option<&'a str>) -> Self {
        Outcome {
            status: 200,
            reason: "allowed",
            method,
            tool,
        }
    }
}

/// The event of one decision, built from what the filter holds, zero-copy: the fields borrow
/// from the request facts, the policy and the identity (never the credential: no token or API
/// key ever goes in), cleaned with [`storable`] where they need it. The event type itself is
/// `policy`'s (the wire contract shared with the control plane).
pub fn decision_event<'a>(
    event_id: String,
    time_ms: u64,
    facts: &'a RequestFacts,
    policy: Option<&'a Policy>,
    identity: Option<&'a Identity>,
    server: Option<ServerId>,
    outcome: Outcome<'a>,
) -> AuditEvent<'a> {
    let scopes = match (policy, identity) {
        (Some(policy), Some(identity)) => {
            let names: Vec<&str> = identity
                .scopes
                .iter()
                .filter_map(|id| policy.scope_names.get(id).map(|name| &**name))
                .collect();
            storable_list(names.into_iter())
        }
        _ => Vec::new(),
    };
    let server = policy
        .zip(server)
        .and_then(|(policy, id)| policy.servers.get(id))
        .map(|s| storable(&s.name));
    AuditEvent {
        time_ms,
        request_id: facts.request_id.as_deref().map(storable),
        policy_version: policy.map_or(0, |p| p.version),
        decision: if outcome.status == 200 && outcome.reason == "allowed" {
            Decision::Allow
        } else {
            Decision::Deny
        },
        status: u16::try_from(outcome.status).unwrap_or(u16::MAX),
        reason: Cow::Borrowed(outcome.reason),
        sub: identity.map(|i| storable(&i.subject)),
        username: identity.map(|i| storable(&i.username)),
        issuer: identity.map(|i| storable(&i.issuer)),
        client_id: identity.and_then(|i| i.client_id.as_deref()).map(storable),
        groups: identity.map_or_else(Vec::new, |i| {
            storable_list(i.groups.iter().map(String::as_str))
        }),
        scopes,
        server,
        method: outcome.method.map(storable),
        tool: outcome.tool.map(storable),
        http_method: storable(&facts.http_method),
        path: storable(&facts.path),
        event_id: Some(Cow::Owned(event_id)),
    }
}

/// Where event (and gap) ids come from in one VM: a random nonce drawn when the VM starts, the
/// VM's start time and a sequence number ([`policy::audit::event_id`]). Proxy-wasm has no worker
/// id; a 64-bit random nonce per VM makes two VMs' ids collide with negligible odds.
#[derive(Debug)]
pub struct IdSource {
    nonce: u64,
    start_ms: u64,
    next: Cell<u64>,
}

impl IdSource {
    pub fn new(nonce: u64, start_ms: u64) -> IdSource {
        IdSource {
            nonce,
            start_ms,
            next: Cell::new(0),
        }
    }

    /// A nonce from the host's randomness: std's `RandomState` seeds itself from WASI
    /// `random_get` (which Envoy implements); mixed with the start time so a host that
    /// returned a constant still gives VMs started at different times different nonces.
    pub fn random(start_ms: u64) -> IdSource {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(start_ms);
        IdSource::new(crate::backoff::mix(hasher.finish() ^ start_ms), start_ms)
    }

    pub fn next(&self) -> String {
        let seq = self.next.get();
        self.next.set(seq.wrapping_add(1));
        policy::audit::event_id(self.nonce, self.start_ms, seq)
    }
}

/// Events a worker gathers before putting them on the queue in one item. Every enqueue wakes
/// the singleton on Envoy's main thread; batching measured far cheaper than one per request.
pub const WORKER_BATCH_EVENTS: usize = 64;
/// A worker's batch is also flushed past this size, and on every tick of its root context.
pub const WORKER_BATCH_BYTES: usize = 64 * 1024;

/// The filter's end of the queue: gathers this worker's events (newline-separated JSON) and
/// enqueues them as one item per [`WORKER_BATCH_EVENTS`], on each tick, and when the plugin
/// stops. Resolves the queue once and caches the id. When the queue does not exist (no
/// singleton, or a different `vm_id`), the events are counted as unqueued and requests go on;
/// a lookup is retried at most once a second.
pub struct AuditSink {
    pub ids: IdSource,
    /// Whether each event also goes to the request's filter state (`wasm.portcullis.audit`)
    /// for Envoy's access log.
    pub access_log: bool,
    queue: Cell<Option<u32>>,
    /// Unix second before which no new lookup is tried.
    retry_at: Cell<u64>,
    warned: Cell<bool>,
    pending: RefCell<Vec<u8>>,
    pending_events: Cell<usize>,
}

impl AuditSink {
    pub fn new(ids: IdSource, access_log: bool) -> AuditSink {
        AuditSink {
            ids,
            access_log,
            queue: Cell::new(None),
            retry_at: Cell::new(0),
            warned: Cell::new(false),
            pending: RefCell::new(Vec::new()),
            pending_events: Cell::new(0),
        }
    }

    /// Adds one serialised event (one JSON object, no newline) to this worker's batch;
    /// enqueues the batch when it is full.
    pub fn record(&self, event: &[u8], metrics: &Metrics, now_seconds: u64) {
        {
            let mut pending = self.pending.borrow_mut();
            pending.extend_from_slice(event);
            pending.push(b'\n');
        }
        let events = self.pending_events.get() + 1;
        self.pending_events.set(events);
        if events >= WORKER_BATCH_EVENTS || self.pending.borrow().len() >= WORKER_BATCH_BYTES {
            self.flush(metrics, now_seconds);
        }
    }

    /// Enqueues whatever this worker has gathered.
    pub fn flush(&self, metrics: &Metrics, now_seconds: u64) {
        let events = self.pending_events.replace(0);
        if events == 0 {
            return;
        }
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        let Some(queue) = self.queue.get().or_else(|| self.resolve(now_seconds)) else {
            metrics.audit_unqueued(events);
            return;
        };
        match hostcalls::enqueue_shared_queue(queue, Some(&batch)) {
            Ok(()) => metrics.audit_queued(events),
            Err(_) => {
                // The singleton's VM went away; look the queue up again later.
                self.queue.set(None);
                metrics.audit_unqueued(events);
            }
        }
    }

    fn resolve(&self, now_seconds: u64) -> Option<u32> {
        if now_seconds < self.retry_at.get() {
            return None;
        }
        self.retry_at.set(now_seconds.saturating_add(1));
        let found = [("", QUEUE), (VM_ID, QUEUE)]
            .into_iter()
            .find_map(|(vm_id, name)| hostcalls::resolve_shared_queue(vm_id, name).ok().flatten());
        if found.is_none() && !self.warned.replace(true) {
            log::warn!(
                "portcullis: audit queue {QUEUE} not found (is the sync singleton configured, with the filter's vm_id?); events are counted in portcullis.audit.unqueued until it is"
            );
        }
        self.queue.set(found);
        found
    }
}

/// The events in one queue item (a worker's batch: newline-separated JSON objects).
pub fn split_batch(item: &[u8]) -> impl Iterator<Item = &[u8]> {
    item.split(|b| *b == b'\n').filter(|line| !line.is_empty())
}

/// What one buffered event costs beyond its JSON: its slot in the deque (time, boxed slice) and
/// the allocator's header and rounding. Counted against the byte bound so the bound is what
/// the VM's memory holds, not just the text (measured: see docs/benchmarks.md).
pub const EVENT_OVERHEAD_BYTES: usize = 48;

/// Marks what a batch took from the buffer, so acknowledging it removes exactly those events
/// even if older ones were dropped meanwhile, and closes exactly the gaps it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMark {
    /// Sequence number just past the batch's last event.
    pub end_seq: u64,
    pub events: usize,
    /// The `dropped` count the batch reported.
    pub dropped: u64,
    /// The open gaps the batch reported, with the count it reported for each.
    pub gaps: Vec<(GapReason, u64)>,
}

#[derive(Debug)]
struct Entry {
    time_ms: u64,
    json: Box<[u8]>,
}

/// A run of lost events not yet acknowledged by the control plane.
#[derive(Debug, Clone)]
struct OpenGap {
    id: String,
    reason: GapReason,
    from_ms: u64,
    to_ms: u64,
    lost: u64,
}

/// Bounded FIFO of serialised events waiting for the control plane, bounded both in events and
/// in bytes (JSON plus [`EVENT_OVERHEAD_BYTES`] each). Full: the oldest event goes, counted
/// (reported in the next batch's `dropped`) and recorded in an open gap record (one per
/// [`GapReason`]) that rides along with every batch until one is acknowledged that carried its
/// final count: the trail then says where it is incomplete and by how much.
#[derive(Debug)]
pub struct AuditBuffer {
    events: VecDeque<Entry>,
    max_events: usize,
    max_bytes: usize,
    /// JSON bytes plus overhead of the events held.
    bytes: usize,
    /// Sequence number of `events[0]`.
    first_seq: u64,
    /// Dropped and not yet reported in an acknowledged batch.
    unreported_drops: u64,
    gaps: Vec<OpenGap>,
    gap_ids: IdSource,
}

impl AuditBuffer {
    pub fn new(max_events: usize, max_bytes: usize, gap_ids: IdSource) -> AuditBuffer {
        AuditBuffer {
            events: VecDeque::new(),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            first_seq: 0,
            unreported_drops: 0,
            gaps: Vec::new(),
            gap_ids,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes held (JSON plus per-event overhead).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds an event decided at `time_ms`; returns how many of the oldest were dropped to make
    /// room (an event larger than the whole byte bound is itself dropped).
    pub fn push(&mut self, time_ms: u64, json: &[u8]) -> u64 {
        let cost = json.len() + EVENT_OVERHEAD_BYTES;
        if cost > self.max_bytes {
            self.lose(GapReason::BufferFull, time_ms, time_ms, 1);
            return 1;
        }
        let mut dropped = 0;
        while self.events.len() >= self.max_events || self.bytes + cost > self.max_bytes {
            let Some(oldest) = self.events.pop_front() else {
                break;
            };
            self.bytes -= oldest.json.len() + EVENT_OVERHEAD_BYTES;
            self.first_seq += 1;
            self.lose(GapReason::BufferFull, oldest.time_ms, oldest.time_ms, 1);
            dropped += 1;
        }
        self.bytes += cost;
        self.events.push_back(Entry {
            time_ms,
            json: json.into(),
        });
        dropped
    }

    /// Counts `n` events lost for `reason` between `from_ms` and `to_ms`: reported in the next
    /// batch's `dropped` and in the open gap record of that reason.
    pub fn lose(&mut self, reason: GapReason, from_ms: u64, to_ms: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.unreported_drops += n;
        match self.gaps.iter_mut().find(|g| g.reason == reason) {
            Some(gap) => {
                gap.from_ms = gap.from_ms.min(from_ms);
                gap.to_ms = gap.to_ms.max(to_ms);
                gap.lost += n;
            }
            None => self.gaps.push(OpenGap {
                id: self.gap_ids.next(),
                reason,
                from_ms,
                to_ms,
                lost: n,
            }),
        }
    }

    /// Whether something waits to be sent: events, or a gap to report.
    pub fn has_work(&self) -> bool {
        !self.events.is_empty() || !self.gaps.is_empty()
    }

    /// The body of `POST /v1/audit` for the oldest events: at most `max_events`, and no more
    /// than `max_bytes` unless a single event is larger, with every open gap. `None` when there
    /// is nothing to send. `gaps` is only written when there are some (control planes older
    /// than gap records refuse unknown fields).
    pub fn batch(&self, max_events: usize, max_bytes: usize) -> Option<(Vec<u8>, BatchMark)> {
        if !self.has_work() {
            return None;
        }
        let mut body = Vec::with_capacity(max_bytes.min(64 * 1024));
        body.extend_from_slice(b"{\"events\":[");
        let mut taken = 0;
        for event in self.events.iter().take(max_events.max(1)) {
            if taken > 0 && body.len() + event.json.len() + 40 > max_bytes {
                break;
            }
            if taken > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&event.json);
            taken += 1;
        }
        body.extend_from_slice(format!("],\"dropped\":{}", self.unreported_drops).as_bytes());
        if !self.gaps.is_empty() {
            let gaps: Vec<AuditGap<'_>> = self
                .gaps
                .iter()
                .map(|g| AuditGap {
                    id: Cow::Borrowed(&g.id),
                    reason: g.reason,
                    from_ms: g.from_ms,
                    to_ms: g.to_ms,
                    lost: g.lost,
                })
                .collect();
            body.extend_from_slice(b",\"gaps\":");
            // Strings and numbers only: serialisation cannot fail.
            let _ = serde_json::to_writer(&mut body, &gaps);
        }
        body.push(b'}');
        let mark = BatchMark {
            end_seq: self.first_seq + taken as u64,
            events: taken,
            dropped: self.unreported_drops,
            gaps: self.gaps.iter().map(|g| (g.reason, g.lost)).collect(),
        };
        Some((body, mark))
    }

    /// The control plane has the batch: its events leave the buffer (those still here), its
    /// drop count is reported, and each gap it carried with its final count is closed (a gap
    /// that grew meanwhile stays open under the same id, to be sent again with the new count).
    /// Returns how many events left.
    pub fn acknowledge(&mut self, mark: &BatchMark) -> usize {
        self.unreported_drops = self.unreported_drops.saturating_sub(mark.dropped);
        self.gaps.retain(|g| {
            !mark
                .gaps
                .iter()
                .any(|(r, lost)| *r == g.reason && *lost == g.lost)
        });
        self.remove_through(mark.end_seq).0
    }

    /// The control plane refused the batch for good (400): its events are dropped, counted and
    /// recorded as a gap. Returns how many.
    pub fn discard(&mut self, mark: &BatchMark) -> usize {
        let (removed, span) = self.remove_through(mark.end_seq);
        if let Some((from, to)) = span {
            self.lose(GapReason::Refused, from, to, removed as u64);
        }
        removed
    }

    /// Removes events before `end_seq`: how many, and the span of their times.
    fn remove_through(&mut self, end_seq: u64) -> (usize, Option<(u64, u64)>) {
        let mut removed = 0;
        let mut span: Option<(u64, u64)> = None;
        while self.first_seq < end_seq {
            let Some(event) = self.events.pop_front() else {
                break;
            };
            self.bytes -= event.json.len() + EVENT_OVERHEAD_BYTES;
            self.first_seq += 1;
            removed += 1;
            span = Some(span.map_or((event.time_ms, event.time_ms), |(a, b)| {
                (a.min(event.time_ms), b.max(event.time_ms))
            }));
        }
        (removed, span)
    }
}

#[cfg(test)]
mod tests;
