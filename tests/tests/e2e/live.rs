//! The control plane drives a real Envoy: `portcullis serve` (SQLite) and Envoy from the shipped
//! `envoy/bootstrap-xds.yaml` (routes by xDS, policy through the sync singleton, the filter with
//! audit on), a real echo upstream, and a real OpenID provider for key rotation. Changes made
//! through the API take effect within a second; Envoy keeps deciding while the control plane is
//! down; every decision is in the audit trail exactly once.

use std::time::{Duration, Instant};

use portcullis::devtools::{DevAlg, TokenSpec};
use portcullis_e2e::control_plane::ControlPlane;
use portcullis_e2e::gateway::Gateway;
use portcullis_e2e::oidc::{OidcIdp, CLIENT_GROUPS, CLIENT_ID};
use portcullis_e2e::{EchoUpstream, Request, Response, TestDir};
use serde_json::{json, Value};

use crate::common::key;

const ISSUER: &str = "https://idp.e2e.test";
const PUBLIC_URL: &str = "https://mcp.e2e.test";
const API_AUDIENCE: &str = "portcullis-api";
/// What the issue promises for a change to reach every Envoy.
const BOUND: Duration = Duration::from_secs(1);

struct Stack {
    upstream: EchoUpstream,
    gateway: Gateway,
    cp: ControlPlane,
    /// Holds the files until the processes above are gone (fields drop in order).
    #[allow(dead_code)]
    dir: TestDir,
}

/// The control plane trusting the e2e ES256 key, Envoy from the shipped bootstrap, an echo
/// upstream; waits until Envoy has its first policy (no server yet: 404, not 503).
fn stack(name: &str, extra_env: &[(&str, &str)]) -> Stack {
    let dir = TestDir::new(name);
    let jwks = dir.join("idp-jwks.json");
    std::fs::write(&jwks, key(DevAlg::ES256).jwks().to_string()).unwrap();
    let jwks = jwks.display().to_string();
    let mut env = vec![
        ("PORTCULLIS_PUBLIC_URL", PUBLIC_URL),
        ("PORTCULLIS_IDP_ISSUER", ISSUER),
        ("PORTCULLIS_IDP_JWKS_FILE", jwks.as_str()),
        ("PORTCULLIS_API_AUDIENCE", API_AUDIENCE),
    ];
    env.extend_from_slice(extra_env);
    let cp = ControlPlane::start(dir.path(), &env);
    let upstream = EchoUpstream::start();
    let gateway = Gateway::start(dir.path(), &cp);
    let stack = Stack {
        upstream,
        gateway,
        cp,
        dir,
    };
    let synced = stack.until(Duration::from_secs(20), || {
        stack.gateway.send(Request::get("/nothing/here")).status == 404
    });
    assert!(
        synced.is_some(),
        "Envoy never got a policy (still {}):\n{}",
        stack.gateway.send(Request::get("/nothing/here")).describe(),
        stack.gateway.log_tail(40)
    );
    stack
}

impl Stack {
    /// Polls `ok` every 5 ms; how long it took, or `None` after `limit`.
    fn until(&self, limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if ok() {
                return Some(start.elapsed());
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs `change` (an API call), then polls `request` until it answers `status`; asserts
    /// that happened within [`BOUND`] and returns the time.
    fn takes_effect(
        &self,
        what: &str,
        change: impl FnOnce(),
        request: impl Fn() -> Request,
        status: u16,
    ) -> Duration {
        let started = Instant::now();
        change();
        let seen = self.until(Duration::from_secs(10), || {
            self.gateway.send(request()).status == status
        });
        let took = started.elapsed();
        match seen {
            Some(_) if took <= BOUND => {
                eprintln!("[live] {what}: in effect after {took:?}");
                took
            }
            Some(_) => panic!("{what}: took {took:?}, more than {BOUND:?}"),
            None => panic!(
                "{what}: never answered {status}; last: {}\n{}",
                self.gateway.send(request()).describe(),
                self.gateway.log_tail(30)
            ),
        }
    }

    fn register(&self) -> Value {
        self.cp.register(&json!({
            "name": "echo",
            "path": "/srv",
            "proxy_pass_url": format!("http://127.0.0.1:{}/", self.upstream.port()),
            "append_mcp_path": true,
        }))
    }

    /// Registers the echo server and gives `group` every method and tool on it.
    fn register_for_group(&self, group: &str) {
        self.register();
        self.admin_ok(
            "PUT",
            "/api/scopes/echo-all",
            Some(json!({"grants": [{"server": "echo", "methods": ["*"], "tools": ["*"]}]})),
        );
        self.admin_ok(
            "PUT",
            &format!("/api/group-mappings/{group}"),
            Some(json!({"scopes": ["echo-all"]})),
        );
    }

    fn admin_ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.cp.admin(method, path, body.as_ref());
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {}",
            r.describe()
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// The version `/v1/policy` serves now.
    fn version(&self) -> u64 {
        self.cp
            .snapshot()
            .header("x-portcullis-policy-version")
            .and_then(|v| v.parse().ok())
            .expect("a policy version")
    }

    /// Audit records for `user`, newest first (every page).
    fn audit(&self, user: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/audit?user={user}&limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.admin_ok("GET", &path, None);
            all.extend(page["events"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return all,
            }
        }
    }

    /// Waits until exactly `n` records for `user` are stored (and stay `n` a moment longer).
    fn audit_settles(&self, user: &str, n: usize, limit: Duration) -> Vec<Value> {
        let done = self.until(limit, || self.audit(user).len() >= n);
        std::thread::sleep(Duration::from_millis(600));
        let records = self.audit(user);
        assert!(
            done.is_some() && records.len() == n,
            "expected exactly {n} audit records for {user}, found {}: {records:#?}",
            records.len()
        );
        records
    }
}

fn token(sub: &str, groups: &[&str], resource: &str) -> String {
    let mut spec = TokenSpec::new(ISSUER, resource, sub);
    spec.groups = Some(groups.iter().map(|g| g.to_string()).collect());
    spec.name = Some(format!("{sub} (display)"));
    spec.extra.insert("client_id".into(), json!("e2e-client"));
    key(DevAlg::ES256).sign(&spec.claims())
}

fn get(path: &str, bearer: &str) -> Request {
    Request::get(path).bearer(bearer)
}

fn call_tool(bearer: &str, tool: &str) -> Request {
    Request::post("/srv/mcp")
        .bearer(bearer)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}))
}

fn status(r: &Response) -> u16 {
    r.status
}

/// A change travels as a delta: the singleton applies it to its own policy and appends it to
/// the shared log the workers apply, and after `MAX_LOG_DELTAS` it fetches the whole snapshot
/// once more as a new base. Every change still decides the next request.
#[test]
fn changes_travel_as_deltas_and_a_full_log_starts_a_new_base() {
    let s = stack("live-deltas", &[]);
    let resource = format!("{PUBLIC_URL}/srv/mcp");
    let alice = token("alice", &["devs"], &resource);
    let req = || get("/srv/mcp", &alice);
    s.register_for_group("devs");
    s.takes_effect("map devs", || {}, req, 200);
    // More changes than the log keeps: devs unmapped and mapped again, each one decided.
    let changes = portcullis_filter_log_deltas() + 6;
    for n in 0..changes {
        let (scopes, status) = match n % 2 {
            0 => (json!([]), 403),
            _ => (json!(["echo-all"]), 200),
        };
        s.takes_effect(
            &format!("change {n}"),
            || {
                s.admin_ok(
                    "PUT",
                    "/api/group-mappings/devs",
                    Some(json!({"scopes": scopes})),
                );
            },
            req,
            status,
        );
    }
    let log = s.gateway.log();
    let as_deltas = log
        .lines()
        .filter(|l| l.contains("accepted from the control plane") && l.contains(" deltas, "))
        .count();
    assert!(
        as_deltas >= changes / 2,
        "changes arrive as deltas ({as_deltas} of {changes}):\n{log}"
    );
    assert!(
        log.contains("fetched whole again as the new base of the delta log"),
        "a full log starts again from the whole snapshot:\n{log}"
    );
    assert!(
        !log.contains("refused policy"),
        "nothing was refused:\n{log}"
    );
}

/// `MAX_LOG_DELTAS` of the filter (the e2e crate does not link the wasm crate).
fn portcullis_filter_log_deltas() -> usize {
    64
}

#[test]
fn registry_and_policy_changes_reach_envoy_within_a_second() {
    let s = stack("live-changes", &[]);
    let resource = format!("{PUBLIC_URL}/srv/mcp");
    let alice = token("alice", &["devs"], &resource);
    let req = || get("/srv/mcp", &alice);
    assert_eq!(
        status(&s.gateway.send(req())),
        404,
        "nothing registered yet"
    );

    // Register: the route and the server's policy arrive (alice is in no mapped group: 403).
    let registered = s.takes_effect(
        "register a server",
        || {
            let server = s.register();
            assert_eq!(server["mcp_url"], resource.as_str(), "{server}");
        },
        req,
        403,
    );
    let denied = s.gateway.send(req());
    assert!(
        denied
            .header("www-authenticate")
            .is_some_and(|c| c.contains("insufficient_scope")),
        "{}",
        denied.describe()
    );

    // A scope and a mapping: allowed, with the identity headers upstream.
    s.admin_ok(
        "PUT",
        "/api/scopes/echo-all",
        Some(json!({"grants": [{"server": "echo", "methods": ["*"], "tools": ["*"]}]})),
    );
    let mapped = s.takes_effect(
        "map group devs",
        || {
            s.admin_ok(
                "PUT",
                "/api/group-mappings/devs",
                Some(json!({"scopes": ["echo-all"]})),
            );
        },
        req,
        200,
    );
    let seen = s.upstream.requests();
    let last = seen.last().expect("the upstream saw the request");
    assert!(
        last.header("x-portcullis-user")
            .is_some_and(|u| u.starts_with("alice")),
        "{:?}",
        last.headers
    );
    assert!(
        last.header("authorization").is_none(),
        "the token never goes upstream"
    );
    let allowed_version = s.version();

    // Unmapped again: denied by the newer policy; the audit trail says which version decided.
    s.takes_effect(
        "unmap group devs",
        || {
            s.admin_ok("DELETE", "/api/group-mappings/devs", None);
        },
        req,
        403,
    );
    let denied_version = s.version();
    assert!(denied_version > allowed_version);
    // The refusal is the last decision: wait until it is shipped too, not just any three (on a
    // busy machine three allowed ones can be stored before it).
    let _ = s.until(Duration::from_secs(10), || {
        s.audit("alice")
            .first()
            .is_some_and(|r| r["decision"] == "deny")
    });
    let records = s.audit_settles_at_least("alice", 3);
    let newest = &records[0];
    assert_eq!(newest["decision"], "deny", "{newest}");
    assert_eq!(newest["reason"], "no_mapped_scopes", "{newest}");
    assert_eq!(newest["policy_version"], denied_version, "{newest}");
    let allowed: Vec<&Value> = records
        .iter()
        .filter(|r| r["decision"] == "allow")
        .collect();
    assert!(!allowed.is_empty());
    assert!(
        allowed
            .iter()
            .all(|r| r["policy_version"] == allowed_version),
        "allowed by the version with the mapping: {allowed:#?}"
    );

    // An API key: works within a second of its creation, refused within a second of revocation.
    s.admin_ok(
        "PUT",
        "/api/group-mappings/devs",
        Some(json!({"scopes": ["echo-all"]})),
    );
    let minted = s.admin_ok(
        "POST",
        "/api/keys",
        Some(json!({"name": "ci", "scopes": ["echo-all"]})),
    );
    let api_key = minted["key"].as_str().unwrap().to_string();
    let with_key = || Request::get("/srv/mcp").header("x-api-key", &api_key);
    let key_on = s.takes_effect("create an API key", || {}, with_key, 200);
    let key_off = s.takes_effect(
        "revoke the API key",
        || {
            s.admin_ok("DELETE", "/api/keys/ci", None);
        },
        with_key,
        401,
    );

    // Deleted: 404 from Envoy.
    let deleted = s.takes_effect(
        "delete the server",
        || {
            s.admin_ok("DELETE", "/api/servers/srv", None);
        },
        req,
        404,
    );
    eprintln!(
        "[live] register {registered:?}, map {mapped:?}, api key {key_on:?}/{key_off:?}, delete {deleted:?}"
    );
}

impl Stack {
    /// How many records `user` has once shipping has caught up (the count holds still).
    fn audit_stable(&self, user: &str) -> usize {
        let mut last = self.audit(user).len();
        loop {
            std::thread::sleep(Duration::from_millis(700));
            let now = self.audit(user).len();
            if now == last {
                return now;
            }
            last = now;
        }
    }

    fn audit_settles_at_least(&self, user: &str, n: usize) -> Vec<Value> {
        let done = self.until(Duration::from_secs(10), || self.audit(user).len() >= n);
        assert!(
            done.is_some(),
            "fewer than {n} audit records for {user}: {:#?}",
            self.audit(user)
        );
        self.audit(user)
    }
}

#[test]
fn every_decision_is_recorded_exactly_once_with_who_what_and_why() {
    let s = stack("live-audit", &[]);
    let resource = format!("{PUBLIC_URL}/srv/mcp");
    s.register();
    s.admin_ok("PUT", "/api/scopes/echo-only", Some(json!({"grants": [{"server": "echo", "methods": ["tools/call", "tools/list"], "tools": ["echo"]}]})));
    s.admin_ok(
        "PUT",
        "/api/group-mappings/devs",
        Some(json!({"scopes": ["echo-only"]})),
    );
    let carol = token("carol", &["devs", "unmapped"], &resource);
    assert!(s
        .until(Duration::from_secs(5), || s
            .gateway
            .send(call_tool(&carol, "echo"))
            .status
            == 200)
        .is_some());
    // Start counting from a clean slate: the probes above are recorded too.
    let before = s.audit_stable("carol");
    let version = s.version();

    let (allowed, denied, gets) = (10, 5, 5);
    for _ in 0..allowed {
        assert_eq!(s.gateway.send(call_tool(&carol, "echo")).status, 200);
    }
    for _ in 0..denied {
        assert_eq!(s.gateway.send(call_tool(&carol, "get-env")).status, 403);
    }
    for _ in 0..gets {
        assert_eq!(s.gateway.send(get("/srv/mcp", &carol)).status, 200);
    }
    let records = s.audit_settles(
        "carol",
        before + allowed + denied + gets,
        Duration::from_secs(10),
    );
    let fresh = &records[..allowed + denied + gets];
    for r in fresh {
        assert_eq!(r["sub"], "carol", "{r}");
        assert_eq!(r["username"], "carol (display)", "{r}");
        assert_eq!(r["issuer"], ISSUER, "{r}");
        assert_eq!(r["client_id"], "e2e-client", "{r}");
        assert_eq!(r["groups"], json!(["devs", "unmapped"]), "{r}");
        assert_eq!(r["scopes"], json!(["echo-only"]), "{r}");
        assert_eq!(r["server"], "echo", "{r}");
        assert_eq!(r["policy_version"], version, "{r}");
        assert!(
            r["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{r}"
        );
        assert!(
            r["time_ms"].as_u64().unwrap() <= r["received_ms"].as_u64().unwrap(),
            "{r}"
        );
        let text = r.to_string();
        assert!(!text.contains(&carol[..20]), "no token in the record: {r}");
    }
    let count =
        |decision: &str, method: Option<&str>, tool: Option<&str>, reason: &str, status: u64| {
            fresh
                .iter()
                .filter(|r| {
                    r["decision"] == decision
                        && r["method"].as_str() == method
                        && r["tool"].as_str() == tool
                        && r["reason"] == reason
                        && r["status"] == status
                })
                .count()
        };
    assert_eq!(
        count("allow", Some("tools/call"), Some("echo"), "allowed", 200),
        allowed,
        "{fresh:#?}"
    );
    assert_eq!(
        count(
            "deny",
            Some("tools/call"),
            Some("get-env"),
            "tool_not_allowed",
            403
        ),
        denied,
        "{fresh:#?}"
    );
    assert_eq!(
        count("allow", None, None, "allowed", 200),
        gets,
        "{fresh:#?}"
    );
    let ids: std::collections::BTreeSet<&str> = fresh
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), fresh.len(), "one record per request");

    // Filters on the API side, over the real trail.
    let denied_only = s.admin_ok(
        "GET",
        "/api/audit?user=carol&decision=deny&tool=get-env",
        None,
    );
    assert_eq!(denied_only["events"].as_array().unwrap().len(), denied);
    assert_eq!(s.gateway.wasm_stat("portcullis.audit.dropped"), 0);
}

#[test]
fn envoy_keeps_the_last_policy_while_the_control_plane_is_down() {
    let mut s = stack("live-outage", &[]);
    let resource = format!("{PUBLIC_URL}/srv/mcp");
    s.register_for_group("devs");
    let dave = token("dave", &["devs"], &resource);
    let erin = token("erin", &["sales"], &resource);
    assert!(s
        .until(Duration::from_secs(5), || s
            .gateway
            .send(get("/srv/mcp", &dave))
            .status
            == 200)
        .is_some());
    let dave_before = s.audit_stable("dave");

    s.cp.kill();
    // Decided with the last policy: allowed and denied as before, for as long as it is down.
    let during = 30;
    for i in 0..during {
        let who = if i % 3 == 0 { &erin } else { &dave };
        let expected = if i % 3 == 0 { 403 } else { 200 };
        let r = s.gateway.send(get("/srv/mcp", who));
        assert_eq!(
            r.status,
            expected,
            "request {i} while the control plane is down: {}",
            r.describe()
        );
        if i == during / 2 {
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    s.cp.restart();
    let restarted = Instant::now();
    // The buffered records arrive: all of them, none twice.
    let dave_records = s.audit_settles("dave", dave_before + 20, Duration::from_secs(30));
    let erin_records = s.audit_settles("erin", 10, Duration::from_secs(5));
    assert!(erin_records
        .iter()
        .all(|r| r["decision"] == "deny" && r["reason"] == "no_mapped_scopes"));
    // Newest first: the 20 made during the outage (the probes before may have been denied).
    assert!(
        dave_records[..20].iter().all(|r| r["decision"] == "allow"),
        "{dave_records:#?}"
    );
    eprintln!(
        "[live] buffered audit records stored {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(s.gateway.wasm_stat("portcullis.audit.dropped"), 0);

    // Changes flow again (the singleton may be in its back-off: allow it a few seconds).
    let flowing = Instant::now();
    s.admin_ok("DELETE", "/api/group-mappings/devs", None);
    let seen = s.until(Duration::from_secs(15), || {
        s.gateway.send(get("/srv/mcp", &dave)).status == 403
    });
    assert!(
        seen.is_some(),
        "a change after the restart never reached Envoy"
    );
    eprintln!(
        "[live] first change after the restart in effect after {:?}",
        flowing.elapsed()
    );
}

#[test]
fn a_rotated_idp_key_is_accepted_without_restart_and_the_old_one_survives_the_overlap() {
    let dir = TestDir::new("live-rotation");
    let idp = OidcIdp::start(dir.path());
    let issuer = idp.issuer();
    let cp = ControlPlane::start(
        dir.path(),
        &[
            ("PORTCULLIS_PUBLIC_URL", PUBLIC_URL),
            ("PORTCULLIS_IDP_ISSUER", issuer.as_str()),
            // Long enough that the unknown-kid report, not the schedule, finds the new key.
            ("PORTCULLIS_IDP_JWKS_REFRESH_SECONDS", "3"),
            ("PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS", "1"),
            ("PORTCULLIS_IDP_KEY_OVERLAP_SECONDS", "4"),
        ],
    );
    let upstream = EchoUpstream::start();
    let gateway = Gateway::start(dir.path(), &cp);
    let s = Stack {
        upstream,
        gateway,
        cp,
        dir,
    };
    s.register_for_group("engineering");
    let resource = format!("{PUBLIC_URL}/srv/mcp");

    let old = idp.token(&resource);
    let first = s.until(Duration::from_secs(10), || {
        s.gateway.send(get("/srv/mcp", &old)).status == 200
    });
    assert!(
        first.is_some(),
        "a token from the IdP never passed: {}",
        s.gateway.send(get("/srv/mcp", &old)).describe()
    );
    let upstream_seen = s.upstream.requests();
    assert_eq!(
        upstream_seen.last().unwrap().header("x-portcullis-user"),
        Some(CLIENT_ID)
    );
    let groups = upstream_seen
        .last()
        .unwrap()
        .header("x-portcullis-groups")
        .unwrap_or_default()
        .to_string();
    assert_eq!(groups, CLIENT_GROUPS.join(","));

    // Rotate: the new key signs; Envoy accepts its tokens without a restart.
    let new_kid = idp.rotate();
    let new = idp.token(&resource);
    let started = Instant::now();
    let accepted = s.until(Duration::from_secs(10), || {
        s.gateway.send(get("/srv/mcp", &new)).status == 200
    });
    assert!(
        accepted.is_some(),
        "a token signed by the rotated key ({new_kid}) was never accepted"
    );
    eprintln!(
        "[live] token of the rotated key accepted after {:?}",
        started.elapsed()
    );
    assert_eq!(
        s.gateway.send(get("/srv/mcp", &old)).status,
        200,
        "the old key still works"
    );

    // Retire the old key at the IdP: its tokens pass during the overlap, then not.
    idp.retire();
    let retired = Instant::now();
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        s.gateway.send(get("/srv/mcp", &old)).status,
        200,
        "within the overlap"
    );
    let refused = s.until(Duration::from_secs(15), || {
        s.gateway.send(get("/srv/mcp", &old)).status == 401
    });
    assert!(refused.is_some(), "the retired key was never dropped");
    eprintln!(
        "[live] retired key refused {:?} after it left the IdP's JWKS (overlap 4 s)",
        retired.elapsed()
    );
    assert_eq!(s.gateway.send(get("/srv/mcp", &new)).status, 200);
}
