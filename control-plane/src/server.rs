//! The router, and `portcullis serve`.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::middleware;
use axum::routing::{self, MethodRouter};
use axum::Router;

use crate::api::{audit, connect_config, keys, openapi, ops, policy, servers, sync};
use crate::config::{Config, LogFormat};
use crate::db::Db;
use crate::metadata;
use crate::metrics;
use crate::state::AppState;

/// A router that remembers its routes, so the OpenAPI test can compare them.
pub struct Routes {
    router: Router<AppState>,
    list: Vec<(&'static str, &'static str)>,
}

macro_rules! method {
    ($name:ident, $label:literal) => {
        fn $name<H, T>(mut self, path: &'static str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.list.push(($label, path));
            self.router = self.router.route(path, routing::$name(handler));
            self
        }
    };
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            list: Vec::new(),
        }
    }
    method!(get, "get");
    method!(post, "post");
    method!(options, "options");

    fn route(
        mut self,
        path: &'static str,
        labels: &[&'static str],
        mr: MethodRouter<AppState>,
    ) -> Self {
        for l in labels {
            self.list.push((l, path));
        }
        self.router = self.router.route(path, mr);
        self
    }

    fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }
}

/// The API routes (authenticated, JSON).
fn api_routes() -> Routes {
    let one = "/api/servers/{path}";
    let two = "/api/servers/{prefix}/{name}";
    Routes::new()
        .get("/healthz", ops::healthz)
        .get("/readyz", ops::readyz)
        .get("/metrics", ops::metrics)
        .get("/api/openapi.json", openapi::handler)
        .post("/api/servers/register", servers::register)
        .get("/api/servers", servers::list)
        .route(
            one,
            &["get", "put", "patch", "delete"],
            routing::get(servers::get)
                .put(servers::put)
                .patch(servers::patch)
                .delete(servers::delete),
        )
        .route(
            two,
            &["get", "put", "patch", "delete"],
            routing::get(servers::get)
                .put(servers::put)
                .patch(servers::patch)
                .delete(servers::delete),
        )
        .get("/api/servers/{path}/connect-config", connect_config::get)
        .get(
            "/api/servers/{prefix}/{name}/connect-config",
            connect_config::get,
        )
        .get("/api/scopes", policy::list_scopes)
        .route(
            "/api/scopes/{name}",
            &["get", "put", "delete"],
            routing::get(policy::get_scope)
                .put(policy::put_scope)
                .delete(policy::delete_scope),
        )
        .route(
            "/api/keys",
            &["get", "post"],
            routing::get(keys::list).post(keys::create),
        )
        .route(
            "/api/keys/{name}",
            &["delete"],
            routing::delete(keys::delete),
        )
        .get("/api/audit", audit::list)
        .get("/v1/policy", sync::policy)
        .route(
            "/v1/audit",
            &["post"],
            routing::post(sync::audit).layer(DefaultBodyLimit::max(sync::MAX_AUDIT_BODY_BYTES)),
        )
        .get("/api/group-mappings", policy::list_mappings)
        .route(
            "/api/group-mappings/{group}",
            &["get", "put", "delete"],
            routing::get(policy::get_mapping)
                .put(policy::put_mapping)
                .delete(policy::delete_mapping),
        )
}

/// The discovery documents (no authentication, CORS `*`, `OPTIONS` preflight).
fn metadata_routes() -> Routes {
    let mut r = Routes::new();
    for (path, handler_is_path) in [
        ("/.well-known/oauth-protected-resource", false),
        ("/.well-known/oauth-protected-resource/{*path}", true),
    ] {
        r = if handler_is_path {
            r.get(path, metadata::prm_path)
        } else {
            r.get(path, metadata::prm_root)
        };
        r = r.options(path, metadata::preflight);
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        r = r
            .get(path, metadata::as_root)
            .options(path, metadata::preflight);
    }
    for path in [
        "/.well-known/oauth-authorization-server/{*issuer_path}",
        "/.well-known/openid-configuration/{*issuer_path}",
    ] {
        r = r
            .get(path, metadata::as_path)
            .options(path, metadata::preflight);
    }
    r.router = r.router.layer(middleware::map_response(metadata::cors));
    r
}

/// Every (method, path template) the router serves.
pub fn route_list() -> Vec<(&'static str, &'static str)> {
    api_routes().merge(metadata_routes()).list
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let routes = api_routes().merge(metadata_routes());
    routes
        .router
        .fallback(metadata::fallback)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::snapshots::after_write,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Logs to stderr, as text or JSON; `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// `portcullis serve`: opens the database (migrating it), then serves until SIGINT/SIGTERM.
pub async fn serve(mut config: Config, listen: SocketAddr) -> anyhow::Result<()> {
    init_logging(config.log_format);
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{listen}"));
    }
    tracing::info!(?config, "starting");
    let db = Db::connect(&config).await?;
    let state = AppState::new(config, db.clone())?;
    state.publisher.spawn(state.clone());
    crate::audit::spawn_retention(db.clone(), state.config.audit.clone());
    {
        let (publisher, db) = (state.publisher.clone(), db.clone());
        state.idp_keys.clone().spawn(move || {
            let (publisher, db) = (publisher.clone(), db.clone());
            tokio::spawn(async move { publisher.changed(&db).await });
        });
    }
    let (stop_xds, mut xds_stopped) = tokio::sync::oneshot::channel::<()>();
    // Bound now so a taken port stops the start with a clear message.
    let xds_listener = match state.config.xds.listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("xDS: cannot listen on {addr} (PORTCULLIS_XDS_LISTEN; `off` disables xDS)")
        })?),
        None => {
            tracing::info!("xDS is off (PORTCULLIS_XDS_LISTEN=off)");
            None
        }
    };
    let xds = {
        let (config, publisher) = (state.config.xds.clone(), state.publisher.clone());
        tokio::spawn(async move {
            // Envoy must never be sent an empty registry by a control plane that has not read
            // its database yet (a restart would drop every route for a moment).
            let inputs = tokio::select! {
                inputs = xds_inputs(&publisher) => inputs,
                _ = &mut xds_stopped => return Ok(()),
            };
            let Some(listener) = xds_listener else {
                return Ok(());
            };
            crate::xds::serve_xds_on(listener, config, inputs, async move {
                let _ = xds_stopped.await;
            })
            .await
        })
    };
    let publisher = state.publisher.clone();
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            publisher.close();
            let _ = stop_xds.send(());
        })
        .await
        .context("serving")?;
    match xds.await {
        Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "xDS server failed"),
        Err(e) => tracing::error!(error = %e, "xDS server task failed"),
        Ok(Ok(())) => {}
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The registry of every published snapshot, as the xDS server's inputs (same version); ready
/// once the first snapshot is.
async fn xds_inputs(
    publisher: &crate::snapshots::Publisher,
) -> tokio::sync::watch::Receiver<std::sync::Arc<crate::xds::XdsInputs>> {
    use std::sync::Arc;
    let inputs = |p: &crate::snapshots::Published| {
        Arc::new(crate::xds::XdsInputs {
            version: p.version,
            servers: p.servers.to_vec(),
        })
    };
    let mut snapshots = publisher.subscribe();
    let first = loop {
        if let Some(p) = snapshots.borrow_and_update().clone() {
            break p;
        }
        if snapshots.changed().await.is_err() {
            // Never published: hand out a channel that never changes.
            return tokio::sync::watch::channel(Arc::new(crate::xds::XdsInputs::default())).1;
        }
    };
    let (tx, rx) = tokio::sync::watch::channel(inputs(&first));
    tokio::spawn(async move {
        while snapshots.changed().await.is_ok() {
            let current = snapshots.borrow_and_update().clone();
            if let Some(p) = current {
                tx.send_replace(inputs(&p));
            }
        }
    });
    rx
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sub-resources of a server (`…/connect-config`) are routed next to the server routes: a
    /// static last segment wins over `{name}` (which is why `connect-config` is a reserved last
    /// segment of server paths), and the router builds without overlapping routes.
    #[test]
    fn server_sub_resources_are_routed() {
        let list = route_list();
        for path in [
            "/api/servers/{path}/connect-config",
            "/api/servers/{prefix}/{name}/connect-config",
        ] {
            assert!(list.contains(&("get", path)), "{path} not routed");
        }
        let _ = api_routes().merge(metadata_routes()).router;
    }

    #[tokio::test]
    async fn static_sub_resource_wins_over_second_segment() {
        use tower::ServiceExt as _;
        let app: Router = Router::new()
            .route(
                "/api/servers/register",
                routing::post(|| async { "register" }),
            )
            .route("/api/servers/{path}", routing::get(|| async { "one" }))
            .route(
                "/api/servers/{prefix}/{name}",
                routing::get(|| async { "two" }),
            )
            .route(
                "/api/servers/{path}/connect-config",
                routing::get(|| async { "cc1" }),
            )
            .route(
                "/api/servers/{prefix}/{name}/connect-config",
                routing::get(|| async { "cc2" }),
            );
        for (uri, want) in [
            ("/api/servers/github", "one"),
            ("/api/servers/team/github", "two"),
            ("/api/servers/github/connect-config", "cc1"),
            ("/api/servers/team/github/connect-config", "cc2"),
        ] {
            let request = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            assert_eq!(body, want, "{uri}");
        }
    }
}
