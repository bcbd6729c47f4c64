//! A small in-process Prometheus registry: requests by route and status, and their latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::http::state::AppState;

const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency.
    latency: Mutex<BTreeMap<String, Histogram>>,
    policy_version: AtomicU64,
    audit_received: AtomicU64,
    audit_dropped: AtomicU64,
    audit_refused: AtomicU64,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_string()).or_default();
            let secs = elapsed.as_secs_f64();
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    pub fn set_policy_version(&self, version: u64) {
        self.policy_version.store(version, Ordering::Relaxed);
    }

    pub fn audit_received(&self, n: u64) {
        self.audit_received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn audit_dropped(&self, n: u64) {
        // Saturates: a counter that wrapped would read as a reset to Prometheus.
        let _ = self
            .audit_dropped
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(n))
            });
    }

    pub fn audit_refused(&self, n: u64) {
        self.audit_refused.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, value) in [
            ("portcullis_policy_version", "gauge", "Version of the policy snapshot this replica serves.", &self.policy_version),
            ("portcullis_audit_events_received_total", "counter", "Audit events stored from Envoy sync services.", &self.audit_received),
            ("portcullis_audit_events_dropped_total", "counter", "Audit events Envoys reported dropping (buffer full while the control plane was unreachable).", &self.audit_dropped),
            ("portcullis_audit_events_refused_total", "counter", "Audit events refused because their time_ms was outside the stored window (more than 5 minutes ahead, or older than the retention period).", &self.audit_refused),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", value.load(Ordering::Relaxed));
        }
        out.push_str(
            "# HELP portcullis_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE portcullis_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((method, route, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "portcullis_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(method),
                    escape(route)
                );
            }
        }
        out.push_str("# HELP portcullis_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE portcullis_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                let route = escape(route);
                for (i, le) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "portcullis_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {}",
                        h.buckets[i]
                    );
                }
                let _ = writeln!(out, "portcullis_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(
                    out,
                    "portcullis_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "portcullis_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        out
    }
}

/// Middleware: counts and logs every request under its route template (never the raw path,
/// so label cardinality stays bounded; requests no route matched count as `fallback`: the
/// path-appended metadata documents and 404s).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    // Standard methods only: a client cannot mint label values.
    let method = match *request.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS => request.method().as_str().to_string(),
        _ => "other".to_string(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "fallback".to_string(), |m| m.as_str().to_string());
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    state.metrics.record(&method, &route, status, elapsed);
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch claiming u64::MAX dropped events must not wrap the counter (Prometheus would read
    /// a wrap as a reset and lose the count).
    #[test]
    fn the_dropped_counter_saturates() {
        let m = Metrics::default();
        m.audit_dropped(2);
        m.audit_dropped(u64::MAX);
        m.audit_dropped(5);
        assert_eq!(m.audit_dropped.load(Ordering::Relaxed), u64::MAX);
    }
}
