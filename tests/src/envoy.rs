//! Envoy as a child process: a config builder, start-and-wait-ready, `--mode validate`.
//!
//! The rendered config is JSON (which is YAML too) written to `envoy.yaml` in the test's
//! directory: a listener on 127.0.0.1 (port 0: Envoy picks, the harness reads it back from the
//! admin API), the Portcullis wasm filter (optional), the router, and static clusters on
//! 127.0.0.1. The admin API also binds port 0 and reports its address through
//! `--admin-address-path`, so no port is ever guessed.
//!
//! With [`EnvoyConfig::synced`] (or [`EnvoyConfig::with_sync`]) the same module also runs as the
//! sync singleton in `bootstrap_extensions` (`envoy.bootstrap.wasm`, `singleton: true`, same
//! `vm_id`), long-polling a control plane on a static cluster, and the HTTP filter reads its
//! policy from shared data (`{"shared_snapshot": true}`).

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{Request, Response};
use crate::paths;
use crate::util::{tail, TestDir};

/// Name of the listener the harness renders.
pub const LISTENER_NAME: &str = "portcullis_e2e";
/// Name of the default upstream cluster in [`EnvoyConfig::portcullis`].
pub const UPSTREAM_CLUSTER: &str = "upstream";
/// Name of the control plane's cluster in [`EnvoyConfig::with_sync`].
pub const CONTROL_PLANE_CLUSTER: &str = "portcullis_control_plane";
/// The `vm_id` the filter and the singleton share (shared data and queues are per `vm_id`).
pub const VM_ID: &str = "portcullis";
/// The wasm plugin's `failure_policy` the harness renders: a crashed VM is reloaded (closed
/// while it reloads) instead of answering 503 for good.
pub const FAILURE_POLICY: &str = "FAIL_RELOAD";
/// Passed to every Envoy the tests start, next to `--disable-hot-restart`: another Envoy on the
/// machine (on base id 0, as Envoy users usually run one) must not stop a test's Envoy from
/// starting. (`--disable-hot-restart` alone already keeps Envoy off the hot-restart domain
/// socket, checked with Envoy 1.40; the flag keeps that true if a test ever drops it.)
pub const DYNAMIC_BASE_ID: &str = "--use-dynamic-base-id";

/// The Portcullis HTTP wasm filter as rendered into the config.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    pub wasm: PathBuf,
    /// The plugin configuration string (normally `{"snapshot": …}`).
    pub configuration: String,
    pub vm_id: String,
    pub root_id: Option<String>,
    /// `failure_policy` of the plugin config (Envoy 1.40; replaces `fail_open`). The harness
    /// renders `FAIL_RELOAD` like the shipped configs: a crashed VM is reloaded and requests
    /// are refused while it comes back.
    pub failure_policy: String,
    /// `allow_on_headers_stop_iteration`: lets the filter hold a POST's headers until it has
    /// read and judged the body. Shipped configs set it; turned off only to test the hint the
    /// filter logs when an operator forgets it.
    pub hold_headers_for_body: bool,
}

/// The sync singleton as rendered into `bootstrap_extensions`.
#[derive(Debug, Clone)]
pub struct SyncSingleton {
    pub wasm: PathBuf,
    /// The plugin configuration string (`{"sync": {…}}`).
    pub configuration: String,
    pub vm_id: String,
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Forward to a cluster, optionally replacing the matched prefix.
    Cluster {
        cluster: String,
        prefix_rewrite: Option<String>,
    },
    /// Answer from Envoy itself (the HTTP filters still run first).
    Direct { status: u16, body: String },
}

#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: String,
    pub action: RouteAction,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub port: u16,
    /// More endpoints on 127.0.0.1 (several control-plane replicas behind one cluster).
    pub more_ports: Vec<u16>,
    /// An active HTTP health check on this path (every 500 ms, one failure marks a host
    /// unhealthy), as the shipped configs set on the control plane's cluster.
    pub health_check: Option<String>,
}

/// Everything needed to render one Envoy config.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub filter: Option<WasmFilter>,
    /// The sync singleton in `bootstrap_extensions`, if any.
    pub singleton: Option<SyncSingleton>,
    pub routes: Vec<Route>,
    pub clusters: Vec<Cluster>,
    pub concurrency: u32,
    /// The listener's `http_protocol_options.enable_trailers`: HTTP/1.1 chunked trailers reach
    /// the filters as trailers (Envoy drops them by default).
    pub http1_trailers: bool,
    /// `-l`; `$PORTCULLIS_E2E_ENVOY_LOG_LEVEL` or `info`.
    pub log_level: String,
    /// `--component-log-level`; `wasm:debug` by default so the filter's logs show.
    pub component_log_level: Option<String>,
    /// How long to wait for `/ready`.
    pub ready_timeout: Duration,
    /// The access log's `json_format` (default: the harness's own, see `access_log_format`).
    pub access_log_format: Option<Value>,
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        EnvoyConfig::new()
    }
}

impl EnvoyConfig {
    /// No filter, no routes, no clusters.
    pub fn new() -> EnvoyConfig {
        EnvoyConfig {
            filter: None,
            singleton: None,
            routes: Vec::new(),
            clusters: Vec::new(),
            concurrency: 1,
            http1_trailers: false,
            log_level: std::env::var("PORTCULLIS_E2E_ENVOY_LOG_LEVEL")
                .unwrap_or_else(|_| "info".into()),
            component_log_level: Some("wasm:debug".into()),
            ready_timeout: Duration::from_secs(60),
            access_log_format: None,
        }
    }

    /// The usual test layout: the Portcullis filter with `{"snapshot": snapshot}`, and one
    /// upstream cluster on 127.0.0.1:`upstream_port` that gets every request; `/srv/…` is
    /// forwarded as `/…` (so `/srv/mcp` reaches an MCP server's `/mcp`).
    pub fn portcullis(snapshot: &Value, upstream_port: u16) -> EnvoyConfig {
        EnvoyConfig::plain(upstream_port).with_snapshot(snapshot)
    }

    /// [`EnvoyConfig::portcullis`] without any wasm filter.
    pub fn plain(upstream_port: u16) -> EnvoyConfig {
        EnvoyConfig::new()
            .cluster(UPSTREAM_CLUSTER, upstream_port)
            .route_rewrite("/srv/", UPSTREAM_CLUSTER, "/")
            .route("/", UPSTREAM_CLUSTER)
    }

    /// Adds the Portcullis filter (the module from [`paths::filter_wasm`]) with plugin
    /// configuration `{"snapshot": snapshot}`.
    pub fn with_snapshot(self, snapshot: &Value) -> EnvoyConfig {
        self.with_plugin_configuration(plugin_configuration(snapshot))
    }

    /// Adds the Portcullis filter with a raw plugin configuration string.
    pub fn with_plugin_configuration(mut self, configuration: impl Into<String>) -> EnvoyConfig {
        self.filter = Some(WasmFilter {
            wasm: paths::filter_wasm(),
            configuration: configuration.into(),
            vm_id: "portcullis".into(),
            root_id: None,
            failure_policy: FAILURE_POLICY.into(),
            hold_headers_for_body: true,
        });
        self
    }

    /// The usual layout with the policy from a control plane on 127.0.0.1:`control_plane_port`:
    /// the sync singleton with `{"sync": {"cluster": CONTROL_PLANE_CLUSTER, "token": token,
    /// "poll_seconds": 30}}` and the filter in `{"shared_snapshot": true}` mode (audit on).
    pub fn synced(control_plane_port: u16, upstream_port: u16, token: &str) -> EnvoyConfig {
        EnvoyConfig::plain(upstream_port)
            .with_sync(
                control_plane_port,
                json!({"cluster": CONTROL_PLANE_CLUSTER, "token": token, "poll_seconds": 30}),
            )
            .with_shared_snapshot(json!({}))
    }

    /// Adds the sync singleton with `{"sync": sync}` and a static cluster
    /// [`CONTROL_PLANE_CLUSTER`] on 127.0.0.1:`control_plane_port`.
    pub fn with_sync(self, control_plane_port: u16, sync: Value) -> EnvoyConfig {
        self.cluster(CONTROL_PLANE_CLUSTER, control_plane_port)
            .with_singleton_configuration(json!({ "sync": sync }).to_string())
    }

    /// Adds the singleton with a raw plugin configuration string (no cluster).
    pub fn with_singleton_configuration(mut self, configuration: impl Into<String>) -> EnvoyConfig {
        self.singleton = Some(SyncSingleton {
            wasm: paths::filter_wasm(),
            configuration: configuration.into(),
            vm_id: VM_ID.into(),
        });
        self
    }

    /// Adds the filter reading its policy from shared data: `{"shared_snapshot": true}` plus the
    /// members of `extra` (e.g. `{"audit": false}`).
    pub fn with_shared_snapshot(self, extra: Value) -> EnvoyConfig {
        let mut configuration = json!({"shared_snapshot": true});
        if let (Some(target), Some(members)) = (configuration.as_object_mut(), extra.as_object()) {
            target.extend(members.clone());
        }
        self.with_plugin_configuration(configuration.to_string())
    }

    pub fn cluster(mut self, name: &str, port: u16) -> EnvoyConfig {
        self.clusters.push(Cluster {
            name: name.into(),
            port,
            more_ports: Vec::new(),
            health_check: None,
        });
        self
    }

    /// The sync singleton with `{"sync": sync}` and [`CONTROL_PLANE_CLUSTER`] listing every
    /// control plane in `ports`, health-checked on `/readyz` (as the shipped bootstrap does).
    pub fn with_sync_replicas(mut self, ports: &[u16], sync: Value) -> EnvoyConfig {
        let (first, more) = ports.split_first().expect("at least one control plane");
        self.clusters.push(Cluster {
            name: CONTROL_PLANE_CLUSTER.into(),
            port: *first,
            more_ports: more.to_vec(),
            health_check: Some("/readyz".into()),
        });
        self.with_singleton_configuration(json!({ "sync": sync }).to_string())
    }

    /// Replaces the access log's `json_format`.
    pub fn access_log_format(mut self, format: Value) -> EnvoyConfig {
        self.access_log_format = Some(format);
        self
    }

    pub fn route(mut self, prefix: &str, cluster: &str) -> EnvoyConfig {
        self.routes.push(Route {
            prefix: prefix.into(),
            action: RouteAction::Cluster {
                cluster: cluster.into(),
                prefix_rewrite: None,
            },
        });
        self
    }

    pub fn route_rewrite(mut self, prefix: &str, cluster: &str, rewrite: &str) -> EnvoyConfig {
        self.routes.push(Route {
            prefix: prefix.into(),
            action: RouteAction::Cluster {
                cluster: cluster.into(),
                prefix_rewrite: Some(rewrite.into()),
            },
        });
        self
    }

    /// Routes are matched in order: a route added here goes before the existing ones.
    pub fn direct_first(mut self, prefix: &str, status: u16, body: &str) -> EnvoyConfig {
        self.routes.insert(
            0,
            Route {
                prefix: prefix.into(),
                action: RouteAction::Direct {
                    status,
                    body: body.into(),
                },
            },
        );
        self
    }

    pub fn concurrency(mut self, n: u32) -> EnvoyConfig {
        self.concurrency = n;
        self
    }

    /// Lets HTTP/1.1 chunked trailers through to the filters (see [`EnvoyConfig::http1_trailers`]).
    pub fn with_http1_trailers(mut self) -> EnvoyConfig {
        self.http1_trailers = true;
        self
    }

    /// The config document (listener, filters, clusters, admin). `access_log` is where the
    /// JSON access log goes.
    pub fn render(&self, access_log: &Path) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| match &r.action {
                RouteAction::Cluster {
                    cluster,
                    prefix_rewrite,
                } => {
                    let mut route = json!({"cluster": cluster, "timeout": "0s"});
                    if let Some(p) = prefix_rewrite {
                        route["prefix_rewrite"] = json!(p);
                    }
                    json!({"match": {"prefix": r.prefix}, "route": route})
                }
                RouteAction::Direct { status, body } => json!({
                    "match": {"prefix": r.prefix},
                    "direct_response": {"status": status, "body": {"inline_string": body}},
                }),
            })
            .collect();
        let mut http_filters = Vec::new();
        if let Some(f) = &self.filter {
            let mut config = json!({
                "name": "portcullis",
                "vm_config": {
                    "vm_id": f.vm_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": f.wasm.display().to_string()}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": f.configuration,
                },
                "failure_policy": f.failure_policy,
                "allow_on_headers_stop_iteration": f.hold_headers_for_body,
            });
            if let Some(root_id) = &f.root_id {
                config["root_id"] = json!(root_id);
            }
            http_filters.push(json!({
                "name": "envoy.filters.http.wasm",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": config,
                },
            }));
        }
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            },
        }));
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|c| {
                let endpoints: Vec<Value> = std::iter::once(c.port)
                    .chain(c.more_ports.iter().copied())
                    .map(|port| {
                        json!({"endpoint": {"address": {
                            "socket_address": {"address": "127.0.0.1", "port_value": port}
                        }}})
                    })
                    .collect();
                let mut cluster = json!({
                    "name": c.name,
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "load_assignment": {
                        "cluster_name": c.name,
                        "endpoints": [{"lb_endpoints": endpoints}],
                    },
                });
                if let Some(path) = &c.health_check {
                    cluster["health_checks"] = json!([{
                        "timeout": "1s", "interval": "0.5s", "no_traffic_interval": "0.5s",
                        "unhealthy_threshold": 1, "healthy_threshold": 1,
                        "http_health_check": {"path": path},
                    }]);
                }
                cluster
            })
            .collect();
        let mut document = json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {
                "listeners": [{
                    "name": LISTENER_NAME,
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "e2e",
                            "codec_type": "AUTO",
                            "access_log": [{
                                "name": "envoy.access_loggers.file",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                                    "path": access_log.display().to_string(),
                                    "log_format": {"json_format": self
                                        .access_log_format
                                        .clone()
                                        .unwrap_or_else(access_log_format)},
                                },
                            }],
                            "route_config": {
                                "name": "e2e",
                                "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}],
                            },
                            "http_filters": http_filters,
                        },
                    }]}],
                }],
                "clusters": clusters,
            },
        });
        if self.http1_trailers {
            document["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                ["typed_config"]["http_protocol_options"] = json!({"enable_trailers": true});
        }
        if let Some(singleton) = &self.singleton {
            document["bootstrap_extensions"] = json!([{
                "name": "envoy.bootstrap.wasm",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService",
                    "singleton": true,
                    "config": {
                        "name": "portcullis_sync",
                        "vm_config": {
                            "vm_id": singleton.vm_id,
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": {"local": {"filename": singleton.wasm.display().to_string()}},
                        },
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": singleton.configuration,
                        },
                    },
                },
            }]);
        }
        document
    }
}

/// `{"snapshot": snapshot}` as the filter's plugin configuration string.
pub fn plugin_configuration(snapshot: &Value) -> String {
    json!({ "snapshot": snapshot }).to_string()
}

/// What each access-log line records (request headers as seen after the filters ran).
fn access_log_format() -> Value {
    json!({
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "status": "%RESPONSE_CODE%",
        "details": "%RESPONSE_CODE_DETAILS%",
        "flags": "%RESPONSE_FLAGS%",
        "accept": "%REQ(ACCEPT)%",
        "content_type": "%REQ(CONTENT-TYPE)%",
        "user_agent": "%REQ(USER-AGENT)%",
        "origin": "%REQ(ORIGIN)%",
        "mcp_session_id": "%REQ(MCP-SESSION-ID)%",
        "mcp_protocol_version": "%REQ(MCP-PROTOCOL-VERSION)%",
        "last_event_id": "%REQ(LAST-EVENT-ID)%",
        "authorization": "%REQ(AUTHORIZATION):16%",
        "x_portcullis_user": "%REQ(X-PORTCULLIS-USER)%",
        "bytes_received": "%BYTES_RECEIVED%",
        "bytes_sent": "%BYTES_SENT%",
        "resp_content_type": "%RESP(CONTENT-TYPE)%",
        "www_authenticate": "%RESP(WWW-AUTHENTICATE)%",
        "duration_ms": "%DURATION%",
    })
}

/// Why Envoy did not come up.
#[derive(Debug)]
pub struct EnvoyError {
    pub message: String,
    /// The exit status, when Envoy exited.
    pub exit: Option<ExitStatus>,
    /// The whole log (application log and stdout/stderr).
    pub log: String,
}

impl fmt::Display for EnvoyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.log.lines().collect();
        let start = lines.len().saturating_sub(40);
        write!(
            f,
            "{}\n--- last lines of the Envoy log ---\n{}",
            self.message,
            lines[start..].join("\n")
        )
    }
}

impl std::error::Error for EnvoyError {}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    admin_port: u16,
    port: u16,
}

impl Envoy {
    /// Starts Envoy and waits until it is ready; panics with the log tail otherwise.
    pub fn start(config: &EnvoyConfig, dir: &TestDir) -> Envoy {
        Envoy::try_start(config, dir).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts Envoy and waits until `/ready` answers 200 and the listener has a port.
    pub fn try_start(config: &EnvoyConfig, dir: &TestDir) -> Result<Envoy, EnvoyError> {
        let bin = paths::envoy_bin();
        let dir = dir.path().to_path_buf();
        let config_path = dir.join("envoy.yaml");
        let access_log = dir.join("access.log");
        let admin_addr_path = dir.join("admin.addr");
        let _ = std::fs::remove_file(&admin_addr_path);
        let rendered = config.render(&access_log);
        std::fs::write(
            &config_path,
            serde_json::to_string_pretty(&rendered).expect("serialize config"),
        )
        .expect("write envoy.yaml");
        let out = File::create(dir.join("envoy.out")).expect("create envoy.out");
        let mut cmd = Command::new(&bin);
        cmd.arg("-c")
            .arg(&config_path)
            .arg("--concurrency")
            .arg(config.concurrency.to_string())
            .arg("--disable-hot-restart")
            .arg(DYNAMIC_BASE_ID)
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .arg("--file-flush-interval-msec")
            .arg("50")
            .arg("--admin-address-path")
            .arg(&admin_addr_path)
            .arg("-l")
            .arg(&config.log_level);
        if let Some(c) = &config.component_log_level {
            cmd.arg("--component-log-level").arg(c);
        }
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out);
        let child = cmd.spawn().map_err(|e| EnvoyError {
            message: format!("cannot start {}: {e}", bin.display()),
            exit: None,
            log: String::new(),
        })?;
        let mut envoy = Envoy {
            child,
            dir,
            admin_port: 0,
            port: 0,
        };
        envoy.wait_ready(config.ready_timeout)?;
        Ok(envoy)
    }

    fn fail(&mut self, message: String) -> EnvoyError {
        // Give the log a moment to flush before reading it.
        std::thread::sleep(Duration::from_millis(150));
        let exit = self.child.try_wait().ok().flatten();
        EnvoyError {
            message,
            exit,
            log: self.log(),
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + timeout;
        let addr_path = self.dir.join("admin.addr");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.fail(format!("Envoy exited during startup ({status})")));
            }
            if Instant::now() >= deadline {
                return Err(self.fail(format!(
                    "Envoy was not ready after {timeout:?} (admin address file {})",
                    addr_path.display()
                )));
            }
            if self.admin_port == 0 {
                if let Ok(text) = std::fs::read_to_string(&addr_path) {
                    if let Some(port) = text.trim().rsplit(':').next().and_then(|p| p.parse().ok())
                    {
                        self.admin_port = port;
                    }
                }
            }
            if self.admin_port != 0 {
                let ready = Request::get("/ready")
                    .timeout(Duration::from_secs(2))
                    .try_send(self.admin_port);
                if ready.is_ok_and(|r| r.status == 200) {
                    if let Some(port) = self.listener_port() {
                        self.port = port;
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn listener_port(&self) -> Option<u16> {
        let r = Request::get("/listeners?format=json")
            .try_send(self.admin_port)
            .ok()?;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        v["listener_statuses"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == LISTENER_NAME)?["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    }

    /// The listener's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Envoy process id (for /proc: memory, CPU).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Sends a request to the listener.
    pub fn send(&self, req: Request) -> Response {
        req.send(self.port)
    }

    /// GET on the admin API.
    pub fn admin(&self, path: &str) -> Response {
        Request::get(path).send(self.admin_port)
    }

    /// Counter/gauge values from `/stats` whose names contain `filter`.
    pub fn stats(&self, filter: &str) -> Vec<(String, String)> {
        self.admin("/stats")
            .text()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.contains(filter))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The value of the counter or gauge `wasmcustom.<name>` (0 when it does not exist yet).
    pub fn wasm_stat(&self, name: &str) -> u64 {
        let full = format!("wasmcustom.{name}");
        self.stats(&full)
            .into_iter()
            .find(|(k, _)| *k == full)
            .map_or(0, |(_, v)| v.trim().parse().unwrap_or(0))
    }

    /// Whether Envoy has exited (and how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The directory holding `envoy.yaml`, `envoy.log`, `envoy.out`, `access.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The application log plus whatever Envoy printed on stdout/stderr.
    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        let mut s = read("envoy.log");
        let out = read("envoy.out");
        if !out.trim().is_empty() {
            s.push_str("\n--- envoy stdout/stderr ---\n");
            s.push_str(&out);
        }
        s
    }

    /// The last `n` lines of the application log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.dir.join("envoy.log"), n)
    }

    /// The last `n` log lines from the filter (`[wasm]`) or at warning level and above, skipping
    /// startup noise: what a failing test wants to see.
    pub fn interesting_log_lines(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                ["[wasm]", "[warning]", "[error]", "[critical]"]
                    .iter()
                    .any(|m| l.contains(m))
                    && !l.contains("no configured limit to the number of allowed active")
            })
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits (up to 5 s) until the log contains `needle`; returns whether it did.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        crate::util::wait_until(Duration::from_secs(5), || {
            self.log().contains(needle).then_some(())
        })
        .is_some()
    }

    /// Access-log entries (one JSON object per request), after letting the log flush.
    pub fn access_log(&self) -> Vec<Value> {
        std::thread::sleep(Duration::from_millis(200));
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "[e2e] Envoy log ({}), wasm/warning/error lines:\n{}",
                self.dir.join("envoy.log").display(),
                self.interesting_log_lines(30)
            );
        }
    }
}

/// `envoy --mode validate -c FILE`, run from the repo root (shipped configs use repo-relative
/// paths). Returns the exit status and everything Envoy printed.
pub fn validate(config: &Path) -> (ExitStatus, String) {
    let output = Command::new(paths::envoy_bin())
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(config)
        .arg("--disable-hot-restart")
        .arg(DYNAMIC_BASE_ID)
        .arg("-l")
        .arg("info")
        .current_dir(paths::repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("run envoy --mode validate");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status, text)
}
