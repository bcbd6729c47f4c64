//! Audit events: one per request the filter decides, built from the decision (never from the
//! credential: no token or API key ever goes in), serialised to JSON and pushed to the shared
//! queue `portcullis.audit`. The singleton drains the queue into an [`AuditBuffer`] and ships
//! batches to the control plane (`POST /v1/audit`, see `sync`).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use proxy_wasm::hostcalls;

pub use policy::audit::AuditEvent;
use policy::audit::{storable, storable_list, Decision};
use policy::{Identity, Policy, ServerId};

use crate::metrics::Metrics;

/// Name of the shared queue the singleton registers and filters enqueue on.
pub const QUEUE: &str = "portcullis.audit";
/// The `vm_id` the shipped configurations use for both the filter and the singleton. The
/// queue is first looked up under the filter's own `vm_id` (an empty name means "mine" to the
/// host), which also works when an operator picks another one; this is the fallback.
pub const VM_ID: &str = "portcullis";

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
                .filter_map(|id| policy.scope_names.get(id).map(String::as_str))
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
#[derive(Default)]
pub struct AuditSink {
    queue: Cell<Option<u32>>,
    /// Unix second before which no new lookup is tried.
    retry_at: Cell<u64>,
    warned: Cell<bool>,
    pending: RefCell<Vec<u8>>,
    pending_events: Cell<usize>,
}

impl AuditSink {
    /// Adds one event to this worker's batch; enqueues the batch when it is full.
    pub fn record(&self, event: &AuditEvent<'_>, metrics: &Metrics, now_seconds: u64) {
        {
            let mut pending = self.pending.borrow_mut();
            // Plain strings, numbers and lists: serialisation cannot fail.
            if serde_json::to_writer(&mut *pending, event).is_err() {
                return;
            }
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

/// Marks what a batch took from the buffer, so acknowledging it removes exactly those events
/// even if older ones were dropped meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMark {
    /// Sequence number just past the batch's last event.
    pub end_seq: u64,
    pub events: usize,
    /// The `dropped` count the batch reported.
    pub dropped: u64,
}

/// Bounded FIFO of serialised events waiting for the control plane. Full: the oldest event
/// goes and is counted, to be reported in the next batch's `dropped`.
#[derive(Debug)]
pub struct AuditBuffer {
    events: VecDeque<Vec<u8>>,
    capacity: usize,
    /// Sequence number of `events[0]`.
    first_seq: u64,
    /// Dropped and not yet reported in an acknowledged batch.
    unreported_drops: u64,
}

impl AuditBuffer {
    pub fn new(capacity: usize) -> AuditBuffer {
        AuditBuffer {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            first_seq: 0,
            unreported_drops: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Adds an event; returns whether the oldest one was dropped to make room.
    pub fn push(&mut self, event: Vec<u8>) -> bool {
        let dropped = self.events.len() >= self.capacity;
        if dropped {
            self.events.pop_front();
            self.first_seq += 1;
            self.unreported_drops += 1;
        }
        self.events.push_back(event);
        dropped
    }

    /// Counts events lost elsewhere (refused by the control plane, unreadable) so the next
    /// batch reports them.
    pub fn count_dropped(&mut self, n: u64) {
        self.unreported_drops += n;
    }

    /// The body of `POST /v1/audit` for the oldest events: at most `max_events`, and no more
    /// than `max_bytes` unless a single event is larger. `None` when the buffer is empty.
    pub fn batch(&self, max_events: usize, max_bytes: usize) -> Option<(Vec<u8>, BatchMark)> {
        if self.events.is_empty() {
            return None;
        }
        let mut body = Vec::with_capacity(max_bytes.min(64 * 1024));
        body.extend_from_slice(b"{\"events\":[");
        let mut taken = 0;
        for event in self.events.iter().take(max_events.max(1)) {
            if taken > 0 && body.len() + event.len() + 40 > max_bytes {
                break;
            }
            if taken > 0 {
                body.push(b',');
            }
            body.extend_from_slice(event);
            taken += 1;
        }
        body.extend_from_slice(format!("],\"dropped\":{}}}", self.unreported_drops).as_bytes());
        let mark = BatchMark {
            end_seq: self.first_seq + taken as u64,
            events: taken,
            dropped: self.unreported_drops,
        };
        Some((body, mark))
    }

    /// The control plane has the batch: its events leave the buffer (those still here) and
    /// its drop count is reported. Returns how many events left.
    pub fn acknowledge(&mut self, mark: BatchMark) -> usize {
        self.unreported_drops = self.unreported_drops.saturating_sub(mark.dropped);
        self.remove_through(mark.end_seq)
    }

    /// The control plane refused the batch for good (400): its events are dropped and counted.
    pub fn discard(&mut self, mark: BatchMark) -> usize {
        let removed = self.remove_through(mark.end_seq);
        self.unreported_drops += removed as u64;
        removed
    }

    fn remove_through(&mut self, end_seq: u64) -> usize {
        let mut removed = 0;
        while self.first_seq < end_seq && self.events.pop_front().is_some() {
            self.first_seq += 1;
            removed += 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests;
