//! `/healthz`, `/readyz`, `/metrics`, `/api/openapi.json`.

use crate::common::*;

both_backends!(health_ready_metrics);

async fn health_ready_metrics(b: Backend) {
    let t = app(&b).await;
    assert_eq!(
        t.call("GET", "/healthz", None, None).await.ok(200)["status"],
        "ok"
    );
    assert_eq!(
        t.call("GET", "/readyz", None, None).await.ok(200)["status"],
        "ready"
    );
    t.register("GitHub", "/github", &[]).await;
    t.admin("GET", "/api/servers/github", None).await.ok(200);
    t.admin("GET", "/api/servers/nope", None).await.error(404);
    t.call("GET", "/api/servers", None, None).await.error(401);
    t.call("GET", "/totally/unknown", None, None)
        .await
        .error(404);

    let a = t.call("GET", "/metrics", None, None).await;
    assert_eq!(a.status.as_u16(), 200);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let m = a.text;
    for line in [
        r#"portcullis_http_requests_total{method="GET",route="/api/servers/{path}",status="200"} 1"#,
        r#"portcullis_http_requests_total{method="GET",route="/api/servers/{path}",status="404"} 1"#,
        r#"portcullis_http_requests_total{method="POST",route="/api/servers/register",status="201"} 1"#,
        r#"portcullis_http_requests_total{method="GET",route="/api/servers",status="401"} 1"#,
        r#"portcullis_http_requests_total{method="GET",route="fallback",status="404"} 1"#,
        r#"portcullis_http_requests_total{method="GET",route="/readyz",status="200"} 1"#,
        "# TYPE portcullis_http_request_duration_seconds histogram",
        r#"portcullis_http_request_duration_seconds_count{route="/healthz"} 1"#,
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }
    assert!(
        !m.contains("/api/servers/github"),
        "raw paths are never labels"
    );

    // The database goes away: not ready, still alive.
    t.state.db.close().await;
    t.call("GET", "/readyz", None, None).await.error(503);
    t.call("GET", "/healthz", None, None).await.ok(200);
}

#[tokio::test]
async fn data_dir_is_created_on_first_start() {
    let t = app(&Backend::Sqlite).await;
    assert!(t.config.data_dir.join("portcullis.db").is_file());
}

#[tokio::test]
async fn openapi_covers_every_route() {
    let t = app(&Backend::Sqlite).await;
    let doc = t.call("GET", "/api/openapi.json", None, None).await.ok(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let routes = portcullis::http::route_list();
    assert!(routes.len() > 20);
    for (method, path) in &routes {
        // axum's `{*rest}` is OpenAPI's `{rest}`.
        let openapi_path = path.replace("{*", "{");
        let item = paths
            .get(&openapi_path)
            .unwrap_or_else(|| panic!("{openapi_path} is routed but not in the OpenAPI document"));
        assert!(
            item.get(*method).is_some(),
            "{method} {openapi_path} is routed but not documented"
        );
    }
    // And nothing documented that is not routed.
    for (path, item) in paths {
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
        {
            assert!(
                routes
                    .iter()
                    .any(|(m, p)| m == method && p.replace("{*", "{") == *path),
                "{method} {path} is documented but not routed"
            );
        }
    }
}
