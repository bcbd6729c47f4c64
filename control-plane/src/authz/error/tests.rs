use super::*;

#[test]
fn codes_are_the_registered_strings() {
    let wire: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        wire,
        [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_target",
            "access_denied",
            "server_error",
            "temporarily_unavailable",
            "invalid_redirect_uri",
            "invalid_client_metadata",
        ]
    );
    for code in ErrorCode::ALL {
        // serde and as_str agree.
        assert_eq!(
            serde_json::to_value(code).unwrap(),
            serde_json::json!(code.as_str())
        );
        assert_eq!(code.to_string(), code.as_str());
    }
}

#[test]
fn token_endpoint_statuses() {
    for code in ErrorCode::ALL {
        let want = match code {
            ErrorCode::InvalidClient => 401,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        };
        assert_eq!(code.token_endpoint_status(), want, "{code}");
    }
    assert_eq!(
        OAuthError::invalid_client("unknown client").token_endpoint_status(),
        401
    );
    assert_eq!(OAuthError::invalid_grant("x").token_endpoint_status(), 400);
}

#[test]
fn body_is_the_rfc_6749_shape() {
    let e = OAuthError::invalid_target("resource is not a registered MCP server");
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        serde_json::json!({
            "error": "invalid_target",
            "error_description": "resource is not a registered MCP server",
        })
    );
    assert_eq!(
        e.to_string(),
        "invalid_target: resource is not a registered MCP server"
    );
}

#[test]
fn descriptions_keep_to_the_allowed_characters() {
    let e = OAuthError::invalid_request(format!("redirect_uri {:?} refused\n\\é\u{7f}", "a\"b"));
    assert_eq!(e.error_description, "redirect_uri ?a??b? refused????");
    assert!(matches!(
        OAuthError::invalid_request("plain text").error_description,
        Cow::Borrowed(_)
    ));
}

#[test]
fn long_descriptions_are_cut() {
    let e = OAuthError::invalid_request("x".repeat(1000));
    assert_eq!(e.error_description.len(), MAX_DESCRIPTION_LEN);
    assert!(e.error_description.ends_with("..."));
    let exact = OAuthError::invalid_request("y".repeat(MAX_DESCRIPTION_LEN));
    assert_eq!(exact.error_description, "y".repeat(MAX_DESCRIPTION_LEN));
}
