//! The server registry and the access model it is compiled from: servers, scopes (`mcp_scopes`)
//! with their grants, and IdP group → scope mappings.

mod access_store;
mod api_key_store;
pub mod resource_url;
mod snapshot;
mod store;
pub mod validate;

use serde::{Deserialize, Serialize};

use self::resource_url::{auto_append_mcp_path, mcp_url, ServerEntry};

pub use snapshot::{
    api_key_specs, compile_snapshot, issuer_spec, issuer_specs, mapping_spec, scope_spec,
    server_spec, settings_spec, RegistryContents, SnapshotKeys, SnapshotSettings,
};

/// Every writable field of a server (what register and PUT carry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerFields {
    pub name: String,
    pub description: String,
    /// Gateway path, `/segment[/segment]`; the key.
    pub path: String,
    /// Upstream URL (http or https).
    pub proxy_pass_url: String,
    pub tags: Vec<String>,
    /// Public OAuth client id for this server's connect configs (else `IDE_OAUTH_CLIENT_ID`).
    pub oauth_client_id: Option<String>,
    /// `true`: clients connect to `<path>/mcp`; `false`: to `<path>`; `None`: auto-detect from
    /// `proxy_pass_url` (see [`Server::mcp_url`]).
    pub append_mcp_path: Option<bool>,
    /// Entire custom URL clients connect to; overrides the rules above.
    pub mcp_endpoint: Option<String>,
    pub license: Option<String>,
    pub num_tools: Option<i64>,
}

/// A registered MCP server, as stored: its fields (read through `Deref`) and when it was
/// registered and last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    #[serde(flatten)]
    pub fields: ServerFields,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::ops::Deref for Server {
    type Target = ServerFields;
    fn deref(&self) -> &ServerFields {
        &self.fields
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerFields {
        &mut self.fields
    }
}

impl Server {
    pub fn from_fields(fields: ServerFields, created_at: i64, updated_at: i64) -> Server {
        Server {
            fields,
            created_at,
            updated_at,
        }
    }

    pub fn fields(&self) -> ServerFields {
        self.fields.clone()
    }

    /// The server as the connect module sees it.
    pub fn connect_entry(&self) -> ServerEntry {
        ServerEntry {
            name: self.name.clone(),
            path: self.path.clone(),
            proxy_pass_url: self.proxy_pass_url.clone(),
            oauth_client_id: self.oauth_client_id.clone(),
            append_mcp_path: self.append_mcp_path,
            mcp_endpoint: self.mcp_endpoint.clone(),
        }
    }

    /// Whether `/mcp` is appended to the gateway path: the explicit setting, else auto-detect —
    /// an upstream whose URL already ends in `/mcp` (or `/sse`) is served at the path itself,
    /// any other upstream at `<path>/mcp` ([`auto_append_mcp_path`]).
    pub fn appends_mcp_path(&self) -> bool {
        self.append_mcp_path
            .unwrap_or_else(|| auto_append_mcp_path(&self.proxy_pass_url))
    }

    /// The exact URL MCP clients connect to (the RFC 9728 `resource`): `mcp_endpoint` when set,
    /// else `<public_url><path>[/mcp]`. The rules live in [`mcp_url`], which connect
    /// configs use too.
    pub fn mcp_url(&self, public_url: &str) -> String {
        mcp_url(&self.connect_entry(), public_url).url
    }

    /// The path part of [`Server::mcp_url`].
    pub fn mcp_url_path(&self, public_url: &str) -> String {
        let url = self.mcp_url(public_url);
        url::Url::parse(&url)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default()
    }

    /// Where this server's protected-resource metadata is: the RFC 9728 location for
    /// [`Server::mcp_url`] (`/.well-known/oauth-protected-resource` inserted before the path),
    /// on our public origin.
    pub fn resource_metadata_url(&self, public_url: &str) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource{}",
            public_url.trim_end_matches('/'),
            self.mcp_url_path(public_url)
        )
    }

    /// The JSON the API answers with: the stored fields plus the resolved URLs.
    pub fn to_api_json(&self, public_url: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("mcp_url".into(), self.mcp_url(public_url).into());
            obj.insert(
                "resource_metadata_url".into(),
                self.resource_metadata_url(public_url).into(),
            );
        }
        v
    }
}

/// Why a server claims an exact gateway path ([`Server::claimed_paths`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The server's path.
    Path,
    /// `<path>/mcp`: its MCP URL when `/mcp` is appended, and always a discovery base
    /// (`<path>/mcp/.well-known/…` is routed to the control plane for every server).
    McpSuffix,
    /// The path of a custom `mcp_endpoint` on this gateway's origin.
    Endpoint,
}

impl Claim {
    /// The API field a conflict on this claim is reported under.
    pub fn field(self) -> &'static str {
        match self {
            Claim::Path | Claim::McpSuffix => "path",
            Claim::Endpoint => "mcp_endpoint",
        }
    }

    fn describe(self, server_path: &str) -> String {
        match self {
            Claim::Path => format!("its path {server_path}"),
            Claim::McpSuffix => {
                format!("{server_path}/mcp, its MCP URL or the base of its discovery documents")
            }
            Claim::Endpoint => "its mcp_endpoint".to_string(),
        }
    }
}

/// Two servers would claim one exact gateway path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathConflict {
    /// The contested path.
    pub path: String,
    /// How the server being written claims it.
    pub claim: Claim,
    /// The server that already claims it, and how.
    pub other_name: String,
    pub other_path: String,
    pub other_claim: Claim,
}

impl PathConflict {
    /// The 409 message: names the field, the path and the other server.
    pub fn message(&self) -> String {
        format!(
            "{}: {} would be claimed by two servers: this one ({}) and the server {:?} at {} ({}); \
             every exact gateway path (a server's path, <path>/mcp, a custom mcp_endpoint) \
             belongs to one server",
            self.claim.field(),
            self.path,
            self.claim.describe("<path>"),
            self.other_name,
            self.other_path,
            self.other_claim.describe(&self.other_path),
        )
    }
}

impl Server {
    /// The exact gateway paths this server owns, and why: its path; `<path>/mcp` (its MCP URL
    /// when `/mcp` is appended, and in every case where clients look for its metadata:
    /// `<path>/mcp/.well-known/…`); the path of a custom `mcp_endpoint` on `public_url`'s
    /// origin. No two servers may share one ([`path_claim_conflict`]): then the xDS routes and
    /// the filter's longest-prefix match send each such path to the same server, the discovery
    /// documents under it describe one server, and one MCP URL (the token audience) names one
    /// server.
    pub fn claimed_paths(&self, public_url: &str) -> Vec<(String, Claim)> {
        let path = self.path.trim().trim_end_matches('/').to_string();
        let mut out = vec![
            (format!("{path}/mcp"), Claim::McpSuffix),
            (path, Claim::Path),
        ];
        let endpoint = self
            .mcp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .and_then(|e| url::Url::parse(e).ok());
        if let (Some(endpoint), Ok(public)) = (endpoint, url::Url::parse(public_url.trim())) {
            if endpoint.origin() == public.origin() {
                let p = endpoint.path().trim_end_matches('/').to_string();
                if !p.is_empty() && !out.iter().any(|(c, _)| *c == p) {
                    out.push((p, Claim::Endpoint));
                }
            }
        }
        out
    }
}

/// The first exact path `candidate` would share with one of `others` (a server at the
/// candidate's own path is the candidate itself, as stored, and is skipped).
pub fn path_claim_conflict(
    candidate: &Server,
    others: &[Server],
    public_url: &str,
) -> Option<PathConflict> {
    let own = candidate.path.trim();
    let mine = candidate.claimed_paths(public_url);
    for other in others.iter().filter(|o| o.path.trim() != own) {
        for (theirs, other_claim) in other.claimed_paths(public_url) {
            if let Some((path, claim)) = mine.iter().find(|(p, _)| *p == theirs) {
                return Some(PathConflict {
                    path: path.clone(),
                    claim: *claim,
                    other_name: other.name.clone(),
                    other_path: other.path.clone(),
                    other_claim,
                });
            }
        }
    }
    None
}

/// What one grant of a scope allows (mirrors policy snapshot v1 `scopes[].grants[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// A server name, or `*` for every server.
    pub server: String,
    /// JSON-RPC methods: exact, `prefix*` or `*`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Tools for `tools/call`: exact, `prefix*` or `*`.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// A registry scope (`mcp_scopes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub name: String,
    pub description: String,
    pub grants: Vec<Grant>,
    pub updated_at: i64,
}

/// A static credential. `sha256` is the lowercase hex SHA-256 of the key; the key itself is
/// never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub name: String,
    #[serde(skip)]
    pub sha256: String,
    /// Identity the key stands for (`x-portcullis-user`, audit `sub`).
    pub subject: String,
    pub groups: Vec<String>,
    /// Scopes granted directly, besides those the groups map to.
    pub scopes: Vec<String>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// IdP group → registry scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMapping {
    pub group: String,
    pub scopes: Vec<String>,
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(proxy: &str, append: Option<bool>, endpoint: Option<&str>) -> Server {
        Server::from_fields(
            ServerFields {
                name: "s".into(),
                path: "/github".into(),
                proxy_pass_url: proxy.into(),
                append_mcp_path: append,
                mcp_endpoint: endpoint.map(String::from),
                ..Default::default()
            },
            0,
            0,
        )
    }

    fn at(name: &str, path: &str, endpoint: Option<&str>) -> Server {
        Server::from_fields(
            ServerFields {
                name: name.into(),
                path: path.into(),
                proxy_pass_url: "http://up:8000".into(),
                mcp_endpoint: endpoint.map(String::from),
                ..Default::default()
            },
            0,
            0,
        )
    }

    #[test]
    fn claimed_paths_and_conflicts() {
        let p = "https://gw.example.com";
        assert_eq!(
            at("t", "/t", None).claimed_paths(p),
            [
                ("/t/mcp".to_string(), Claim::McpSuffix),
                ("/t".to_string(), Claim::Path)
            ]
        );
        let custom = at("c", "/c", Some("https://gw.example.com/x/endpoint/"));
        assert_eq!(
            custom.claimed_paths(p)[2],
            ("/x/endpoint".to_string(), Claim::Endpoint)
        );
        // An endpoint on another origin is not ours to route.
        assert_eq!(
            at("e", "/e", Some("https://elsewhere.example.com/x"))
                .claimed_paths(p)
                .len(),
            2
        );

        let t = at("t", "/t", None);
        // /t/mcp is /t's MCP URL and discovery base, whatever append_mcp_path says.
        let c = path_claim_conflict(&at("u", "/t/mcp", None), std::slice::from_ref(&t), p).unwrap();
        assert_eq!(
            (
                c.path.as_str(),
                c.claim,
                c.other_path.as_str(),
                c.other_claim
            ),
            ("/t/mcp", Claim::Path, "/t", Claim::McpSuffix)
        );
        assert!(c
            .message()
            .starts_with("path: /t/mcp would be claimed by two servers"));
        // The other way round.
        let c = path_claim_conflict(&t, &[at("u", "/t/mcp", None)], p).unwrap();
        assert_eq!((c.claim, c.other_claim), (Claim::McpSuffix, Claim::Path));
        // A custom endpoint onto another server's path or MCP URL.
        let c = path_claim_conflict(
            &at("x", "/x", Some("https://gw.example.com/t/mcp")),
            std::slice::from_ref(&t),
            p,
        )
        .unwrap();
        assert_eq!(
            (c.claim, c.claim.field()),
            (Claim::Endpoint, "mcp_endpoint")
        );
        // The server itself (an update) and unrelated or nested paths are fine.
        assert_eq!(path_claim_conflict(&t, std::slice::from_ref(&t), p), None);
        for ok in ["/t2", "/team/github", "/t/github", "/mcp"] {
            assert_eq!(
                path_claim_conflict(&at("o", ok, None), std::slice::from_ref(&t), p),
                None,
                "{ok}"
            );
        }
    }

    #[test]
    fn mcp_url_rules() {
        let p = "https://gw.example.com";
        assert_eq!(
            server("http://up:8000", None, None).mcp_url(p),
            "https://gw.example.com/github/mcp"
        );
        assert_eq!(
            server("http://up:8000/mcp", None, None).mcp_url(p),
            "https://gw.example.com/github"
        );
        assert_eq!(
            server("http://up:8000/mcp/", None, None).mcp_url(p),
            "https://gw.example.com/github"
        );
        assert_eq!(
            server("http://up:8000/sse", None, None).mcp_url(p),
            "https://gw.example.com/github"
        );
        assert_eq!(
            server("http://up:8000/mcp", Some(true), None).mcp_url(p),
            "https://gw.example.com/github/mcp"
        );
        assert_eq!(
            server("http://up:8000", Some(false), None).mcp_url(p),
            "https://gw.example.com/github"
        );
        let s = server(
            "http://up:8000",
            Some(true),
            Some("https://gw.example.com/custom/endpoint/"),
        );
        assert_eq!(s.mcp_url(p), "https://gw.example.com/custom/endpoint");
        assert_eq!(
            s.resource_metadata_url(p),
            "https://gw.example.com/.well-known/oauth-protected-resource/custom/endpoint"
        );
        assert_eq!(
            server("http://up:8000", None, None).resource_metadata_url(p),
            "https://gw.example.com/.well-known/oauth-protected-resource/github/mcp"
        );
    }
}
