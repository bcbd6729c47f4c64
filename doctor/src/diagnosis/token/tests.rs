use base64::Engine as _;
use serde_json::json;

use super::*;
use crate::diagnosis::Options;
use crate::report::{Audience, Report};

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

const RESOURCE: &str = "https://mcp.example.com/github/mcp";
const ISSUER: &str = "https://idp.example.com/realms/acme";

/// The token step with step 3's metadata found (resource, one authorization server).
fn with_metadata(claims: Value) -> Report {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let mut opts = Options::new("https://given.example.com/mcp");
    opts.token = Some(format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "RS256"})),
        b64(&claims)
    ));
    let mut d = Doctor::new(opts, None);
    d.prm =
        serde_json::from_value(json!({"resource": RESOURCE, "authorization_servers": [ISSUER]}))
            .ok();
    d.inspect_token();
    d.finish()
}

fn claims_with(extra: Value) -> Value {
    let mut c = json!({"iss": ISSUER, "sub": "u", "exp": 4_000_000_000u64, "groups": ["devs"]});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn message(r: &Report, code: Code) -> String {
    r.findings
        .iter()
        .find(|f| f.code == code)
        .map(|f| f.message.clone())
        .unwrap_or_default()
}

#[test]
fn audience_is_classified_against_the_resource() {
    let a = |v: &[&str]| {
        v.iter()
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        classify_audience(&a(&[RESOURCE]), RESOURCE),
        Audience::Resource
    );
    assert_eq!(
        classify_audience(&a(&["account", RESOURCE]), RESOURCE),
        Audience::Resource
    );
    assert_eq!(classify_audience(&a(&[]), RESOURCE), Audience::Absent);
    assert_eq!(
        classify_audience(&a(&["account"]), RESOURCE),
        Audience::Weak
    );
    assert_eq!(
        classify_audience(&a(&["account", "mcp-gateway"]), RESOURCE),
        Audience::Other
    );
    assert_eq!(
        classify_audience(&a(&["api://x"]), RESOURCE),
        Audience::Other
    );
    assert_eq!(
        classify_audience(&a(&[&format!("{RESOURCE}/")]), RESOURCE),
        Audience::Other
    );
}

#[test]
fn a_token_for_the_resource_from_the_named_issuer_passes() {
    let r = with_metadata(claims_with(json!({"aud": [RESOURCE, "account"]})));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    let t = r.summary.token.as_ref().unwrap();
    assert_eq!(t.audience, Some(Audience::Resource));
    assert_eq!(t.issuer_listed, Some(true));
    assert_eq!(
        t.resource.as_deref(),
        Some(RESOURCE),
        "the metadata's resource, not the URL"
    );
    assert!(r.to_text().contains("contains the server's resource"));
}

#[test]
fn no_audience_needs_the_client_id_allowed() {
    let r = with_metadata(claims_with(
        json!({"client_id": "7abc", "token_use": "access"}),
    ));
    assert!(r.has(Code::TokenNoAudience));
    assert_eq!(r.summary.exit_code, 0, "a warning: client_ids may list it");
    assert!(message(&r, Code::TokenNoAudience).contains("PORTCULLIS_IDP_CLIENT_IDS=7abc"));
    let t = r.summary.token.as_ref().unwrap();
    assert_eq!(t.audience, Some(Audience::Absent));
    assert_eq!(t.client_id.as_deref(), Some("7abc"));
    assert_eq!(t.token_use.as_deref(), Some("access"));
    let j = r.to_json();
    assert_eq!(j["summary"]["token"]["audience"], "absent");
    assert_eq!(j["summary"]["token"]["client_id"], "7abc");

    let r = with_metadata(claims_with(json!({"azp": "ide"})));
    assert!(message(&r, Code::TokenNoAudience).contains("PORTCULLIS_IDP_CLIENT_IDS=ide"));
    let r = with_metadata(claims_with(json!({})));
    assert!(message(&r, Code::TokenNoAudience).contains("no setting"));
}

#[test]
fn other_audiences_are_named_and_account_alone_is_weak() {
    let r = with_metadata(claims_with(json!({"aud": ["account", "mcp-gateway"]})));
    let m = message(&r, Code::TokenAudienceOther);
    assert!(
        m.contains("aud is mcp-gateway,") && m.contains("PORTCULLIS_IDP_AUDIENCE"),
        "{m}"
    );
    assert!(m.contains("not `account`"), "{m}");
    assert!(!r.has(Code::TokenWeakAudience));

    let r = with_metadata(claims_with(json!({"aud": "api://portcullis"})));
    assert!(message(&r, Code::TokenAudienceOther).contains("api://portcullis"));
    assert_eq!(r.summary.token.as_ref().unwrap().aud, ["api://portcullis"]);

    for aud in [json!("account"), json!(["account"])] {
        let r = with_metadata(claims_with(json!({"aud": aud})));
        assert!(r.has(Code::TokenWeakAudience), "{aud}");
        assert!(message(&r, Code::TokenWeakAudience).contains("Audience mapper"));
        assert!(!r.has(Code::TokenAudienceOther));
        assert_eq!(
            r.summary.token.as_ref().unwrap().audience,
            Some(Audience::Weak)
        );
    }
}

#[test]
fn id_tokens_are_refused() {
    let r = with_metadata(claims_with(json!({"aud": "7abc", "token_use": "id"})));
    assert!(r.has(Code::TokenIsIdToken));
    assert_eq!(r.summary.exit_code, 1);
    let r = with_metadata(claims_with(json!({"aud": RESOURCE, "typ": "ID"})));
    assert!(message(&r, Code::TokenIsIdToken).contains("Keycloak"));
    let r = with_metadata(claims_with(
        json!({"aud": RESOURCE, "typ": "Bearer", "token_use": "access"}),
    ));
    assert!(!r.has(Code::TokenIsIdToken));
}

#[test]
fn issuers_the_metadata_does_not_name_are_refused() {
    let r = with_metadata(claims_with(
        json!({"aud": RESOURCE, "iss": "https://other.example.com"}),
    ));
    let m = message(&r, Code::TokenIssuerOther);
    assert!(
        m.contains("https://other.example.com") && m.contains(ISSUER),
        "{m}"
    );
    assert_eq!(r.summary.token.as_ref().unwrap().issuer_listed, Some(false));
    assert!(r.to_text().contains("NOT an authorization server"));

    let r = with_metadata(claims_with(
        json!({"aud": RESOURCE, "iss": format!("{ISSUER}/")}),
    ));
    assert!(message(&r, Code::TokenIssuerOther).contains("trailing slash"));

    // Without metadata there is nothing to compare with.
    let (r, _) = token_report(claims_with(json!({"aud": "http://127.0.0.1:1/mcp"})));
    assert!(!r.has(Code::TokenIssuerOther));
    let t = r.summary.token.as_ref().unwrap();
    assert_eq!(t.issuer_listed, None);
    assert_eq!(
        t.audience,
        Some(Audience::Resource),
        "compared with the URL given"
    );
}

#[test]
fn iss_sub_and_exp_are_required() {
    let (r, _) = token_report(json!({"groups": ["a"], "aud": "http://127.0.0.1:1/mcp"}));
    let m = message(&r, Code::TokenMissingClaims);
    assert!(m.contains("iss, sub, exp"), "{m}");
    let r = with_metadata(claims_with(json!({"aud": RESOURCE})));
    assert!(!r.has(Code::TokenMissingClaims));
}

#[test]
fn guid_groups_are_noted() {
    assert!(is_guid("0b6a2f54-1c3e-4d7a-9f00-aa12bc34de56"));
    assert!(!is_guid("engineering"));
    assert!(!is_guid("0b6a2f54-1c3e-4d7a-9f00-aa12bc34de5"));
    assert!(!is_guid("0b6a2f54-1c3e-4d7a-9f00-aa12bc34de5g"));
    let r = with_metadata(claims_with(json!({
        "aud": RESOURCE, "groups": ["0b6a2f54-1c3e-4d7a-9f00-aa12bc34de56", "ops"]
    })));
    let t = r.summary.token.as_ref().unwrap();
    assert!(t.groups_look_like_guids);
    assert_eq!(t.groups, ["0b6a2f54-1c3e-4d7a-9f00-aa12bc34de56", "ops"]);
    assert_eq!(
        r.to_json()["summary"]["token"]["groups_look_like_guids"],
        true
    );
    assert!(r.to_text().contains("must name the ids, not display names"));
    let r = with_metadata(claims_with(json!({"aud": RESOURCE})));
    assert!(!r.summary.token.as_ref().unwrap().groups_look_like_guids);
}
