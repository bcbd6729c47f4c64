//! One snapshot entry at a time: issuers, servers and settings validated and compiled. Each
//! function takes the entry's field path so an error names it.

use std::collections::HashMap;

use super::{invalid, Issuer, Server, Settings, SnapshotError};
use crate::keys::{Algorithm, VerifyingKey};
use crate::patterns::Patterns;
use crate::snapshot::{IssuerSpec, ServerSpec, SettingsSpec};

pub(super) fn compile_issuer(field: &str, spec: &IssuerSpec) -> Result<Issuer, SnapshotError> {
    if spec.issuer.is_empty() {
        return Err(invalid(format!("{field}.issuer"), "empty issuer"));
    }
    if spec.algorithms.is_empty() {
        return Err(invalid(
            format!("{field}.algorithms"),
            "list at least one algorithm",
        ));
    }
    let mut algorithms = Vec::new();
    for (i, name) in spec.algorithms.iter().enumerate() {
        if name.eq_ignore_ascii_case("none") {
            return Err(invalid(
                format!("{field}.algorithms[{i}]"),
                "\"none\" is never accepted",
            ));
        }
        let alg = Algorithm::from_name(name).ok_or_else(|| {
            invalid(
                format!("{field}.algorithms[{i}]"),
                format!("unsupported algorithm {name:?}"),
            )
        })?;
        algorithms.push(alg);
    }
    let hmac = algorithms.iter().filter(|a| a.is_hmac()).count();
    if hmac != 0 && hmac != algorithms.len() {
        return Err(invalid(
            format!("{field}.algorithms"),
            "HMAC and public-key algorithms cannot be mixed for one issuer",
        ));
    }
    // An IdP's JWKS often also lists encryption keys, key types we do not support and keys for
    // algorithms this issuer does not accept (Keycloak publishes an RSA-OAEP key by default):
    // those are skipped, not refused. A malformed or weak key is still an error.
    let mut keys = Vec::with_capacity(spec.jwks.keys.len());
    let mut keys_by_kid = HashMap::new();
    for (i, jwk) in spec.jwks.keys.iter().enumerate() {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            continue;
        }
        let key = match VerifyingKey::from_jwk(jwk) {
            Ok(key) => key,
            // A kind of key we do not verify with (P-521, Ed448, an encryption algorithm):
            // it cannot sign anything we accept, so it is left out like an `enc` key.
            Err(e) if e.is_unsupported() => continue,
            Err(e) => return Err(invalid(format!("{field}.jwks.keys[{i}]"), e.to_string())),
        };
        if !algorithms.iter().any(|&alg| key.accepts(alg)) {
            continue;
        }
        if let Some(kid) = key.kid() {
            if keys_by_kid.insert(kid.to_owned(), keys.len()).is_some() {
                return Err(invalid(
                    format!("{field}.jwks.keys[{i}].kid"),
                    format!("duplicate kid {kid:?}"),
                ));
            }
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(invalid(
            format!("{field}.jwks.keys"),
            "no signature key that fits the issuer's algorithms",
        ));
    }
    if spec.audiences.is_empty() && !spec.audience_is_resource && spec.client_ids.is_empty() {
        return Err(invalid(
            format!("{field}.audiences"),
            "set audiences, audience_is_resource or client_ids: tokens must be checked for who they were issued to",
        ));
    }
    if spec.groups_claim.is_empty() {
        return Err(invalid(format!("{field}.groups_claim"), "empty claim path"));
    }
    if spec.username_claim.is_empty() {
        return Err(invalid(
            format!("{field}.username_claim"),
            "empty claim name",
        ));
    }
    if spec.leeway_seconds > 300 {
        return Err(invalid(
            format!("{field}.leeway_seconds"),
            "at most 300 seconds of clock skew",
        ));
    }
    Ok(Issuer {
        issuer: spec.issuer.clone(),
        keys: keys.into_boxed_slice(),
        keys_by_kid,
        algorithms: algorithms.into_boxed_slice(),
        audiences: spec.audiences.clone().into_boxed_slice(),
        audience_is_resource: spec.audience_is_resource,
        client_ids: spec.client_ids.clone().into_boxed_slice(),
        groups_claim: spec.groups_claim.clone(),
        username_claim: spec.username_claim.clone(),
        token_use: spec.token_use.clone(),
        leeway_seconds: spec.leeway_seconds,
        revoked: spec.revoked_token_ids.iter().cloned().collect(),
    })
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
        && !url.contains(['#', '"', ' ', '\\'])
        && !url.chars().any(char::is_control)
}

pub(super) fn compile_server(field: &str, spec: &ServerSpec) -> Result<Server, SnapshotError> {
    if spec.name.is_empty() {
        return Err(invalid(format!("{field}.name"), "empty name"));
    }
    let prefix = &spec.path_prefix;
    let bad_prefix = !prefix.starts_with('/')
        || prefix.len() < 2
        || prefix.ends_with('/')
        || prefix.contains(['?', '#', '%', '\\', '"'])
        || prefix.contains("//")
        || prefix
            .split('/')
            .any(|s| s == "." || s == ".." || s == ".well-known")
        || prefix.chars().any(|c| c.is_control() || c.is_whitespace());
    if bad_prefix {
        return Err(invalid(
            format!("{field}.path_prefix"),
            format!("{prefix:?} must look like /name (starts with /, no trailing /, no . or .. segments, no query)"),
        ));
    }
    if !is_http_url(&spec.resource) || spec.resource.ends_with('/') {
        return Err(invalid(
            format!("{field}.resource"),
            format!(
                "{:?} must be an absolute http(s) URL without a trailing slash or fragment",
                spec.resource
            ),
        ));
    }
    if !is_http_url(&spec.resource_metadata) {
        return Err(invalid(
            format!("{field}.resource_metadata"),
            format!(
                "{:?} must be an absolute http(s) URL",
                spec.resource_metadata
            ),
        ));
    }
    for (i, scope) in spec.scopes_supported.iter().enumerate() {
        if scope.is_empty()
            || scope.contains([' ', '"', '\\'])
            || scope.chars().any(char::is_control)
        {
            return Err(invalid(
                format!("{field}.scopes_supported[{i}]"),
                format!("{scope:?} is not a valid scope token"),
            ));
        }
    }
    let mut challenge = format!("Bearer resource_metadata=\"{}\"", spec.resource_metadata);
    if !spec.scopes_supported.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", spec.scopes_supported.join(" ")));
    }
    Ok(Server {
        name: spec.name.clone(),
        path_prefix: prefix.clone(),
        resource: spec.resource.clone(),
        resource_metadata: spec.resource_metadata.clone(),
        challenge,
    })
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub(super) fn compile_settings(spec: &SettingsSpec) -> Result<Settings, SnapshotError> {
    const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
    if spec.max_body_bytes == 0 || spec.max_body_bytes > MAX_BODY_LIMIT {
        return Err(invalid(
            "settings.max_body_bytes",
            format!("must be between 1 and {MAX_BODY_LIMIT}"),
        ));
    }
    if !(512..=1024 * 1024).contains(&spec.max_token_bytes) {
        return Err(invalid(
            "settings.max_token_bytes",
            "must be between 512 and 1048576",
        ));
    }
    for (field, name) in [
        ("settings.api_key_header", &spec.api_key_header),
        ("settings.user_header", &spec.user_header),
        ("settings.groups_header", &spec.groups_header),
        ("settings.scopes_header", &spec.scopes_header),
    ] {
        if !is_header_name(name) {
            return Err(invalid(
                field,
                format!("{name:?} is not a lowercase header name"),
            ));
        }
        if matches!(
            name.as_str(),
            "authorization" | "host" | "cookie" | "content-length" | "content-type"
        ) {
            return Err(invalid(field, format!("{name:?} is reserved")));
        }
    }
    let identity = [&spec.user_header, &spec.groups_header, &spec.scopes_header];
    if identity.iter().any(|h| **h == spec.api_key_header)
        || identity[0] == identity[1]
        || identity[1] == identity[2]
        || identity[0] == identity[2]
    {
        return Err(invalid(
            "settings",
            "identity and API-key headers must all differ",
        ));
    }
    let base_methods = Patterns::parse(&spec.base_methods)
        .map_err(|(i, e)| invalid(format!("settings.base_methods[{i}]"), e))?;
    for (i, origin) in spec.allowed_origins.iter().enumerate() {
        if !is_http_url(origin)
            || origin
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .contains('/')
        {
            return Err(invalid(
                format!("settings.allowed_origins[{i}]"),
                format!("{origin:?} must be an origin such as https://app.example.com"),
            ));
        }
    }
    if spec.token_cache_entries > 1_000_000 || spec.negative_cache_entries > 1_000_000 {
        return Err(invalid(
            "settings",
            "cache sizes are capped at 1000000 entries",
        ));
    }
    Ok(Settings {
        max_body_bytes: spec.max_body_bytes,
        max_token_bytes: spec.max_token_bytes,
        api_key_header: spec.api_key_header.clone(),
        user_header: spec.user_header.clone(),
        groups_header: spec.groups_header.clone(),
        scopes_header: spec.scopes_header.clone(),
        base_methods,
        step_up_scopes: spec.step_up_scopes,
        authorization_server: spec.authorization_server,
        allowed_origins: spec.allowed_origins.clone().into_boxed_slice(),
        token_cache_entries: spec.token_cache_entries,
        negative_cache_entries: spec.negative_cache_entries,
        negative_cache_seconds: spec.negative_cache_seconds,
    })
}

pub(super) fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
