//! The authorization decision for (identity, server, request): routing, server access, and
//! JSON-RPC method and tool grants. Access comes from the identity's scopes, never from the
//! scope a client asked for.

use crate::compiled::{Policy, ServerId};
use crate::identity::Identity;
use crate::idset::IdSet;
use crate::jsonrpc::RpcMessage;
use crate::request::DISCOVERY_DOCUMENTS;
use crate::token::TokenError;

/// Where a request path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One of [`crate::request::DISCOVERY_DOCUMENTS`] where clients look for it. `server` is the
    /// server whose path it lies under, if any: only `GET`, `HEAD` and `OPTIONS` make it
    /// discovery (passed without credentials); any other method is a request to that server.
    Discovery {
        server: Option<ServerId>,
    },
    Server(ServerId),
    /// `/oauth` or under it while the control plane is the authorization server
    /// (`settings.authorization_server`).
    AuthorizationServer,
    /// No registered server has this path.
    Unknown,
}

/// Where the authorization server's endpoints live (broker mode).
pub const AUTHORIZATION_SERVER_PATH: &str = "/oauth";

/// Whether `path` (no query) is [`AUTHORIZATION_SERVER_PATH`] or under it.
pub fn is_authorization_server_path(path: &str) -> bool {
    path.strip_prefix(AUTHORIZATION_SERVER_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A path that could mean something else after normalisation; refused (400) rather than
/// guessed at, since the upstream might resolve it differently than we matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request path is not in normal form (dot segments, encoded separators or empty segments)")]
pub struct PathError;

/// Why an authenticated request is refused (answered with 403 `insufficient_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The credential carries no groups at all (a missing groups claim, typically).
    NoGroups,
    /// Groups are present but none maps to a scope.
    NoMappedScopes,
    /// No held scope grants anything on this server.
    NoServerAccess,
    MethodNotAllowed,
    ToolNotAllowed,
}

impl DenyReason {
    pub fn reason(self) -> &'static str {
        match self {
            DenyReason::NoGroups => "no_groups",
            DenyReason::NoMappedScopes => "no_mapped_scopes",
            DenyReason::NoServerAccess => "no_server_access",
            DenyReason::MethodNotAllowed => "method_not_allowed",
            DenyReason::ToolNotAllowed => "tool_not_allowed",
        }
    }
}

/// A refusal with what is needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    pub reason: DenyReason,
    pub server: ServerId,
    pub method: Option<String>,
    pub tool: Option<String>,
    /// Scopes any of which would allow the request (space-separated in `scope="…"`).
    pub allowing_scopes: Vec<String>,
    /// IdP groups mapped to one of those scopes, sorted: who may make the request.
    pub allowing_groups: Vec<String>,
}

/// Most groups named in one `error_description`.
const MAX_NAMED_GROUPS: usize = 5;

impl Deny {
    /// The `error_description` for the client: what was refused, and which groups would allow
    /// it (access comes from group membership, whatever mode the IdP is used in).
    pub fn description(&self, policy: &Policy) -> String {
        let refused = self.refusal(policy);
        let groups = &self.allowing_groups;
        if groups.is_empty() {
            return format!("{refused}; no group is granted this, ask an administrator");
        }
        let mut named: Vec<String> = groups
            .iter()
            .take(MAX_NAMED_GROUPS)
            .map(|g| format!("{g:?}"))
            .collect();
        if groups.len() > MAX_NAMED_GROUPS {
            named.push(format!("{} more", groups.len() - MAX_NAMED_GROUPS));
        }
        let noun = if groups.len() == 1 { "group" } else { "groups" };
        format!("{refused}; members of {noun} {} may", named.join(", "))
    }

    fn refusal(&self, policy: &Policy) -> String {
        let server = policy
            .servers
            .get(self.server)
            .map_or("?", |s| s.name.as_str());
        match (self.reason, &self.method, &self.tool) {
            (DenyReason::NoGroups, _, _) => {
                "the token carries no groups; access comes from group membership".into()
            }
            (DenyReason::NoMappedScopes, _, _) => {
                "none of your groups is mapped to a registry scope".into()
            }
            (DenyReason::NoServerAccess, _, _) => format!("no access to server {server:?}"),
            (DenyReason::ToolNotAllowed, _, Some(tool)) => {
                format!("tool {tool:?} is not granted on server {server:?}")
            }
            (_, Some(method), _) => {
                format!("method {method:?} is not granted on server {server:?}")
            }
            _ => format!("not allowed on server {server:?}"),
        }
    }
}

fn is_dot_or_encoded(segment: &str) -> bool {
    if segment == "." || segment == ".." || segment.contains('\\') {
        return true;
    }
    // %2e (dot), %2f (slash), %5c (backslash), any case; no allocation on the request path.
    segment.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'e') | (b'2', b'f') | (b'5', b'c')
            )
    })
}

impl Policy {
    /// Where `path` (query ignored) leads. Discovery: one of the discovery documents at
    /// `/.well-known/DOC[/…]` (root, with RFC 8414 / RFC 9728 path insertion), exactly at
    /// `<server>/.well-known/DOC` or `<server>/mcp/.well-known/DOC`, or exactly at
    /// `<p>/.well-known/DOC` for a `<p>` outside every server (OIDC issuer path appending).
    /// Any other path under a server is that server's, whatever segments it holds; servers
    /// match by longest prefix, on segment boundaries.
    pub fn route(&self, path: &str) -> Result<Route, PathError> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if !path.starts_with('/') {
            return Err(PathError);
        }
        let mut segments = path[1..].split('/').peekable();
        while let Some(segment) = segments.next() {
            // One empty segment is allowed only as a trailing slash.
            if (segment.is_empty() && segments.peek().is_some()) || is_dot_or_encoded(segment) {
                return Err(PathError);
            }
        }
        if self.settings.authorization_server && is_authorization_server_path(path) {
            return Ok(Route::AuthorizationServer);
        }
        let server = self.server_for(path);
        if let Some(at) = path.find("/.well-known/") {
            let (before, document) = (&path[..at], &path[at + "/.well-known/".len()..]);
            let (name, rest) = match document.find('/') {
                Some(slash) => (&document[..slash], &document[slash..]),
                None => (document, ""),
            };
            if DISCOVERY_DOCUMENTS.contains(&name) {
                let discovery = match server {
                    None => before.is_empty() || rest.is_empty(),
                    Some(id) => {
                        let prefix = self.servers[id].path_prefix.as_str();
                        rest.is_empty()
                            && (before == prefix || before.strip_prefix(prefix) == Some("/mcp"))
                    }
                };
                if discovery {
                    return Ok(Route::Discovery { server });
                }
            }
        }
        Ok(server.map_or(Route::Unknown, Route::Server))
    }

    /// The server whose path `path` lies under: the longest prefix, on a segment boundary.
    /// Looked up by the path's own prefixes, longest first, so the cost does not grow with
    /// the registry.
    fn server_for(&self, path: &str) -> Option<ServerId> {
        let mut candidate = path;
        loop {
            if let Some(&id) = self.server_by_prefix.get(candidate) {
                return Some(id);
            }
            candidate = &candidate[..candidate.rfind('/')?];
            if candidate.is_empty() {
                return None;
            }
        }
    }

    /// The credential must have been issued for this server (RFC 8707 audience).
    pub fn check_audience(&self, identity: &Identity, server: ServerId) -> Result<(), TokenError> {
        if identity.audience_servers.contains(server) {
            Ok(())
        } else {
            Err(TokenError::WrongAudience)
        }
    }

    fn holds_any_grant(&self, identity: &Identity, server: ServerId) -> bool {
        self.grants_on(server)
            .any(|g| identity.scopes.contains(g.scope))
    }

    /// A refusal of `method`/`tool` (`None`: server access) on `server`, with the scopes that
    /// would allow it and the groups mapped to them.
    fn deny(
        &self,
        reason: DenyReason,
        server: ServerId,
        method: Option<&str>,
        tool: Option<&str>,
    ) -> Deny {
        let mut allowing = IdSet::empty(self.scope_names.len());
        let mut allowing_scopes: Vec<String> = Vec::new();
        for grant in self.grants_on(server) {
            let fits = match method {
                None => true,
                Some(m) => {
                    (grant.methods.matches(m) || self.settings.base_methods.matches(m))
                        && tool.is_none_or(|t| grant.tools.matches(t))
                }
            };
            if fits && !allowing.contains(grant.scope) {
                allowing.insert(grant.scope);
                allowing_scopes.push(self.scope_names[grant.scope].to_string());
            }
        }
        // By name: the same whatever order the grants were compiled or changed in.
        allowing_scopes.sort();
        // Through the inverse index: a refusal costs what the allowing scopes' mappings hold, not
        // a walk over every mapping.
        let mut allowing_groups: Vec<String> = allowing
            .iter()
            .flat_map(|scope| self.scope_groups[scope].iter().map(ToString::to_string))
            .collect();
        allowing_groups.sort();
        allowing_groups.dedup();
        Deny {
            reason,
            server,
            method: method.map(str::to_owned),
            tool: tool.map(str::to_owned),
            allowing_scopes,
            allowing_groups,
        }
    }

    /// What an authorization server asks before it issues a token for the server whose
    /// resource URL is `resource` to a person in `groups`: `Some(Ok)` when their groups grant
    /// something there, `Some(Err(groups))` with the groups that would (sorted; empty when no
    /// group does), `None` when no server has that resource URL.
    pub fn server_access_for_groups<S: AsRef<str>>(
        &self,
        resource: &str,
        groups: &[S],
    ) -> Option<Result<(), Vec<String>>> {
        let server = self
            .servers
            .iter()
            .position(|s| !s.is_vacant() && s.resource == resource)?;
        let scopes = self.scopes_for_groups(groups);
        if self.grants_on(server).any(|g| scopes.contains(g.scope)) {
            return Some(Ok(()));
        }
        Some(Err(self
            .deny(DenyReason::NoServerAccess, server, None, None)
            .allowing_groups))
    }

    /// Server-level access: every request (GET, DELETE, POST) needs at least one grant here.
    pub fn authorize_server(&self, identity: &Identity, server: ServerId) -> Result<(), Deny> {
        if self.holds_any_grant(identity, server) {
            return Ok(());
        }
        let reason = if identity.groups.is_empty() && identity.scopes.is_empty() {
            DenyReason::NoGroups
        } else if identity.scopes.is_empty() {
            DenyReason::NoMappedScopes
        } else {
            DenyReason::NoServerAccess
        };
        Err(self.deny(reason, server, None, None))
    }

    /// One JSON-RPC message. Call after [`Policy::authorize_server`] succeeded.
    pub fn authorize_message(
        &self,
        identity: &Identity,
        server: ServerId,
        message: &RpcMessage<'_>,
    ) -> Result<(), Deny> {
        let (method, tool) = match message {
            RpcMessage::Response => return Ok(()),
            RpcMessage::Call { method, tool, .. } => (method.as_ref(), tool.as_deref()),
        };
        if tool.is_none() && self.settings.base_methods.matches(method) {
            return Ok(());
        }
        let mut method_granted = false;
        for grant in self.grants_on(server) {
            if !identity.scopes.contains(grant.scope) || !grant.methods.matches(method) {
                continue;
            }
            method_granted = true;
            if tool.is_none_or(|t| grant.tools.matches(t)) {
                return Ok(());
            }
        }
        let reason = if method_granted {
            DenyReason::ToolNotAllowed
        } else {
            DenyReason::MethodNotAllowed
        };
        Err(self.deny(reason, server, Some(method), tool))
    }

    /// Every message of a body must be allowed; the first refusal decides.
    pub fn authorize_messages(
        &self,
        identity: &Identity,
        server: ServerId,
        messages: &[RpcMessage<'_>],
    ) -> Result<(), Deny> {
        messages
            .iter()
            .try_for_each(|m| self.authorize_message(identity, server, m))
    }
}
