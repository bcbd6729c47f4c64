//! Envoy stats for the filter. The request path only bumps local counters; the root context
//! flushes them to Envoy once per tick, so a request pays no host call for its stats.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Counter names as Envoy shows them (prefixed `wasmcustom.` by Envoy).
const ALLOWED: &str = "portcullis.allowed";
const CACHE_HIT: &str = "portcullis.token_cache.hit";
const CACHE_MISS: &str = "portcullis.token_cache.miss";
const VERIFY_US: &str = "portcullis.verify_us";
const AUDIT_QUEUED: &str = "portcullis.audit.queued";
const AUDIT_UNQUEUED: &str = "portcullis.audit.unqueued";

#[derive(Default)]
pub struct Metrics {
    allowed: Cell<u64>,
    cache_hit: Cell<u64>,
    cache_miss: Cell<u64>,
    audit_queued: Cell<u64>,
    audit_unqueued: Cell<u64>,
    denied: RefCell<HashMap<&'static str, u64>>,
    /// Metric ids by name, defined on first flush.
    ids: RefCell<HashMap<String, u32>>,
    verify_histogram: Cell<Option<u32>>,
}

impl Metrics {
    pub fn allowed(&self) {
        self.allowed.set(self.allowed.get() + 1);
    }

    pub fn cache(&self, hit: bool) {
        let counter = if hit {
            &self.cache_hit
        } else {
            &self.cache_miss
        };
        counter.set(counter.get() + 1);
    }

    /// An audit event went onto the shared queue.
    pub fn audit_queued(&self, events: usize) {
        self.audit_queued
            .set(self.audit_queued.get() + events as u64);
    }

    /// An audit event could not be queued (no singleton): counted, never silently lost.
    pub fn audit_unqueued(&self, events: usize) {
        self.audit_unqueued
            .set(self.audit_unqueued.get() + events as u64);
    }

    pub fn denied(&self, reason: &'static str) {
        *self.denied.borrow_mut().entry(reason).or_insert(0) += 1;
    }

    /// Verification only happens on a cache miss, so recording it directly is fine.
    pub fn verify_time(&self, micros: u64) {
        let id = match self.verify_histogram.get() {
            Some(id) => id,
            None => match hostcalls::define_metric(MetricType::Histogram, VERIFY_US) {
                Ok(id) => {
                    self.verify_histogram.set(Some(id));
                    id
                }
                Err(_) => return,
            },
        };
        let _ = hostcalls::record_metric(id, micros);
    }

    /// Pushes the local counts to Envoy.
    pub fn flush(&self) {
        let mut pending: Vec<(String, u64)> = Vec::new();
        for (name, cell) in [
            (ALLOWED, &self.allowed),
            (CACHE_HIT, &self.cache_hit),
            (CACHE_MISS, &self.cache_miss),
            (AUDIT_QUEUED, &self.audit_queued),
            (AUDIT_UNQUEUED, &self.audit_unqueued),
        ] {
            let n = cell.replace(0);
            if n > 0 {
                pending.push((name.to_owned(), n));
            }
        }
        for (reason, n) in self.denied.borrow_mut().drain() {
            pending.push((format!("portcullis.denied.{reason}"), n));
        }
        let mut ids = self.ids.borrow_mut();
        for (name, n) in pending {
            let id = match ids.get(&name) {
                Some(&id) => id,
                None => match hostcalls::define_metric(MetricType::Counter, &name) {
                    Ok(id) => {
                        ids.insert(name, id);
                        id
                    }
                    Err(_) => continue,
                },
            };
            let _ = hostcalls::increment_metric(id, n as i64);
        }
    }
}
