//! The README's demo command works: `bash scripts/demo.sh` starts the control plane, Envoy from
//! the shipped xDS bootstrap (routes and policy from the control plane) and a real MCP server,
//! prints the demo users' logins, the official MCP client logs in (broker mode) and gets exactly
//! what the demo promises, and the refused call is in the audit trail.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_e2e::mcp::ClientPlan;
use portcullis_e2e::{paths, TestDir};

/// The demo script, leader of its own process group; the whole group is stopped when the test
/// ends, however it ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let group = -(self.0.id() as i32);
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe {
            libc_kill(group, 15);
        }
        std::thread::sleep(Duration::from_millis(500));
        unsafe {
            libc_kill(group, 9);
        }
        let _ = self.0.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

#[test]
fn demo_script_serves_the_mcp_server_behind_the_filter() {
    let root = paths::repo_root();
    for built in [
        "target/debug/portcullis",
        "target/wasm32-wasip1/release/portcullis_filter.wasm",
    ] {
        assert!(
            root.join(built).exists(),
            "{built} is missing: run `bash scripts/test.sh` (it builds both before the tests)"
        );
    }
    // A fresh state directory: a demo run before (its database, its policy versions) must not
    // change what this test sees, and the test must not touch the user's demo state.
    let state = TestDir::new("demo-state");
    let work = state.path().join("demo");
    // Ports picked here, not the demo's defaults: the test runs next to whatever else this
    // machine serves (another Envoy on 10000/9901, a demo the user left running).
    let mut ports = Vec::new();
    while ports.len() < 5 {
        let port = portcullis_e2e::util::free_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    let [mcp, cp, xds, envoy, admin] = [ports[0], ports[1], ports[2], ports[3], ports[4]];
    let child = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .current_dir(&root)
        // Nested cargo would wait for the lock `cargo test` holds; the test command built both.
        .env("PORTCULLIS_DEMO_SKIP_BUILD", "1")
        .env("PORTCULLIS_DEMO_DIR", &work)
        .env("PORTCULLIS_DEMO_MCP_PORT", mcp.to_string())
        .env("PORTCULLIS_DEMO_CP_PORT", cp.to_string())
        .env("PORTCULLIS_DEMO_XDS_PORT", xds.to_string())
        .env("PORTCULLIS_DEMO_ENVOY_PORT", envoy.to_string())
        .env("PORTCULLIS_DEMO_ADMIN_PORT", admin.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash scripts/demo.sh starts");
    let mut demo = Demo(child);
    let stdout = BufReader::new(demo.0.stdout.take().expect("stdout"));
    let stderr = demo.0.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[demo] {line}");
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut printed = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the demo did not come up; it printed: {printed:#?}"));
        // The last line of what the demo prints once everything is up.
        let ready = line.contains("Ctrl-C stops the demo");
        printed.push(line);
        if ready {
            break;
        }
    }

    let password = std::fs::read_to_string(work.join("alice.password")).expect("alice.password");
    let url = format!("http://127.0.0.1:{envoy}/everything/mcp");
    let dir = TestDir::new("demo");
    // Alice logs in for real: the demo runs broker mode with the built-in user store.
    let run = ClientPlan::new()
        .oauth(serde_json::json!({"user": "alice", "password": password.trim()}))
        .connect()
        .list_tools()
        .call_tool(
            "echo",
            serde_json::json!({"message": "hello from the demo"}),
        )
        .call_tool("get-env", serde_json::json!({}))
        .run(&dir, &url);
    run.ok(0);
    run.ok(1);
    assert_eq!(run.ok(2)["content"][0]["text"], "Echo: hello from the demo");
    // The demo's engineering group has no grant for get-env (it shows the server's environment).
    assert_eq!(run.err(3)["httpStatus"], 403, "{}", run.describe());

    // The discovery document, from the control plane through Envoy, names this exact URL.
    let prm = portcullis_e2e::Request::get("/.well-known/oauth-protected-resource/everything/mcp")
        .send(envoy);
    assert_eq!(prm.status, 200, "{}", prm.describe());
    let prm: serde_json::Value = serde_json::from_slice(&prm.body).expect("metadata is JSON");
    assert_eq!(prm["resource"], url.as_str(), "{prm}");
    assert_eq!(
        prm["authorization_servers"],
        serde_json::json!([format!("http://127.0.0.1:{envoy}")]),
        "{prm}"
    );
    assert_eq!(
        run.summary["oauth"]["accessTokenClaims"]["iss"],
        format!("http://127.0.0.1:{envoy}"),
        "the token came from the demo's authorization server"
    );
    // The printed instructions carry the login, not a token.
    let printed = printed.join("\n");
    assert!(
        printed.contains(password.trim()),
        "alice's password is printed"
    );
    assert!(printed.contains("Portcullis demo is running"), "{printed}");
    assert!(printed.contains("claude mcp add"), "{printed}");
    assert!(printed.contains("codex mcp add"), "{printed}");

    // The Connect dialog's Claude Code line for the registered server.
    let admin = std::fs::read_to_string(work.join("admin.token")).expect("admin.token");
    let connect =
        portcullis_e2e::Request::get("/api/servers/everything/connect-config?ide=claude-code")
            .bearer(admin.trim())
            .send(cp);
    assert_eq!(connect.status, 200, "{}", connect.describe());
    assert!(
        connect
            .text()
            .contains(&format!("claude mcp add --transport http everything {url}")),
        "{}",
        connect.text()
    );

    // The audit trail has alice's refused get-env call, decided by the served policy version.
    let version = portcullis_e2e::Request::get("/v1/policy")
        .bearer(
            std::fs::read_to_string(work.join("sync.token"))
                .expect("sync.token")
                .trim(),
        )
        .send(cp);
    let version = version
        .header("x-portcullis-policy-version")
        .expect("a policy version")
        .to_string();
    let refused = portcullis_e2e::util::wait_until(Duration::from_secs(10), || {
        let page = portcullis_e2e::Request::get("/api/audit?user=alice&decision=deny&tool=get-env")
            .bearer(admin.trim())
            .send(cp);
        let events = page.json()["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        events.into_iter().next()
    })
    .expect("alice's refused call reached the audit trail");
    assert_eq!(refused["reason"], "tool_not_allowed", "{refused}");
    assert_eq!(refused["policy_version"].to_string(), version, "{refused}");

    // Without a token: the challenge MCP clients follow.
    let resp = portcullis_e2e::Request::post("/everything/mcp")
        .raw_json(&b"{}"[..])
        .send(envoy);
    assert_eq!(resp.status, 401, "{}", resp.describe());
    assert!(resp
        .header("www-authenticate")
        .is_some_and(|c| c.contains(&format!("resource_metadata=\"http://127.0.0.1:{envoy}/.well-known/oauth-protected-resource/everything/mcp\""))));
}
