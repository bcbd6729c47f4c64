//! Envoy started from the shipped `envoy/bootstrap-xds.yaml`, pointed at a test control plane:
//! routes and clusters by xDS, the policy through the sync singleton, the filter in
//! shared-snapshot mode with audit. Only ports, the sync token and the module path are changed,
//! so these tests exercise the file operators copy.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::control_plane::{ControlPlane, SYNC_TOKEN};
use crate::http::{Request, Response};
use crate::paths;

/// The listener's name in `envoy/bootstrap-xds.yaml`.
pub const LISTENER: &str = "mcp";

/// Envoy started from a bootstrap file (the shipped one, or a test's own); killed on drop.
pub struct Gateway {
    child: Child,
    dir: PathBuf,
    listener: String,
    admin_port: u16,
    port: u16,
}

/// The shipped bootstrap with this test's ports, token and module path.
pub fn render_shipped_bootstrap(cp: &ControlPlane) -> String {
    render_shipped_bootstrap_on(cp, 0)
}

/// [`render_shipped_bootstrap`] with the MCP listener on `listener_port` (0: any), for tests
/// whose control plane must know Envoy's URL before Envoy starts (`PORTCULLIS_PUBLIC_URL`).
pub fn render_shipped_bootstrap_on(cp: &ControlPlane, listener_port: u16) -> String {
    let root = paths::repo_root();
    let text = std::fs::read_to_string(root.join("envoy/bootstrap-xds.yaml"))
        .expect("envoy/bootstrap-xds.yaml");
    let replacements = [
        ("port_value: 10000", format!("port_value: {listener_port}")),
        ("port_value: 9901", "port_value: 0".to_string()),
        ("port_value: 8080", format!("port_value: {}", cp.port())),
        // The second control-plane replica: the same one here (tests run one).
        ("port_value: 8081", format!("port_value: {}", cp.port())),
        (
            "port_value: 18000",
            format!("port_value: {}", cp.xds_port()),
        ),
        (
            "\"authority\": \"127.0.0.1:8080\"",
            format!("\"authority\": \"127.0.0.1:{}\"", cp.port()),
        ),
        ("REPLACE_WITH_THE_SYNC_TOKEN", SYNC_TOKEN.to_string()),
        (
            "target/wasm32-wasip1/release/portcullis_filter.wasm",
            paths::filter_wasm().display().to_string(),
        ),
    ];
    let mut out = text;
    for (from, to) in replacements {
        assert!(
            out.contains(from),
            "envoy/bootstrap-xds.yaml no longer contains {from:?}; update tests/src/gateway.rs"
        );
        out = out.replace(from, &to);
    }
    out
}

impl Gateway {
    /// Starts Envoy from the shipped bootstrap pointed at `cp` (`--concurrency 2`) and waits until
    /// it is ready (its first xDS answers arrived) and the listener has a port. The policy may
    /// still be on its way.
    pub fn start(dir: &std::path::Path, cp: &ControlPlane) -> Gateway {
        Gateway::start_with(
            dir,
            "envoy-bootstrap.yaml",
            &render_shipped_bootstrap(cp),
            LISTENER,
            &[],
        )
    }

    /// [`Gateway::start`] with the MCP listener on `listener_port`.
    pub fn start_on(dir: &std::path::Path, cp: &ControlPlane, listener_port: u16) -> Gateway {
        Gateway::start_with(
            dir,
            "envoy-bootstrap.yaml",
            &render_shipped_bootstrap_on(cp, listener_port),
            LISTENER,
            &[],
        )
    }

    /// Starts Envoy (`--concurrency 2`) from `bootstrap` (YAML or JSON text, written to
    /// `dir/file_name`) with `extra_args`, and waits until `/ready` answers and `listener` has
    /// a port.
    pub fn start_with(
        dir: &std::path::Path,
        file_name: &str,
        bootstrap: &str,
        listener: &str,
        extra_args: &[&str],
    ) -> Gateway {
        let config = dir.join(file_name);
        std::fs::write(&config, bootstrap).expect("write bootstrap");
        let out = File::create(dir.join("envoy.out")).expect("envoy.out");
        let admin_addr = dir.join("admin.addr");
        let _ = std::fs::remove_file(&admin_addr);
        let child = Command::new(paths::envoy_bin())
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "2", "--disable-hot-restart"])
            .arg(crate::envoy::DYNAMIC_BASE_ID)
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .args(["--file-flush-interval-msec", "50"])
            .arg("--admin-address-path")
            .arg(&admin_addr)
            .args(["-l", "info"])
            .args(extra_args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("start envoy");
        let mut gw = Gateway {
            child,
            dir: dir.to_path_buf(),
            listener: listener.to_string(),
            admin_port: 0,
            port: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while gw.port == 0 {
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!(
                    "Envoy exited during startup ({status}):\n{}",
                    gw.log_tail(60)
                );
            }
            assert!(
                Instant::now() < deadline,
                "Envoy not ready in time:\n{}",
                gw.log_tail(60)
            );
            if gw.admin_port == 0 {
                gw.admin_port = std::fs::read_to_string(&admin_addr)
                    .ok()
                    .and_then(|t| t.trim().rsplit(':').next().and_then(|p| p.parse().ok()))
                    .unwrap_or(0);
            } else if gw.admin("/ready").is_some_and(|r| r.status == 200) {
                gw.port = gw.listener_port().unwrap_or(0);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        gw
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin(&self, path: &str) -> Option<Response> {
        Request::get(path)
            .timeout(Duration::from_secs(2))
            .try_send(self.admin_port)
            .ok()
    }

    fn listener_port(&self) -> Option<u16> {
        let r = self.admin("/listeners?format=json")?;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        v["listener_statuses"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == self.listener.as_str())?["local_address"]["socket_address"]
            ["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
    }

    /// `GET path` through the gateway.
    pub fn get(&self, path: &str) -> Response {
        Request::get(path).send(self.port)
    }

    /// Names of the clusters Envoy has now.
    pub fn clusters(&self) -> Vec<String> {
        let Some(r) = self.admin("/clusters?format=json") else {
            return Vec::new();
        };
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["cluster_statuses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A request through the gateway.
    pub fn send(&self, request: Request) -> Response {
        request.send(self.port)
    }

    /// The value of `wasmcustom.<name>` (0 when absent).
    pub fn wasm_stat(&self, name: &str) -> u64 {
        let full = format!("wasmcustom.{name}: ");
        self.admin("/stats")
            .map(|r| r.text())
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(&full).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0)
    }

    pub fn log_tail(&self, n: usize) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let log = format!(
            "{}\n--- stdout/stderr ---\n{}",
            read("envoy.log"),
            read("envoy.out")
        );
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Envoy's access log so far: one JSON object per request (`path` with its query), from
    /// its stdout.
    pub fn access_log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("envoy.out"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["path"].is_string())
            .collect()
    }

    /// Whether the log has a line containing `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log().contains(needle)
    }

    /// Envoy's application log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "[e2e] Envoy log ({}), last lines:\n{}",
                self.dir.display(),
                self.log_tail(40)
            );
        }
    }
}
