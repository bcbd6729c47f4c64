use base64::Engine as _;

use super::*;

#[test]
fn resolve_argument() {
    assert_eq!(
        parse_resolve("MCP.example.com=127.0.0.1").unwrap(),
        ("mcp.example.com".into(), "127.0.0.1:0".parse().unwrap())
    );
    assert_eq!(
        parse_resolve("h=127.0.0.1:8443").unwrap().1,
        "127.0.0.1:8443".parse().unwrap()
    );
    assert_eq!(
        parse_resolve("h=[::1]:80").unwrap().1,
        "[::1]:80".parse().unwrap()
    );
    assert_eq!(parse_resolve("h=::1").unwrap().1.port(), 0);
    for bad in ["h", "=1.2.3.4", "h=example.com", "h=1.2.3.4:x"] {
        assert!(parse_resolve(bad).is_err(), "{bad}");
    }
}

#[test]
fn json_content_types() {
    for ok in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/jrd+json",
    ] {
        assert!(is_json_content_type(ok), "{ok}");
    }
    for bad in ["text/html", "text/json", "application/jsonx", ""] {
        assert!(!is_json_content_type(bad), "{bad}");
    }
}

#[test]
fn claims_by_name_or_nested_path() {
    let c: Map<String, Value> = serde_json::from_value(json!({
        "cognito:groups": ["a"],
        "realm_access": {"roles": ["x", "y"]},
        "a.b": 1,
        "a": {"b": 2},
    }))
    .unwrap();
    assert_eq!(claim(&c, "cognito:groups"), Some(&json!(["a"])));
    assert_eq!(claim(&c, "realm_access.roles"), Some(&json!(["x", "y"])));
    assert_eq!(claim(&c, "a.b"), Some(&json!(1)), "literal name wins");
    assert_eq!(claim(&c, "groups"), None);
    assert_eq!(claim(&c, "realm_access.roles.x"), None);
}

#[test]
fn jwt_payloads_decode_with_or_without_padding() {
    let p = base64::engine::general_purpose::URL_SAFE.encode(br#"{"sub":"a?>"}"#);
    assert!(p.ends_with('='));
    assert_eq!(b64url_json(&p).unwrap()["sub"], "a?>");
    assert_eq!(b64url_json(p.trim_end_matches('=')).unwrap()["sub"], "a?>");
    assert!(b64url_json("not base64!").is_none());
    let arr = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"[1]");
    assert!(b64url_json(&arr).is_none());
}

fn token_report(claims: Value) -> (Report, String) {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&json!({"alg": "RS256"})),
        b64(&claims)
    );
    let mut opts = Options::new("http://127.0.0.1:1/mcp");
    opts.token = Some(token.clone());
    let mut d = Doctor::new(opts, None);
    d.inspect_token();
    (d.finish(), token)
}

#[test]
fn token_groups_are_reported_and_the_token_never_printed() {
    let (r, token) = token_report(
        json!({"iss": "https://idp", "sub": "u", "groups": ["a", "b"], "exp": 4_000_000_000u64}),
    );
    assert!(!r.has(Code::TokenNoGroups));
    assert_eq!(r.summary.token.as_ref().unwrap().groups_claims["groups"], 2);
    assert!(!r.to_text().contains(&token));
    assert!(!r.to_json().to_string().contains(&token));

    let (r, _) = token_report(json!({"realm_access": {"roles": ["x"]}, "exp": 1}));
    assert!(!r.has(Code::TokenNoGroups));
    assert!(r.has(Code::TokenExpired));
    assert_eq!(
        r.summary.token.as_ref().unwrap().groups_claims["realm_access.roles"],
        1
    );

    let (r, token) = token_report(json!({"sub": "u", "scope": "openid"}));
    assert!(r.has(Code::TokenNoGroups));
    assert_eq!(r.summary.exit_code, 1);
    assert!(!r.to_text().contains(&token));
}

#[test]
fn opaque_tokens_cannot_be_read() {
    let mut opts = Options::new("http://127.0.0.1:1/mcp");
    opts.token = Some("opaque-token-value".into());
    let mut d = Doctor::new(opts, None);
    d.inspect_token();
    let r = d.finish();
    assert!(r.has(Code::TokenNotJwt));
    assert!(!r.to_text().contains("opaque-token-value"));
}

#[test]
fn exit_codes() {
    let mut d = Doctor::new(Options::new("x"), None);
    d.begin("probe", "p");
    d.find(Code::ChallengeNoScope, "w");
    assert_eq!(d.finish().summary.exit_code, 0);

    let mut o = Options::new("x");
    o.strict = true;
    let mut d = Doctor::new(o, None);
    d.begin("probe", "p");
    d.find(Code::ChallengeNoScope, "w");
    assert_eq!(d.finish().summary.exit_code, 1);

    let mut d = Doctor::new(Options::new("x"), None);
    d.begin("probe", "p");
    d.find(Code::PrmNotFound, "e");
    let r = d.finish();
    assert_eq!(r.summary.exit_code, 1);
    assert_eq!(r.steps[0].status, StepStatus::Fail);

    let mut d = Doctor::new(Options::new("x"), None);
    d.begin("probe", "p");
    d.find(Code::Unreachable, "e");
    d.reachable = false;
    assert_eq!(d.finish().summary.exit_code, 2);
}

#[test]
fn invalid_urls_are_reported_without_a_request() {
    for bad in ["", "mcp.example.com/mcp", "ftp://h/x", "mailto:a@b"] {
        let r = diagnose_blocking(&Options::new(bad));
        assert!(r.has(Code::InvalidUrl), "{bad}: {:?}", r.findings);
        assert_eq!(r.summary.exit_code, 2);
    }
}

#[test]
fn codes_are_unique_snake_case_and_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/doctor.md"))
        .expect("docs/doctor.md");
    let mut seen = std::collections::HashSet::new();
    for c in Code::ALL {
        let s = c.as_str();
        assert!(seen.insert(s), "duplicate {s}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{s}"
        );
        assert!(
            doc.contains(&format!("`{s}`")),
            "docs/doctor.md does not explain `{s}`"
        );
        assert!(!c.what().is_empty());
    }
}
