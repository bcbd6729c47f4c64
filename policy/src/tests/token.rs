//! Bearer-token verification: one valid token, then every way a token can be wrong, each with
//! the exact reason.

use serde_json::{json, Value};

use super::*;
use crate::{Segment, TokenError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

fn policy() -> Policy {
    compile(&snapshot())
}

fn verify(token: &str) -> Result<crate::Identity, TokenError> {
    policy().verify_jwt(token, NOW)
}

fn with_claims(edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims();
    edit(&mut c);
    rs256(&rsa_key("a"), Some("k1"), &c)
}

fn reason(token: &str) -> TokenError {
    verify(token).expect_err("token must be refused")
}

#[test]
fn valid_token_gives_identity_groups_and_scopes() {
    let identity = verify(&rs256(&rsa_key("a"), Some("k1"), &claims())).expect("valid");
    assert_eq!(identity.subject, "user-1");
    assert_eq!(identity.username, "alice");
    assert_eq!(identity.issuer, ISS);
    assert_eq!(&*identity.groups, ["eng".to_string()]);
    assert_eq!(identity.headers.user, "alice");
    assert_eq!(identity.headers.groups, "eng");
    assert_eq!(identity.headers.scopes, "everything-echo");
    assert_eq!(identity.expires_at, Some(NOW + 300 + 60));
    assert!(identity.audience_servers.contains(0) && identity.audience_servers.contains(1));
}

#[test]
fn the_token_s_own_scopes_are_kept_for_a_step_up() {
    let of = |edit: fn(&mut Value)| verify(&with_claims(edit)).expect("valid").token_scopes;
    assert_eq!(
        &*of(|c| c["scope"] = json!("openid  profile mcp")),
        ["openid", "profile", "mcp"]
    );
    assert_eq!(&*of(|c| c["scp"] = json!("files.read")), ["files.read"]);
    assert_eq!(&*of(|c| c["scope"] = json!(["a", 1, "b"])), ["a", "b"]);
    assert!(of(|c| c["scope"] = json!(7)).is_empty());
    assert!(of(|_| {}).is_empty());
}

#[test]
fn not_three_segments() {
    assert_eq!(reason("abc.def"), TokenError::Malformed);
    assert_eq!(reason("a.b.c.d"), TokenError::Malformed);
    assert_eq!(reason(""), TokenError::Malformed);
    assert_eq!(reason("..sig"), TokenError::Malformed);
}

#[test]
fn bad_base64_in_each_segment() {
    let good = rs256(&rsa_key("a"), Some("k1"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(
        reason(&format!("e30*.{}.{}", parts[1], parts[2])),
        TokenError::BadBase64(Segment::Header)
    );
    assert_eq!(
        reason(&format!("{}.{}=.{}", parts[0], parts[1], parts[2])),
        TokenError::BadBase64(Segment::Claims)
    );
    assert_eq!(
        reason(&format!("{}.{}.{}+/", parts[0], parts[1], parts[2])),
        TokenError::BadBase64(Segment::Signature)
    );
}

#[test]
fn header_and_claims_must_be_json_objects() {
    let key = rsa_key("a");
    assert_eq!(
        reason(&rs256_raw(&key, "not json", &claims().to_string())),
        TokenError::BadJson(Segment::Header)
    );
    assert_eq!(
        reason(&rs256_raw(&key, r#"{"alg":"RS256","kid":"k1"}"#, "[1,2]")),
        TokenError::BadJson(Segment::Claims)
    );
    assert_eq!(
        reason(&rs256_raw(
            &key,
            r#"{"alg":"RS256","kid":"k1"}"#,
            "{\"iss\":"
        )),
        TokenError::BadJson(Segment::Claims)
    );
}

#[test]
fn duplicate_members_are_refused() {
    let key = rsa_key("a");
    let claims = format!(
        r#"{{"iss":"{ISS}","sub":"user-1","sub":"admin","aud":"{RESOURCE_A}","exp":{}}}"#,
        NOW + 300
    );
    assert_eq!(
        reason(&rs256_raw(&key, r#"{"alg":"RS256","kid":"k1"}"#, &claims)),
        TokenError::DuplicateMember(Segment::Claims)
    );
    let nested = format!(
        r#"{{"iss":"{ISS}","sub":"u","aud":"{RESOURCE_A}","exp":{},"realm":{{"a":1,"a":2}}}}"#,
        NOW + 300
    );
    assert_eq!(
        reason(&rs256_raw(&key, r#"{"alg":"RS256","kid":"k1"}"#, &nested)),
        TokenError::DuplicateMember(Segment::Claims)
    );
    assert_eq!(
        reason(&rs256_raw(
            &key,
            r#"{"alg":"RS256","kid":"k1","alg":"none"}"#,
            &self::claims().to_string()
        )),
        TokenError::DuplicateMember(Segment::Header)
    );
}

#[test]
fn alg_none_in_any_spelling() {
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes());
        let token = format!("{header}.{}.", b64(claims().to_string().as_bytes()));
        assert_eq!(reason(&token), TokenError::AlgNone, "{alg}");
    }
}

#[test]
fn missing_and_unsupported_alg() {
    let key = rsa_key("a");
    assert_eq!(
        reason(&rs256_raw(&key, r#"{"kid":"k1"}"#, &claims().to_string())),
        TokenError::MissingAlg
    );
    assert_eq!(
        reason(&rs256_raw(
            &key,
            r#"{"alg":"RS1","kid":"k1"}"#,
            &claims().to_string()
        )),
        TokenError::UnsupportedAlg("RS1".into())
    );
    assert_eq!(
        reason(&rs256_raw(&key, r#"{"alg":42}"#, &claims().to_string())),
        TokenError::BadClaimType("alg")
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic confusion attack: use the public key bytes as an HMAC secret.
    let public_pem = rsa_jwk(&rsa_key("a"), "k1").to_string();
    let token = hs256(
        public_pem.as_bytes(),
        &json!({"alg": "HS256", "kid": "k1"}),
        &claims(),
    );
    assert_eq!(reason(&token), TokenError::AlgNotAllowed("HS256"));
}

#[test]
fn alg_that_does_not_fit_the_key_type() {
    // The issuer accepts ES256 too, but kid k1 is an RSA key.
    let mut snap = snapshot();
    snap["issuers"][0]["algorithms"] = json!(["RS256", "ES256"]);
    let p = compile(&snap);
    let header = b64(br#"{"alg":"ES256","kid":"k1"}"#);
    let token = format!(
        "{header}.{}.{}",
        b64(claims().to_string().as_bytes()),
        b64(&[7u8; 64])
    );
    assert_eq!(
        p.verify_jwt(&token, NOW).unwrap_err(),
        TokenError::AlgKeyMismatch("ES256")
    );
}

#[test]
fn ps256_header_on_an_rs256_signature_fails() {
    let mut snap = snapshot();
    snap["issuers"][0]["algorithms"] = json!(["RS256", "PS256"]);
    let p = compile(&snap);
    let token = rs256(&rsa_key("a"), Some("k1"), &claims());
    let rest = token.split_once('.').unwrap().1;
    let forged = format!("{}.{rest}", b64(br#"{"alg":"PS256","kid":"k1"}"#));
    assert_eq!(
        p.verify_jwt(&forged, NOW).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn unknown_kid() {
    assert_eq!(
        reason(&rs256(&rsa_key("a"), Some("k9"), &claims())),
        TokenError::UnknownKid
    );
}

#[test]
fn no_kid_with_one_key_is_fine_but_with_several_is_ambiguous() {
    assert!(verify(&rs256(&rsa_key("a"), None, &claims())).is_ok());
    let mut snap = snapshot();
    snap["issuers"][0]["jwks"]["keys"] =
        json!([rsa_jwk(&rsa_key("a"), "k1"), rsa_jwk(&rsa_key("b"), "k2")]);
    let p = compile(&snap);
    assert_eq!(
        p.verify_jwt(&rs256(&rsa_key("a"), None, &claims()), NOW)
            .unwrap_err(),
        TokenError::AmbiguousKey
    );
    assert!(p
        .verify_jwt(&rs256(&rsa_key("b"), Some("k2"), &claims()), NOW)
        .is_ok());
}

#[test]
fn signature_of_another_key() {
    assert_eq!(
        reason(&rs256(&rsa_key("b"), Some("k1"), &claims())),
        TokenError::BadSignature
    );
}

#[test]
fn truncated_or_tampered_signature() {
    let token = rs256(&rsa_key("a"), Some("k1"), &claims());
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(
        reason(&format!(
            "{input}.{}",
            b64(&signature[..signature.len() - 10])
        )),
        TokenError::BadSignature
    );
    assert_eq!(reason(&format!("{input}.")), TokenError::BadSignature);
    // Claims changed after signing.
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims();
    c["groups"] = json!(["admins"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(reason(&forged), TokenError::BadSignature);
}

#[test]
fn wrong_or_missing_issuer() {
    assert_eq!(
        reason(&with_claims(|c| c["iss"] = "https://evil.test".into())),
        TokenError::UnknownIssuer
    );
    assert_eq!(
        reason(&with_claims(|c| c["iss"] = format!("{ISS}/").into())),
        TokenError::UnknownIssuer
    );
    assert_eq!(
        reason(&with_claims(|c| {
            c.as_object_mut().unwrap().remove("iss");
        })),
        TokenError::MissingIssuer
    );
    assert_eq!(
        reason(&with_claims(|c| c["iss"] = json!(["x"]))),
        TokenError::BadClaimType("iss")
    );
}

#[test]
fn audience_checks() {
    assert_eq!(
        reason(&with_claims(|c| c["aud"] = "https://gw.test/other".into())),
        TokenError::WrongAudience
    );
    assert!(verify(&with_claims(|c| c["aud"] = json!(["x", RESOURCE_A]))).is_ok());
    assert_eq!(
        reason(&with_claims(|c| c["aud"] = json!(5))),
        TokenError::BadClaimType("aud")
    );
    assert_eq!(
        reason(&with_claims(|c| c["aud"] = json!([5]))),
        TokenError::BadClaimType("aud")
    );
    assert_eq!(
        reason(&with_claims(|c| {
            c.as_object_mut().unwrap().remove("aud");
        })),
        TokenError::MissingAudience
    );
}

#[test]
fn client_id_allowlist_for_issuers_without_aud() {
    let mut snap = snapshot();
    snap["issuers"][0]["audiences"] = json!([]);
    snap["issuers"][0]["client_ids"] = json!(["ide-client"]);
    snap["issuers"][0]["token_use"] = json!("access");
    snap["issuers"][0]["groups_claim"] = json!("cognito:groups");
    let p = compile(&snap);
    let mut c = claims();
    let o = c.as_object_mut().unwrap();
    o.remove("aud");
    o.remove("groups");
    o.insert("client_id".into(), "ide-client".into());
    o.insert("token_use".into(), "access".into());
    o.insert("cognito:groups".into(), json!(["eng"]));
    let identity = p
        .verify_jwt(&rs256(&rsa_key("a"), Some("k1"), &c), NOW)
        .expect("allowlisted client");
    assert_eq!(identity.client_id.as_deref(), Some("ide-client"));
    assert_eq!(&*identity.groups, ["eng".to_string()]);

    let mut other = c.clone();
    other["client_id"] = "someone-else".into();
    assert_eq!(
        p.verify_jwt(&rs256(&rsa_key("a"), Some("k1"), &other), NOW)
            .unwrap_err(),
        TokenError::MissingAudience
    );
    let mut id_token = c.clone();
    id_token["token_use"] = "id".into();
    assert_eq!(
        p.verify_jwt(&rs256(&rsa_key("a"), Some("k1"), &id_token), NOW)
            .unwrap_err(),
        TokenError::WrongTokenUse("access".into())
    );
    let mut no_use = c;
    no_use.as_object_mut().unwrap().remove("token_use");
    assert_eq!(
        p.verify_jwt(&rs256(&rsa_key("a"), Some("k1"), &no_use), NOW)
            .unwrap_err(),
        TokenError::WrongTokenUse("access".into())
    );
}

#[test]
fn audience_is_resource_limits_the_token_to_that_server() {
    let mut snap = snapshot();
    snap["issuers"][0]["audiences"] = json!([]);
    snap["issuers"][0]["audience_is_resource"] = json!(true);
    let p = compile(&snap);
    let identity = p
        .verify_jwt(&with_claims(|c| c["aud"] = RESOURCE_B.into()), NOW)
        .expect("aud is server B");
    assert_eq!(p.check_audience(&identity, 1), Ok(()));
    assert_eq!(
        p.check_audience(&identity, 0),
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        p.verify_jwt(
            &with_claims(|c| c["aud"] = "https://gw.test/nope".into()),
            NOW
        )
        .unwrap_err(),
        TokenError::WrongAudience
    );
}

#[test]
fn time_claims() {
    assert_eq!(
        reason(&with_claims(|c| c["exp"] = (NOW - 61).into())),
        TokenError::Expired
    );
    assert!(
        verify(&with_claims(|c| c["exp"] = (NOW - 59).into())).is_ok(),
        "within leeway"
    );
    assert_eq!(
        reason(&with_claims(|c| c["nbf"] = (NOW + 61).into())),
        TokenError::NotYetValid
    );
    assert_eq!(
        reason(&with_claims(|c| c["iat"] = (NOW + 3600).into())),
        TokenError::IssuedInFuture
    );
    assert_eq!(
        reason(&with_claims(|c| {
            c.as_object_mut().unwrap().remove("exp");
        })),
        TokenError::MissingExp
    );
    assert_eq!(
        reason(&with_claims(|c| c["exp"] = "tomorrow".into())),
        TokenError::BadClaimType("exp")
    );
    assert_eq!(
        reason(&with_claims(|c| c["exp"] = json!(-5))),
        TokenError::BadClaimType("exp")
    );
    assert_eq!(
        reason(&with_claims(|c| c["nbf"] = json!(true))),
        TokenError::BadClaimType("nbf")
    );
    assert!(
        verify(&with_claims(|c| c["exp"] = json!((NOW + 10) as f64 + 0.5))).is_ok(),
        "fractional exp"
    );
}

#[test]
fn missing_subject() {
    assert_eq!(
        reason(&with_claims(|c| {
            c.as_object_mut().unwrap().remove("sub");
        })),
        TokenError::MissingSubject
    );
}

#[test]
fn groups_claim_shapes() {
    let no_groups = verify(&with_claims(|c| {
        c.as_object_mut().unwrap().remove("groups");
    }))
    .expect("valid without groups");
    assert!(no_groups.groups.is_empty());
    assert!(no_groups.scopes.is_empty());
    let single = verify(&with_claims(|c| c["groups"] = "eng".into())).expect("a single string");
    assert_eq!(&*single.groups, ["eng".to_string()]);
    assert_eq!(
        reason(&with_claims(|c| c["groups"] = json!(5))),
        TokenError::GroupsClaimType
    );
    assert_eq!(
        reason(&with_claims(|c| c["groups"] = json!(["eng", 5]))),
        TokenError::GroupsClaimType
    );
    assert_eq!(
        reason(&with_claims(|c| c["groups"] = json!({"eng": true}))),
        TokenError::GroupsClaimType
    );
}

#[test]
fn nested_groups_claim_path() {
    let mut snap = snapshot();
    snap["issuers"][0]["groups_claim"] = json!("realm_access.roles");
    let p = compile(&snap);
    let token = with_claims(|c| c["realm_access"] = json!({"roles": ["admins"]}));
    let identity = p.verify_jwt(&token, NOW).expect("nested groups");
    assert_eq!(&*identity.groups, ["admins".to_string()]);
    assert_eq!(identity.headers.scopes, "admin");
    let wrong = with_claims(|c| c["realm_access"] = json!({"roles": "x", "extra": 1}));
    assert_eq!(
        &*p.verify_jwt(&wrong, NOW).unwrap().groups,
        ["x".to_string()]
    );
    let bad = with_claims(|c| c["realm_access"] = json!({"roles": [1]}));
    assert_eq!(
        p.verify_jwt(&bad, NOW).unwrap_err(),
        TokenError::GroupsClaimType
    );
    let missing = with_claims(|c| c["realm_access"] = json!("not an object"));
    assert!(p.verify_jwt(&missing, NOW).unwrap().groups.is_empty());
}

#[test]
fn oversized_token_is_refused_before_parsing() {
    let huge = with_claims(|c| c["pad"] = "x".repeat(20_000).into());
    assert_eq!(reason(&huge), TokenError::TooLarge(16 * 1024));
    assert_eq!(
        reason(&"a".repeat(100_000)),
        TokenError::TooLarge(16 * 1024)
    );
}

#[test]
fn critical_header_extensions_and_odd_types() {
    let key = rsa_key("a");
    let c = claims().to_string();
    assert_eq!(
        reason(&rs256_raw(
            &key,
            r#"{"alg":"RS256","kid":"k1","crit":["exp"]}"#,
            &c
        )),
        TokenError::CriticalHeader
    );
    assert_eq!(
        reason(&rs256_raw(
            &key,
            r#"{"alg":"RS256","kid":"k1","typ":"dpop+jwt"}"#,
            &c
        )),
        TokenError::BadType("dpop+jwt".into())
    );
    assert!(verify(&rs256_raw(
        &key,
        r#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#,
        &c
    ))
    .is_ok());
    assert_eq!(
        reason(&rs256_raw(&key, r#"{"alg":"RS256","kid":7}"#, &c)),
        TokenError::BadClaimType("kid")
    );
}

#[test]
fn embedded_jwk_header_is_ignored() {
    // An attacker's own key in the header must not be used.
    let key = rsa_key("b");
    let header = json!({"alg": "RS256", "kid": "k1", "jwk": rsa_jwk(&key, "k1")}).to_string();
    assert_eq!(
        reason(&rs256_raw(&key, &header, &claims().to_string())),
        TokenError::BadSignature
    );
}

#[test]
fn hmac_only_with_a_configured_secret() {
    let secret = b"a-shared-secret-of-at-least-32-bytes!!";
    let mut snap = snapshot();
    snap["issuers"][0]["algorithms"] = json!(["HS256"]);
    snap["issuers"][0]["jwks"]["keys"] = json!([{"kty": "oct", "kid": "h1", "k": b64(secret)}]);
    let p = compile(&snap);
    let header = json!({"alg": "HS256", "kid": "h1"});
    assert!(p
        .verify_jwt(&hs256(secret, &header, &claims()), NOW)
        .is_ok());
    assert_eq!(
        p.verify_jwt(
            &hs256(b"another-secret-another-secret-xx", &header, &claims()),
            NOW
        )
        .unwrap_err(),
        TokenError::BadSignature
    );
    // And an RS256 token is refused by this HMAC-only issuer.
    assert_eq!(
        p.verify_jwt(&rs256(&rsa_key("a"), Some("h1"), &claims()), NOW)
            .unwrap_err(),
        TokenError::AlgNotAllowed("RS256")
    );
}

#[test]
fn api_keys() {
    let p = policy();
    let identity = p.verify_api_key("pk_test_ci_key", NOW).expect("known key");
    assert_eq!(identity.subject, "ci-bot");
    assert_eq!(identity.issuer, "api-key:ci");
    assert_eq!(identity.headers.scopes, "everything-echo");
    assert_eq!(
        p.verify_api_key("pk_test_ci_kez", NOW).unwrap_err(),
        TokenError::UnknownApiKey
    );
    assert_eq!(
        p.verify_api_key("", NOW).unwrap_err(),
        TokenError::UnknownApiKey
    );

    let mut snap = snapshot();
    snap["api_keys"][0]["expires_at"] = json!(NOW);
    assert_eq!(
        compile(&snap)
            .verify_api_key("pk_test_ci_key", NOW)
            .unwrap_err(),
        TokenError::ApiKeyExpired
    );
}

#[test]
fn hostile_claim_values_cannot_forge_identity_headers() {
    let identity = verify(&with_claims(|c| {
        c["preferred_username"] = "eve\r\nx-portcullis-groups: admins".into();
        c["groups"] = json!(["eng,admins", "ü"]);
    }))
    .expect("valid");
    assert_eq!(
        identity.headers.user,
        "eve%0D%0Ax-portcullis-groups: admins"
    );
    assert_eq!(identity.headers.groups, "eng%2Cadmins,%C3%BC");
}

#[test]
fn every_reason_is_stable_and_never_echoes_the_token() {
    let token = rs256(&rsa_key("b"), Some("k1"), &claims());
    let error = reason(&token);
    assert_eq!(error.reason(), "bad_signature");
    assert!(!error.to_string().contains(&token[..20]));
}

#[test]
fn only_costly_and_stable_refusals_are_worth_caching() {
    // Found again cheaply, or may turn valid: never remembered.
    for error in [
        TokenError::TooLarge(1),
        TokenError::Malformed,
        TokenError::BadBase64(Segment::Header),
        TokenError::BadJson(Segment::Claims),
        TokenError::DuplicateMember(Segment::Header),
        TokenError::MissingAlg,
        TokenError::AlgNone,
        TokenError::UnsupportedAlg("XS1".into()),
        TokenError::CriticalHeader,
        TokenError::BadType("x".into()),
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
    ] {
        assert!(!error.is_worth_caching(), "{error:?}");
    }
    for error in [
        TokenError::BadSignature,
        TokenError::Expired,
        TokenError::UnknownIssuer,
        TokenError::UnknownKid,
        TokenError::WrongAudience,
        TokenError::UnknownApiKey,
    ] {
        assert!(error.is_worth_caching(), "{error:?}");
    }
}

#[test]
fn a_revoked_token_id_is_refused_and_only_that_one() {
    let mut snap = snapshot();
    snap["issuers"][0]["revoked_token_ids"] = json!(["at-revoked"]);
    let p = compile(&snap);
    let token = |jti: Option<&str>| {
        with_claims(|c| {
            if let Some(jti) = jti {
                c["jti"] = json!(jti);
            }
        })
    };
    let err = p.verify_jwt(&token(Some("at-revoked")), NOW).unwrap_err();
    assert_eq!(err, TokenError::Revoked);
    assert_eq!(err.reason(), "revoked_token");
    assert!(err.is_worth_caching(), "stable until the next snapshot");
    assert!(p.verify_jwt(&token(Some("at-other")), NOW).is_ok());
    assert!(p.verify_jwt(&token(None), NOW).is_ok());
    // While a list is checked, a jti of the wrong type is refused.
    let odd = with_claims(|c| c["jti"] = json!(7));
    assert_eq!(
        p.verify_jwt(&odd, NOW).unwrap_err(),
        TokenError::BadClaimType("jti")
    );
    // The list round-trips through the snapshot format and is left out when empty.
    let spec: crate::snapshot::Snapshot = serde_json::from_value(snap).unwrap();
    assert_eq!(spec.issuers[0].revoked_token_ids, ["at-revoked"]);
    let plain: crate::snapshot::Snapshot = serde_json::from_value(snapshot()).unwrap();
    assert!(!serde_json::to_string(&plain)
        .unwrap()
        .contains("revoked_token_ids"));
}
