//! The URL MCP clients connect to for a registered server: RFC 9728's `resource`, the RFC 8707
//! audience a token must carry, and the URL every connect config hands out. One set of rules.

use serde::Serialize;
use url::Url;

/// The server as registered (the registry's fields, unresolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerEntry {
    pub name: String,
    /// Registry path, e.g. `/my-server`.
    pub path: String,
    pub proxy_pass_url: String,
    pub oauth_client_id: Option<String>,
    /// `None` = auto-detect from `proxy_pass_url`.
    pub append_mcp_path: Option<bool>,
    /// Overrides the whole URL when set (absolute URL, or a path on `public_url`).
    pub mcp_endpoint: Option<String>,
}

/// Where `append_mcp_path`'s value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppendSource {
    /// Set on the server entry.
    Configured,
    /// Unset: derived from `proxy_pass_url`.
    AutoDetected,
    /// `mcp_endpoint` overrides the URL; `append_mcp_path` does not apply.
    McpEndpoint,
}

/// The resolved URL and its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUrl {
    pub url: String,
    pub append_mcp_path: bool,
    pub source: AppendSource,
}

/// Auto-detection rule for an unset `append_mcp_path`: a `proxy_pass_url` whose path (trailing
/// slashes ignored, case-sensitive) already ends in `/mcp` or `/sse` points at the MCP endpoint
/// itself, so the gateway URL is the server path as is; otherwise the upstream serves MCP under
/// `/mcp` and the suffix is appended. An unparsable `proxy_pass_url` appends (the common case).
pub fn auto_append_mcp_path(proxy_pass_url: &str) -> bool {
    let path = match Url::parse(proxy_pass_url.trim()) {
        Ok(u) => u.path().to_string(),
        Err(_) => return true,
    };
    let path = path.trim_end_matches('/');
    !(path.ends_with("/mcp") || path.ends_with("/sse"))
}

/// The URL clients connect to, built as text (no validation): `mcp_endpoint` if set (an
/// absolute URL, or a path starting with `/` taken on `public_url`), else `public_url` + server
/// path (+ `/mcp` when `append_mcp_path` is true or auto-detected); never a trailing slash.
///
/// This is the one implementation of these rules: [`super::Server::mcp_url`] (the RFC 9728
/// `resource` of protected-resource metadata, the RFC 8707 token audience) and the connect
/// configs both call it, so the URL a config carries and the metadata's `resource` are the same
/// string.
pub fn mcp_url(server: &ServerEntry, public_url: &str) -> ResolvedUrl {
    let base = public_url.trim().trim_end_matches('/');
    if let Some(ep) = server
        .mcp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let url = if ep.starts_with('/') {
            format!("{base}{}", ep.trim_end_matches('/'))
        } else {
            ep.trim_end_matches('/').to_string()
        };
        return ResolvedUrl {
            url,
            append_mcp_path: false,
            source: AppendSource::McpEndpoint,
        };
    }
    let (append, source) = match server.append_mcp_path {
        Some(v) => (v, AppendSource::Configured),
        None => (
            auto_append_mcp_path(&server.proxy_pass_url),
            AppendSource::AutoDetected,
        ),
    };
    let path = server.path.trim().trim_matches('/');
    let mut url = base.to_string();
    if !path.is_empty() {
        url.push('/');
        url.push_str(path);
    }
    if append {
        url.push_str("/mcp");
    }
    ResolvedUrl {
        url,
        append_mcp_path: append,
        source,
    }
}
