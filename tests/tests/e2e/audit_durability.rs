//! The audit trail through control-plane restarts, with real Envoy and real control planes on
//! real PostgreSQL: two replicas behind one Envoy cluster (health-checked), load running, one
//! killed, both killed; a buffer too small for the outage (the gap record counts the loss
//! exactly); an answer lost on the way back (no duplicate); and Envoy's access log as a second
//! channel (one line per decision, no token).
//!
//! Needs `PORTCULLIS_TEST_POSTGRES_URL` (`eval "$(bash scripts/postgres.sh)"`; scripts/test.sh
//! sets it): without it these tests fail, they do not skip.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use portcullis_e2e::control_plane::{ControlPlane, SYNC_TOKEN};
use portcullis_e2e::eating_proxy::EatingProxy;
use portcullis_e2e::envoy::{EnvoyConfig, CONTROL_PLANE_CLUSTER};
use portcullis_e2e::snapshot::{rpc, tool_call, GROUP_DEVS, MCP_PATH};
use portcullis_e2e::util::wait_until;
use portcullis_e2e::{EchoUpstream, Envoy, Request, TestDir};
use serde_json::{json, Value};

use crate::common::{standard, token};

/// A schema of its own in the test PostgreSQL database, and `psql` to look inside.
struct Pg {
    url: String,
    schema: String,
    psql: PathBuf,
}

impl Pg {
    fn new(name: &str) -> Pg {
        let url = std::env::var("PORTCULLIS_TEST_POSTGRES_URL").unwrap_or_default();
        assert!(
            !url.is_empty(),
            "PORTCULLIS_TEST_POSTGRES_URL is not set: start PostgreSQL with \
             eval \"$(bash scripts/postgres.sh)\"; export PORTCULLIS_TEST_POSTGRES_URL \
             (scripts/test.sh does). These tests need it; they do not skip."
        );
        let psql = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin/psql"))
            .filter(|p| p.is_file())
            .max()
            .unwrap_or_else(|| PathBuf::from("psql"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let schema = format!("e2e_{name}_{}_{nanos}", std::process::id());
        let pg = Pg { url, schema, psql };
        pg.sql(&format!("CREATE SCHEMA {}", pg.schema));
        pg
    }

    /// `DATABASE_URL` for a control plane on this schema.
    fn database_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.url, self.schema
        )
    }

    /// Runs `sql` in this schema; the output, unaligned, tuples only.
    fn sql(&self, sql: &str) -> String {
        let out = Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-tA",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
            ])
            .arg(format!("SET search_path TO {}; {sql}", self.schema))
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn number(&self, sql: &str) -> u64 {
        let text = self.sql(sql);
        text.parse()
            .unwrap_or_else(|_| panic!("{sql}: not a number: {text:?}"))
    }

    /// (rows, distinct event ids, rows without an id, distinct request ids).
    fn audit_counts(&self) -> (u64, u64, u64, u64) {
        let row = self.sql(
            "SELECT count(*) || ',' || count(DISTINCT event_id) || ',' || \
             count(*) FILTER (WHERE event_id IS NULL) || ',' || count(DISTINCT request_id) \
             FROM audit_events",
        );
        let n: Vec<u64> = row.split(',').map(|x| x.parse().unwrap_or(0)).collect();
        (n[0], n[1], n[2], n[3])
    }

    fn stored(&self) -> u64 {
        self.number("SELECT count(*) FROM audit_events")
    }

    fn lost_in_gaps(&self) -> u64 {
        self.number("SELECT COALESCE(sum(lost), 0) FROM audit_gaps")
    }
}

/// Envoy (2 workers) whose sync cluster lists every control plane, the control planes on one
/// PostgreSQL schema, an echo server registered at `/srv` and an API key allowed on it.
/// Every request sent through [`Ha::send`] or the load is counted: each is one decision.
struct Ha {
    envoy: Envoy,
    /// Killed and restarted by the test thread while load threads share the `Ha`.
    cps: std::sync::Mutex<Vec<ControlPlane>>,
    proxy: Option<EatingProxy>,
    pg: Pg,
    api_key: String,
    sent: AtomicU64,
    #[allow(dead_code)]
    upstream: EchoUpstream,
    #[allow(dead_code)]
    dir: TestDir,
}

impl Ha {
    fn start(name: &str, replicas: usize, sync_extra: Value, eat: bool) -> Ha {
        let dir = TestDir::new(name);
        let pg = Pg::new(name);
        let upstream = EchoUpstream::start();
        let url = pg.database_url();
        // One after the other: the first runs the migrations.
        let cps: Vec<ControlPlane> = (0..replicas)
            .map(|i| {
                let d = dir.join(&format!("cp{i}"));
                std::fs::create_dir_all(&d).expect("control plane dir");
                ControlPlane::start(&d, &[("DATABASE_URL", url.as_str())])
            })
            .collect();
        let proxy = eat.then(|| EatingProxy::start(cps[0].port()));
        let ports: Vec<u16> = match &proxy {
            Some(p) => vec![p.port()],
            None => cps.iter().map(|c| c.port()).collect(),
        };
        let mut sync =
            json!({"cluster": CONTROL_PLANE_CLUSTER, "token": SYNC_TOKEN, "poll_seconds": 30});
        if let (Some(target), Some(extra)) = (sync.as_object_mut(), sync_extra.as_object()) {
            target.extend(extra.clone());
        }
        let config = EnvoyConfig::plain(upstream.port())
            .with_sync_replicas(&ports, sync)
            .with_shared_snapshot(json!({}))
            .concurrency(2);
        let envoy = Envoy::start(&config, &dir);
        let cp = &cps[0];
        let r = cp.admin(
            "POST",
            "/api/servers/register",
            Some(&json!({"name": "echo", "path": "/srv",
                         "proxy_pass_url": format!("http://127.0.0.1:{}/", upstream.port()),
                         "append_mcp_path": true})),
        );
        assert_eq!(r.status, 201, "register: {}", r.describe());
        let r = cp.admin(
            "PUT",
            "/api/scopes/echo-all",
            Some(&json!({"grants": [{"server": "echo", "methods": ["*"], "tools": ["*"]}]})),
        );
        assert!(r.status / 100 == 2, "scope: {}", r.describe());
        let minted = cp.admin(
            "POST",
            "/api/keys",
            Some(&json!({"name": "load", "scopes": ["echo-all"]})),
        );
        assert!(minted.status / 100 == 2, "key: {}", minted.describe());
        let api_key = minted.json()["key"].as_str().expect("key").to_string();
        let ha = Ha {
            envoy,
            cps: std::sync::Mutex::new(cps),
            proxy,
            pg,
            api_key,
            sent: AtomicU64::new(0),
            upstream,
            dir,
        };
        let ready = wait_until(Duration::from_secs(20), || {
            (ha.send(0).status == 200).then_some(())
        });
        assert!(
            ready.is_some(),
            "the key never worked through Envoy\n{}",
            ha.envoy.interesting_log_lines(30)
        );
        ha
    }

    /// One allowed request, counted (each request is one decision, whatever its answer).
    fn send(&self, n: u64) -> portcullis_e2e::Response {
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.envoy.send(
            Request::get(MCP_PATH)
                .header("x-api-key", &self.api_key)
                .header(
                    "x-request-id",
                    &format!("req-{n}-{}", self.sent.load(Ordering::SeqCst)),
                ),
        )
    }

    /// Waits until the trail holds `expected` decisions (stored + counted in gap records).
    fn wait_for_trail(&self, expected: u64, within: Duration) -> Duration {
        let started = Instant::now();
        let done = wait_until(within, || {
            (self.pg.stored() + self.pg.lost_in_gaps() >= expected).then_some(())
        });
        assert!(
            done.is_some(),
            "after {within:?}: {} stored + {} in gaps, expected {expected}; stats {:?}\n{}",
            self.pg.stored(),
            self.pg.lost_in_gaps(),
            self.envoy.stats("wasmcustom"),
            self.envoy.interesting_log_lines(30)
        );
        started.elapsed()
    }
}

/// Threads sending allowed requests through Envoy as fast as they are answered.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    fn start(ha: &Arc<Ha>, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads as u64)
            .map(|t| {
                let ha = ha.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut failed = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let r = ha.send(t * 1_000_000 + n);
                        if r.status != 200 && failed.len() < 10 {
                            failed.push(r.describe());
                        }
                    }
                    (n, failed)
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops; returns (requests, failures).
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = 0;
        let mut failures = Vec::new();
        for t in self.threads {
            let (n, f) = t.join().expect("load thread");
            total += n;
            failures.extend(f);
        }
        (total, failures)
    }
}

impl Ha {
    fn envoy_pid(&self) -> u32 {
        self.envoy.pid()
    }

    /// Kills control plane `i` (SIGKILL).
    fn kill(&self, i: usize) {
        self.cps.lock().expect("cps")[i].kill();
    }

    /// Starts control plane `i` again and waits until it is ready.
    fn restart(&self, i: usize) {
        self.cps.lock().expect("cps")[i].restart();
    }

    fn admin(&self, i: usize, path: &str) -> Value {
        self.cps.lock().expect("cps")[i]
            .admin("GET", path, None)
            .json()
    }
}

/// Rolling restart (each replica killed and restarted in turn), then both down for 3 s, all
/// under load: no request fails, and every decision is stored exactly once.
#[test]
fn replicas_killed_under_load_lose_no_decision_and_store_each_once() {
    let ha = Arc::new(Ha::start("audit_ha", 2, json!({}), false));
    let load = Load::start(&ha, 2);
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..2 {
        ha.kill(i);
        std::thread::sleep(Duration::from_millis(1500));
        ha.restart(i);
        std::thread::sleep(Duration::from_millis(1000));
    }
    let before_outage = ha.pg.stored();
    let sent_before_outage = ha.sent.load(Ordering::SeqCst);
    eprintln!(
        "[audit_ha] rolling restart done: {before_outage} stored of {sent_before_outage} sent"
    );
    // Both down.
    ha.kill(0);
    ha.kill(1);
    std::thread::sleep(Duration::from_secs(3));
    let back = Instant::now();
    ha.restart(0);
    ha.restart(1);
    std::thread::sleep(Duration::from_millis(1000));
    let (requests, failures) = load.finish();
    let sent = ha.sent.load(Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{} requests failed: {failures:#?}",
        failures.len()
    );
    let took = ha.wait_for_trail(sent, Duration::from_secs(30));
    eprintln!(
        "[audit_ha] {requests} requests under load ({sent} in all); every decision stored {:?} after the last restart began ({took:?} after the load stopped)",
        back.elapsed()
    );
    let (rows, ids, without_id, request_ids) = ha.pg.audit_counts();
    assert_eq!(rows, sent, "every decision stored exactly once");
    assert_eq!(ids, rows, "one row per event id");
    assert_eq!(without_id, 0);
    assert_eq!(request_ids, sent, "every request's own record");
    assert_eq!(ha.pg.lost_in_gaps(), 0, "nothing lost");
    assert_eq!(ha.envoy.wasm_stat("portcullis.audit.dropped"), 0);
    // The API shows each decision once: a page of the newest has distinct ids.
    let page = ha.admin(0, "/api/audit?limit=1000");
    let events = page["events"].as_array().expect("events");
    let distinct: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(distinct.len(), events.len());
    assert_eq!(page["gaps"], json!([]));
}

/// A buffer of 300 events, both control planes down, 1,000 decisions: what the buffer could
/// not hold is lost, counted exactly in one gap record (stored, and shown by the API), and what
/// it held is stored once.
#[test]
fn beyond_the_buffer_bound_the_gap_record_counts_exactly_what_was_lost() {
    let ha = Arc::new(Ha::start(
        "audit_gap",
        2,
        json!({"audit_buffer_events": 300, "audit_batch_events": 100}),
        false,
    ));
    ha.kill(0);
    ha.kill(1);
    let outage_from = portcullis_e2e::util::now() * 1000;
    for n in 0..1000 {
        assert_eq!(ha.send(n).status, 200);
    }
    // Workers hand their batches over every 250 ms.
    std::thread::sleep(Duration::from_millis(600));
    ha.restart(1);
    let sent = ha.sent.load(Ordering::SeqCst);
    ha.wait_for_trail(sent, Duration::from_secs(20));
    // Let anything still in flight land, then count.
    std::thread::sleep(Duration::from_millis(500));
    let stored = ha.pg.stored();
    let lost = ha.pg.lost_in_gaps();
    eprintln!("[audit_gap] {sent} decisions: {stored} stored, {lost} in the gap record");
    assert_eq!(stored + lost, sent, "the trail accounts for every decision");
    assert!(lost >= 1000 - 300, "lost {lost}");
    let (rows, ids, _, _) = ha.pg.audit_counts();
    assert_eq!(rows, ids, "nothing stored twice");
    assert_eq!(
        ha.envoy.wasm_stat("portcullis.audit.dropped.buffer_full"),
        lost,
        "{:?}",
        ha.envoy.stats("wasmcustom")
    );
    let page = ha.admin(1, "/api/audit?limit=1");
    let gaps = page["gaps"].as_array().expect("gaps");
    assert_eq!(gaps.len(), 1, "one run of losses, one record: {gaps:?}");
    assert_eq!(gaps[0]["lost"], lost);
    assert_eq!(gaps[0]["reason"], "buffer_full");
    let from = gaps[0]["from_ms"].as_u64().unwrap();
    let to = gaps[0]["to_ms"].as_u64().unwrap();
    assert!(from + 2000 >= outage_from && from <= to, "{gaps:?}");
}

/// The control plane stores a batch but its answer never reaches Envoy (three times): Envoy
/// sends the batch again and nothing is stored twice.
#[test]
fn a_lost_answer_does_not_store_a_batch_twice() {
    let ha = Ha::start("audit_lost_answer", 1, json!({}), true);
    let proxy = ha.proxy.as_ref().expect("proxy");
    proxy.eat_audit_answers(3);
    for n in 0..600 {
        assert_eq!(ha.send(n).status, 200);
        if n % 100 == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let sent = ha.sent.load(Ordering::SeqCst);
    ha.wait_for_trail(sent, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let (eaten, statuses) = proxy.eaten();
    assert_eq!(eaten, 3, "three answers were lost");
    assert!(
        statuses.iter().all(|s| s.contains(" 202 ")),
        "the control plane had stored each batch: {statuses:?}"
    );
    let (rows, ids, _, request_ids) = ha.pg.audit_counts();
    assert_eq!(rows, sent, "each decision stored once, not once per send");
    assert_eq!((ids, request_ids), (sent, sent));
    assert!(
        ha.cps.lock().expect("cps")[0]
            .log()
            .contains("already stored were skipped"),
        "the resent batches were recognised"
    );
}

/// The access-log channel: N decisions, N access-log lines carrying the audit record (from the
/// documented format in examples/envoy/audit-access-log.yaml), and no token in any line. No
/// control plane and no singleton: the log alone keeps the trail.
#[test]
fn the_access_log_has_every_decision_and_no_token() {
    let dir = TestDir::new("audit_access_log");
    let upstream = EchoUpstream::start();
    let example = std::fs::read_to_string(
        portcullis_e2e::paths::repo_root().join("examples/envoy/audit-access-log.yaml"),
    )
    .expect("the example");
    let example: Value = serde_norway::from_str(&example).expect("the example is YAML");
    let format = example["access_log"][0]["typed_config"]["log_format"]["json_format"].clone();
    assert!(format.is_object(), "{example}");
    let snapshot = standard().build();
    let config = EnvoyConfig::plain(upstream.port())
        .with_plugin_configuration(json!({"snapshot": snapshot, "audit": true}).to_string())
        .access_log_format(format);
    let envoy = Envoy::start(&config, &dir);
    let alice = token("alice", &[GROUP_DEVS]);
    let mut requests: Vec<(Request, u16)> = Vec::new();
    for i in 0..8 {
        requests.push((
            Request::post(MCP_PATH)
                .json(&tool_call(i, "echo", json!({"message": "hi"})))
                .bearer(&alice),
            200,
        ));
    }
    for i in 0..4 {
        requests.push((
            Request::post(MCP_PATH)
                .json(&tool_call(i, "get-sum", json!({"a": 1, "b": 2})))
                .bearer(&alice),
            403,
        ));
        requests.push((
            Request::post(MCP_PATH).json(&rpc(i, "tools/list", json!({}))),
            401,
        ));
        requests.push((
            Request::get(MCP_PATH).bearer("not-a-jwt-secret-value-0123456789"),
            401,
        ));
    }
    let n = requests.len();
    for (r, status) in requests {
        let resp = envoy.send(r);
        assert_eq!(resp.status, status, "{}", resp.describe());
    }
    let lines = wait_until(Duration::from_secs(5), || {
        let lines = envoy.access_log();
        (lines.len() >= n).then_some(lines)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} access-log lines, expected {n}",
            envoy.access_log().len()
        )
    });
    assert_eq!(lines.len(), n);
    let raw = std::fs::read_to_string(envoy.dir().join("access.log")).unwrap_or_default();
    for secret in [alice.as_str(), "not-a-jwt-secret-value", "Bearer", "eyJ"] {
        assert!(
            !raw.contains(secret),
            "a credential in the access log: {secret}\n{raw}"
        );
    }
    let mut ids = std::collections::HashSet::new();
    let mut decisions = std::collections::BTreeMap::new();
    for line in &lines {
        let record = line["portcullis"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}"));
        let record: Value = serde_json::from_str(record).expect("the record is JSON");
        for field in [
            "time_ms",
            "policy_version",
            "decision",
            "status",
            "reason",
            "sub",
            "groups",
            "server",
            "method",
            "tool",
            "http_method",
            "path",
            "event_id",
        ] {
            assert!(record.get(field).is_some(), "{field} missing: {record}");
        }
        assert_eq!(record["status"], line["status"], "{line}");
        ids.insert(record["event_id"].as_str().unwrap().to_string());
        *decisions
            .entry(record["reason"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(ids.len(), n, "one event id per decision");
    eprintln!("[audit_access_log] {n} lines, reasons {decisions:?}");
    assert_eq!(decisions.get("allowed"), Some(&8));
    assert_eq!(decisions.get("tool_not_allowed"), Some(&4));
}

/// Envoy's resident memory (kB), from /proc.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The benchmark behind docs/benchmarks.md, "Audit through control-plane outages" (ignored in
/// the test run; `bash bench/audit/run.sh` runs it with the release control plane). For each
/// outage of OUTAGES seconds (default "5 30 60"), at RATE decisions/s (default 2000, paced over
/// 4 threads): both control planes killed, restarted, and the trail watched until it has
/// every decision. Prints one JSON line per outage.
#[test]
#[ignore]
fn bench_audit_outages() {
    let outages: Vec<u64> = std::env::var("OUTAGES")
        .unwrap_or_else(|_| "5 30 60".into())
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let rate: u64 = std::env::var("RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    for outage in outages {
        let ha = Arc::new(Ha::start("bench_audit", 2, json!({}), false));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<JoinHandle<u64>> = (0..4u64)
            .map(|t| {
                let ha = ha.clone();
                let stop = stop.clone();
                let per_thread = rate / 4;
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let mut n = 0u64;
                    let mut failed = 0;
                    while !stop.load(Ordering::SeqCst) {
                        // Paced: request n goes out at n / per_thread seconds.
                        let due = Duration::from_secs_f64(n as f64 / per_thread as f64);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait);
                        }
                        n += 1;
                        if ha.send(t * 100_000_000 + n).status != 200 {
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        let pid = ha.envoy_pid();
        std::thread::sleep(Duration::from_secs(3));
        let rss_before = rss_kb(pid);
        let load_started = Instant::now();
        let sent_at_start = ha.sent.load(Ordering::SeqCst);
        ha.kill(0);
        ha.kill(1);
        let down_at = Instant::now();
        std::thread::sleep(Duration::from_secs(outage));
        let buffered = ha.envoy.wasm_stat("portcullis.audit.buffered");
        let buffered_bytes = ha.envoy.wasm_stat("portcullis.audit.buffered_bytes");
        let rss_at_peak = rss_kb(pid);
        let backlog = ha.sent.load(Ordering::SeqCst) - ha.pg.stored();
        ha.restart(0);
        let back_at = Instant::now();
        ha.restart(1);
        // Watch the drain: stored count every 100 ms until the backlog is gone.
        let mut samples: Vec<(f64, u64)> = Vec::new();
        let target = ha.sent.load(Ordering::SeqCst);
        let drained = loop {
            let stored = ha.pg.stored() + ha.pg.lost_in_gaps();
            samples.push((back_at.elapsed().as_secs_f64(), stored));
            if stored >= target {
                break back_at.elapsed();
            }
            assert!(back_at.elapsed() < Duration::from_secs(120), "no drain");
            std::thread::sleep(Duration::from_millis(100));
        };
        stop.store(true, Ordering::SeqCst);
        let failed: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        let sent = ha.sent.load(Ordering::SeqCst);
        ha.wait_for_trail(sent, Duration::from_secs(60));
        let offered = (sent - sent_at_start) as f64 / load_started.elapsed().as_secs_f64();
        // Drain rate: the fastest 1-second window of stored records after the restart.
        let mut best = 0.0f64;
        for (i, (t0, n0)) in samples.iter().enumerate() {
            if let Some((t1, n1)) = samples[i..].iter().find(|(t, _)| *t >= t0 + 1.0) {
                best = best.max((n1 - n0) as f64 / (t1 - t0));
            }
        }
        let (rows, ids, _, _) = ha.pg.audit_counts();
        let line = json!({
            "outage_s": outage,
            "offered_per_s": offered.round(),
            "sent": sent,
            "stored": rows,
            "distinct_ids": ids,
            "lost": ha.pg.lost_in_gaps(),
            "failed_requests": failed,
            "backlog_at_restart": backlog,
            "buffered_events_at_peak": buffered,
            "buffered_bytes_at_peak": buffered_bytes,
            "bytes_per_event": buffered_bytes.checked_div(buffered).unwrap_or(0),
            "envoy_rss_kb_before": rss_before,
            "envoy_rss_kb_at_peak": rss_at_peak,
            "recovery_s": (drained.as_secs_f64() * 100.0).round() / 100.0,
            "outage_measured_s": (back_at - down_at).as_secs_f64(),
            "drain_rate_per_s": best.round(),
        });
        println!("BENCH {line}");
    }
}
