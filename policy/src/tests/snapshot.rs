//! Snapshot validation: every refusal names the field.

use serde_json::json;

use super::*;
use crate::SnapshotError;

fn refused(snapshot: &serde_json::Value) -> String {
    Policy::from_json(snapshot.to_string().as_bytes())
        .expect_err("snapshot must be refused")
        .to_string()
}

fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut snap = snapshot();
    edit(&mut snap);
    refused(&snap)
}

#[test]
fn the_example_snapshot_compiles() {
    let p = compile(&snapshot());
    assert_eq!(p.version, 7);
    assert_eq!(p.servers.len(), 2);
    assert_eq!(
        p.servers[0].challenge,
        "Bearer resource_metadata=\"https://gw.test/.well-known/oauth-protected-resource/everything/mcp\", scope=\"openid email\""
    );
    assert_eq!(p.settings.max_body_bytes, 1024 * 1024);
}

#[test]
fn documented_example_compiles() {
    let example = include_str!("../../../docs/policy-example.json");
    Policy::from_json(example.as_bytes()).expect("docs/policy-example.json is valid");
}

#[test]
fn unknown_fields_are_named() {
    let message = edited(|s| s["servers"][0]["path"] = json!("/x"));
    assert!(
        message.starts_with("servers[0].path: unknown field `path`"),
        "{message}"
    );
    let message = edited(|s| s["settings"] = json!({"max_body": 5}));
    assert!(
        message.starts_with("settings.max_body: unknown field `max_body`"),
        "{message}"
    );
    let message = edited(|s| s["extra"] = json!(1));
    assert!(message.contains("unknown field `extra`"), "{message}");
}

#[test]
fn wrong_types_are_named() {
    let message = edited(|s| s["version"] = json!("seven"));
    assert!(message.starts_with("version: invalid type"), "{message}");
    let message = edited(|s| s["issuers"][0]["algorithms"] = json!("RS256"));
    assert!(
        message.starts_with("issuers[0].algorithms: invalid type"),
        "{message}"
    );
    let message = refused(&json!("a string"));
    assert!(message.starts_with("snapshot: invalid type"), "{message}");
    assert!(refused(&json!([])).starts_with("snapshot: invalid length 0"));
    assert!(Policy::from_json(b"{\"format\":1,\"version\":1} trailing").is_err());
}

#[test]
fn semantic_errors_are_named() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|s| s["format"] = json!(2)),
            "format: unsupported format 2",
        ),
        (
            Box::new(|s| s["issuers"][0]["algorithms"] = json!(["none"])),
            "issuers[0].algorithms[0]: \"none\" is never accepted",
        ),
        (
            Box::new(|s| s["issuers"][0]["algorithms"] = json!(["RS256", "HS256"])),
            "issuers[0].algorithms: HMAC and public-key",
        ),
        (
            Box::new(|s| s["issuers"][0]["algorithms"] = json!(["XS256"])),
            "issuers[0].algorithms[0]: unsupported algorithm",
        ),
        (
            Box::new(|s| s["issuers"][0]["algorithms"] = json!(["ES256"])),
            "issuers[0].jwks.keys: no signature key that fits",
        ),
        (
            Box::new(|s| s["issuers"][0]["audiences"] = json!([])),
            "issuers[0].audiences: set audiences",
        ),
        (
            Box::new(|s| s["issuers"][0]["jwks"]["keys"] = json!([])),
            "issuers[0].jwks.keys: no signature key",
        ),
        (
            Box::new(|s| s["issuers"][0]["jwks"]["keys"][0]["n"] = json!("AQAB")),
            "issuers[0].jwks.keys[0]:",
        ),
        (
            Box::new(|s| s["issuers"][0]["leeway_seconds"] = json!(3600)),
            "issuers[0].leeway_seconds",
        ),
        (
            Box::new(|s| {
                let i = s["issuers"][0].clone();
                s["issuers"].as_array_mut().unwrap().push(i);
            }),
            "issuers[1].issuer: duplicate issuer",
        ),
        (
            Box::new(|s| s["servers"][1]["path_prefix"] = json!("/everything")),
            "servers[1].path_prefix: duplicate",
        ),
        (
            Box::new(|s| s["servers"][1]["name"] = json!("everything")),
            "servers[1].name: duplicate",
        ),
        (
            Box::new(|s| s["servers"][0]["path_prefix"] = json!("/a/../b")),
            "servers[0].path_prefix",
        ),
        (
            Box::new(|s| s["servers"][0]["path_prefix"] = json!("everything")),
            "servers[0].path_prefix",
        ),
        (
            Box::new(|s| s["servers"][0]["path_prefix"] = json!("/everything/")),
            "servers[0].path_prefix",
        ),
        (
            Box::new(|s| s["servers"][0]["resource"] = json!("ftp://x/mcp")),
            "servers[0].resource",
        ),
        (
            Box::new(|s| s["servers"][0]["resource"] = json!("https://x/mcp/")),
            "servers[0].resource",
        ),
        (
            Box::new(|s| s["servers"][0]["resource_metadata"] = json!("/relative")),
            "servers[0].resource_metadata",
        ),
        (
            Box::new(|s| s["servers"][0]["scopes_supported"] = json!(["a b"])),
            "servers[0].scopes_supported[0]",
        ),
        (
            Box::new(|s| s["group_mappings"][0]["scopes"] = json!(["nope"])),
            "group_mappings[0].scopes[0]: unknown scope \"nope\"",
        ),
        (
            Box::new(|s| s["scopes"][0]["grants"][0]["server"] = json!("ghost")),
            "scopes[0].grants[0].server: unknown server \"ghost\"",
        ),
        (
            Box::new(|s| s["scopes"][0]["grants"][0]["tools"] = json!(["a*b"])),
            "scopes[0].grants[0].tools[0]",
        ),
        (
            Box::new(|s| s["scopes"][1]["name"] = json!("everything-echo")),
            "scopes[1].name: duplicate scope",
        ),
        (
            Box::new(|s| s["api_keys"][0]["sha256"] = json!("ABC")),
            "api_keys[0].sha256",
        ),
        (
            Box::new(|s| s["api_keys"][0]["scopes"] = json!(["ghost"])),
            "api_keys[0].scopes[0]: unknown scope",
        ),
        (
            Box::new(|s| s["settings"] = json!({"max_body_bytes": 0})),
            "settings.max_body_bytes",
        ),
        (
            Box::new(|s| s["settings"] = json!({"user_header": "Authorization"})),
            "settings.user_header",
        ),
        (
            Box::new(|s| s["settings"] = json!({"user_header": "authorization"})),
            "settings.user_header: \"authorization\" is reserved",
        ),
        (
            Box::new(|s| s["settings"] = json!({"groups_header": "x-portcullis-user"})),
            "settings: identity and API-key headers must all differ",
        ),
        (
            Box::new(|s| s["settings"] = json!({"allowed_origins": ["https://a.test/path"]})),
            "settings.allowed_origins[0]",
        ),
    ];
    for (edit, expected) in cases {
        let message = edited(edit);
        assert!(
            message.starts_with(expected),
            "expected {expected:?}, got {message:?}"
        );
    }
}

#[test]
fn snapshot_error_is_structured() {
    let mut snap = snapshot();
    snap["format"] = json!(3);
    let error = Policy::from_json(snap.to_string().as_bytes()).unwrap_err();
    assert!(matches!(error, SnapshotError::Invalid { ref field, .. } if field == "format"));
}

#[test]
fn encryption_keys_and_keys_for_other_algorithms_are_skipped() {
    // What Keycloak publishes: a signing key, an encryption key, and here an EC key the issuer
    // does not accept.
    let mut snap = snapshot();
    let mut enc = rsa_jwk(&rsa_key("b"), "enc-1");
    enc["use"] = json!("enc");
    enc["alg"] = json!("RSA-OAEP");
    let ec = json!({"kty": "EC", "crv": "P-256", "kid": "ec-1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    snap["issuers"][0]["jwks"]["keys"]
        .as_array_mut()
        .unwrap()
        .extend([enc, ec]);
    let p = compile(&snap);
    assert_eq!(p.issuers[0].keys.len(), 1);
    assert!(p
        .verify_jwt(&rs256(&rsa_key("a"), Some("k1"), &claims()), NOW)
        .is_ok());
    assert_eq!(
        p.verify_jwt(&rs256(&rsa_key("b"), Some("enc-1"), &claims()), NOW)
            .unwrap_err(),
        crate::TokenError::UnknownKid
    );
}

#[test]
fn snapshots_round_trip_through_their_typed_form() {
    use crate::snapshot::Snapshot;
    for text in [
        include_str!("../../../docs/policy-example.json").to_string(),
        snapshot().to_string(),
    ] {
        let typed: Snapshot = serde_json::from_str(&text).expect("parses");
        let written = serde_json::to_string(&typed).expect("serializes");
        let again: Snapshot = serde_json::from_str(&written).expect("what we write parses");
        assert_eq!(again, typed);
        // Defaults are written out: the bytes say what the filter will use.
        let value: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert!(value["settings"]["max_body_bytes"].is_u64(), "{value}");
        assert!(value["issuers"][0]["groups_claim"].is_string(), "{value}");
        // And they compile to the same policy.
        let a = Policy::compile(typed).expect("compiles");
        let b = Policy::from_json(written.as_bytes()).expect("compiles");
        assert_eq!(a.version, b.version);
        assert_eq!(a.servers.len(), b.servers.len());
        assert_eq!(a.scope_names, b.scope_names);
    }
}

#[test]
fn a_new_issuer_spec_is_what_an_omitted_field_means() {
    use crate::keys::Jwks;
    use crate::snapshot::IssuerSpec;
    let jwks: Jwks = serde_json::from_value(json!({"keys": []})).unwrap();
    let parsed: IssuerSpec = serde_json::from_value(json!({
        "issuer": "https://idp", "jwks": {"keys": []}, "algorithms": ["RS256"],
    }))
    .unwrap();
    assert_eq!(
        IssuerSpec::new("https://idp".into(), jwks, vec!["RS256".into()]),
        parsed
    );
}
