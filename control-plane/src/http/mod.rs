//! The HTTP edge: the router, the state every handler shares, who is calling, the one error
//! type, metrics, and every handler. Nothing below this module knows axum.

pub mod api;
pub mod caller;
pub mod error;
pub mod extract;
pub mod metadata;
pub mod metrics;
pub mod oauth;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::middleware;
use axum::routing::{self, MethodRouter};
use axum::Router;

use api::{access, audit, connect_config, keys, openapi, ops, servers, sync, users};
use state::AppState;

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
        .get("/api/scopes", access::list_scopes)
        .route(
            "/api/scopes/{name}",
            &["get", "put", "delete"],
            routing::get(access::get_scope)
                .put(access::put_scope)
                .delete(access::delete_scope),
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
        .get("/api/users", users::list)
        .route(
            "/api/users/{username}",
            &["put", "delete"],
            routing::put(users::put).delete(users::delete),
        )
        .route(
            "/api/oauth-clients",
            &["get", "post"],
            routing::get(users::list_clients).post(users::create_client),
        )
        .route(
            "/api/oauth-clients/{client_id}",
            &["delete"],
            routing::delete(users::delete_client),
        )
        .route(
            "/api/oauth-clients/{client_id}/status",
            &["put"],
            routing::put(users::set_client_status),
        )
        .route(
            "/api/oauth-clients/cimd",
            &["post"],
            routing::post(users::pin_document),
        )
        .route(
            "/api/oauth-clients/{client_id}/approve-redirects",
            &["put"],
            routing::put(users::approve_redirects),
        )
        .get("/api/group-mappings", access::list_mappings)
        .route(
            "/api/group-mappings/{group}",
            &["get", "put", "delete"],
            routing::get(access::get_mapping)
                .put(access::put_mapping)
                .delete(access::delete_mapping),
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

/// The authorization server (broker mode; 404 with an OAuth error otherwise). Under
/// `/oauth`, which the filter passes to the control plane untouched in broker mode.
fn oauth_routes() -> Routes {
    Routes::new()
        .get("/oauth/jwks", oauth::jwks)
        .post("/oauth/register", oauth::register)
        .route(
            "/oauth/authorize",
            &["get", "post"],
            routing::get(oauth::authorize).post(oauth::login),
        )
        .get("/oauth/callback", oauth::callback)
        .post("/oauth/token", oauth::token)
        .post("/oauth/revoke", oauth::revoke)
}

/// Every (method, path template) of the API and the discovery documents: what the OpenAPI
/// document describes. The `/oauth/…` endpoints are OAuth's own (RFC 8414 metadata names them).
pub fn route_list() -> Vec<(&'static str, &'static str)> {
    api_routes().merge(metadata_routes()).list
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let routes = api_routes().merge(metadata_routes()).merge(oauth_routes());
    routes
        .router
        .fallback(metadata::fallback)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::map_response(error::json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), after_write))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Middleware: a successful write to the registry API (`POST`/`PUT`/`PATCH`/`DELETE` under
/// `/api/`) asks for a new snapshot, here and on every other replica. A write that recorded
/// what it changed (servers, scopes, mappings, keys) is rebuilt from that alone; any other
/// (users, clients) makes the rebuild read everything, so nothing a write changed is missed.
async fn after_write(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let writes = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) && request.uri().path().starts_with("/api/");
    let recorded_before = state.db.change_generation();
    let response = next.run(request).await;
    if writes && response.status().is_success() {
        if state.db.change_generation() == recorded_before {
            state.publisher.changed(&state.db).await;
        } else {
            state.publisher.notify(&state.db).await;
        }
    }
    response
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
