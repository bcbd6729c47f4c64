//! Logging in as a person, headless: the coding assistants' own CLIs (from `tests/node`) run as a
//! connect config emits them, with `tests/node/browser.mjs` as their `$BROWSER` (it submits the
//! IdP's login and consent forms and delivers the code to the CLI's loopback callback), each in
//! a home directory of its own. Also an MCP client over stdio (`mcp-remote` is a stdio proxy).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::paths;
use crate::util::tail;

/// `tests/node/browser.mjs` (executable, `#!/usr/bin/env node`).
pub fn browser() -> PathBuf {
    paths::node_dir().join("browser.mjs")
}

/// What a CLI run printed and how it ended (`None`: killed at the time limit).
#[derive(Debug, Clone)]
pub struct CliRun {
    pub argv: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr together, for matching a failure's reason.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn describe(&self) -> String {
        format!(
            "{:?} -> {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.argv,
            self.code,
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// A sandbox for the assistants' CLIs: its own `HOME` (their configs and stored credentials),
/// `PATH` with node, `$BROWSER` = `browser.mjs` logging in as `user`.
#[derive(Debug, Clone)]
pub struct CliEnv {
    pub home: PathBuf,
    pub env: BTreeMap<String, String>,
    log_dir: PathBuf,
    outbound: Option<Arc<RefusingProxy>>,
}

impl CliEnv {
    pub fn new(dir: &Path, name: &str, user: (&str, &str)) -> CliEnv {
        let home = dir.join(format!("home-{name}"));
        std::fs::create_dir_all(&home).expect("create CLI home");
        let node_dir = paths::node_bin()
            .parent()
            .expect("node's directory")
            .to_path_buf();
        let path = std::env::join_paths(
            [node_dir, paths::node_dir().join("node_modules/.bin")]
                .into_iter()
                .chain(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                )),
        )
        .expect("PATH");
        let env = [
            ("HOME", home.display().to_string()),
            ("PATH", path.to_string_lossy().into_owned()),
            ("BROWSER", browser().display().to_string()),
            ("PORTCULLIS_TEST_LOGIN_USER", user.0.to_string()),
            ("PORTCULLIS_TEST_LOGIN_PASSWORD", user.1.to_string()),
            // The CLIs start the browser with its output discarded: it logs here too.
            (
                "PORTCULLIS_TEST_BROWSER_LOG",
                dir.join(format!("browser-{name}.log"))
                    .display()
                    .to_string(),
            ),
            // No terminal UI, no update checks, no telemetry.
            ("CI", "1".to_string()),
            ("NO_COLOR", "1".to_string()),
            ("DISABLE_AUTOUPDATER", "1".to_string()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
            ("npm_config_update_notifier", "false".to_string()),
            // Nothing but loopback: every other destination goes to a closed port.
            ("HTTP_PROXY", "http://127.0.0.1:9".to_string()),
            ("HTTPS_PROXY", "http://127.0.0.1:9".to_string()),
            ("ALL_PROXY", "http://127.0.0.1:9".to_string()),
            ("NO_PROXY", "127.0.0.1,localhost,::1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        CliEnv {
            home,
            env,
            log_dir: dir.to_path_buf(),
            outbound: None,
        }
    }

    /// Sends the sandbox's non-loopback traffic to a [`RefusingProxy`] instead of a closed port,
    /// so [`CliEnv::outbound`] can tell which hosts the CLIs tried to reach (still none served).
    pub fn recording_outbound(mut self) -> CliEnv {
        let proxy = RefusingProxy::start();
        let url = format!("http://127.0.0.1:{}", proxy.port);
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            self.env.insert(k.to_string(), url.clone());
        }
        self.outbound = Some(Arc::new(proxy));
        self
    }

    /// What the CLIs asked the proxy for (`CONNECT claude.ai:443 HTTP/1.1`, …), in order;
    /// empty unless [`CliEnv::recording_outbound`].
    pub fn outbound(&self) -> Vec<String> {
        self.outbound.as_ref().map(|p| p.seen()).unwrap_or_default()
    }

    /// What the browser did for this sandbox's logins (every hop, queries redacted).
    pub fn browser_log(&self) -> String {
        std::fs::read_to_string(&self.env["PORTCULLIS_TEST_BROWSER_LOG"]).unwrap_or_default()
    }

    /// Forgets what the browser did (before the next login of this sandbox).
    pub fn reset_browser_log(&self) {
        let _ = std::fs::remove_file(&self.env["PORTCULLIS_TEST_BROWSER_LOG"]);
    }

    /// The browser's login ended without a code: it stopped at a page, or the IdP sent an error
    /// to the client's callback.
    pub fn login_failed(&self) -> bool {
        let log = self.browser_log();
        log.contains("stopped at ")
            || log
                .lines()
                .any(|l| l.contains("(the client's callback)") && l.contains(": "))
    }

    fn command(&self, argv: &[String]) -> Command {
        let mut cmd = Command::new(&argv[0]);
        // A group of its own, so that stopping it stops what it started too (npx's shell and
        // node, the codex wrapper's binary), not only the process we spawned.
        cmd.process_group(0);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(&self.env)
            .current_dir(paths::node_dir())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `argv` (its program found on the sandbox's `PATH`) to its end or `limit`.
    pub fn run(&self, argv: &[String], limit: Duration) -> CliRun {
        self.run_until(argv, limit, || false)
    }

    /// [`CliRun::run`], killed early once `stop()` holds (e.g. the browser saw the login fail:
    /// the CLIs wait minutes for a callback that will not come).
    pub fn run_until(&self, argv: &[String], limit: Duration, stop: impl Fn() -> bool) -> CliRun {
        let n = std::fs::read_dir(&self.log_dir).map_or(0, |d| d.count());
        let out_path = self.log_dir.join(format!("cli-{n}.out"));
        let err_path = self.log_dir.join(format!("cli-{n}.err"));
        let mut argv = argv.to_vec();
        argv[0] = self.which(&argv[0]);
        let mut child = self
            .command(&argv)
            .stdout(std::fs::File::create(&out_path).expect("cli stdout"))
            .stderr(std::fs::File::create(&err_path).expect("cli stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?}: {e}"));
        let deadline = Instant::now() + limit;
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait for the CLI") {
                break status.code();
            }
            if Instant::now() >= deadline || stop() {
                kill_group(&mut child);
                break None;
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        CliRun {
            argv,
            code,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        }
    }

    /// [`CliEnv::run`] on a pseudo-terminal (util-linux `script`): for CLIs that refuse to log
    /// in without one (Claude Code's `mcp login`). Its output is the terminal's.
    pub fn run_in_terminal(
        &self,
        argv: &[String],
        limit: Duration,
        stop: impl Fn() -> bool,
    ) -> CliRun {
        let mut argv = argv.to_vec();
        argv[0] = self.which(&argv[0]);
        let line = argv
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let wrapped = [
            "script".to_string(),
            "-q".into(),
            "-e".into(),
            "-c".into(),
            line,
            "/dev/null".into(),
        ];
        let mut run = self.run_until(&wrapped, limit, stop);
        run.argv = argv;
        run
    }

    /// `name` on the sandbox's `PATH` (the CLIs' npm bins, then node's directory, then the rest).
    pub fn which(&self, name: &str) -> String {
        if name.contains('/') {
            return name.to_string();
        }
        std::env::split_paths(&self.env["PATH"])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!("{name} is not on the test PATH: run `bash scripts/setup.sh`")
            })
            .display()
            .to_string()
    }

    /// Starts a stdio MCP process (`command args…`, e.g. `npx mcp-remote URL`).
    pub fn stdio(&self, command: &str, args: &[String], name: &str) -> StdioMcp {
        let mut argv = vec![self.which(command)];
        argv.extend(args.iter().cloned());
        let err_path = self.log_dir.join(format!("{name}.err"));
        let mut child = self
            .command(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err_path).expect("stdio stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        StdioMcp {
            child,
            stdin,
            lines: rx,
            err_path,
            next_id: 1,
        }
    }
}

/// Kills `child`'s process group (see [`CliEnv::command`]), then reaps `child`.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// An MCP server spoken to over stdio (newline-delimited JSON-RPC); killed on drop.
pub struct StdioMcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    err_path: PathBuf,
    next_id: u64,
}

impl StdioMcp {
    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        // A write error means the process is gone: the read that follows reports it.
        let _ = writeln!(stdin, "{message}").and_then(|_| stdin.flush());
    }

    /// Sends a request and waits for its response (`Err`: what went wrong, with stderr).
    pub fn request(
        &mut self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, String> {
        self.request_until(method, params, limit, || false)
    }

    /// [`StdioMcp::request`], given up early (`Err`) once `stop()` holds.
    pub fn request_until(
        &mut self,
        method: &str,
        params: Value,
        limit: Duration,
        stop: impl Fn() -> bool,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + limit;
        loop {
            if stop() {
                return Err(format!(
                    "gave up waiting for {method}: the login failed; stderr:\n{}",
                    self.stderr(60)
                ));
            }
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            if left.is_zero() {
                return Err(format!(
                    "no answer to {method} within {limit:?}; stderr:\n{}",
                    self.stderr(60)
                ));
            }
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if v["id"] == json!(id) {
                        return Ok(v);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the process ended before answering {method}; stderr:\n{}",
                        self.stderr(60)
                    ))
                }
            }
        }
    }

    pub fn notify(&mut self, method: &str) {
        self.send(&json!({"jsonrpc": "2.0", "method": method}));
    }

    /// `initialize` + `notifications/initialized` (`stop`: as for [`StdioMcp::request_until`]).
    pub fn initialize(
        &mut self,
        limit: Duration,
        stop: impl Fn() -> bool,
    ) -> Result<Value, String> {
        let r = self.request_until(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "portcullis-e2e-stdio", "version": "0.1.0"}}),
            limit,
            stop,
        )?;
        self.notify("notifications/initialized");
        Ok(r)
    }

    pub fn stderr(&self, lines: usize) -> String {
        tail(&self.err_path, lines)
    }
}

impl Drop for StdioMcp {
    fn drop(&mut self) {
        self.stdin.take();
        kill_group(&mut self.child);
    }
}

/// The claims of a JWT (its middle part), never the token itself: for assertions and messages.
pub fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&crate::util::b64url_decode(payload)?).ok()
}

/// An HTTP proxy on 127.0.0.1 that lets nothing through: it answers every request (`CONNECT`
/// included) with 403 and remembers its request line. Stops on drop.
#[derive(Debug)]
pub struct RefusingProxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl RefusingProxy {
    pub fn start() -> RefusingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the refusing proxy");
        let proxy = RefusingProxy {
            port: listener.local_addr().expect("proxy address").port(),
            seen: Arc::default(),
            stop: Arc::default(),
        };
        let (seen, stop) = (proxy.seen.clone(), proxy.stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let _ = BufReader::new(&conn).read_line(&mut line);
                seen.lock()
                    .expect("proxy log")
                    .push(line.trim().to_string());
                let _ = conn.write_all(
                    b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("proxy log").clone()
    }
}

impl Drop for RefusingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
