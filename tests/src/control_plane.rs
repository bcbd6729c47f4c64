//! `portcullis serve` as a child process on 127.0.0.1, with its own data directory, so tests can
//! drive the registry API, stop the control plane and start it again on the same ports and data.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http::{Request, Response};
use crate::paths;
use crate::util::{free_port, wait_until};

pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";
pub const SYNC_TOKEN: &str = "e2e-sync-token-0123456789";

/// A running (or stopped) control plane.
pub struct ControlPlane {
    child: Option<Child>,
    dir: PathBuf,
    env: BTreeMap<String, String>,
    port: u16,
    xds_port: u16,
    starts: u32,
}

impl ControlPlane {
    /// Starts `target/debug/portcullis serve` with data in `dir`, the admin and sync tokens
    /// above, xDS on a port of its own, and `env` on top (e.g. the IdP settings).
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> ControlPlane {
        let port = free_port();
        let xds_port = free_port();
        let mut vars: BTreeMap<String, String> = [
            (
                "PORTCULLIS_DATA_DIR",
                dir.join("cp-data").display().to_string(),
            ),
            ("PORTCULLIS_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
            ("PORTCULLIS_SYNC_TOKEN", SYNC_TOKEN.to_string()),
            ("PORTCULLIS_XDS_LISTEN", format!("127.0.0.1:{xds_port}")),
            ("PORTCULLIS_LOG_FORMAT", "text".to_string()),
            ("RUST_LOG", "info,sqlx=warn".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in env {
            vars.insert(k.to_string(), v.to_string());
        }
        let mut cp = ControlPlane {
            child: None,
            dir: dir.to_path_buf(),
            env: vars,
            port,
            xds_port,
            starts: 0,
        };
        cp.restart();
        cp
    }

    /// Starts the process again (same ports, same data); waits until `/readyz` answers 200.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the control plane first");
        // `PORTCULLIS_E2E_CP_BIN`: another build (the benchmarks use the release one).
        let bin = std::env::var_os("PORTCULLIS_E2E_CP_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| paths::repo_root().join("target/debug/portcullis"));
        assert!(
            bin.is_file(),
            "{} is missing: run `bash scripts/test.sh` (it builds it before the tests)",
            bin.display()
        );
        self.starts += 1;
        let log = self.dir.join(format!("control-plane-{}.log", self.starts));
        let out = File::create(&log).expect("control plane log");
        let child = Command::new(bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("starting portcullis serve");
        self.child = Some(child);
        let port = self.port;
        let ready = wait_until(Duration::from_secs(30), || {
            let r = Request::get("/readyz").try_send(port).ok()?;
            (r.status == 200).then_some(())
        });
        if ready.is_none() {
            panic!(
                "the control plane did not become ready; its log:\n{}",
                self.log()
            );
        }
    }

    /// Kills the process (SIGKILL: no goodbye to anyone).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn xds_port(&self) -> u16 {
        self.xds_port
    }

    /// Everything the current (or last) process logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("control-plane-{}.log", self.starts)))
            .unwrap_or_default()
    }

    /// An API call with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let mut r = Request::new(method, path).bearer(ADMIN_TOKEN);
        if let Some(body) = body {
            r = r.json(body);
        }
        r.send(self.port)
    }

    /// Registers a server (JSON body); panics unless 201.
    pub fn register(&self, body: &Value) -> Value {
        let r = self.admin("POST", "/api/servers/register", Some(body));
        assert_eq!(r.status, 201, "register: {}", r.describe());
        r.json()
    }

    /// `GET /v1/policy` with the sync token: the snapshot the control plane serves now.
    pub fn snapshot(&self) -> Response {
        Request::get("/v1/policy")
            .bearer(SYNC_TOKEN)
            .send(self.port)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
    }
}
