//! `/api/servers…`.

use serde_json::json;

use crate::common::*;

both_backends!(
    register_get_list,
    register_multipart_like_curl_f,
    register_json,
    register_validation,
    duplicates_conflict,
    one_exact_path_one_server,
    put_replaces_and_clears,
    patch_merges,
    delete_and_unknown,
    two_segment_paths,
    search_and_tags,
    authn_and_authz,
    reads_limited_to_granted_servers,
    huge_bodies,
    hostile_paths,
);

async fn register_get_list(b: Backend) {
    let t = app(&b).await;
    let created = t
        .register_form(
            Some(ADMIN_TOKEN),
            &[
                ("name", "AWS Knowledge"),
                ("description", "Root-endpoint MCP server"),
                ("path", "/aws-knowledge"),
                ("proxy_pass_url", "https://knowledge-mcp.example.com"),
                ("oauth_client_id", "mcp-gateway"),
                ("append_mcp_path", "false"),
                ("tags", "aws, docs,,docs"),
                ("num_tools", "3"),
                ("license", "MIT"),
            ],
        )
        .await;
    assert_eq!(created.headers["location"], "/api/servers/aws-knowledge");
    let v = created.ok(201);
    assert_eq!(v["name"], "AWS Knowledge");
    assert_eq!(v["path"], "/aws-knowledge");
    assert_eq!(v["oauth_client_id"], "mcp-gateway");
    assert_eq!(v["append_mcp_path"], false);
    assert_eq!(v["tags"], json!(["aws", "docs"]));
    assert_eq!(v["num_tools"], 3);
    assert_eq!(v["license"], "MIT");
    assert_eq!(v["mcp_endpoint"], serde_json::Value::Null);
    assert_eq!(v["mcp_url"], "https://gw.example.com/aws-knowledge");
    assert_eq!(
        v["resource_metadata_url"],
        "https://gw.example.com/.well-known/oauth-protected-resource/aws-knowledge"
    );

    let got = t
        .admin("GET", "/api/servers/aws-knowledge", None)
        .await
        .ok(200);
    assert_eq!(got, v);

    t.register("GitHub", "/github", &[]).await;
    let list = t.admin("GET", "/api/servers", None).await.ok(200);
    assert_eq!(list["total_count"], 2);
    let paths: Vec<&str> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/aws-knowledge", "/github"]);
    // Unset append_mcp_path: auto-detected from the upstream URL (no /mcp there → appended).
    assert_eq!(
        list["servers"][1]["append_mcp_path"],
        serde_json::Value::Null
    );
    assert_eq!(
        list["servers"][1]["mcp_url"],
        "https://gw.example.com/github/mcp"
    );
}

async fn register_multipart_like_curl_f(b: Backend) {
    let t = app(&b).await;
    let v = t
        .register_multipart(
            Some(ADMIN_TOKEN),
            &[
                ("name", "Everything"),
                ("path", "/everything"),
                ("proxy_pass_url", "http://127.0.0.1:3001/mcp"),
                ("append_mcp_path", ""),
                ("mcp_endpoint", ""),
            ],
        )
        .await
        .ok(201);
    assert_eq!(v["append_mcp_path"], serde_json::Value::Null);
    assert_eq!(v["mcp_endpoint"], serde_json::Value::Null);
    // Upstream already ends in /mcp: served at the path itself.
    assert_eq!(v["mcp_url"], "https://gw.example.com/everything");

    // Unknown form field, file upload.
    let e = t
        .register_multipart(
            Some(ADMIN_TOKEN),
            &[
                ("name", "x"),
                ("path", "/x"),
                ("proxy_pass_url", "http://a"),
                ("colour", "red"),
            ],
        )
        .await
        .error(400);
    assert!(e.contains("colour"), "{e}");
}

async fn register_json(b: Backend) {
    let t = app(&b).await;
    let v = t
        .admin(
            "POST",
            "/api/servers/register",
            Some(json!({"name": "Docs", "path": "/docs", "proxy_pass_url": "http://127.0.0.1:9", "tags": ["a", "b"],
                        "mcp_endpoint": "https://mcp.example.com/custom/endpoint"})),
        )
        .await
        .ok(201);
    assert_eq!(v["mcp_url"], "https://mcp.example.com/custom/endpoint");
    let e = t
        .admin(
            "POST",
            "/api/servers/register",
            Some(json!({"name": "D2", "path": "/d2", "proxy_pass_url": "http://a", "colour": 1})),
        )
        .await
        .error(400);
    assert!(e.contains("colour"), "{e}");
    let e = t
        .admin(
            "POST",
            "/api/servers/register",
            Some(json!({"name": "D2", "proxy_pass_url": "http://a"})),
        )
        .await
        .error(422);
    assert!(e.starts_with("path:"), "{e}");
    // Neither a form nor JSON.
    let r = t
        .send(
            axum::http::Request::post("/api/servers/register")
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .header("content-type", "text/plain")
                .body(axum::body::Body::from("name=x"))
                .unwrap(),
        )
        .await;
    r.error(415);
}

async fn register_validation(b: Backend) {
    let t = app(&b).await;
    let base = [
        ("name", "S"),
        ("path", "/s"),
        ("proxy_pass_url", "http://127.0.0.1:9"),
    ];
    // The base fields with some replaced or added.
    let with = |over: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut f: Vec<(&str, &str)> = base
            .iter()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        f.extend_from_slice(over);
        f
    };
    type Case = (Vec<(&'static str, &'static str)>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![("path", "/s"), ("proxy_pass_url", "http://a")],
            422,
            "name:",
        ),
        (
            vec![("name", "S"), ("proxy_pass_url", "http://a")],
            422,
            "path:",
        ),
        (vec![("name", "S"), ("path", "/s")], 422, "proxy_pass_url:"),
        (with(&[("name", "  ")]), 422, "name:"),
        (with(&[("path", "s")]), 422, "path:"),
        (with(&[("path", "/a/../b")]), 422, "path:"),
        (with(&[("path", "/.well-known")]), 422, "path:"),
        (with(&[("path", "/a/.well-known")]), 422, "path:"),
        (with(&[("path", "/a/b/c")]), 422, "path:"),
        (with(&[("path", "/s/")]), 422, "path:"),
        (with(&[("path", "/api")]), 422, "path:"),
        (
            with(&[("proxy_pass_url", "ftp://files.example.com")]),
            422,
            "proxy_pass_url:",
        ),
        (
            with(&[("proxy_pass_url", "file:///etc/passwd")]),
            422,
            "proxy_pass_url:",
        ),
        (
            with(&[("proxy_pass_url", "not a url")]),
            422,
            "proxy_pass_url:",
        ),
        (
            with(&[("proxy_pass_url", "http://user:pw@up")]),
            422,
            "proxy_pass_url:",
        ),
        (
            with(&[("mcp_endpoint", "javascript:alert(1)")]),
            422,
            "mcp_endpoint:",
        ),
        (
            with(&[("append_mcp_path", "maybe")]),
            422,
            "append_mcp_path:",
        ),
        (with(&[("num_tools", "many")]), 422, "num_tools:"),
        (
            with(&[("oauth_client_id", "has space")]),
            422,
            "oauth_client_id:",
        ),
        (with(&[("name", "*")]), 422, "name:"),
        (with(&[("bogus", "1")]), 400, "bogus"),
    ];
    for (fields, status, needle) in cases {
        let e = t
            .register_form(Some(ADMIN_TOKEN), &fields)
            .await
            .error(status);
        assert!(e.contains(needle), "{fields:?}: {e}");
    }
    // A field given twice.
    let e = t
        .register_form(
            Some(ADMIN_TOKEN),
            &[
                ("name", "a"),
                ("name", "b"),
                ("path", "/s"),
                ("proxy_pass_url", "http://a"),
            ],
        )
        .await
        .error(400);
    assert!(e.contains("more than once"), "{e}");
    // Nothing was stored.
    assert_eq!(
        t.admin("GET", "/api/servers", None).await.ok(200)["total_count"],
        0
    );
}

async fn duplicates_conflict(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    let e = t
        .register_form(
            Some(ADMIN_TOKEN),
            &[
                ("name", "Other"),
                ("path", "/github"),
                ("proxy_pass_url", "http://a"),
            ],
        )
        .await
        .error(409);
    assert!(e.contains("path"), "{e}");
    let e = t
        .register_form(
            Some(ADMIN_TOKEN),
            &[
                ("name", "GitHub"),
                ("path", "/gh2"),
                ("proxy_pass_url", "http://a"),
            ],
        )
        .await
        .error(409);
    assert!(e.contains("name"), "{e}");
    // Renaming onto another server's name.
    t.register("Docs", "/docs", &[]).await;
    let e = t
        .admin(
            "PATCH",
            "/api/servers/docs",
            Some(json!({"name": "GitHub"})),
        )
        .await
        .error(409);
    assert!(e.contains("name"), "{e}");
}

/// Two servers can never claim one exact gateway path: a server's path, `<path>/mcp` (its MCP
/// URL or discovery base) and a custom endpoint on this gateway each belong to one server.
async fn one_exact_path_one_server(b: Backend) {
    let t = app(&b).await;
    t.register("T", "/t", &[]).await;
    // /t/mcp is /t's MCP URL (and where its discovery documents are looked up).
    let answer = t
        .register_form(
            Some(ADMIN_TOKEN),
            &[
                ("name", "T MCP"),
                ("path", "/t/mcp"),
                ("proxy_pass_url", "http://a"),
            ],
        )
        .await;
    assert_eq!(answer.json()["error"], "conflict");
    let e = answer.error(409);
    assert!(
        e.starts_with("path: /t/mcp would be claimed by two servers") && e.contains("\"T\" at /t"),
        "{e}"
    );
    // The same with append_mcp_path false on either side: /t/mcp/.well-known/… stays /t's.
    let e = t
        .admin(
            "POST",
            "/api/servers/register",
            Some(json!({"name": "T MCP", "path": "/t/mcp", "proxy_pass_url": "http://a", "append_mcp_path": false})),
        )
        .await
        .error(409);
    assert!(e.contains("/t/mcp"), "{e}");
    // The other way round: /u/mcp first, then /u.
    t.register("U MCP", "/u/mcp", &[]).await;
    let e = t
        .register_form(
            Some(ADMIN_TOKEN),
            &[
                ("name", "U"),
                ("path", "/u"),
                ("proxy_pass_url", "http://a"),
            ],
        )
        .await
        .error(409);
    assert!(e.contains("/u/mcp") && e.contains("\"U MCP\""), "{e}");
    // A custom endpoint onto another server's path or MCP URL, by register, PUT or PATCH.
    let e = t
        .admin(
            "POST",
            "/api/servers/register",
            Some(
                json!({"name": "X", "path": "/x", "proxy_pass_url": "http://a",
                        "mcp_endpoint": "https://gw.example.com/t/mcp"}),
            ),
        )
        .await
        .error(409);
    assert!(e.starts_with("mcp_endpoint: /t/mcp"), "{e}");
    t.register("X", "/x", &[]).await;
    let e = t
        .admin(
            "PATCH",
            "/api/servers/x",
            Some(json!({"mcp_endpoint": "https://gw.example.com/t"})),
        )
        .await
        .error(409);
    assert!(e.starts_with("mcp_endpoint: /t would be claimed"), "{e}");
    let e = t
        .admin(
            "PUT",
            "/api/servers/x",
            Some(json!({"name": "X", "proxy_pass_url": "http://a",
                        "mcp_endpoint": "https://gw.example.com/u/mcp/"})),
        )
        .await
        .error(409);
    assert!(e.contains("/u/mcp"), "{e}");
    // Nothing was written by the refused requests.
    assert_eq!(
        t.admin("GET", "/api/servers/x", None).await.ok(200)["mcp_endpoint"],
        serde_json::Value::Null
    );
    t.admin("GET", "/api/servers/t/mcp", None).await.error(404);
    // Fine: an endpoint elsewhere, on this server's own paths, or on another host; nested
    // servers with other names; updating a server in place.
    t.admin(
        "PATCH",
        "/api/servers/x",
        Some(json!({"mcp_endpoint": "https://gw.example.com/x/mcp"})),
    )
    .await
    .ok(200);
    t.admin(
        "PATCH",
        "/api/servers/x",
        Some(json!({"mcp_endpoint": "https://other.example.com/t/mcp"})),
    )
    .await
    .ok(200);
    t.register("T GitHub", "/t/github", &[]).await;
    t.admin(
        "PATCH",
        "/api/servers/t",
        Some(json!({"append_mcp_path": false})),
    )
    .await
    .ok(200);
    // Once /t is gone, /t/mcp is free.
    t.admin("DELETE", "/api/servers/t", None).await.ok(204);
    t.register("T MCP", "/t/mcp", &[]).await;
}

async fn put_replaces_and_clears(b: Backend) {
    let t = app(&b).await;
    t.register(
        "GitHub",
        "/github",
        &[
            ("oauth_client_id", "cid"),
            ("append_mcp_path", "true"),
            ("tags", "a,b"),
            ("description", "d"),
            ("license", "MIT"),
        ],
    )
    .await;
    let v = t
        .admin(
            "PUT",
            "/api/servers/github",
            Some(json!({"name": "GitHub 2", "proxy_pass_url": "https://up.example.com/mcp"})),
        )
        .await
        .ok(200);
    assert_eq!(v["name"], "GitHub 2");
    assert_eq!(v["proxy_pass_url"], "https://up.example.com/mcp");
    for cleared in [
        "oauth_client_id",
        "append_mcp_path",
        "mcp_endpoint",
        "license",
        "num_tools",
    ] {
        assert_eq!(v[cleared], serde_json::Value::Null, "{cleared}: {v}");
    }
    assert_eq!(v["tags"], json!([]));
    assert_eq!(v["description"], "");
    assert_eq!(v["mcp_url"], "https://gw.example.com/github");
    assert_eq!(t.admin("GET", "/api/servers/github", None).await.ok(200), v);

    // GET → edit → PUT round-trips (read-only fields are accepted and ignored).
    let mut edited = v.clone();
    edited["description"] = json!("new");
    let v2 = t
        .admin("PUT", "/api/servers/github", Some(edited))
        .await
        .ok(200);
    assert_eq!(v2["description"], "new");

    // Errors.
    let e = t
        .admin("PUT", "/api/servers/github", Some(json!({"name": "x"})))
        .await
        .error(400);
    assert!(e.contains("proxy_pass_url"), "{e}");
    let e = t
        .admin(
            "PUT",
            "/api/servers/github",
            Some(json!({"name": "x", "proxy_pass_url": "http://a", "extra": true})),
        )
        .await
        .error(400);
    assert!(e.contains("extra"), "{e}");
    let e = t
        .admin(
            "PUT",
            "/api/servers/github",
            Some(json!({"name": "x", "proxy_pass_url": "gopher://a"})),
        )
        .await
        .error(422);
    assert!(e.starts_with("proxy_pass_url:"), "{e}");
    let e = t
        .admin(
            "PUT",
            "/api/servers/github",
            Some(json!({"name": "x", "path": "/other", "proxy_pass_url": "http://a"})),
        )
        .await
        .error(422);
    assert!(e.starts_with("path:"), "{e}");
    t.admin(
        "PUT",
        "/api/servers/nope",
        Some(json!({"name": "x", "proxy_pass_url": "http://a"})),
    )
    .await
    .error(404);
    t.admin(
        "PUT",
        "/api/servers/github",
        Some(json!({"name": 5, "proxy_pass_url": "http://a"})),
    )
    .await
    .error(400);
    let r = t
        .send(
            axum::http::Request::put("/api/servers/github")
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{not json"))
                .unwrap(),
        )
        .await;
    r.error(400);
}

async fn patch_merges(b: Backend) {
    let t = app(&b).await;
    t.register(
        "GitHub",
        "/github",
        &[
            ("oauth_client_id", "cid"),
            ("tags", "a,b"),
            ("description", "d"),
        ],
    )
    .await;
    let v = t
        .admin(
            "PATCH",
            "/api/servers/github",
            Some(json!({"oauth_client_id": "mcp-gateway", "append_mcp_path": false})),
        )
        .await
        .ok(200);
    assert_eq!(v["oauth_client_id"], "mcp-gateway");
    assert_eq!(v["append_mcp_path"], false);
    assert_eq!(v["tags"], json!(["a", "b"]));
    assert_eq!(v["description"], "d");
    assert_eq!(v["name"], "GitHub");
    // null clears an optional field; other fields stay.
    let v = t
        .admin(
            "PATCH",
            "/api/servers/github",
            Some(json!({"oauth_client_id": null, "append_mcp_path": null, "tags": "x, y"})),
        )
        .await
        .ok(200);
    assert_eq!(v["oauth_client_id"], serde_json::Value::Null);
    assert_eq!(v["append_mcp_path"], serde_json::Value::Null);
    assert_eq!(v["tags"], json!(["x", "y"]));
    assert_eq!(v["description"], "d");
    // Empty patch changes nothing.
    let same = t
        .admin("PATCH", "/api/servers/github", Some(json!({})))
        .await
        .ok(200);
    assert_eq!(same["tags"], v["tags"]);

    let e = t
        .admin("PATCH", "/api/servers/github", Some(json!({"name": null})))
        .await
        .error(422);
    assert!(e.starts_with("name:"), "{e}");
    let e = t
        .admin(
            "PATCH",
            "/api/servers/github",
            Some(json!({"proxy_pass_url": "ws://a"})),
        )
        .await
        .error(422);
    assert!(e.starts_with("proxy_pass_url:"), "{e}");
    let e = t
        .admin(
            "PATCH",
            "/api/servers/github",
            Some(json!({"nmae": "typo"})),
        )
        .await
        .error(400);
    assert!(e.contains("nmae"), "{e}");
    t.admin(
        "PATCH",
        "/api/servers/github",
        Some(json!({"path": "/moved"})),
    )
    .await
    .error(422);
    t.admin("PATCH", "/api/servers/missing", Some(json!({})))
        .await
        .error(404);
}

async fn delete_and_unknown(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    assert_eq!(
        t.admin("DELETE", "/api/servers/github", None).await.ok(204),
        serde_json::Value::Null
    );
    t.admin("GET", "/api/servers/github", None).await.error(404);
    t.admin("DELETE", "/api/servers/github", None)
        .await
        .error(404);
    t.admin("GET", "/api/servers/never", None).await.error(404);
    // Registering again after a delete works.
    t.register("GitHub", "/github", &[]).await;
    // Unknown API route: JSON 404.
    t.admin("GET", "/api/nothing-here", None).await.error(404);
    // Wrong method on a known route.
    let r = t.admin("POST", "/api/servers/github", None).await;
    assert_eq!(r.status.as_u16(), 405);
}

async fn two_segment_paths(b: Backend) {
    let t = app(&b).await;
    let v = t.register("Team GitHub", "/team/github", &[]).await;
    assert_eq!(v["mcp_url"], "https://gw.example.com/team/github/mcp");
    t.admin("GET", "/api/servers/team/github", None)
        .await
        .ok(200);
    t.admin(
        "PATCH",
        "/api/servers/team/github",
        Some(json!({"description": "x"})),
    )
    .await
    .ok(200);
    t.admin(
        "PUT",
        "/api/servers/team/github",
        Some(json!({"name": "TG", "proxy_pass_url": "http://a"})),
    )
    .await
    .ok(200);
    t.admin("GET", "/api/servers/team", None).await.error(404);
    t.admin("DELETE", "/api/servers/team/github", None)
        .await
        .ok(204);
}

async fn search_and_tags(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[("tags", "code,vcs")])
        .await;
    t.register("GitLab", "/gitlab", &[("tags", "code")]).await;
    t.register("Docs", "/docs", &[("tags", "docs")]).await;
    let names = |v: serde_json::Value| -> Vec<String> {
        v["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(t.admin("GET", "/api/servers?q=git", None).await.ok(200)),
        ["GitHub", "GitLab"]
    );
    assert_eq!(
        names(t.admin("GET", "/api/servers?q=HUB", None).await.ok(200)),
        ["GitHub"]
    );
    assert_eq!(
        names(t.admin("GET", "/api/servers?tag=code", None).await.ok(200)),
        ["GitHub", "GitLab"]
    );
    assert_eq!(
        names(
            t.admin("GET", "/api/servers?tag=vcs&q=git", None)
                .await
                .ok(200)
        ),
        ["GitHub"]
    );
    assert!(names(t.admin("GET", "/api/servers?tag=nope", None).await.ok(200)).is_empty());
    let e = t
        .admin("GET", "/api/servers?sort=name", None)
        .await
        .error(400);
    assert!(e.contains("sort"), "{e}");
}

async fn authn_and_authz(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    // No credentials / bad credentials → 401 with a challenge.
    for bearer in [None, Some("wrong-token"), Some("a.b.c")] {
        let r = t.call("GET", "/api/servers", bearer, None).await;
        r.error(401);
        assert!(r.headers.contains_key("www-authenticate"));
    }
    let r = t
        .send(
            axum::http::Request::get("/api/servers")
                .header("authorization", format!("Basic {ADMIN_TOKEN}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    r.error(401);
    // The one bearer parser (`policy::bearer_token`): the scheme is case-insensitive
    // (RFC 6750), the token one run of printable ASCII.
    let raw = |value: Vec<u8>| {
        axum::http::Request::get("/api/servers")
            .header(
                "authorization",
                axum::http::HeaderValue::from_bytes(&value).unwrap(),
            )
            .body(axum::body::Body::empty())
            .unwrap()
    };
    for scheme in ["bearer", "BEARER", "Bearer"] {
        t.send(raw(format!("{scheme} {ADMIN_TOKEN}").into_bytes()))
            .await
            .ok(200);
    }
    let junk = [
        format!("Bearer {ADMIN_TOKEN} extra"),
        format!("Bearer{ADMIN_TOKEN}"),
        format!("Bearer\t{ADMIN_TOKEN}"),
        ADMIN_TOKEN.to_string(),
    ];
    for value in junk {
        let e = t.send(raw(value.clone().into_bytes())).await.error(401);
        assert_eq!(e, "expected Authorization: Bearer <token>", "{value}");
    }
    let mut non_ascii = format!("Bearer {ADMIN_TOKEN}").into_bytes();
    non_ascii.extend_from_slice(b"\xff\xfe");
    let e = t.send(raw(non_ascii)).await.error(401);
    assert_eq!(e, "malformed Authorization header");
    t.register_form(
        None,
        &[
            ("name", "x"),
            ("path", "/x"),
            ("proxy_pass_url", "http://a"),
        ],
    )
    .await
    .error(401);
    // An expired token, a token for another audience, a token from another key.
    let mut spec = portcullis::devtools::TokenSpec::new(ISSUER, AUDIENCE, "bob");
    spec.ttl_seconds = -3600;
    let expired = idp_key().sign(&spec.claims());
    t.call("GET", "/api/servers", Some(&expired), None)
        .await
        .error(401);
    let other_aud = idp_key()
        .sign(&portcullis::devtools::TokenSpec::new(ISSUER, "someone-else", "bob").claims());
    t.call("GET", "/api/servers", Some(&other_aud), None)
        .await
        .error(401);
    let stranger =
        portcullis::devtools::DevKey::generate(portcullis::devtools::DevAlg::EdDSA, "test-key");
    let forged =
        stranger.sign(&portcullis::devtools::TokenSpec::new(ISSUER, AUDIENCE, "bob").claims());
    t.call("GET", "/api/servers", Some(&forged), None)
        .await
        .error(401);

    // A valid token without admin scope: reads allowed (filtered), writes 403.
    let user = token("bob", &["engineering"]);
    assert_eq!(
        t.call("GET", "/api/servers", Some(&user), None)
            .await
            .ok(200)["total_count"],
        0
    );
    t.call(
        "PATCH",
        "/api/servers/github",
        Some(&user),
        Some(json!({"description": "x"})),
    )
    .await
    .error(403);
    t.call(
        "PUT",
        "/api/servers/github",
        Some(&user),
        Some(json!({"name": "x", "proxy_pass_url": "http://a"})),
    )
    .await
    .error(403);
    t.call("DELETE", "/api/servers/github", Some(&user), None)
        .await
        .error(403);
    t.register_form(
        Some(&user),
        &[
            ("name", "x"),
            ("path", "/x"),
            ("proxy_pass_url", "http://a"),
        ],
    )
    .await
    .error(403);
    t.call("GET", "/api/scopes", Some(&user), None)
        .await
        .error(403);
    t.call("GET", "/api/group-mappings", Some(&user), None)
        .await
        .error(403);

    // Groups mapped to the admin scope make an admin.
    t.admin(
        "PUT",
        "/api/scopes/mcp-admin",
        Some(json!({"grants": [{"server": "*", "methods": ["*"], "tools": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/platform-admins",
        Some(json!({"scopes": ["mcp-admin"]})),
    )
    .await
    .ok(201);
    let admin = token("carol", &["platform-admins"]);
    t.call(
        "PATCH",
        "/api/servers/github",
        Some(&admin),
        Some(json!({"description": "by carol"})),
    )
    .await
    .ok(200);
    t.call("GET", "/api/scopes", Some(&admin), None)
        .await
        .ok(200);
    t.register_form(
        Some(&admin),
        &[
            ("name", "x"),
            ("path", "/x"),
            ("proxy_pass_url", "http://a"),
        ],
    )
    .await
    .ok(201);
}

async fn reads_limited_to_granted_servers(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/docs", &[]).await;
    t.register("Secret", "/secret", &[]).await;
    t.admin(
        "PUT",
        "/api/scopes/github-read",
        Some(json!({"grants": [{"server": "GitHub", "methods": ["tools/list"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/scopes/docs-all",
        Some(json!({"grants": [{"server": "Docs", "methods": ["*"], "tools": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/scopes/everything",
        Some(json!({"grants": [{"server": "*", "methods": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/engineering",
        Some(json!({"scopes": ["github-read"]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/writers",
        Some(json!({"scopes": ["docs-all"]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/sre",
        Some(json!({"scopes": ["everything"]})),
    )
    .await
    .ok(201);

    let names = |v: serde_json::Value| -> Vec<String> {
        v["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    let eng = token("bob", &["engineering"]);
    assert_eq!(
        names(
            t.call("GET", "/api/servers", Some(&eng), None)
                .await
                .ok(200)
        ),
        ["GitHub"]
    );
    let both = token("dan", &["engineering", "writers", "unmapped"]);
    assert_eq!(
        names(
            t.call("GET", "/api/servers", Some(&both), None)
                .await
                .ok(200)
        ),
        ["Docs", "GitHub"]
    );
    let sre = token("erin", &["sre"]);
    assert_eq!(
        names(
            t.call("GET", "/api/servers", Some(&sre), None)
                .await
                .ok(200)
        )
        .len(),
        3
    );
    let nobody = token("frank", &[]);
    assert!(names(
        t.call("GET", "/api/servers", Some(&nobody), None)
            .await
            .ok(200)
    )
    .is_empty());

    t.call("GET", "/api/servers/github", Some(&eng), None)
        .await
        .ok(200);
    // Not granted: reported as absent, so existence does not leak.
    t.call("GET", "/api/servers/secret", Some(&eng), None)
        .await
        .error(404);
    // Admin still writes, sre (everything, but not the admin scope) may not.
    t.call("DELETE", "/api/servers/secret", Some(&sre), None)
        .await
        .error(403);
}

async fn huge_bodies(b: Backend) {
    let t = app(&b).await;
    let big = "x".repeat(200 * 1024);
    let r = t
        .register_form(
            Some(ADMIN_TOKEN),
            &[
                ("name", "x"),
                ("path", "/x"),
                ("proxy_pass_url", "http://a"),
                ("description", &big),
            ],
        )
        .await;
    r.error(413);
    let r = t
        .register_multipart(
            Some(ADMIN_TOKEN),
            &[
                ("name", "x"),
                ("path", "/x"),
                ("proxy_pass_url", "http://a"),
                ("description", &big),
            ],
        )
        .await;
    r.error(413);
    t.register("GitHub", "/github", &[]).await;
    let r = t
        .admin(
            "PATCH",
            "/api/servers/github",
            Some(json!({"description": big})),
        )
        .await;
    r.error(413);
    // Under the limit but over the field limit: 422.
    let long = "y".repeat(5000);
    let e = t
        .admin(
            "PATCH",
            "/api/servers/github",
            Some(json!({"description": long})),
        )
        .await
        .error(422);
    assert!(e.starts_with("description:"), "{e}");
}

async fn hostile_paths(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    for uri in [
        "/api/servers/..%2Fgithub",
        "/api/servers/%2e%2e",
        "/api/servers/github%00",
        "/api/servers/a/b/c",
        "/api/servers/.well-known",
    ] {
        let r = t.admin("GET", uri, None).await;
        assert!(
            matches!(r.status.as_u16(), 400 | 404),
            "{uri}: {} {}",
            r.status,
            r.text
        );
        assert!(r.json()["error"].is_string(), "{uri}: {}", r.text);
    }
    for bad in ["/git\nhub", "/git hub", "/%2e%2e", "/github;rm", "/ä"] {
        let e = t
            .register_form(
                Some(ADMIN_TOKEN),
                &[("name", "n"), ("path", bad), ("proxy_pass_url", "http://a")],
            )
            .await
            .error(422);
        assert!(e.starts_with("path:"), "{bad:?}: {e}");
    }
    // NUL bytes never reach the database (PostgreSQL would refuse them).
    for uri in ["/api/scopes/a%00b", "/api/group-mappings/a%00b"] {
        t.admin("GET", uri, None).await.error(404);
        t.admin("DELETE", uri, None).await.error(404);
    }
    t.admin("PUT", "/api/scopes/a%00b", Some(json!({"grants": []})))
        .await
        .error(422);
    t.admin(
        "PUT",
        "/api/scopes/ok",
        Some(json!({"description": "a\u{0}b", "grants": []})),
    )
    .await
    .error(422);
    t.admin(
        "PUT",
        "/api/group-mappings/a%00b",
        Some(json!({"scopes": []})),
    )
    .await
    .error(422);
    t.register_form(
        Some(ADMIN_TOKEN),
        &[
            ("name", "n\0"),
            ("path", "/n"),
            ("proxy_pass_url", "http://a"),
        ],
    )
    .await
    .error(422);
    t.admin("GET", "/api/servers?q=%00&tag=%00", None)
        .await
        .ok(200);
    // SQL-looking input is just data.
    let v = t
        .register("x'); DROP TABLE servers; --", "/sqlish", &[])
        .await;
    assert_eq!(v["name"], "x'); DROP TABLE servers; --");
    assert_eq!(
        t.admin("GET", "/api/servers", None).await.ok(200)["total_count"],
        2
    );
}
