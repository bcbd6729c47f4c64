use super::*;
use crate::authz::error::ErrorCode;

fn known() -> Vec<String> {
    vec![
        "https://mcp.example.com/github/mcp".to_string(),
        "https://mcp.example.com/jira".to_string(),
        "https://tools.example.com".to_string(),
        "http://localhost:8000/demo/mcp".to_string(),
    ]
}

fn target_error(r: Result<&str, OAuthError>) -> String {
    let e = r.expect_err("should be refused");
    assert_eq!(e.error, ErrorCode::InvalidTarget);
    assert_eq!(e.token_endpoint_status(), 400);
    e.error_description.into_owned()
}

#[test]
fn known_resource_becomes_the_audience() {
    let k = known();
    for (sent, aud) in [
        (
            "https://mcp.example.com/github/mcp",
            "https://mcp.example.com/github/mcp",
        ),
        (
            "https://mcp.example.com/jira",
            "https://mcp.example.com/jira",
        ),
        ("https://tools.example.com", "https://tools.example.com"),
        (
            "http://localhost:8000/demo/mcp",
            "http://localhost:8000/demo/mcp",
        ),
        // Canonical spellings of the same URI name the same server; the audience is the
        // registered string.
        (
            "https://mcp.example.com/github/mcp/",
            "https://mcp.example.com/github/mcp",
        ),
        (
            "HTTPS://MCP.Example.COM/github/mcp",
            "https://mcp.example.com/github/mcp",
        ),
        (
            "https://mcp.example.com:443/jira",
            "https://mcp.example.com/jira",
        ),
        ("https://tools.example.com/", "https://tools.example.com"),
    ] {
        assert_eq!(resolve_audience(&[sent], &k), Ok(aud), "{sent}");
    }
}

#[test]
fn unknown_resources_are_invalid_target() {
    let k = known();
    for sent in [
        "https://mcp.example.com/github",
        "https://mcp.example.com/github/mcp/extra",
        "https://mcp.example.com/GITHUB/mcp",
        "https://mcp.example.com/github/mcp?x=1",
        "https://mcp.example.com:8443/jira",
        "https://mcp.example.com.evil.com/jira",
        "https://evil.com/https://mcp.example.com/jira",
        "https://mcp.example.com/",
        "http://localhost:8001/demo/mcp",
        "http://127.0.0.1:8000/demo/mcp",
        "https://mcp.example.com/%6Aira",
    ] {
        assert_eq!(
            target_error(resolve_audience(&[sent], &k)),
            "resource is not a registered MCP server",
            "{sent}"
        );
    }
}

#[test]
fn malformed_resources_are_invalid_target() {
    let k = known();
    for sent in [
        "https://mcp.example.com/jira#frag",
        "https://mcp.example.com/jira#",
        "http://mcp.example.com/jira",
        "/jira",
        "mcp.example.com/jira",
        "urn:example:jira",
        "javascript:alert(1)",
        "https://user@mcp.example.com/jira",
        "https://mcp.example.com/ji ra",
        "",
    ] {
        assert!(
            target_error(resolve_audience(&[sent], &k)).contains("absolute https"),
            "{sent}"
        );
    }
}

#[test]
fn missing_resource_is_invalid_target() {
    assert_eq!(
        target_error(resolve_audience(&[], &known())),
        "resource is required: the MCP server's URL (RFC 8707)"
    );
}

#[test]
fn one_server_per_request() {
    let k = known();
    let e = target_error(resolve_audience(
        &["https://mcp.example.com/jira", "https://tools.example.com"],
        &k,
    ));
    assert_eq!(e, "one resource per request: a token is for one MCP server");
    // The same server twice (in any canonical spelling) is one server.
    assert_eq!(
        resolve_audience(
            &[
                "https://mcp.example.com/jira",
                "https://mcp.example.com/jira/"
            ],
            &k
        ),
        Ok("https://mcp.example.com/jira")
    );
    // A malformed second value is reported as malformed.
    assert!(target_error(resolve_audience(
        &["https://mcp.example.com/jira", "https://x/#"],
        &k
    ))
    .contains("absolute https"));
}

#[test]
fn no_registered_servers_means_nothing_is_known() {
    assert!(resolve_audience(&["https://tools.example.com"], &[]).is_err());
    // A malformed registry entry never matches.
    let k = vec!["not a url".to_string()];
    assert!(resolve_audience(&["https://tools.example.com"], &k).is_err());
}

#[test]
fn canonical_forms() {
    assert_eq!(
        canonical("https://A.example.com:443/x/../mcp/").as_deref(),
        Some("https://a.example.com/mcp")
    );
    assert_eq!(
        canonical("https://a.example.com/").as_deref(),
        Some("https://a.example.com")
    );
    assert_eq!(
        canonical("https://a.example.com/?q=1").as_deref(),
        Some("https://a.example.com/?q=1")
    );
    assert_eq!(
        canonical("http://[::1]:9000/mcp").as_deref(),
        Some("http://[::1]:9000/mcp")
    );
    assert_eq!(canonical("http://127.0.0.1.evil.com/mcp"), None);
    assert_eq!(canonical("http://[::ffff:127.0.0.1]/mcp"), None);
}

#[test]
fn token_resource_may_only_repeat_the_grant() {
    let granted = "https://mcp.example.com/jira";
    assert_eq!(check_token_resource(&[], granted), Ok(()));
    assert_eq!(check_token_resource(&[granted], granted), Ok(()));
    assert_eq!(
        check_token_resource(&["https://mcp.example.com/jira/"], granted),
        Ok(())
    );
    for other in [
        &["https://tools.example.com"][..],
        &[granted, "https://tools.example.com"][..],
        &["https://mcp.example.com/jira#x"][..],
    ] {
        let e = check_token_resource(other, granted).unwrap_err();
        assert_eq!(e.error, ErrorCode::InvalidTarget, "{other:?}");
    }
}
