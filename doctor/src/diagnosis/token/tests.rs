use base64::Engine as _;
use serde_json::json;

use super::*;
use crate::diagnosis::Options;
use crate::report::Report;

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
