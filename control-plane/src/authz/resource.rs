//! RFC 8707 `resource`: which MCP server a token is for. The answer becomes the access
//! token's audience (`aud`), which the filter compares with the server's URL.
//!
//! Rules ([`resolve_audience`] at `/authorize`, [`check_token_resource`] at `/token`):
//! - a `resource` is an absolute `https` URI, or `http` to a loopback host (`127.0.0.1`,
//!   `[::1]`, `localhost`, for local demos); no fragment (RFC 8707 §2), no userinfo;
//! - it must name one registered server's MCP URL (the registry's `mcp_url`, passed in). The
//!   comparison is on the canonical form MCP's authorization spec describes: lowercase scheme
//!   and host, default port dropped, dot segments resolved (all by the WHATWG URL parser) and no
//!   trailing slash; the audience we answer is the registered string, never the client's
//!   spelling;
//! - missing, malformed or unknown → `invalid_target` (RFC 8707 §2 names "missing" too: MCP
//!   clients MUST send it, and with several servers there is no default to fall back to);
//! - several `resource` values → `invalid_target`, even when each is known. MCP clients send
//!   one, and a token with several audiences could be replayed at every one of them: audience
//!   binding exists to stop exactly that. Repeating the same server is not "several".
//! - at `/token` a `resource` may be omitted (the code's or family's audience stands) or repeat
//!   it; any other value is `invalid_target` (RFC 8707 §2.2: no widening past the grant).

use url::Url;

use super::error::OAuthError;
use super::redirect::LOOPBACK_HOSTS;

/// The canonical form two resource URIs are compared in; `None` when it is not a resource we
/// could ever issue for.
pub fn canonical(resource: &str) -> Option<String> {
    if resource.contains('#') || resource.bytes().any(|b| !b.is_ascii_graphic()) {
        return None;
    }
    let mut url = Url::parse(resource).ok()?;
    let loopback = url.host_str().is_some_and(|h| LOOPBACK_HOSTS.contains(&h));
    let allowed = match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => loopback,
        _ => false,
    };
    if !allowed || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    let mut text = url.to_string();
    // `Url` keeps a `/` for an empty path; the canonical server URI has none.
    if url.path() == "/" && url.query().is_none() {
        text.pop();
    }
    Some(text)
}

/// The audience for a request's `resource` values (as sent, in order), given the MCP URLs of
/// the registered servers.
pub fn resolve_audience<'k>(
    requested: &[&str],
    known: &'k [String],
) -> Result<&'k str, OAuthError> {
    let Some((first, others)) = requested.split_first() else {
        return Err(OAuthError::invalid_target(
            "resource is required: the MCP server's URL (RFC 8707)",
        ));
    };
    let first_canonical = canonical(first).ok_or_else(malformed)?;
    for other in others {
        if canonical(other).ok_or_else(malformed)? != first_canonical {
            return Err(OAuthError::invalid_target(
                "one resource per request: a token is for one MCP server",
            ));
        }
    }
    known
        .iter()
        .find(|k| canonical(k).as_deref() == Some(first_canonical.as_str()))
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_target("resource is not a registered MCP server"))
}

fn malformed() -> OAuthError {
    OAuthError::invalid_target(
        "resource must be an absolute https URI (http only for loopback) without a fragment",
    )
}

/// The `/token` check: `resource` values sent with a code or refresh token may only repeat
/// the audience that was granted.
pub fn check_token_resource(requested: &[&str], granted: &str) -> Result<(), OAuthError> {
    let granted = canonical(granted);
    for r in requested {
        let c = canonical(r).ok_or_else(malformed)?;
        if Some(c) != granted {
            return Err(OAuthError::invalid_target(
                "resource differs from the one this grant is for",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
