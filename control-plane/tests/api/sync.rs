//! `/v1/policy` (versioned snapshots, ETag, long-poll), `/v1/audit` and `/api/audit`, and two
//! replicas on one PostgreSQL database.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request};
use serde_json::{json, Value};

use crate::common::*;

pub const SYNC_TOKEN: &str = "test-sync-token-0123456789";

both_backends!(
    sync_endpoints_need_the_sync_token,
    versions_follow_content_and_long_polls_wake_on_change,
    deltas_carry_what_changed_and_apply_to_the_last_snapshot,
    every_rebuild_from_recorded_changes_matches_a_full_read,
    a_whole_read_beside_the_loop_misses_nothing_written_meanwhile,
    audit_batches_are_stored_and_searchable,
    bad_audit_batches_change_nothing,
    audit_retention_keeps_the_newest,
    audit_text_round_trips_exactly,
    audit_times_outside_the_window_are_refused_alone,
    audit_events_with_an_id_are_stored_once,
    audit_gaps_are_stored_once_with_their_largest_count_and_shown,
);

async fn sync_app(b: &Backend) -> TestApp {
    let t = app_with(b, |c| {
        c.sync_token_sha256 = Some(portcullis::config::sha256(SYNC_TOKEN.as_bytes()));
    })
    .await;
    t.state.publisher.spawn();
    t
}

impl TestApp {
    /// `GET /v1/policy` with the sync token, an optional known ETag and wait.
    pub async fn poll(&self, etag: Option<&str>, wait: u64) -> Answer {
        let mut b = Request::get(format!("/v1/policy?wait={wait}"))
            .header(header::AUTHORIZATION, format!("Bearer {SYNC_TOKEN}"));
        if let Some(etag) = etag {
            b = b.header(header::IF_NONE_MATCH, etag);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// `GET /v1/policy?deltas=1` with the sync token, the known ETag and wait.
    pub async fn poll_deltas(&self, etag: &str, wait: u64) -> Answer {
        let b = Request::get(format!("/v1/policy?wait={wait}&deltas=1"))
            .header(header::AUTHORIZATION, format!("Bearer {SYNC_TOKEN}"))
            .header(header::IF_NONE_MATCH, etag);
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// The first snapshot, once the rebuild task has published it.
    pub async fn first_snapshot(&self) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = self.poll(None, 0).await;
            if a.status.as_u16() == 200 || Instant::now() > deadline {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The whole snapshot served once it maps every group in `groups` (10 s at most).
    pub async fn snapshot_mapping(&self, groups: &[&str]) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let whole = self.poll(None, 0).await;
            let json = whole.json();
            let mapped: Vec<&str> = json["group_mappings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["group"].as_str())
                .collect();
            if groups.iter().all(|g| mapped.contains(g)) {
                return whole;
            }
            assert!(
                Instant::now() < deadline,
                "{groups:?} not all published: {mapped:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn post_audit(&self, body: Value) -> Answer {
        self.call("POST", "/v1/audit", Some(SYNC_TOKEN), Some(body))
            .await
    }
}

fn etag_of(a: &Answer) -> String {
    a.headers[header::ETAG].to_str().unwrap().to_string()
}

fn version_of(a: &Answer) -> u64 {
    let header: u64 = a.headers["x-portcullis-policy-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(a.json()["version"], header, "header and body agree");
    header
}

async fn sync_endpoints_need_the_sync_token(b: Backend) {
    // Not configured: disabled, and says how to enable it.
    let off = app(&b).await;
    let msg = off
        .call("GET", "/v1/policy", Some(SYNC_TOKEN), None)
        .await
        .error(503);
    assert!(msg.contains("PORTCULLIS_SYNC_TOKEN"), "{msg}");
    off.call(
        "POST",
        "/v1/audit",
        Some(SYNC_TOKEN),
        Some(json!({"events": []})),
    )
    .await
    .error(503);

    let t = sync_app(&b).await;
    t.call("GET", "/v1/policy", None, None).await.error(401);
    t.call("GET", "/v1/policy", Some("wrong-token-0123456789"), None)
        .await
        .error(401);
    // The admin token is not a sync token, and the sync token is not an admin token.
    t.call("GET", "/v1/policy", Some(ADMIN_TOKEN), None)
        .await
        .error(401);
    t.call("GET", "/api/servers", Some(SYNC_TOKEN), None)
        .await
        .error(401);
    t.call("POST", "/v1/audit", None, Some(json!({"events": []})))
        .await
        .error(401);
    t.first_snapshot().await.ok(200);
}

async fn versions_follow_content_and_long_polls_wake_on_change(b: Backend) {
    let t = sync_app(&b).await;
    let first = t.first_snapshot().await;
    let body = first.ok(200);
    assert_eq!(body["format"], 1);
    assert_eq!(first.headers[header::CACHE_CONTROL], "no-store");
    let v1 = version_of(&first);
    let e1 = etag_of(&first);
    assert!(e1.starts_with(&format!("\"{v1}-")), "{e1}");
    policy::Policy::from_json(first.text.as_bytes()).expect("the served snapshot validates");

    // Same content: 304 with the same ETag, however often it is rebuilt.
    let same = t.poll(Some(&e1), 0).await;
    assert_eq!(same.status.as_u16(), 304);
    assert_eq!(etag_of(&same), e1);
    t.state.publisher.rebuild().await.unwrap();
    t.state.publisher.rebuild().await.unwrap();
    assert_eq!(t.poll(Some(&e1), 0).await.status.as_u16(), 304);
    // W/ and unquoted forms name the same version.
    assert_eq!(
        t.poll(Some(&format!("W/{e1}")), 0).await.status.as_u16(),
        304
    );

    // A held poll times out with 304 after about `wait`.
    let started = Instant::now();
    assert_eq!(t.poll(Some(&e1), 1).await.status.as_u16(), 304);
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A held poll answers as soon as a change is published.
    let poller = {
        let t2 = t.share();
        let e1 = e1.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let a = t2.poll(Some(&e1), 30).await;
            (a, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let changed_at = Instant::now();
    t.register("GitHub", "/github", &[]).await;
    let (second, held) = poller.await.unwrap();
    let after_change = changed_at.elapsed();
    second.ok(200);
    let v2 = version_of(&second);
    assert_eq!(v2, v1 + 1);
    assert!(held >= Duration::from_millis(150), "it was held: {held:?}");
    assert!(
        after_change < Duration::from_secs(1),
        "answered {after_change:?} after the change"
    );
    assert_eq!(second.json()["servers"][0]["name"], "GitHub");
    eprintln!("long-poll answered {after_change:?} after the API call");

    // An unknown or old ETag gets the current snapshot at once.
    assert_eq!(version_of(&t.poll(Some(&e1), 30).await), v2);
    assert_eq!(version_of(&t.poll(Some("\"999-nothing\""), 30).await), v2);

    // Back to the first content: a new version, never an old one reused.
    t.admin("DELETE", "/api/servers/github", None).await.ok(204);
    let e2 = etag_of(&second);
    let third = t.poll(Some(&e2), 10).await;
    assert_eq!(version_of(&third), v2 + 1);

    // Bad parameters.
    t.call("GET", "/v1/policy?wait=61", Some(SYNC_TOKEN), None)
        .await
        .error(422);
    t.call("GET", "/v1/policy?wait=-1", Some(SYNC_TOKEN), None)
        .await
        .error(400);
    t.call("GET", "/v1/policy?since=3", Some(SYNC_TOKEN), None)
        .await
        .error(400);
}

async fn deltas_carry_what_changed_and_apply_to_the_last_snapshot(b: Backend) {
    use policy::snapshot::SnapshotDelta;
    let t = sync_app(&b).await;
    let first = t.first_snapshot().await;
    let e1 = etag_of(&first);
    let p1 = policy::Policy::from_json(first.text.as_bytes()).unwrap();
    // Up to date: held, then 304, as without deltas.
    assert_eq!(t.poll_deltas(&e1, 0).await.status.as_u16(), 304);

    // Three changes: a server, a scope granting on it, a group mapped to the scope.
    t.register("GitHub", "/github", &[]).await;
    let grants =
        json!({"grants": [{"server": "GitHub", "methods": ["tools/call"], "tools": ["*"]}]});
    t.admin("PUT", "/api/scopes/github-use", Some(grants))
        .await
        .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/eng",
        Some(json!({"scopes": ["github-use"]})),
    )
    .await
    .ok(201);
    // Wait until the last change is published, then ask for what changed since e1.
    let latest = t.snapshot_mapping(&["eng"]).await;
    let answer = t.poll_deltas(&e1, 0).await;
    assert_eq!(answer.status.as_u16(), 200);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        policy::snapshot::DELTAS_MEDIA_TYPE
    );
    assert_eq!(etag_of(&answer), etag_of(&latest));
    let deltas = SnapshotDelta::parse_lines(answer.text.as_bytes()).unwrap();
    assert!(!deltas.is_empty() && deltas.len() <= 3, "{}", answer.text);
    assert_eq!(deltas[0].base, e1);
    assert_eq!(deltas.last().unwrap().etag, etag_of(&latest));
    // Each names only what changed: no other entry travels.
    let all: Vec<&SnapshotDelta> = deltas.iter().collect();
    assert_eq!(all.iter().map(|d| d.servers.len()).sum::<usize>(), 1);
    assert!(all
        .iter()
        .all(|d| d.issuers.is_none() && d.settings.is_none()));

    // Applied to the first policy, they give the policy of the whole latest snapshot.
    let mut followed = p1;
    for delta in &deltas {
        followed = followed.apply(delta).unwrap();
    }
    let whole = policy::Policy::from_json(latest.text.as_bytes()).unwrap();
    assert_eq!(followed.version, whole.version);
    assert_eq!(followed.server_count(), whole.server_count());
    let names = |p: &policy::Policy| {
        p.scopes_for_groups(&["eng"])
            .iter()
            .map(|id| p.scope_names[id].to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&followed), vec!["github-use".to_string()]);
    assert_eq!(names(&followed), names(&whole));

    // An ETag the control plane keeps no deltas from gets the whole snapshot.
    let unknown = t.poll_deltas("\"999-nothing\"", 0).await;
    assert_eq!(unknown.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(version_of(&unknown), whole.version);
    t.call("GET", "/v1/policy?deltas=2", Some(SYNC_TOKEN), None)
        .await
        .error(422);
}

/// After every kind of change, the snapshot rebuilt from what the writes recorded (and the
/// policy the delta gave) is the one a full read of storage compiles to.
async fn every_rebuild_from_recorded_changes_matches_a_full_read(b: Backend) {
    let t = app(&b).await;
    let publisher = &t.state.publisher;
    let mut last = publisher.rebuild().await.unwrap();
    let grants = |server: &str| {
        json!({"grants": [{"server": server, "methods": ["tools/call"], "tools": ["*"]},
                          {"server": "*", "methods": ["tools/list"]}]})
    };
    type Call<'a> = (&'a str, String, Option<Value>);
    let steps: Vec<(&str, Vec<Call>)> = vec![
        (
            "a scope on a server not registered yet",
            vec![
                ("PUT", "/api/scopes/gh".into(), Some(grants("GitHub"))),
                (
                    "PUT",
                    "/api/group-mappings/eng".into(),
                    Some(json!({"scopes": ["gh"]})),
                ),
            ],
        ),
        (
            "a scope on a second server",
            vec![
                ("PUT", "/api/scopes/docs".into(), Some(grants("Docs"))),
                (
                    "PUT",
                    "/api/group-mappings/ops".into(),
                    Some(json!({"scopes": ["gh", "docs"]})),
                ),
                (
                    "POST",
                    "/api/keys".into(),
                    Some(json!({"name": "ci", "scopes": ["docs"], "groups": ["eng"]})),
                ),
            ],
        ),
        (
            "the server renamed",
            vec![(
                "PUT",
                "/api/servers/github".into(),
                Some(
                    json!({"name": "GitHub2", "path": "/github", "proxy_pass_url": "http://127.0.0.1:9/"}),
                ),
            )],
        ),
        (
            "a mapping deleted",
            vec![("DELETE", "/api/group-mappings/eng".into(), None)],
        ),
        (
            "a scope deleted while mapped and keyed",
            vec![("DELETE", "/api/scopes/docs".into(), None)],
        ),
        (
            "the server deleted",
            vec![("DELETE", "/api/servers/github".into(), None)],
        ),
        (
            "the key deleted",
            vec![("DELETE", "/api/keys/ci".into(), None)],
        ),
    ];
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/docs", &[]).await;
    for (what, calls) in steps {
        for (method, path, body) in calls {
            let a = t.admin(method, &path, body).await;
            assert!(a.status.is_success(), "{what}: {method} {path}: {}", a.text);
        }
        let published = publisher.rebuild().await.unwrap();
        assert_ne!(published.etag, last.etag, "{what}: a new version");
        assert!(!published
            .deltas_since(last.etag.trim_matches('"'))
            .unwrap()
            .is_empty());
        let mut fresh = portcullis::sync::compile_snapshot(publisher.sources(), published.version)
            .await
            .unwrap();
        fresh.servers.sort_by(|a, b| a.name.cmp(&b.name));
        let served: policy::snapshot::Snapshot =
            serde_json::from_slice(&published.body().await.unwrap()).unwrap();
        assert_eq!(served, fresh, "{what}");
        // The policy the delta gave decides as the full snapshot's does.
        let whole = policy::Policy::compile(fresh).unwrap();
        let followed = &published.policy;
        assert_eq!(followed.server_count(), whole.server_count(), "{what}");
        for groups in [&["eng"][..], &["ops"], &["eng", "ops"], &[]] {
            let names = |p: &policy::Policy| {
                let mut n: Vec<String> = p
                    .scopes_for_groups(groups)
                    .iter()
                    .map(|i| p.scope_names[i].to_string())
                    .collect();
                n.sort();
                n
            };
            assert_eq!(names(followed), names(&whole), "{what}: {groups:?}");
        }
        last = published;
    }
}

/// A change nothing recorded (another process's write) makes the loop read everything in a
/// task of its own; the precise changes made meanwhile are published as usual, and the
/// result of the whole read, caught up with them, loses neither.
async fn a_whole_read_beside_the_loop_misses_nothing_written_meanwhile(b: Backend) {
    let t = sync_app(&b).await;
    t.first_snapshot().await.ok(200);
    for i in 0..100 {
        t.register(&format!("s{i}"), &format!("/s{i}"), &[]).await;
    }
    let url = match &t.config.database_url {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}",
            t.config.data_dir.join("portcullis.db").display()
        ),
    };
    let other = portcullis::storage::Db::connect_url(&url).await.unwrap();
    other.put_group_mapping("quiet", &[]).await.unwrap();
    t.state.publisher.changed(&t.state.db).await;
    let grants = json!({"grants": [{"server": "s1", "methods": ["*"], "tools": ["*"]}]});
    t.admin("PUT", "/api/scopes/loud", Some(grants))
        .await
        .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/loud",
        Some(json!({"scopes": ["loud"]})),
    )
    .await
    .ok(201);
    let served = t.snapshot_mapping(&["quiet", "loud"]).await.json();
    let version = served["version"].as_u64().unwrap();
    let mut fresh = portcullis::sync::compile_snapshot(t.state.publisher.sources(), version)
        .await
        .unwrap();
    fresh.servers.sort_by(|a, b| a.name.cmp(&b.name));
    let served: policy::snapshot::Snapshot = serde_json::from_value(served).unwrap();
    assert_eq!(served, fresh);
}

/// The `time_ms` of test event 0: an hour ago, whole seconds (events older than the retention
/// period or ahead of the clock are refused).
pub fn audit_base_ms() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        (now - 3_600_000) / 1000 * 1000
    })
}

pub fn audit_event(n: u64, decision: &str, sub: &str, tool: Option<&str>) -> Value {
    json!({
        "time_ms": audit_base_ms() + n, "request_id": format!("req-{n}"), "policy_version": 3,
        "decision": decision, "status": if decision == "allow" { 200 } else { 403 },
        "reason": if decision == "allow" { "allowed" } else { "tool_not_allowed" },
        "sub": sub, "username": format!("{sub}-name"), "issuer": ISSUER, "client_id": "cli",
        "groups": ["eng"], "scopes": ["read"], "server": "everything",
        "method": "tools/call", "tool": tool, "http_method": "POST", "path": "/everything/mcp"
    })
}

async fn audit_batches_are_stored_and_searchable(b: Backend) {
    let t = sync_app(&b).await;
    let events: Vec<Value> = (0..5)
        .map(|n| {
            let (decision, sub, tool) = match n {
                0 => ("allow", "alice", Some("echo")),
                1 => ("deny", "alice", Some("add")),
                2 => ("allow", "bob", Some("echo")),
                3 => ("deny", "bob", None),
                _ => ("allow", "alice", Some("echo")),
            };
            audit_event(n, decision, sub, tool)
        })
        .collect();
    let a = t.post_audit(json!({"events": events})).await;
    assert_eq!(a.ok(202)["accepted"], 5);

    let all = t.admin("GET", "/api/audit", None).await.ok(200);
    let list = all["events"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    assert!(all["next_cursor"].is_null());
    // Newest first, every field as sent, plus id and received time.
    let newest = &list[0];
    let mut expected = events[4].clone();
    for (k, v) in expected.as_object_mut().unwrap().iter_mut() {
        assert_eq!(&newest[k], v, "field {k}");
        *v = Value::Null;
    }
    assert_eq!(newest["id"].as_str().unwrap().len(), 32);
    assert!(newest["received_ms"].as_u64().unwrap() > audit_base_ms());

    let count = |q: &str| {
        let t = &t;
        let q = q.to_string();
        async move {
            t.admin("GET", &format!("/api/audit?{q}"), None)
                .await
                .ok(200)["events"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(count("user=alice").await, 3);
    assert_eq!(count("user=bob-name").await, 2, "username matches too");
    assert_eq!(count("decision=deny").await, 2);
    assert_eq!(count("tool=echo").await, 3);
    assert_eq!(
        count("server=everything&decision=allow&user=alice").await,
        2
    );
    assert_eq!(count("server=other").await, 0);
    let base = audit_base_ms();
    assert_eq!(
        count(&format!("since={}&until={}", base + 1, base + 3)).await,
        2
    );

    // Paging: 2 + 2 + 1, no overlap, same order as one page.
    let mut seen = Vec::new();
    let mut uri = "/api/audit?limit=2".to_string();
    loop {
        let page = t.admin("GET", &uri, None).await.ok(200);
        for e in page["events"].as_array().unwrap() {
            seen.push(e["request_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/audit?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["req-4", "req-3", "req-2", "req-1", "req-0"]);

    // Only admins read the trail.
    t.call("GET", "/api/audit", Some(&token("carol", &["eng"])), None)
        .await
        .error(403);
    t.call("GET", "/api/audit", None, None).await.error(401);
    // Bad parameters are refused, not ignored.
    for (q, status) in [
        ("decision=maybe", 422),
        ("limit=0", 422),
        ("limit=1001", 422),
        ("cursor=nonsense", 422),
        ("since=5&until=5", 422),
        ("since=yesterday", 400),
        ("color=blue", 400),
    ] {
        t.admin("GET", &format!("/api/audit?{q}"), None)
            .await
            .error(status);
    }
    let m = t.call("GET", "/metrics", None, None).await.text;
    assert!(
        m.contains("portcullis_audit_events_received_total 5"),
        "{m}"
    );
}

async fn bad_audit_batches_change_nothing(b: Backend) {
    let t = app_with(&b, |c| {
        c.sync_token_sha256 = Some(portcullis::config::sha256(SYNC_TOKEN.as_bytes()));
        c.audit.max_batch = 3;
    })
    .await;
    let good = audit_event(1, "allow", "alice", Some("echo"));
    let mut bad_reason = good.clone();
    bad_reason["reason"] = json!("Robert'); DROP TABLE audit_events;--");
    let mut no_path = good.clone();
    no_path.as_object_mut().unwrap().remove("path");
    let cases = [
        (
            json!({"events": [good.clone(), bad_reason]}),
            400,
            "events[1].reason",
        ),
        (json!({"events": [no_path]}), 400, "path"),
        (
            json!({"events": [good.clone()], "extra": true}),
            400,
            "extra",
        ),
        (json!({"events": "all of them"}), 400, "events"),
        (json!({"events": vec![good.clone(); 4]}), 413, ""),
    ];
    for (body, status, mention) in cases {
        let msg = t.post_audit(body).await.error(status);
        assert!(msg.contains(mention), "{msg:?} should mention {mention}");
    }
    let raw = Request::post("/v1/audit")
        .header(header::AUTHORIZATION, format!("Bearer {SYNC_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"events\": [ "))
        .unwrap();
    t.send(raw).await.error(400);
    assert_eq!(t.state.db.count_audit().await.unwrap(), 0, "nothing stored");
    // A report of dropped events is counted.
    t.post_audit(json!({"events": [good], "dropped": 7}))
        .await
        .ok(202);
    let m = t.call("GET", "/metrics", None, None).await.text;
    assert!(m.contains("portcullis_audit_events_dropped_total 7"), "{m}");
}

async fn audit_retention_keeps_the_newest(b: Backend) {
    let t = sync_app(&b).await;
    let events: Vec<Value> = (0..10)
        .map(|n| audit_event(n, "allow", "a", None))
        .collect();
    t.post_audit(json!({"events": events})).await.ok(202);
    // Older than the cutoff go, then all but the newest 4.
    let deleted = t
        .state
        .db
        .prune_audit(audit_base_ms() as i64 + 2, 4)
        .await
        .unwrap();
    assert_eq!(deleted, 6);
    let left = t.admin("GET", "/api/audit", None).await.ok(200);
    let ids: Vec<&str> = left["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["req-9", "req-8", "req-7", "req-6"]);
    assert_eq!(t.state.db.prune_audit(0, 100).await.unwrap(), 0);
}

/// `time_ms` more than 5 minutes ahead of the control plane's clock, or older than the retention
/// period, is refused event by event: the batch's other events are stored, the answer counts
/// both, the refusals are counted in the metrics.
async fn audit_times_outside_the_window_are_refused_alone(b: Backend) {
    let t = app_with(&b, |c| {
        c.sync_token_sha256 = Some(portcullis::config::sha256(SYNC_TOKEN.as_bytes()));
        c.audit.retention = Duration::from_secs(86_400);
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = |n: u64, time_ms: u64| {
        let mut e = audit_event(n, "allow", "alice", Some("echo"));
        e["time_ms"] = json!(time_ms);
        e
    };
    let events = [
        at(0, now - 1000),                // kept
        at(1, now + 10 * 60_000),         // 10 minutes ahead: refused
        at(2, now + 60_000),              // 1 minute ahead (clock skew): kept
        at(3, now - 2 * 86_400_000),      // older than the retention (1 day): refused
        at(4, now - 86_400_000 + 60_000), // just inside the retention: kept
        at(5, i64::MAX as u64),           // the far future: refused
        at(6, 1),                         // 1970: refused
    ];
    let a = t.post_audit(json!({ "events": events })).await.ok(202);
    assert_eq!(
        a,
        json!({"accepted": 3, "duplicates": 0, "refused": 4, "gaps": 0})
    );
    let stored: Vec<String> = t.admin("GET", "/api/audit", None).await.ok(200)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, ["req-2", "req-0", "req-4"], "newest first");
    // A batch of refused events only: accepted (nothing to retry), nothing stored.
    let a = t
        .post_audit(json!({ "events": [at(7, now + 3_600_000)] }))
        .await
        .ok(202);
    assert_eq!(
        a,
        json!({"accepted": 0, "duplicates": 0, "refused": 1, "gaps": 0})
    );
    assert_eq!(t.state.db.count_audit().await.unwrap(), 3);
    let m = t.call("GET", "/metrics", None, None).await.text;
    assert!(m.contains("portcullis_audit_events_refused_total 5"), "{m}");
    assert!(
        m.contains("portcullis_audit_events_received_total 3"),
        "{m}"
    );
    // A malformed event still refuses the whole batch, whatever the times.
    let mut bad = at(8, now);
    bad["status"] = json!(42);
    t.post_audit(json!({ "events": [at(9, now), bad] }))
        .await
        .error(400);
    assert_eq!(t.state.db.count_audit().await.unwrap(), 3);
}

/// A second control plane on `a`'s database (same schema), with its own state.
async fn replica_of(a: &TestApp) -> TestApp {
    let url = a.config.database_url.clone();
    app_with(&Backend::Sqlite, |c| {
        c.sync_token_sha256 = Some(portcullis::config::sha256(SYNC_TOKEN.as_bytes()));
        c.database_url = url;
    })
    .await
}

/// Two control planes on one PostgreSQL database: a change through one reaches a long-poll held
/// on the other within a second, and both serve the same version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_versions_and_changes() {
    let Some(b) = postgres() else { return };
    let a = sync_app(&b).await;
    // The second replica: same database and schema, its own state and rebuild task.
    let replica = replica_of(&a).await;
    replica.state.publisher.spawn();

    let on_a = a.first_snapshot().await;
    let on_b = replica.first_snapshot().await;
    assert_eq!(etag_of(&on_a), etag_of(&on_b), "same content, same version");
    let etag = etag_of(&on_b);

    let poll = {
        let r = replica.share();
        tokio::spawn(async move { r.poll(Some(&etag), 30).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changed_at = Instant::now();
    a.register("GitHub", "/github", &[]).await;
    let seen = poll.await.unwrap();
    let took = changed_at.elapsed();
    seen.ok(200);
    assert_eq!(seen.json()["servers"][0]["name"], "GitHub");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    eprintln!("replica B saw replica A's change after {took:?}");
    // Replica A rebuilds on its own wake-up; it may finish after B did.
    let now_a = a.poll(Some(&etag_of(&on_a)), 5).await;
    assert_eq!(etag_of(&now_a), etag_of(&seen));
    assert_eq!(version_of(&now_a), version_of(&on_a) + 1);
}

async fn audit_text_round_trips_exactly(b: Backend) {
    let t = sync_app(&b).await;
    let mut event = audit_event(1, "deny", "ünï\"cødé' \\ $1 ?", Some("tool'); --"));
    event["groups"] = json!(["a,b", "\"q\"", "日本"]);
    event["request_id"] = json!(null);
    event["path"] = json!("/srv/mcp/%2e%2e/ü");
    t.post_audit(json!({"events": [event.clone()]}))
        .await
        .ok(202);
    let stored = t.admin("GET", "/api/audit", None).await.ok(200)["events"][0].clone();
    for (k, v) in event.as_object().unwrap() {
        assert_eq!(&stored[k], v, "field {k}");
    }
}

/// `audit_event(n, …)` with the id a filter would give it.
fn audit_event_with_id(n: u64, id: &str) -> Value {
    let mut e = audit_event(n, "allow", "alice", Some("echo"));
    e["event_id"] = json!(id);
    e
}

/// A batch whose answer was lost is sent again (to this replica or another on the same
/// database): each id is stored once; events without an id (older filters) are still stored.
async fn audit_events_with_an_id_are_stored_once(b: Backend) {
    let t = sync_app(&b).await;
    let batch = json!({"events": [
        audit_event_with_id(0, "00000000000000ab-1-0"),
        audit_event_with_id(1, "00000000000000ab-1-1"),
        audit_event(2, "deny", "bob", None),
    ]});
    let first = t.post_audit(batch.clone()).await.ok(202);
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(3), Some(0))
    );
    let again = t.post_audit(batch).await.ok(202);
    // The id-less event is stored again (nothing tells it apart); the two with ids are not.
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(1), Some(2))
    );
    // The same id twice in one batch, next to a new one: one row each.
    let mixed = json!({"events": [
        audit_event_with_id(1, "00000000000000ab-1-1"),
        audit_event_with_id(3, "00000000000000ab-1-2"),
        audit_event_with_id(3, "00000000000000ab-1-2"),
    ]});
    let a = t.post_audit(mixed).await.ok(202);
    assert_eq!(
        (a["accepted"].as_u64(), a["duplicates"].as_u64()),
        (Some(1), Some(2))
    );
    let all = t.admin("GET", "/api/audit", None).await.ok(200);
    let ids: Vec<&Value> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event_id"])
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    let with_id: Vec<&str> = ids.iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(with_id.len(), 3, "each id shown once: {with_id:?}");
    assert_eq!(t.state.db.count_audit().await.unwrap(), 5);
    // A bad id refuses the batch (nothing stored).
    let bad = t
        .post_audit(json!({"events": [audit_event_with_id(4, "not an id")]}))
        .await;
    assert_eq!(bad.status.as_u16(), 400);
    assert!(bad.text.contains("events[0].event_id"), "{}", bad.text);
    assert_eq!(t.state.db.count_audit().await.unwrap(), 5);
}

async fn audit_gaps_are_stored_once_with_their_largest_count_and_shown(b: Backend) {
    let t = sync_app(&b).await;
    let base = audit_base_ms();
    let gap = |lost: u64, to: u64| {
        json!({"id": "00000000000000cd-1-0", "reason": "buffer_full",
               "from_ms": base + 10, "to_ms": base + to, "lost": lost})
    };
    for (lost, to) in [(5, 20), (5, 20), (8, 30), (6, 25)] {
        let a = t
            .post_audit(json!({"events": [], "dropped": 0, "gaps": [gap(lost, to)]}))
            .await
            .ok(202);
        assert_eq!(a["gaps"], 1);
    }
    // Another run, of another reason, in the same batch as an event.
    let a = t
        .post_audit(
            json!({"events": [audit_event_with_id(40, "00000000000000cd-1-9")],
            "gaps": [{"id": "00000000000000cd-1-1", "reason": "refused",
                      "from_ms": base + 40, "to_ms": base + 41, "lost": 2}]}),
        )
        .await
        .ok(202);
    assert_eq!(a["accepted"], 1);
    let all = t.admin("GET", "/api/audit", None).await.ok(200);
    let gaps = all["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert_eq!(gaps[0]["id"], "00000000000000cd-1-1");
    assert_eq!(gaps[1]["id"], "00000000000000cd-1-0");
    assert_eq!(
        gaps[1]["lost"], 8,
        "the largest count, never the sum of resends"
    );
    assert_eq!(gaps[1]["from_ms"], base + 10);
    assert_eq!(gaps[1]["to_ms"], base + 30);
    assert_eq!(gaps[1]["reason"], "buffer_full");
    assert!(gaps[1]["received_ms"].as_u64().is_some());
    // A window that ends before the first run's start shows no gap; one that overlaps it does.
    let before = t
        .admin("GET", &format!("/api/audit?until={}", base + 10), None)
        .await
        .ok(200);
    assert_eq!(before["gaps"].as_array().unwrap().len(), 0);
    let during = t
        .admin(
            "GET",
            &format!("/api/audit?since={}&until={}", base + 25, base + 26),
            None,
        )
        .await
        .ok(200);
    assert_eq!(during["gaps"].as_array().unwrap().len(), 1);
    // Malformed gaps refuse the batch.
    let bad = t
        .post_audit(
            json!({"events": [], "gaps": [{"id": "x", "reason": "buffer_full",
            "from_ms": base + 2, "to_ms": base + 1, "lost": 1}]}),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 400);
    let bad = t
        .post_audit(json!({"events": [], "gaps": [{"id": "x", "reason": "other",
            "from_ms": 1, "to_ms": 1, "lost": 1}]}))
        .await;
    assert_eq!(bad.status.as_u16() / 100, 4);
}

/// Two replicas on one PostgreSQL database: a batch stored by one and sent again to the other
/// (its answer was lost, and the Envoy failed over) is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_resent_to_another_replica_is_stored_once() {
    let Some(b) = postgres() else { return };
    let a = sync_app(&b).await;
    let replica = replica_of(&a).await;
    let batch = json!({"events": (0..50)
        .map(|n| audit_event_with_id(n, &format!("00000000000000ef-1-{n:x}")))
        .collect::<Vec<_>>()});
    let (on_a, on_b) = tokio::join!(a.post_audit(batch.clone()), replica.post_audit(batch));
    let (on_a, on_b) = (on_a.ok(202), on_b.ok(202));
    assert_eq!(
        on_a["accepted"].as_u64().unwrap() + on_b["accepted"].as_u64().unwrap(),
        50,
        "{on_a} {on_b}"
    );
    assert_eq!(a.state.db.count_audit().await.unwrap(), 50);
}
