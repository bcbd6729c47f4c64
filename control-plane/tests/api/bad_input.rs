//! Bad input found by schemathesis (issue #9): JSON arrays for objects, invalid UTF-8 in forms
//! and query strings, content types other than JSON, long values echoed back, errors that were
//! not JSON. Each is refused with the API's JSON error, and nothing is stored.

use axum::body::Body;
use axum::http::{header, Request};
use serde_json::{json, Value};

use crate::common::*;
use crate::sync::SYNC_TOKEN;

both_backends!(
    json_arrays_are_refused_where_an_object_is_required,
    invalid_utf8_in_forms_is_refused,
    only_application_json_is_json,
);

impl TestApp {
    /// A request with raw bytes and a content type, as admin (or with `bearer`).
    async fn raw(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: impl Into<Body>,
        bearer: &str,
    ) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    async fn nothing_stored(&self) {
        let servers = self.admin("GET", "/api/servers", None).await.ok(200);
        assert_eq!(servers["total_count"], 0, "{servers}");
        let keys = self.admin("GET", "/api/keys", None).await.ok(200);
        assert_eq!(keys["keys"], json!([]), "{keys}");
        let scopes = self.admin("GET", "/api/scopes", None).await.ok(200);
        assert_eq!(scopes["scopes"], json!([]), "{scopes}");
        let mappings = self.admin("GET", "/api/group-mappings", None).await.ok(200);
        assert_eq!(mappings["group_mappings"], json!([]), "{mappings}");
        let audit = self.admin("GET", "/api/audit", None).await.ok(200);
        assert_eq!(audit["events"], json!([]), "{audit}");
    }
}

async fn sync_app(b: &Backend) -> TestApp {
    app_with(b, |c| {
        c.sync_token_sha256 = Some(portcullis::config::sha256(SYNC_TOKEN.as_bytes()));
    })
    .await
}

const JSON: &str = "application/json";

async fn json_arrays_are_refused_where_an_object_is_required(b: Backend) {
    let t = sync_app(&b).await;
    // What schemathesis found: serde builds a struct from an array of its fields.
    for (method, uri, body, token) in [
        ("POST", "/api/keys", r#"["arraykey"]"#, ADMIN_TOKEN),
        ("PUT", "/api/scopes/x", r#"["x","d",[]]"#, ADMIN_TOKEN),
        ("PUT", "/api/group-mappings/g", r#"["g",[]]"#, ADMIN_TOKEN),
        (
            "POST",
            "/api/servers/register",
            r#"["n","d","/n","http://127.0.0.1:9/"]"#,
            ADMIN_TOKEN,
        ),
        ("POST", "/v1/audit", "[[],0]", SYNC_TOKEN),
        ("POST", "/api/keys", r#""k""#, ADMIN_TOKEN),
        ("POST", "/api/keys", "null", ADMIN_TOKEN),
        ("POST", "/api/keys", " 7", ADMIN_TOKEN),
        ("POST", "/api/keys", "", ADMIN_TOKEN),
    ] {
        let a = t.raw(method, uri, JSON, body, token).await;
        let e = a.error(400);
        assert_eq!(
            a.json()["error"],
            "invalid_request",
            "{method} {uri} {body}"
        );
        assert!(
            e.starts_with("body: expected a JSON object, got "),
            "{method} {uri} {body}: {e}"
        );
    }
    // A grant inside a scope is an object too.
    let e = t
        .raw(
            "PUT",
            "/api/scopes/x",
            JSON,
            r#"{"grants": [["*", ["tools/list"], []]]}"#,
            ADMIN_TOKEN,
        )
        .await
        .error(400);
    assert!(e.contains("grants[0]") && e.contains("JSON object"), "{e}");
    t.nothing_stored().await;
    // The object forms still work.
    t.admin("POST", "/api/keys", Some(json!({"name": "k"})))
        .await
        .ok(201);
    t.admin(
        "PUT",
        "/api/scopes/x",
        Some(json!({"grants": [{"server": "*", "methods": ["tools/list"]}]})),
    )
    .await
    .ok(201);
    // PATCH and PUT of a server: refused, the server unchanged.
    t.register("GitHub", "/github", &[]).await;
    for method in ["PATCH", "PUT"] {
        let e = t
            .raw(
                method,
                "/api/servers/github",
                JSON,
                r#"["Renamed","http://127.0.0.1:8/"]"#,
                ADMIN_TOKEN,
            )
            .await
            .error(400);
        assert!(e.starts_with("body:"), "{e}");
    }
    let s = t.admin("GET", "/api/servers/github", None).await.ok(200);
    assert_eq!(s["name"], "GitHub");
    assert_eq!(s["proxy_pass_url"], "http://127.0.0.1:9/");
}

fn multipart(fields: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----portcullis-test-boundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(v);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn invalid_utf8_in_forms_is_refused(b: Backend) {
    let t = app(&b).await;
    let form = "application/x-www-form-urlencoded";
    // Urlencoded: a percent-encoded byte that is not UTF-8, in a value and in a name.
    for (body, field) in [
        (
            "name=Git%FFHub&path=/github&proxy_pass_url=http://127.0.0.1:9/",
            "name",
        ),
        (
            "name=GitHub&path=/github&proxy_pass_url=http://127.0.0.1:9/&description=%C3%28",
            "description",
        ),
        (
            "name=GitHub&path=/github&proxy_pass_url=http://127.0.0.1:9/&%FF=1",
            "form field name",
        ),
    ] {
        let a = t
            .raw("POST", "/api/servers/register", form, body, ADMIN_TOKEN)
            .await;
        let e = a.error(400);
        assert_eq!(e, format!("{field}: invalid UTF-8 (percent-encode UTF-8)"));
    }
    // Multipart: raw bytes that are not UTF-8.
    let (ct, body) = multipart(&[
        ("name", b"Git\xffHub"),
        ("path", b"/github"),
        ("proxy_pass_url", b"http://127.0.0.1:9/"),
    ]);
    let e = t
        .raw("POST", "/api/servers/register", &ct, body, ADMIN_TOKEN)
        .await
        .error(400);
    assert_eq!(e, "name: invalid UTF-8");
    t.nothing_stored().await;
    // Valid UTF-8 is stored as sent.
    let (ct, body) = multipart(&[
        ("name", "Git✓Hub".as_bytes()),
        ("path", b"/github"),
        ("proxy_pass_url", b"http://127.0.0.1:9/"),
    ]);
    let s = t
        .raw("POST", "/api/servers/register", &ct, body, ADMIN_TOKEN)
        .await
        .ok(201);
    assert_eq!(s["name"], "Git✓Hub");
    // Query strings: refused, naming the parameter, not matched as U+FFFD.
    for (uri, param) in [
        ("/api/servers?q=Git%FFHub", "q"),
        ("/api/servers?tag=%80", "tag"),
        ("/api/audit?user=%FF", "user"),
        ("/api/servers/github/connect-config?ide=%FF", "ide"),
        ("/api/servers?%FF=1", "query parameter name"),
    ] {
        let e = t.admin("GET", uri, None).await.error(400);
        assert!(
            e.starts_with(&format!("{param}: invalid UTF-8")),
            "{uri}: {e}"
        );
    }
}

async fn only_application_json_is_json(b: Backend) {
    let t = sync_app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    let key = r#"{"name": "k"}"#;
    for ct in [
        "application/vnd.api+json",
        "application/merge-patch+json",
        "application/json; charset=latin1",
        "application/json; charset=iso-8859-1",
        "application/jsonx",
        "text/json",
        "text/plain",
    ] {
        for (method, uri, body, token) in [
            ("POST", "/api/keys", key, ADMIN_TOKEN),
            ("PUT", "/api/scopes/x", r#"{"grants": []}"#, ADMIN_TOKEN),
            (
                "PUT",
                "/api/group-mappings/g",
                r#"{"scopes": []}"#,
                ADMIN_TOKEN,
            ),
            (
                "PATCH",
                "/api/servers/github",
                r#"{"name": "Other"}"#,
                ADMIN_TOKEN,
            ),
            (
                "POST",
                "/api/servers/register",
                r#"{"name": "n", "path": "/n", "proxy_pass_url": "http://127.0.0.1:9/"}"#,
                ADMIN_TOKEN,
            ),
            ("POST", "/v1/audit", r#"{"events": []}"#, SYNC_TOKEN),
        ] {
            let a = t.raw(method, uri, ct, body, token).await;
            a.error(415);
            assert_eq!(a.json()["error"], "unsupported_media_type", "{ct} {uri}");
        }
    }
    // A form in another charset is not read either.
    let e = t
        .raw(
            "POST",
            "/api/servers/register",
            "application/x-www-form-urlencoded; charset=latin1",
            "name=n&path=/n&proxy_pass_url=http://127.0.0.1:9/",
            ADMIN_TOKEN,
        )
        .await
        .error(415);
    assert!(e.starts_with("content-type:"), "{e}");
    let s = t.admin("GET", "/api/servers", None).await.ok(200);
    assert_eq!(s["total_count"], 1, "{s}");
    assert_eq!(s["servers"][0]["name"], "GitHub");
    assert_eq!(
        t.admin("GET", "/api/keys", None).await.ok(200)["keys"],
        json!([])
    );
    assert_eq!(
        t.admin("GET", "/api/scopes", None).await.ok(200)["scopes"],
        json!([])
    );
    // application/json, any case, with or without charset=utf-8: accepted.
    for (i, ct) in [
        "application/json",
        "Application/JSON",
        "application/json; charset=UTF-8",
        "application/json;charset=\"utf-8\"",
    ]
    .into_iter()
    .enumerate()
    {
        t.raw(
            "POST",
            "/api/keys",
            ct,
            format!(r#"{{"name": "k{i}"}}"#),
            ADMIN_TOKEN,
        )
        .await
        .ok(201);
    }
}

#[tokio::test]
async fn a_long_value_is_not_echoed_whole() {
    let t = app(&Backend::Sqlite).await;
    t.register("GitHub", "/github", &[]).await;
    let long = "x".repeat(60_000);
    for uri in [
        format!("/api/servers/github/connect-config?ide={long}"),
        format!("/api/keys/{long}"),
        format!("/api/scopes/{}", "\u{7f}".repeat(20_000)),
    ] {
        let method = if uri.starts_with("/api/keys") {
            "DELETE"
        } else {
            "GET"
        };
        let uri = uri.replace('\u{7f}', "%7F");
        let e = t.admin(method, &uri, None).await;
        let status = e.status.as_u16();
        let e = e.error(status);
        // 64 characters at most (a control character is escaped in six bytes).
        assert!(e.len() < 600, "{} bytes echoed: {}…", e.len(), &e[..100]);
        assert!(e.contains("…"), "{e}");
    }
    let e = t
        .admin(
            "GET",
            &format!("/api/servers/github/connect-config?ide={long}"),
            None,
        )
        .await
        .error(400);
    assert!(e.starts_with("ide: unknown assistant \"xxx"), "{e}");
    assert!(e.contains("claude-code"), "{e}");
    // Any message is cut at 1024 characters (serde's messages quote the unknown field).
    let mut body = serde_json::Map::new();
    body.insert(long.clone(), json!(1));
    let body = Value::Object(body);
    let e = t.admin("POST", "/api/keys", Some(body)).await.error(400);
    assert!(e.chars().count() <= 1025, "{}", e.len());
    assert!(e.ends_with('…'), "{e}");
}

fn assert_json_error(a: &Answer, status: u16, code: &str) -> String {
    let e = a.error(status);
    assert_eq!(a.json()["error"], code, "{}", a.text);
    assert!(
        a.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        a.headers
    );
    e
}

#[tokio::test]
async fn every_error_is_json() {
    let t = app(&Backend::Sqlite).await;
    // 405 from the router: JSON, with its Allow header.
    for (method, uri) in [
        ("DELETE", "/api/servers"),
        ("POST", "/healthz"),
        ("PATCH", "/api/scopes/x"),
        ("POST", "/.well-known/openid-configuration"),
        ("PUT", "/api/openapi.json"),
    ] {
        let a = t.admin(method, uri, None).await;
        assert_json_error(&a, 405, "method_not_allowed");
        assert!(a.headers.contains_key(header::ALLOW), "{method} {uri}");
    }
    // Path parameters that are not UTF-8, on the discovery routes too (with CORS).
    for uri in [
        "/.well-known/oauth-protected-resource/%FF",
        "/.well-known/oauth-authorization-server/%FF%FE",
        "/.well-known/openid-configuration/x%C3",
        "/api/scopes/%FF",
        "/api/keys/%FF",
        "/api/servers/%FF",
    ] {
        let method = if uri.starts_with("/api/keys") {
            "DELETE"
        } else {
            "GET"
        };
        let a = t.admin(method, uri, None).await;
        let e = assert_json_error(&a, 400, "invalid_request");
        assert!(e.contains("UTF-8"), "{uri}: {e}");
        if uri.starts_with("/.well-known") {
            assert_eq!(a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*", "{uri}");
        }
    }
    // The fallback, and a body over the limit (before any handler reads it).
    let a = t.admin("GET", "/no/such/route", None).await;
    assert_json_error(&a, 404, "not_found");
    let big = vec![b'{'; t.config.max_body_bytes + 1];
    let a = t.raw("POST", "/api/keys", JSON, big, ADMIN_TOKEN).await;
    assert_json_error(&a, 413, "payload_too_large");
    // 401 keeps its WWW-Authenticate.
    let a = t.call("GET", "/api/servers", None, None).await;
    assert_json_error(&a, 401, "unauthorized");
    assert!(a.headers.contains_key(header::WWW_AUTHENTICATE));
}
