//! Where MCP clients look for metadata, in the order they look.
//!
//! - Protected-resource metadata (RFC 9728 §3.1, MCP authorization "Protected Resource Metadata
//!   Discovery"): the `resource_metadata` URL from the 401 challenge, then the path-suffixed
//!   well-known URL (`/.well-known/oauth-protected-resource/<path>`), then the path-appended one
//!   (`<path>/.well-known/oauth-protected-resource`, which Codex also tries), then the root
//!   (`/.well-known/oauth-protected-resource`).
//! - Authorization-server metadata (MCP authorization "Authorization Server Metadata Discovery"):
//!   for an issuer with a path, RFC 8414 path insertion, OIDC discovery path insertion, OIDC
//!   discovery path appending; for an issuer without a path, the RFC 8414 and the OIDC
//!   well-known URLs at the root.
//!
//! A terminating `/` of the path is removed before inserting or appending (RFC 8414 §3.1).

use serde::Serialize;
use url::Url;

/// Where a protected-resource metadata candidate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrmSource {
    /// `resource_metadata` in the 401 challenge.
    Challenge,
    /// `/.well-known/oauth-protected-resource/<path>`.
    PathSuffixed,
    /// `<path>/.well-known/oauth-protected-resource`.
    PathAppended,
    /// `/.well-known/oauth-protected-resource`.
    Root,
}

impl PrmSource {
    pub fn describe(self) -> &'static str {
        match self {
            PrmSource::Challenge => "the WWW-Authenticate resource_metadata URL",
            PrmSource::PathSuffixed => "the path-suffixed well-known URL",
            PrmSource::PathAppended => "the path-appended well-known URL",
            PrmSource::Root => "the root well-known URL",
        }
    }
}

/// Which well-known document an authorization-server candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AsSource {
    /// RFC 8414: `/.well-known/oauth-authorization-server/<issuer path>` (or at the root).
    Oauth,
    /// OIDC discovery with path insertion: `/.well-known/openid-configuration/<issuer path>`
    /// (or at the root for an issuer without a path).
    OidcInserted,
    /// OIDC discovery with path appending: `<issuer>/.well-known/openid-configuration`.
    OidcAppended,
}

impl AsSource {
    pub fn describe(self) -> &'static str {
        match self {
            AsSource::Oauth => "RFC 8414 authorization-server metadata",
            AsSource::OidcInserted => "OpenID Connect discovery (path insertion)",
            AsSource::OidcAppended => "OpenID Connect discovery (path appending)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<S> {
    pub url: String,
    pub source: S,
}

pub const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
pub const OAUTH_AS_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
pub const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// `scheme://host[:port]` of `url` (IPv6 hosts bracketed, default port omitted).
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The URL's path without a terminating `/` (`""` for the root).
fn trimmed_path(url: &Url) -> &str {
    url.path().trim_end_matches('/')
}

/// `?query` or `""`.
fn query(url: &Url) -> String {
    url.query().map(|q| format!("?{q}")).unwrap_or_default()
}

/// Protected-resource metadata candidates for the MCP URL `resource`, in client order, without
/// duplicates. `challenge` is the `resource_metadata` parameter, when the 401 had one.
pub fn prm_candidates(resource: &Url, challenge: Option<&str>) -> Vec<Candidate<PrmSource>> {
    let mut out: Vec<Candidate<PrmSource>> = Vec::new();
    let mut push = |url: String, source| {
        if !out.iter().any(|c| c.url == url) {
            out.push(Candidate { url, source });
        }
    };
    if let Some(c) = challenge {
        push(c.to_string(), PrmSource::Challenge);
    }
    let (o, path, q) = (origin(resource), trimmed_path(resource), query(resource));
    if !path.is_empty() {
        push(
            format!("{o}{PRM_WELL_KNOWN}{path}{q}"),
            PrmSource::PathSuffixed,
        );
        push(
            format!("{o}{path}{PRM_WELL_KNOWN}"),
            PrmSource::PathAppended,
        );
    }
    push(format!("{o}{PRM_WELL_KNOWN}"), PrmSource::Root);
    out
}

/// Authorization-server metadata candidates for `issuer`, in the order the MCP specification
/// gives.
pub fn as_candidates(issuer: &Url) -> Vec<Candidate<AsSource>> {
    let (o, path) = (origin(issuer), trimmed_path(issuer));
    if path.is_empty() {
        vec![
            Candidate {
                url: format!("{o}{OAUTH_AS_WELL_KNOWN}"),
                source: AsSource::Oauth,
            },
            Candidate {
                url: format!("{o}{OIDC_WELL_KNOWN}"),
                source: AsSource::OidcInserted,
            },
        ]
    } else {
        vec![
            Candidate {
                url: format!("{o}{OAUTH_AS_WELL_KNOWN}{path}"),
                source: AsSource::Oauth,
            },
            Candidate {
                url: format!("{o}{OIDC_WELL_KNOWN}{path}"),
                source: AsSource::OidcInserted,
            },
            Candidate {
                url: format!("{o}{path}{OIDC_WELL_KNOWN}"),
                source: AsSource::OidcAppended,
            },
        ]
    }
}

/// Whether `url`'s host is a loopback name or address (`localhost`, `127.0.0.0/8`, `::1`), where
/// plain http is acceptable (RFC 8252 §8.3).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// Whether `url` is plain http to a host that is not loopback.
pub fn is_insecure(url: &Url) -> bool {
    url.scheme() == "http" && !is_loopback(url)
}

#[cfg(test)]
mod tests;
