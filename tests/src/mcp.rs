//! Real MCP parts from npm: the `server-everything` server and the TypeScript SDK client
//! (`tests/node/mcp-client.mjs`, driven by a JSON plan).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::paths;
use crate::util::{accepts_tcp, free_port, tail, TestDir};

/// `mcp-server-everything streamableHttp` on 127.0.0.1 (it serves `/mcp`); killed on drop.
pub struct McpServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl McpServer {
    /// Starts the server on a free port and waits until it accepts TCP connections.
    pub fn start(dir: &TestDir) -> McpServer {
        let node_dir = paths::node_dir();
        let script =
            node_dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        assert!(
            script.is_file(),
            "{} is missing: run `bash scripts/setup.sh`",
            script.display()
        );
        let log = dir.join("mcp-server.log");
        let mut last_error = String::new();
        // A port picked as free may be taken before node binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let out = File::create(&log).expect("create mcp-server.log");
            let mut child = Command::new(paths::node_bin())
                .arg(&script)
                .arg("streamableHttp")
                .env("PORT", port.to_string())
                .current_dir(&node_dir)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .expect("start node (mcp-server-everything)");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "mcp-server-everything exited ({status}):\n{}",
                        tail(&log, 20)
                    );
                    break;
                }
                if accepts_tcp(port) {
                    return McpServer { child, port, log };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "mcp-server-everything did not listen on 127.0.0.1:{port} within 30 s:\n{}",
                        tail(&log, 20)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start mcp-server-everything: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plan for `mcp-client.mjs`: headers sent on every request, then steps.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub headers: serde_json::Map<String, Value>,
    /// OAuth mode (`mcp-client.mjs` documents the fields): the SDK logs in on a 401.
    pub oauth: Option<Value>,
    pub steps: Vec<Value>,
    pub timeout_ms: u64,
}

impl Default for ClientPlan {
    fn default() -> Self {
        ClientPlan::new()
    }
}

impl ClientPlan {
    pub fn new() -> ClientPlan {
        ClientPlan {
            headers: serde_json::Map::new(),
            oauth: None,
            steps: Vec::new(),
            timeout_ms: 15_000,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> ClientPlan {
        self.headers.insert(name.into(), json!(value));
        self
    }

    pub fn bearer(self, token: &str) -> ClientPlan {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// Logs in with the SDK's OAuth client (`oauth`: `clientId`, `callbackPort`, `user`, …).
    pub fn oauth(mut self, oauth: Value) -> ClientPlan {
        self.oauth = Some(oauth);
        self
    }

    pub fn step(mut self, step: Value) -> ClientPlan {
        self.steps.push(step);
        self
    }

    pub fn connect(self) -> ClientPlan {
        self.step(json!({"op": "connect"}))
    }

    pub fn list_tools(self) -> ClientPlan {
        self.step(json!({"op": "listTools"}))
    }

    pub fn call_tool(self, name: &str, arguments: Value) -> ClientPlan {
        self.step(json!({"op": "callTool", "name": name, "arguments": arguments}))
    }

    pub fn request(self, method: &str, params: Value) -> ClientPlan {
        self.step(json!({"op": "request", "method": method, "params": params}))
    }

    pub fn ping(self) -> ClientPlan {
        self.step(json!({"op": "ping"}))
    }

    /// Sends HTTP DELETE with the session id.
    pub fn terminate_session(self) -> ClientPlan {
        self.step(json!({"op": "terminateSession"}))
    }

    /// OAuth mode: the stored access token is made unusable (the refresh token kept), so the
    /// next request gets a 401 and the SDK refreshes.
    pub fn expire_access_token(self) -> ClientPlan {
        self.step(json!({"op": "expireAccessToken"}))
    }

    pub fn sleep_ms(self, ms: u64) -> ClientPlan {
        self.step(json!({"op": "sleep", "ms": ms}))
    }

    pub fn to_json(&self) -> Value {
        let mut plan = json!({
            "headers": self.headers,
            "steps": self.steps,
            "timeoutMs": self.timeout_ms,
            "totalTimeoutMs": self.timeout_ms * (self.steps.len() as u64 + 2),
        });
        if let Some(oauth) = &self.oauth {
            plan["oauth"] = oauth.clone();
        }
        plan
    }

    /// Runs the client against `url` (e.g. `envoy.url("/srv/mcp")`).
    pub fn run(&self, dir: &TestDir, url: &str) -> ClientRun {
        run_client(dir, url, &self.to_json())
    }
}

/// What one run of the client printed.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// One entry per planned step, in order.
    pub steps: Vec<Value>,
    /// The closing summary: `http` (every exchange) and `transportErrors`.
    pub summary: Value,
    pub stderr: String,
}

impl ClientRun {
    /// Step `i`; panics with the whole run when absent.
    pub fn step(&self, i: usize) -> &Value {
        self.steps
            .get(i)
            .unwrap_or_else(|| panic!("client printed no step {i}:\n{}", self.describe()))
    }

    /// Asserts that step `i` succeeded and returns its result.
    pub fn ok(&self, i: usize) -> &Value {
        let s = self.step(i);
        assert_eq!(
            s["ok"],
            json!(true),
            "step {i} ({}) failed: {}\n{}",
            s["op"],
            s["error"],
            self.describe()
        );
        &s["result"]
    }

    /// Asserts that step `i` failed and returns its error object.
    pub fn err(&self, i: usize) -> &Value {
        let s = self.step(i);
        assert_eq!(
            s["ok"],
            json!(false),
            "step {i} ({}) unexpectedly succeeded: {}\n{}",
            s["op"],
            s["result"],
            self.describe()
        );
        &s["error"]
    }

    /// Every HTTP exchange the SDK made.
    pub fn http(&self) -> Vec<Value> {
        self.summary["http"].as_array().cloned().unwrap_or_default()
    }

    /// HTTP exchanges whose request body is a JSON-RPC message with this `method`.
    pub fn http_for_method(&self, method: &str) -> Vec<Value> {
        self.http()
            .into_iter()
            .filter(|e| {
                e["requestBody"]
                    .as_str()
                    .and_then(|b| serde_json::from_str::<Value>(b).ok())
                    .is_some_and(|b| b["method"] == method)
            })
            .collect()
    }

    /// A readable dump for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for step in &self.steps {
            s.push_str(&format!("  {step}\n"));
        }
        s.push_str("  http exchanges:\n");
        for e in self.http() {
            s.push_str(&format!(
                "    {} {} -> {} {}\n",
                e["method"].as_str().unwrap_or("?"),
                e["requestBody"].as_str().unwrap_or(""),
                e["status"],
                e["responseHeaders"]
                    .get("www-authenticate")
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            ));
        }
        s.push_str(&format!(
            "  transport errors: {}\n",
            self.summary["transportErrors"]
        ));
        if !self.stderr.trim().is_empty() {
            s.push_str(&format!("  stderr: {}\n", self.stderr.trim()));
        }
        s
    }
}

/// Runs `node tests/node/mcp-client.mjs URL PLAN` and parses its output.
pub fn run_client(dir: &TestDir, url: &str, plan: &Value) -> ClientRun {
    let node_dir = paths::node_dir();
    let script = node_dir.join("mcp-client.mjs");
    let n = std::fs::read_dir(dir.path())
        .map(|d| d.count())
        .unwrap_or(0);
    let out_path = dir.join(&format!("mcp-client-{n}.out"));
    let err_path = dir.join(&format!("mcp-client-{n}.err"));
    let mut child = Command::new(paths::node_bin())
        .arg(&script)
        .arg(url)
        .arg(plan.to_string())
        .current_dir(&node_dir)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create client stdout"))
        .stderr(File::create(&err_path).expect("create client stderr"))
        .spawn()
        .expect("start node mcp-client.mjs");
    let steps = plan["steps"].as_array().map_or(1, Vec::len) as u64;
    let limit = Duration::from_millis(plan["timeoutMs"].as_u64().unwrap_or(15_000) * (steps + 3));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mcp-client.mjs did not finish within {limit:?}; stdout:\n{}\nstderr:\n{}",
                tail(&out_path, 30),
                tail(&err_path, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let mut steps = Vec::new();
    let mut summary = Value::Null;
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["op"] == "summary" {
            summary = v;
        } else {
            steps.push(v);
        }
    }
    assert!(
        status.success() && !summary.is_null(),
        "mcp-client.mjs failed ({status}); stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    ClientRun {
        steps,
        summary,
        stderr,
    }
}
