//! Authentication: challenges, invalid tokens, accepted algorithms.

use portcullis::devtools::DevAlg;
use portcullis_e2e::snapshot::{
    self, claims, rpc, AUDIENCE, GROUP_DEVS, ISSUER, MCP_PATH, RESOURCE_METADATA, WELL_KNOWN_PATH,
};
use portcullis_e2e::util::now;
use portcullis_e2e::{challenge_param, Request};
use serde_json::json;

use crate::common::{
    assert_invalid_token, assert_json_error, challenge, impostor_key, key, scopes_supported,
    standard, token, Gate, KID_EC, KID_RSA,
};

fn tools_list() -> serde_json::Value {
    rpc(1, "tools/list", json!({}))
}

/// Sends `tools/list` with `Authorization: Bearer <token>` and asserts a 401 invalid_token that
/// never reached the upstream.
fn expect_invalid(gate: &Gate, what: &str, token: &str) {
    let resp = gate
        .envoy
        .send(Request::post(MCP_PATH).json(&tools_list()).bearer(token));
    assert_invalid_token(&resp, what);
    gate.assert_upstream_untouched(what);
}

#[test]
fn well_known_metadata_passes_without_credentials() {
    let gate = Gate::start("well_known", &standard().build());
    for path in [WELL_KNOWN_PATH, "/.well-known/oauth-protected-resource"] {
        let resp = gate.envoy.send(Request::get(path));
        assert_eq!(resp.status, 200, "{path}: {}", resp.describe());
        assert_eq!(
            resp.header("x-echo-upstream"),
            Some("1"),
            "{path} reached the upstream"
        );
    }
    let paths: Vec<String> = gate
        .upstream
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths.len(), 2, "{paths:?}");

    // Credentials sent along to a discovery document are not forwarded either.
    gate.upstream.clear();
    let t = token("alice", &[GROUP_DEVS]);
    let resp = gate.envoy.send(
        Request::get(WELL_KNOWN_PATH)
            .bearer(&t)
            .header("x-api-key", "pk_secret"),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    let seen = gate.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[0].header("x-api-key"), None);
}

#[test]
fn no_credentials_get_a_401_challenge() {
    let gate = Gate::start("no_credentials", &standard().build());
    let init = rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "0"}}),
    );
    // POST (what MCP clients send) and GET (what Codex probes with first).
    for req in [
        Request::post(MCP_PATH).json(&init),
        Request::get(MCP_PATH).header("accept", "text/event-stream"),
    ] {
        let method = req.method.clone();
        let resp = gate.envoy.send(req);
        assert_eq!(resp.status, 401, "{method}: {}", resp.describe());
        let c = challenge(&resp);
        assert_eq!(
            challenge_param(&c, "resource_metadata").as_deref(),
            Some(RESOURCE_METADATA),
            "{method}: {c:?}"
        );
        assert_eq!(
            challenge_param(&c, "scope").as_deref(),
            Some(scopes_supported().as_str()),
            "{method}: {c:?}"
        );
        assert!(
            challenge_param(&c, "error").is_none(),
            "{method}: no error code when no credentials were sent (RFC 6750 §3.1): {c:?}"
        );
        assert_json_error(&resp, 401, None);
    }
    // An empty bearer is no credential either, or an invalid one: never a pass.
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&init)
            .header("authorization", "Bearer "),
    );
    assert_eq!(resp.status, 401, "{}", resp.describe());
    gate.assert_upstream_untouched("no credentials");
}

#[test]
fn malformed_tokens_are_invalid() {
    let gate = Gate::start("malformed_tokens", &standard().build());
    for (what, t) in [
        ("not a JWT", "not-a-jwt"),
        ("three junk parts", "a.b.c"),
        ("bad base64", "e30.!!!.e30"),
        ("JSON-less header", "eyJub3QganNvbg.eyJzdWIiOiJ4In0.c2ln"),
    ] {
        expect_invalid(&gate, what, t);
    }
    // Not a Bearer scheme at all.
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&tools_list())
            .header("authorization", "Basic YWxpY2U6c2VjcmV0"),
    );
    assert_eq!(resp.status, 401, "Basic auth: {}", resp.describe());
    gate.assert_upstream_untouched("Basic auth");
}

#[test]
fn expired_and_not_yet_valid_tokens_are_invalid() {
    let gate = Gate::start("expired_tokens", &standard().build());
    let k = key(DevAlg::ES256);
    let t = now();
    let mut c = claims("alice", &[GROUP_DEVS]);
    c["iat"] = json!(t - 7200);
    c["nbf"] = json!(t - 7200);
    c["exp"] = json!(t - 3600);
    expect_invalid(&gate, "expired", &k.sign(&c));
    let mut c = claims("alice", &[GROUP_DEVS]);
    c["nbf"] = json!(t + 3600);
    c["exp"] = json!(t + 7200);
    expect_invalid(&gate, "not yet valid", &k.sign(&c));
    let mut c = claims("alice", &[GROUP_DEVS]);
    c.as_object_mut().unwrap().remove("exp");
    expect_invalid(&gate, "no exp", &k.sign(&c));
}

#[test]
fn wrong_audience_is_invalid() {
    let gate = Gate::start("wrong_audience", &standard().build());
    let k = key(DevAlg::ES256);
    let mut c = claims("alice", &[GROUP_DEVS]);
    c["aud"] = json!("someone-else");
    expect_invalid(&gate, "wrong aud", &k.sign(&c));
    c["aud"] = json!(["someone-else", "another"]);
    expect_invalid(&gate, "wrong aud list", &k.sign(&c));
    c.as_object_mut().unwrap().remove("aud");
    expect_invalid(
        &gate,
        "no aud (issuer has no client_ids allowlist)",
        &k.sign(&c),
    );
    // Sanity: the same token with the right audience passes.
    c["aud"] = json!(["someone-else", AUDIENCE]);
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&tools_list())
            .bearer(&k.sign(&c)),
    );
    assert_eq!(
        resp.status,
        200,
        "aud list containing ours: {}",
        resp.describe()
    );
}

#[test]
fn wrong_issuer_is_invalid() {
    let gate = Gate::start("wrong_issuer", &standard().build());
    let k = key(DevAlg::ES256);
    let mut c = claims("alice", &[GROUP_DEVS]);
    c["iss"] = json!("https://evil.example");
    expect_invalid(&gate, "unknown iss", &k.sign(&c));
    c["iss"] = json!(format!("{ISSUER}/"));
    expect_invalid(&gate, "iss with a trailing slash", &k.sign(&c));
    c.as_object_mut().unwrap().remove("iss");
    expect_invalid(&gate, "no iss", &k.sign(&c));
}

#[test]
fn signatures_by_other_keys_are_invalid() {
    let gate = Gate::start("foreign_signatures", &standard().build());
    let c = claims("alice", &[GROUP_DEVS]);
    // Same kid as a trusted key, different key.
    expect_invalid(
        &gate,
        "impostor key with a trusted kid",
        &impostor_key().sign(&c),
    );
    // A trusted signature over other claims.
    let honest = key(DevAlg::ES256).sign(&claims("alice", &[GROUP_DEVS]));
    let forged = snapshot::with_payload(&honest, &claims("alice", &["admins"]));
    expect_invalid(&gate, "tampered payload", &forged);
    // Unknown kid.
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": "nobody"});
    expect_invalid(
        &gate,
        "unknown kid",
        &impostor_key().sign_with_header(&header, &c),
    );
    // A trusted key's kid, but the RSA key's kid with an ES256 signature.
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": KID_RSA});
    expect_invalid(
        &gate,
        "kid of another trusted key",
        &key(DevAlg::ES256).sign_with_header(&header, &c),
    );
}

#[test]
fn forbidden_algorithms_are_invalid() {
    let gate = Gate::start("forbidden_algorithms", &standard().build());
    let c = claims("alice", &[GROUP_DEVS]);
    expect_invalid(&gate, "alg none", &snapshot::alg_none_token(&c, KID_EC));
    // HMAC keyed with the public key (algorithm confusion).
    let public = key(DevAlg::RS256).public_jwk().to_string();
    expect_invalid(
        &gate,
        "HS256 with the public JWK as secret",
        &snapshot::hs256_token(&c, KID_RSA, public.as_bytes()),
    );
    let n = key(DevAlg::RS256).public_jwk()["n"]
        .as_str()
        .unwrap()
        .to_string();
    expect_invalid(
        &gate,
        "HS256 with the modulus as secret",
        &snapshot::hs256_token(&c, KID_RSA, n.as_bytes()),
    );
}

#[test]
fn every_supported_algorithm_is_accepted() {
    let gate = Gate::start("algorithms", &standard().build());
    for alg in DevAlg::ALL {
        let t = key(alg).sign(&claims("alice", &[GROUP_DEVS]));
        let resp = gate
            .envoy
            .send(Request::post(MCP_PATH).json(&tools_list()).bearer(&t));
        assert_eq!(resp.status, 200, "{alg}: {}", resp.describe());
        assert_eq!(resp.header("x-echo-upstream"), Some("1"));
        // Again: served from the verified-token cache.
        let resp = gate
            .envoy
            .send(Request::post(MCP_PATH).json(&tools_list()).bearer(&t));
        assert_eq!(resp.status, 200, "{alg} (cached): {}", resp.describe());
    }
    assert_eq!(gate.upstream.requests().len(), 6);
    // An issuer that lists only RS256 refuses other algorithms. (A snapshot whose JWKS holds a
    // key that fits none of the issuer's algorithms is refused as a whole by the policy, so the
    // restricted issuer trusts only the RSA key.)
    drop(gate);
    let rsa = key(DevAlg::RS256);
    let snap = standard()
        .edit(|s| {
            s["issuers"][0]["algorithms"] = json!(["RS256"]);
            s["issuers"][0]["jwks"] = json!({"keys": [rsa.public_jwk()]});
        })
        .build();
    let gate = Gate::start("algorithms_restricted", &snap);
    let c = claims("alice", &[GROUP_DEVS]);
    for alg in ["RS384", "RS512", "PS256", "ES256"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": KID_RSA});
        expect_invalid(
            &gate,
            &format!("header alg {alg} when only RS256 is allowed"),
            &rsa.sign_with_header(&header, &c),
        );
    }
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&tools_list())
            .bearer(&token("alice", &[GROUP_DEVS])),
    );
    assert_invalid_token(&resp, "ES256 token when only RS256 is allowed");
    let ok = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&tools_list())
            .bearer(&rsa.sign(&c)),
    );
    assert_eq!(ok.status, 200, "RS256: {}", ok.describe());
}

#[test]
fn a_user_without_grants_is_authenticated_but_denied() {
    let gate = Gate::start("no_grants", &standard().build());
    let t = token("bob", &["nobody-group"]);
    let resp = gate
        .envoy
        .send(Request::post(MCP_PATH).json(&tools_list()).bearer(&t));
    assert_eq!(resp.status, 403, "{}", resp.describe());
    gate.assert_upstream_untouched("no grants");
}
