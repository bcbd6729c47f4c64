//! `/api/scopes…`, `/api/group-mappings…`, and the policy snapshot compiled from them.

use serde_json::json;

use crate::common::*;

both_backends!(
    scopes_crud,
    scope_validation,
    grants_follow_a_renamed_server,
    group_mappings_crud,
    snapshot_compiles,
    api_and_mcp_server_audiences_are_separate,
    cognito_tokens_are_accepted_by_client_id_and_token_use,
);

async fn scopes_crud(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    assert_eq!(
        t.admin("GET", "/api/scopes", None).await.ok(200),
        json!({"scopes": []})
    );
    let body = json!({"description": "read GitHub", "grants": [{"server": "GitHub", "methods": ["tools/list", "tools/call"], "tools": ["search_*"]}]});
    let v = t
        .admin("PUT", "/api/scopes/github-read", Some(body.clone()))
        .await
        .ok(201);
    assert_eq!(v["name"], "github-read");
    assert_eq!(v["grants"], body["grants"]);
    assert_eq!(v["description"], "read GitHub");
    // PUT again replaces (200); omitted description is cleared.
    let v = t
        .admin(
            "PUT",
            "/api/scopes/github-read",
            Some(json!({"grants": [{"server": "*", "methods": ["*"]}]})),
        )
        .await
        .ok(200);
    assert_eq!(v["description"], "");
    assert_eq!(
        v["grants"],
        json!([{"server": "*", "methods": ["*"], "tools": []}])
    );
    let got = t
        .admin("GET", "/api/scopes/github-read", None)
        .await
        .ok(200);
    assert_eq!(got, v);
    assert_eq!(
        t.admin("GET", "/api/scopes", None).await.ok(200)["scopes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.admin("DELETE", "/api/scopes/github-read", None)
        .await
        .ok(204);
    t.admin("GET", "/api/scopes/github-read", None)
        .await
        .error(404);
    t.admin("DELETE", "/api/scopes/github-read", None)
        .await
        .error(404);
    t.call("PUT", "/api/scopes/x", None, Some(json!({"grants": []})))
        .await
        .error(401);
}

async fn scope_validation(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    let e = t
        .admin(
            "PUT",
            "/api/scopes/s",
            Some(json!({"grants": [{"server": "NoSuch", "methods": ["*"]}]})),
        )
        .await
        .error(422);
    assert!(e.starts_with("grants[0].server:"), "{e}");
    let e = t
        .admin(
            "PUT",
            "/api/scopes/s",
            Some(json!({"grants": [{"server": "GitHub", "methods": ["tools/*/x"]}]})),
        )
        .await
        .error(422);
    assert!(e.starts_with("grants[0].methods[0]:"), "{e}");
    let e = t
        .admin(
            "PUT",
            "/api/scopes/has%20space",
            Some(json!({"grants": []})),
        )
        .await
        .error(422);
    assert!(e.starts_with("name:"), "{e}");
    let e = t
        .admin(
            "PUT",
            "/api/scopes/s",
            Some(json!({"grants": [{"server": "GitHub", "method": ["*"]}]})),
        )
        .await
        .error(400);
    assert!(e.contains("method"), "{e}");
    t.admin("PUT", "/api/scopes/s", Some(json!({"grant": []})))
        .await
        .error(400);
    t.admin(
        "PUT",
        "/api/scopes/s",
        Some(json!({"name": "other", "grants": []})),
    )
    .await
    .error(422);
}

async fn grants_follow_a_renamed_server(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/docs", &[]).await;
    t.admin("PUT", "/api/scopes/s", Some(json!({"grants": [{"server": "GitHub", "methods": ["*"]}, {"server": "Docs", "methods": ["*"]}]})))
        .await
        .ok(201);
    t.admin(
        "PATCH",
        "/api/servers/github",
        Some(json!({"name": "GitHub Enterprise"})),
    )
    .await
    .ok(200);
    t.admin(
        "PUT",
        "/api/servers/docs",
        Some(json!({"name": "Docs 2", "proxy_pass_url": "http://a"})),
    )
    .await
    .ok(200);
    let scope = t.admin("GET", "/api/scopes/s", None).await.ok(200);
    assert_eq!(scope["grants"][0]["server"], "GitHub Enterprise");
    assert_eq!(scope["grants"][1]["server"], "Docs 2");
}

async fn group_mappings_crud(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    t.admin(
        "PUT",
        "/api/scopes/a",
        Some(json!({"grants": [{"server": "GitHub", "methods": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin("PUT", "/api/scopes/b", Some(json!({"grants": []})))
        .await
        .ok(201);
    let v = t
        .admin(
            "PUT",
            "/api/group-mappings/engineering",
            Some(json!({"scopes": ["a", "b", "a"]})),
        )
        .await
        .ok(201);
    assert_eq!(v["group"], "engineering");
    assert_eq!(v["scopes"], json!(["a", "b"]));
    let v = t
        .admin(
            "PUT",
            "/api/group-mappings/engineering",
            Some(json!({"scopes": ["b"]})),
        )
        .await
        .ok(200);
    assert_eq!(v["scopes"], json!(["b"]));
    // Keycloak-style group names with a slash, percent-encoded in the URL.
    t.admin(
        "PUT",
        "/api/group-mappings/%2Fteam%2Fsre",
        Some(json!({"scopes": ["a"]})),
    )
    .await
    .ok(201);
    let got = t
        .admin("GET", "/api/group-mappings/%2Fteam%2Fsre", None)
        .await
        .ok(200);
    assert_eq!(got["group"], "/team/sre");
    let list = t.admin("GET", "/api/group-mappings", None).await.ok(200);
    let groups: Vec<&str> = list["group_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["/team/sre", "engineering"]);

    let e = t
        .admin(
            "PUT",
            "/api/group-mappings/x",
            Some(json!({"scopes": ["missing"]})),
        )
        .await
        .error(422);
    assert!(e.starts_with("scopes[0]:"), "{e}");
    t.admin("PUT", "/api/group-mappings/x", Some(json!({"scopes": "a"})))
        .await
        .error(400);
    t.admin(
        "PUT",
        "/api/group-mappings/x",
        Some(json!({"scopes": [], "extra": 1})),
    )
    .await
    .error(400);
    t.admin("DELETE", "/api/group-mappings/engineering", None)
        .await
        .ok(204);
    t.admin("GET", "/api/group-mappings/engineering", None)
        .await
        .error(404);
    t.admin("DELETE", "/api/group-mappings/engineering", None)
        .await
        .error(404);
}

async fn snapshot_compiles(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/team/docs", &[("append_mcp_path", "false")])
        .await;
    t.register("Gone", "/gone", &[]).await;
    t.admin("PUT", "/api/scopes/github-read", Some(json!({"grants": [
        {"server": "GitHub", "methods": ["tools/list", "tools/call", "resources/*"], "tools": ["search_*", "get_issue"]},
        {"server": "Gone", "methods": ["*"]}]}))).await.ok(201);
    t.admin(
        "PUT",
        "/api/scopes/docs-all",
        Some(json!({"grants": [{"server": "Docs", "methods": ["*"], "tools": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/scopes/temp",
        Some(json!({"grants": [{"server": "*", "methods": ["ping"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/engineering",
        Some(json!({"scopes": ["github-read", "docs-all", "temp"]})),
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
    // Leave dangling references behind: they are left out, so the snapshot still validates.
    t.admin("DELETE", "/api/servers/gone", None).await.ok(204);
    t.admin("DELETE", "/api/scopes/temp", None).await.ok(204);

    let snapshot = portcullis::sync::compile_snapshot(t.state.publisher.sources(), 7)
        .await
        .unwrap();
    let policy = ::policy::Policy::compile(snapshot.clone())
        .unwrap_or_else(|e| panic!("policy refused the snapshot: {e}\n{snapshot:#?}"));
    assert_eq!(policy.version, 7);
    assert_eq!(policy.servers.len(), 2);
    let docs = policy.servers.iter().find(|s| s.name == "Docs").unwrap();
    assert_eq!(docs.path_prefix, "/team/docs");
    assert_eq!(docs.resource, "https://gw.example.com/team/docs");
    assert_eq!(
        docs.resource_metadata,
        "https://gw.example.com/.well-known/oauth-protected-resource/team/docs"
    );
    let github = policy.servers.iter().find(|s| s.name == "GitHub").unwrap();
    assert_eq!(github.resource, "https://gw.example.com/github/mcp");
    assert_eq!(policy.scope_names.len(), 2);
    assert_eq!(policy.issuers.len(), 1);
    assert_eq!(policy.issuers[0].issuer, ISSUER);
    assert_eq!(snapshot.scopes[1].grants.len(), 1, "{:#?}", snapshot.scopes);
    let eng = policy.scopes_for_groups(&["engineering"]);
    assert_eq!(eng.iter().count(), 2);

    // The compiled policy decides with a real token: engineering reaches GitHub.
    let identity = policy
        .verify_jwt(
            &token("bob", &["engineering"]),
            portcullis::devtools::unix_now(),
        )
        .unwrap();
    let github_id = policy
        .servers
        .iter()
        .position(|s| s.name == "GitHub")
        .unwrap();
    policy.authorize_server(&identity, github_id).unwrap();
    let writer = policy
        .verify_jwt(&token("w", &["writers"]), portcullis::devtools::unix_now())
        .unwrap();
    assert!(policy.authorize_server(&writer, github_id).is_err());
}

fn token_for(aud: &str, groups: &[&str]) -> String {
    let mut spec = portcullis::devtools::TokenSpec::new(ISSUER, aud, "carol");
    spec.groups = Some(
        groups
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
    );
    idp_key().sign(&spec.claims())
}

/// Registers GitHub, with every method and tool granted by scope `github-all`, mapped from
/// group `engineering`.
async fn github_for_engineering(t: &TestApp) {
    t.register("GitHub", "/github", &[]).await;
    t.admin(
        "PUT",
        "/api/scopes/github-all",
        Some(json!({"grants": [{"server": "GitHub", "methods": ["*"], "tools": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/engineering",
        Some(json!({"scopes": ["github-all"]})),
    )
    .await
    .ok(201);
}

/// `PORTCULLIS_API_AUDIENCE` is the API's, `PORTCULLIS_IDP_AUDIENCE` the MCP servers' (besides
/// their own URLs): a token for one is no credential at the other.
async fn api_and_mcp_server_audiences_are_separate(b: Backend) {
    let t = app_with(&b, |c| {
        let idp = c.idp.as_mut().unwrap();
        idp.api_audiences = vec!["portcullis-api".into()];
        idp.audiences = vec!["mcp-gateway".into()];
        idp.api_audience_is_shared = false;
    })
    .await;
    github_for_engineering(&t).await;
    let resource = "https://gw.example.com/github/mcp";
    let api_token = token_for("portcullis-api", &["engineering"]);
    let server_token = token_for("mcp-gateway", &["engineering"]);
    let resource_token = token_for(resource, &["engineering"]);

    // The API: its own audience only.
    let listed = t
        .call("GET", "/api/servers", Some(&api_token), None)
        .await
        .ok(200);
    assert_eq!(listed["total_count"], 1);
    for other in [&server_token, &resource_token] {
        t.call("GET", "/api/servers", Some(other), None)
            .await
            .error(401);
    }

    // The MCP servers (the compiled snapshot the filters decide with): their URL and the
    // configured server audience, not the API's.
    let snapshot = portcullis::sync::compile_snapshot(t.state.publisher.sources(), 1)
        .await
        .unwrap();
    assert_eq!(snapshot.issuers[0].audiences, ["mcp-gateway"]);
    // Direct mode: the IdP issues no registry scopes, so a 403 must not ask for them.
    assert!(!snapshot.settings.step_up_scopes);
    assert!(snapshot
        .settings
        .base_methods
        .contains(&"server/discover".to_string()));
    let policy = ::policy::Policy::compile(snapshot).unwrap();
    let github = policy
        .servers
        .iter()
        .position(|s| s.name == "GitHub")
        .unwrap();
    let now = portcullis::devtools::unix_now();
    for accepted in [&server_token, &resource_token] {
        let identity = policy.verify_jwt(accepted, now).unwrap();
        policy.check_audience(&identity, github).unwrap();
        policy.authorize_server(&identity, github).unwrap();
    }
    let api_at_server = policy
        .verify_jwt(&api_token, now)
        .and_then(|identity| policy.check_audience(&identity, github));
    assert!(
        api_at_server.is_err(),
        "an API token must not be accepted by an MCP server"
    );
}

/// A Cognito access token: no `aud`, its app client in `client_id`, `token_use: access`,
/// groups in `cognito:groups`.
fn cognito_token(client_id: &str, token_use: &str, groups: &[&str]) -> String {
    let mut spec = portcullis::devtools::TokenSpec::new(ISSUER, "", "dave");
    spec.aud = Vec::new();
    spec.extra.insert("client_id".into(), json!(client_id));
    spec.extra.insert("token_use".into(), json!(token_use));
    spec.extra.insert("cognito:groups".into(), json!(groups));
    idp_key().sign(&spec.claims())
}

/// The Cognito profile's settings reach the snapshot: tokens without `aud` are accepted for
/// the listed app clients, with `token_use: access`, and their `cognito:groups` count.
async fn cognito_tokens_are_accepted_by_client_id_and_token_use(b: Backend) {
    let t = app_with(&b, |c| {
        let idp = c.idp.as_mut().unwrap();
        idp.profile = portcullis::config::IdpProfile::Cognito;
        idp.client_ids = vec!["app-client-1".into()];
        idp.token_use = Some("access".into());
        idp.groups_claim = "cognito:groups".into();
    })
    .await;
    github_for_engineering(&t).await;
    let snapshot = portcullis::sync::compile_snapshot(t.state.publisher.sources(), 1)
        .await
        .unwrap();
    assert_eq!(snapshot.issuers[0].client_ids, ["app-client-1"]);
    assert_eq!(snapshot.issuers[0].token_use.as_deref(), Some("access"));
    assert_eq!(snapshot.issuers[0].groups_claim, "cognito:groups");
    let policy = ::policy::Policy::compile(snapshot).unwrap();
    let github = policy
        .servers
        .iter()
        .position(|s| s.name == "GitHub")
        .unwrap();
    let now = portcullis::devtools::unix_now();

    let identity = policy
        .verify_jwt(
            &cognito_token("app-client-1", "access", &["engineering"]),
            now,
        )
        .unwrap();
    policy.check_audience(&identity, github).unwrap();
    policy.authorize_server(&identity, github).unwrap();

    // Its ID token (same keys, `token_use: id`) and another app client's token are refused.
    for (token, why) in [
        (
            cognito_token("app-client-1", "id", &["engineering"]),
            "id token",
        ),
        (
            cognito_token("other-client", "access", &["engineering"]),
            "other client",
        ),
    ] {
        let accepted = policy
            .verify_jwt(&token, now)
            .and_then(|i| policy.check_audience(&i, github));
        assert!(accepted.is_err(), "{why} accepted");
    }
}
