//! What the upstream sees: no client credentials, no client-sent identity headers, the trusted
//! identity headers set by the filter.

use portcullis_e2e::snapshot::{rpc, GROUP_DEVS, MCP_PATH, SCOPE_ALL, SCOPE_ECHO};
use portcullis_e2e::Request;
use serde_json::json;

use crate::common::{list, standard, token, Gate};

#[test]
fn upstream_sees_trusted_identity_headers_only() {
    let gate = Gate::start("identity_headers", &standard().build());
    let t = token("alice", &[GROUP_DEVS, "unmapped-group"]);
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&rpc(1, "tools/list", json!({})))
            .bearer(&t)
            .header("x-portcullis-user", "mallory")
            .header("X-Portcullis-User", "mallory2")
            .header("x-portcullis-groups", "admins")
            .header("x-portcullis-scopes", SCOPE_ALL)
            .header("x-other", "kept"),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    let seen = gate.upstream.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert!(
        r.header("authorization").is_none(),
        "token passed through: {:?}",
        r.headers
    );
    assert_eq!(
        r.header("x-other"),
        Some("kept"),
        "unrelated headers are kept"
    );

    let users = r.header_all("x-portcullis-user");
    assert_eq!(
        users.len(),
        1,
        "exactly one trusted user header: {:?}",
        r.headers
    );
    assert!(
        users[0] == "alice" || users[0] == "sub-alice",
        "x-portcullis-user should name the token's user (preferred_username `alice` or sub \
         `sub-alice`), got {:?}",
        users[0]
    );

    let groups = r.header_all("x-portcullis-groups");
    assert_eq!(groups.len(), 1, "{:?}", r.headers);
    let groups = list(groups[0]);
    assert!(groups.iter().any(|g| g == GROUP_DEVS), "groups {groups:?}");
    assert!(
        !groups.iter().any(|g| g == "admins"),
        "client-sent group leaked: {groups:?}"
    );

    let scopes = r.header_all("x-portcullis-scopes");
    assert_eq!(scopes.len(), 1, "{:?}", r.headers);
    let scopes = list(scopes[0]);
    assert_eq!(
        scopes,
        vec![SCOPE_ECHO.to_string()],
        "scopes mapped from the groups"
    );
}

/// Renamed identity headers (settings) are honoured, and the default names are still stripped.
#[test]
fn identity_header_names_follow_settings() {
    let snap = standard()
        .setting("user_header", json!("x-auth-user"))
        .setting("groups_header", json!("x-auth-groups"))
        .setting("scopes_header", json!("x-auth-scopes"))
        .build();
    let gate = Gate::start("identity_header_names", &snap);
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&rpc(1, "tools/list", json!({})))
            .bearer(&token("alice", &[GROUP_DEVS]))
            .header("x-auth-user", "mallory"),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    let r = &gate.upstream.requests()[0];
    let users = r.header_all("x-auth-user");
    assert_eq!(users.len(), 1, "{:?}", r.headers);
    assert_ne!(users[0], "mallory");
    assert!(r.header("x-auth-groups").is_some() && r.header("x-auth-scopes").is_some());
}
