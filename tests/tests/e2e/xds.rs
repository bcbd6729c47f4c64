//! Routes by xDS with real Envoy: Envoy bootstrapped with nothing but a listener whose routes
//! come over ADS from the control plane's xDS server (in-process, `portcullis::xds`), and
//! clusters too. Registering, changing and removing a server moves traffic within a second.
//!
//! No wasm filter here: this is about routes and clusters; the policy has its own tests.

use std::time::{Duration, Instant};

use portcullis::registry::{Server, ServerFields};
use portcullis::xds::{StandaloneXds, XdsConfig, XdsInputs};
use portcullis_e2e::gateway::Gateway;
use portcullis_e2e::{ClientPlan, EchoUpstream, McpServer, Response, TestDir};
use serde_json::{json, Value};

const LISTENER: &str = "xds_e2e";
const CONTROL_PLANE_CLUSTER: &str = "portcullis_control_plane";
const XDS_CLUSTER: &str = "portcullis_xds";
const ROUTES: &str = "portcullis_routes";
/// What the issue promises for a registry change to reach Envoy.
const BOUND: Duration = Duration::from_secs(1);

/// The bootstrap: a listener whose HCM takes routes from RDS over ADS, clusters from CDS over
/// ADS, and static clusters for the control plane (HTTP) and its xDS port (HTTP/2). Same shape
/// as `envoy/bootstrap-xds.yaml`, minus the wasm parts and with ports picked by the OS.
fn bootstrap(xds_port: u16, control_plane_port: u16) -> Value {
    let static_cluster = |name: &str, port: u16| {
        json!({
            "name": name,
            "type": "STATIC",
            "connect_timeout": "2s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}
            }}]}]},
        })
    };
    let mut xds_cluster = static_cluster(XDS_CLUSTER, xds_port);
    xds_cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    });
    json!({
        "node": {"id": "xds-e2e", "cluster": "portcullis-e2e"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "listeners": [{
                "name": LISTENER,
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "xds_e2e",
                        "normalize_path": true,
                        "merge_slashes": true,
                        "rds": {
                            "route_config_name": ROUTES,
                            "config_source": {"ads": {}, "resource_api_version": "V3"},
                        },
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                        }],
                    },
                }]}],
            }],
            "clusters": [static_cluster(CONTROL_PLANE_CLUSTER, control_plane_port), xds_cluster],
        },
    })
}

/// Envoy started from [`bootstrap`] (2 workers), with xDS and upstream debug logs.
fn start_envoy(dir: &TestDir, xds_port: u16, control_plane_port: u16) -> Gateway {
    Gateway::start_with(
        dir.path(),
        "envoy-xds.json",
        &serde_json::to_string_pretty(&bootstrap(xds_port, control_plane_port)).unwrap(),
        LISTENER,
        &["--component-log-level", "config:debug,upstream:debug"],
    )
}

fn server(name: &str, path: &str, proxy_pass_url: &str) -> Server {
    Server::from_fields(
        ServerFields {
            name: name.into(),
            path: path.into(),
            proxy_pass_url: proxy_pass_url.into(),
            ..Default::default()
        },
        0,
        0,
    )
}

/// Polls (every 5 ms) until `done` holds; returns how long that took, or panics after `limit`.
fn time_until(
    what: &str,
    limit: Duration,
    envoy: &Gateway,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if done() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            envoy.log_tail(60)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn served_by(upstream: &EchoUpstream, r: &Response, path: &str) -> bool {
    r.status == 200
        && r.header("x-echo-upstream") == Some("1")
        && upstream.requests().iter().any(|q| q.path == path)
}

#[test]
fn registry_changes_reach_envoy_routes_within_a_second() {
    let dir = TestDir::new("xds_live_routes");
    let first = EchoUpstream::start();
    let second = EchoUpstream::start();
    // Stands in for the control plane's HTTP port: discovery documents must land here.
    let control_plane = EchoUpstream::start();
    let xds = StandaloneXds::start(
        XdsConfig {
            listen: None,
            control_plane_cluster: CONTROL_PLANE_CLUSTER.into(),
            route_config_name: ROUTES.into(),
            ..XdsConfig::default()
        },
        XdsInputs {
            version: 1,
            servers: vec![],
        },
    )
    .expect("start xDS");
    let envoy = start_envoy(&dir, xds.addr().port(), control_plane.port());

    // Nothing registered: no route.
    assert_eq!(envoy.get("/svc/mcp").status, 404);
    // Discovery documents route to the control plane even with no server.
    let r = envoy.get("/.well-known/oauth-authorization-server");
    assert_eq!(r.status, 200);
    assert!(control_plane
        .requests()
        .iter()
        .any(|q| q.path == "/.well-known/oauth-authorization-server"));

    // Register: reachable within the bound.
    xds.publish(vec![server(
        "Svc One",
        "/svc",
        &format!("http://127.0.0.1:{}", first.port()),
    )]);
    let added = time_until("registered server reachable", BOUND, &envoy, || {
        served_by(&first, &envoy.get("/svc/mcp"), "/mcp")
    });
    let seen = first.requests();
    let last = seen.last().unwrap();
    assert_eq!(
        last.header("host"),
        Some(format!("127.0.0.1:{}", first.port()).as_str()),
        "Host is the upstream's, like a reverse proxy's proxy_pass"
    );
    assert!(envoy.clusters().contains(&"mcp_svc_one".to_string()));
    // The server's discovery paths go to the control plane, not to the MCP server.
    for discovery in [
        "/.well-known/oauth-protected-resource/svc/mcp",
        "/svc/mcp/.well-known/oauth-protected-resource",
        "/svc/.well-known/openid-configuration",
    ] {
        assert_eq!(envoy.get(discovery).status, 200, "{discovery}");
        assert!(
            control_plane.requests().iter().any(|q| q.path == discovery),
            "{discovery} did not reach the control plane"
        );
    }
    assert!(!first
        .requests()
        .iter()
        .any(|q| q.path.contains(".well-known")));
    // Only the server's own path: a longer segment is not it.
    assert_eq!(envoy.get("/svcx/mcp").status, 404);

    // Change the upstream (now an MCP endpoint URL, reached at the path itself): traffic moves.
    xds.publish(vec![server(
        "Svc One",
        "/svc",
        &format!("http://127.0.0.1:{}/mcp", second.port()),
    )]);
    let moved = time_until("changed upstream takes the traffic", BOUND, &envoy, || {
        served_by(&second, &envoy.get("/svc"), "/mcp")
    });
    first.clear();
    for _ in 0..5 {
        assert_eq!(envoy.get("/svc").status, 200);
    }
    assert!(
        first.requests().is_empty(),
        "old upstream still gets traffic"
    );

    // Remove: 404, and the cluster is gone (state-of-the-world CDS: omission deletes).
    xds.publish(vec![]);
    let removed = time_until("removed server answers 404", BOUND, &envoy, || {
        envoy.get("/svc").status == 404
    });
    let cluster_gone = time_until("removed server's cluster deleted", BOUND, &envoy, || {
        !envoy.clusters().iter().any(|c| c.starts_with("mcp_"))
    });

    eprintln!(
        "[xds] registry change → Envoy (2 workers): add {added:?}, change upstream {moved:?}, \
         remove {removed:?} (cluster deleted after {cluster_gone:?})"
    );
}

/// A real MCP client through a route and cluster that came over xDS, to the real MCP server:
/// the rewrite and Host the control plane computes work for an actual MCP session.
#[test]
fn real_mcp_session_through_xds_routes() {
    let dir = TestDir::new("xds_real_mcp");
    let mcp = McpServer::start(&dir);
    let control_plane = EchoUpstream::start();
    let xds = StandaloneXds::start(
        XdsConfig {
            listen: None,
            ..XdsConfig::default()
        },
        XdsInputs {
            version: 1,
            servers: vec![server(
                "everything",
                "/everything",
                &format!("http://127.0.0.1:{}", mcp.port()),
            )],
        },
    )
    .expect("start xDS");
    let envoy = start_envoy(&dir, xds.addr().port(), control_plane.port());
    let url = format!("http://127.0.0.1:{}/everything/mcp", envoy.port());
    let run = ClientPlan::new()
        .connect()
        .list_tools()
        .call_tool("echo", json!({"message": "over xds"}))
        .terminate_session()
        .run(&dir, &url);
    assert!(run.ok(0)["sessionId"].is_string(), "{}", run.describe());
    let tools = run.ok(1)["tools"].as_array().cloned().unwrap_or_default();
    assert!(
        tools.iter().any(|t| t["name"] == "echo"),
        "{}",
        run.describe()
    );
    assert!(
        run.ok(2).to_string().contains("over xds"),
        "{}",
        run.describe()
    );
}

fn stat(envoy: &Gateway, name: &str) -> Option<u64> {
    let text = envoy.admin("/stats")?.text();
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

/// Envoy rejects a cluster it cannot build (here: an https upstream whose CA bundle does not
/// exist on the Envoy host): the control plane logs the NACK and does not resend in a loop, the
/// other servers keep working, and the next good change goes through.
#[test]
fn rejected_update_is_not_resent_and_the_next_change_flows() {
    let dir = TestDir::new("xds_nack");
    let good = EchoUpstream::start();
    let control_plane = EchoUpstream::start();
    let xds = StandaloneXds::start(
        XdsConfig {
            listen: None,
            upstream_ca_file: dir.join("no-such-ca.pem").display().to_string(),
            ..XdsConfig::default()
        },
        XdsInputs {
            version: 1,
            servers: vec![server(
                "good",
                "/good",
                &format!("http://127.0.0.1:{}", good.port()),
            )],
        },
    )
    .expect("start xDS");
    let envoy = start_envoy(&dir, xds.addr().port(), control_plane.port());
    assert_eq!(envoy.get("/good/mcp").status, 200);
    let rejected_before = stat(&envoy, "cluster_manager.cds.update_rejected").unwrap_or(0);

    xds.publish(vec![
        server(
            "good",
            "/good",
            &format!("http://127.0.0.1:{}", good.port()),
        ),
        server("bad", "/bad", "https://127.0.0.1:9"),
    ]);
    time_until(
        "Envoy rejects the CDS update",
        Duration::from_secs(5),
        &envoy,
        || stat(&envoy, "cluster_manager.cds.update_rejected").unwrap_or(0) > rejected_before,
    );
    // No resend loop: the count stays put.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        stat(&envoy, "cluster_manager.cds.update_rejected").unwrap_or(0),
        rejected_before + 1
    );
    assert_eq!(
        envoy.get("/good/mcp").status,
        200,
        "the good server keeps working"
    );
    assert!(!envoy.clusters().contains(&"mcp_bad".to_string()));

    // The bad server goes away and a new one comes: accepted.
    xds.publish(vec![
        server(
            "good",
            "/good",
            &format!("http://127.0.0.1:{}", good.port()),
        ),
        server(
            "other",
            "/other",
            &format!("http://127.0.0.1:{}", good.port()),
        ),
    ]);
    time_until("next good change flows", BOUND, &envoy, || {
        envoy.get("/other/mcp").status == 200
    });
    assert_eq!(
        stat(&envoy, "cluster_manager.cds.update_rejected").unwrap_or(0),
        rejected_before + 1
    );
    assert_eq!(envoy.get("/bad/mcp").status, 404);
}
