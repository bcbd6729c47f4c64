//! The request rules (docs/policy.md, "Request rules"): what happens to one HTTP request, decided
//! from its bytes in three steps, so the filter only carries verdicts out:
//!
//! 1. [`Policy::check_head`] over the request headers (names and values as bytes, as Envoy hands
//!    them over): routing, discovery, Origin and CORS, which credential to verify.
//! 2. [`Policy::admit`] once the filter has verified that credential (it owns the cache and the
//!    clock): audience, server access, and what the body must be.
//! 3. [`Policy::check_body_size`] on every body chunk and [`Policy::check_body`] on the whole body
//!    (its last chunk, or its trailers): JSON-RPC method and tool, `Mcp-Method` / `Mcp-Name`.
//!
//! Nothing here reads a header as text before checking its bytes, so no client input can make
//! the caller panic.

use crate::compiled::{Policy, ServerId};
use crate::decision::{PathError, Route};
use crate::identity::Identity;
use crate::jsonrpc::{parse_body, RpcMessage};
use crate::reply::{self, Reply};
use crate::token::{looks_like_jwt, TokenError};

/// One request header as Envoy hands it over.
pub type HeaderPair<'a> = (&'a [u8], &'a [u8]);

/// More credential or identity headers than this in one request is refused (400), so the list
/// of headers to remove needs no allocation.
pub const MAX_STRIPPED: usize = 8;

/// Identity headers clients must never be able to set themselves.
const RESERVED_PREFIX: &[u8] = b"x-portcullis-";

/// The OAuth discovery documents clients read before they have a token (RFC 9728, RFC 8414,
/// OpenID Connect Discovery). Only these pass without credentials.
pub const DISCOVERY_DOCUMENTS: [&str; 3] = [
    "oauth-protected-resource",
    "oauth-authorization-server",
    "openid-configuration",
];

/// Header names to remove before the request goes on: credentials and client-sent identity
/// headers. Borrowed from the request's header bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Strip<'a> {
    names: [&'a [u8]; MAX_STRIPPED],
    count: usize,
}

impl<'a> Strip<'a> {
    fn push(&mut self, name: &'a [u8]) {
        if let Some(slot) = self.names.get_mut(self.count) {
            *slot = name;
        }
        self.count += 1;
    }

    fn overflowed(&self) -> bool {
        self.count > MAX_STRIPPED
    }

    pub fn names(&self) -> &[&'a [u8]] {
        &self.names[..self.count.min(MAX_STRIPPED)]
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.names().contains(&name)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn keep(&mut self, name: &[u8]) {
        let mut kept = 0;
        for i in 0..self.count.min(MAX_STRIPPED) {
            let n = self.names[i];
            if n != name {
                self.names[kept] = n;
                kept += 1;
            }
        }
        self.count = kept;
    }
}

/// What the audit trail records of any request, whatever its verdict: raw bytes, so a caller
/// can store them lossily.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadFacts<'a> {
    pub method: Option<&'a [u8]>,
    pub path: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
}

/// The verdict on a request's headers.
#[derive(Debug)]
pub struct Head<'a> {
    pub facts: HeadFacts<'a>,
    /// Headers to remove before forwarding (whatever the verdict).
    pub strip: Strip<'a>,
    /// The request's `Origin` when it is an allowed one: every answer to it carries
    /// [`reply::cors_headers`].
    pub cors_origin: Option<&'a str>,
    /// The server the path leads to, once known (also when the verdict is a refusal), for the
    /// audit trail.
    pub server: Option<ServerId>,
    pub verdict: HeadVerdict<'a>,
}

#[derive(Debug)]
pub enum HeadVerdict<'a> {
    /// Answer locally with this; nothing goes upstream.
    Reply(Reply),
    /// A discovery document: forward without credentials (remove [`Head::strip`]).
    Discovery,
    /// The authorization server's endpoints: forward as they are, body included (remove
    /// [`Head::strip`], which then keeps `Authorization`: a client authenticating to the
    /// authorization server, not a token for an upstream).
    AuthorizationServer,
    /// A request to a server: verify this credential, then ask [`Policy::admit`].
    Authenticate(Pending<'a>),
}

/// The credential a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A bearer token shaped like a compact JWS.
    Jwt(&'a str),
    /// An API key: from the API-key header, or an opaque bearer token.
    ApiKey(&'a str),
}

impl<'a> Credential<'a> {
    /// The credential's text (what a cache is keyed by).
    pub fn text(self) -> &'a str {
        match self {
            Credential::Jwt(t) | Credential::ApiKey(t) => t,
        }
    }
}

/// A server request waiting for its credential to be verified.
#[derive(Debug, Clone, Copy)]
pub struct Pending<'a> {
    pub server: ServerId,
    pub credential: Credential<'a>,
    method: &'a str,
    end_of_stream: bool,
    content_length: Option<&'a [u8]>,
    mcp_method: Option<&'a str>,
    mcp_name: Option<&'a str>,
}

/// The verdict once the credential is known.
#[derive(Debug)]
pub enum Admission {
    Reply(Reply),
    /// Forward with the identity headers, under this rule for the body.
    Forward(BodyRule),
}

/// What the rest of an admitted request may be. Owned, so the filter keeps it across callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// Nothing follows the headers: forward now.
    NoBody,
    /// A `POST`: hold the JSON-RPC body and decide it whole with [`Policy::check_body`].
    JsonRpc {
        mcp_method: Option<Box<str>>,
        mcp_name: Option<Box<str>>,
    },
    /// Any other method whose stream is still open: forward once it ends without a body byte;
    /// a body refuses it.
    Empty { method: Box<str> },
}

impl BodyRule {
    /// Whether the request must be held until its body is decided.
    pub fn holds(&self) -> bool {
        !matches!(self, BodyRule::NoBody)
    }
}

/// The decision on a whole body, with the JSON-RPC method and tool it is recorded under (a
/// single message's own, the refused message's, or `"batch"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDecision {
    /// `None`: forward.
    pub reply: Option<Reply>,
    pub method: Option<String>,
    pub tool: Option<String>,
}

impl BodyDecision {
    fn refused(reply: Reply) -> BodyDecision {
        BodyDecision {
            reply: Some(reply),
            method: None,
            tool: None,
        }
    }

    fn allowed(method: Option<&str>, tool: Option<&str>) -> BodyDecision {
        BodyDecision {
            reply: None,
            method: method.map(str::to_owned),
            tool: tool.map(str::to_owned),
        }
    }
}

/// Why a header cannot be used; becomes a 401 (credentials) or a 400 (anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("the Authorization header must be one Bearer token")]
    NotBearer,
    #[error("the API key header must hold one printable ASCII key")]
    BadApiKey,
}

/// Printable ASCII without spaces: what a token or key may be made of.
fn is_token_text(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(u8::is_ascii_graphic)
}

/// Trims spaces and tabs at both ends (HTTP optional whitespace).
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1; the scheme is
/// case-insensitive). The one bearer parser of the product: the filter, the control plane's API
/// and its xDS server all read credentials with it.
pub fn bearer_token(value: &[u8]) -> Result<&str, BearerError> {
    let value = trim_ows(value);
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], trim_ows(&value[space..])),
        None => return Err(BearerError::NotBearer),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") || !is_token_text(token) {
        return Err(BearerError::NotBearer);
    }
    // Printable ASCII is UTF-8.
    std::str::from_utf8(token).map_err(|_| BearerError::NotBearer)
}

fn api_key(value: &[u8]) -> Result<&str, BearerError> {
    let value = trim_ows(value);
    if !is_token_text(value) {
        return Err(BearerError::BadApiKey);
    }
    std::str::from_utf8(value).map_err(|_| BearerError::BadApiKey)
}

/// A header the decision reads at most once.
#[derive(Debug, Clone, Copy, Default)]
struct Once<'a> {
    value: Option<&'a [u8]>,
    count: usize,
}

impl<'a> Once<'a> {
    fn set(&mut self, value: &'a [u8]) {
        self.value = Some(value);
        self.count += 1;
    }

    fn repeated(&self) -> bool {
        self.count > 1
    }
}

/// The headers the decision reads, from one pass over the request headers.
#[derive(Debug, Default)]
struct Seen<'a> {
    path: Once<'a>,
    method: Once<'a>,
    request_id: Option<&'a [u8]>,
    authorization: Once<'a>,
    api_key: Once<'a>,
    origin: Once<'a>,
    content_length: Once<'a>,
    mcp_method: Once<'a>,
    mcp_name: Once<'a>,
    preflight_method: bool,
}

/// What the head check learns on its way to a verdict, refusals included.
#[derive(Debug, Default)]
struct Found<'a> {
    cors_origin: Option<&'a str>,
    server: Option<ServerId>,
}

fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

fn is_method_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header's value as text, or a 400 `bad_header` naming it.
fn utf8_header<'a>(value: Option<&'a [u8]>, header: &str) -> Result<Option<&'a str>, Reply> {
    value
        .map(|bytes| {
            std::str::from_utf8(bytes).map_err(|_| {
                reply::bad_request(&format!("the {header} header is not UTF-8"), "bad_header")
            })
        })
        .transpose()
}

impl Policy {
    /// Step 1: the verdict on a request's headers. `end_of_stream` is whether the headers
    /// ended the request (no body, no trailers follow).
    pub fn check_head<'a>(&self, headers: &[HeaderPair<'a>], end_of_stream: bool) -> Head<'a> {
        let settings = &self.settings;
        let mut seen = Seen::default();
        let mut strip = Strip::default();
        for &(name, value) in headers {
            match name {
                b":path" => seen.path.set(value),
                b":method" => seen.method.set(value),
                b"x-request-id" => seen.request_id = Some(value),
                b"authorization" => {
                    seen.authorization.set(value);
                    strip.push(name);
                }
                b"origin" => seen.origin.set(value),
                b"content-length" => seen.content_length.set(value),
                b"mcp-method" => seen.mcp_method.set(value),
                b"mcp-name" => seen.mcp_name.set(value),
                b"access-control-request-method" => seen.preflight_method = true,
                n if n == settings.api_key_header.as_bytes() => {
                    seen.api_key.set(value);
                    strip.push(name);
                }
                n if n.starts_with(RESERVED_PREFIX)
                    || n == settings.user_header.as_bytes()
                    || n == settings.groups_header.as_bytes()
                    || n == settings.scopes_header.as_bytes() =>
                {
                    strip.push(name);
                }
                _ => {}
            }
        }
        let facts = HeadFacts {
            method: seen.method.value,
            path: seen.path.value,
            request_id: seen.request_id,
        };
        let mut found = Found::default();
        let verdict = self
            .head_verdict(&seen, &strip, end_of_stream, &mut found)
            .unwrap_or_else(HeadVerdict::Reply);
        if matches!(verdict, HeadVerdict::AuthorizationServer) {
            strip.keep(b"authorization");
        }
        Head {
            facts,
            strip,
            cors_origin: found.cors_origin,
            server: found.server,
            verdict,
        }
    }

    fn head_verdict<'a>(
        &self,
        seen: &Seen<'a>,
        strip: &Strip<'a>,
        end_of_stream: bool,
        found: &mut Found<'a>,
    ) -> Result<HeadVerdict<'a>, Reply> {
        if strip.overflowed() {
            return Err(reply::bad_request(
                "too many credential or identity headers",
                "too_many_headers",
            ));
        }
        let method = match seen.method.value {
            Some(m) if !seen.method.repeated() && is_method_token(m) => {
                std::str::from_utf8(m).map_err(|_| bad_method())?
            }
            _ => return Err(bad_method()),
        };
        let path = match seen.path.value {
            Some(p) if !seen.path.repeated() && p.iter().all(u8::is_ascii_graphic) => {
                std::str::from_utf8(p).map_err(|_| bad_path())?
            }
            _ => return Err(bad_path()),
        };
        let server = match self.route(path).map_err(|_| bad_path())? {
            // A discovery document is read without credentials, so nothing may ride along: a
            // request whose body would follow its headers is refused before anything is passed.
            Route::Discovery { .. } if is_safe_method(method) && !end_of_stream => {
                return Err(reply::body_not_allowed(method))
            }
            Route::Discovery { .. } if is_safe_method(method) => return Ok(HeadVerdict::Discovery),
            Route::Discovery {
                server: Some(server),
            }
            | Route::Server(server) => server,
            Route::Discovery { server: None } => return Err(reply::discovery_method_not_allowed()),
            Route::AuthorizationServer => return Ok(HeadVerdict::AuthorizationServer),
            Route::Unknown => return Err(reply::unknown_server()),
        };
        found.server = Some(server);
        let server_spec = &self.servers[server];

        for (header, once) in [
            ("Origin", &seen.origin),
            ("Content-Length", &seen.content_length),
            ("Mcp-Method", &seen.mcp_method),
            ("Mcp-Name", &seen.mcp_name),
        ] {
            if once.repeated() {
                return Err(reply::bad_request(
                    &format!("more than one {header} header"),
                    "duplicate_header",
                ));
            }
        }
        if let Some(origin) = seen.origin.value {
            // Listed origins are UTF-8, so an equal header value is too.
            let allowed = std::str::from_utf8(origin)
                .ok()
                .filter(|o| self.settings.allowed_origins.iter().any(|a| a == o))
                .ok_or_else(reply::origin_not_allowed)?;
            found.cors_origin = Some(allowed);
            if method == "OPTIONS" && seen.preflight_method {
                return Err(reply::cors_preflight(self, allowed));
            }
        }

        let credential = if seen.authorization.repeated() {
            return Err(reply::not_bearer(
                server_spec,
                "send one Authorization header, not several",
            ));
        } else if let Some(value) = seen.authorization.value {
            match bearer_token(value) {
                Ok(token) if looks_like_jwt(token) => Credential::Jwt(token),
                Ok(key) => Credential::ApiKey(key),
                Err(e) => return Err(reply::not_bearer(server_spec, &e.to_string())),
            }
        } else if seen.api_key.repeated() {
            return Err(reply::not_bearer(
                server_spec,
                "send one API key header, not several",
            ));
        } else if let Some(value) = seen.api_key.value {
            match api_key(value) {
                Ok(key) => Credential::ApiKey(key),
                Err(e) => return Err(reply::not_bearer(server_spec, &e.to_string())),
            }
        } else {
            return Err(reply::missing_credentials(server_spec));
        };
        if credential.text().len() > self.settings.max_token_bytes {
            return Err(reply::invalid_token(
                server_spec,
                &TokenError::TooLarge(self.settings.max_token_bytes),
            ));
        }
        let mcp_method = utf8_header(seen.mcp_method.value, "Mcp-Method")?;
        let mcp_name = utf8_header(seen.mcp_name.value, "Mcp-Name")?;
        Ok(HeadVerdict::Authenticate(Pending {
            server,
            credential,
            method,
            end_of_stream,
            content_length: seen.content_length.value,
            mcp_method,
            mcp_name,
        }))
    }

    /// Step 2: the verdict once the credential was verified (`Ok`) or refused (`Err`).
    pub fn admit(
        &self,
        pending: &Pending<'_>,
        verified: Result<&Identity, &TokenError>,
    ) -> Admission {
        match self.admission(pending, verified) {
            Ok(rule) => Admission::Forward(rule),
            Err(reply) => Admission::Reply(reply),
        }
    }

    fn admission(
        &self,
        pending: &Pending<'_>,
        verified: Result<&Identity, &TokenError>,
    ) -> Result<BodyRule, Reply> {
        let server = &self.servers[pending.server];
        let identity = verified.map_err(|e| reply::invalid_token(server, e))?;
        self.check_audience(identity, pending.server)
            .map_err(|e| reply::invalid_token(server, &e))?;
        self.authorize_server(identity, pending.server)
            .map_err(|deny| reply::forbidden(self, server, &deny, &identity.token_scopes))?;

        let declared = match pending.content_length {
            None => None,
            Some(value) => Some(
                std::str::from_utf8(trim_ows(value))
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        reply::bad_request("Content-Length is not a number", "bad_content_length")
                    })?,
            ),
        };
        let max = self.settings.max_body_bytes as u64;
        if pending.method == "POST" {
            if pending.end_of_stream || declared == Some(0) {
                return Err(reply::malformed_jsonrpc(&crate::RpcError::NotJson(
                    "empty body".into(),
                )));
            }
            if declared.is_some_and(|n| n > max) {
                return Err(reply::body_too_large(self.settings.max_body_bytes));
            }
            return Ok(BodyRule::JsonRpc {
                mcp_method: pending
                    .mcp_method
                    .map(|v| decode_header_value(v, "Mcp-Method"))
                    .transpose()?,
                mcp_name: pending
                    .mcp_name
                    .map(|v| decode_header_value(v, "Mcp-Name"))
                    .transpose()?,
            });
        }
        if declared.is_some_and(|n| n > 0) {
            return Err(reply::body_not_allowed(pending.method));
        }
        if pending.end_of_stream {
            Ok(BodyRule::NoBody)
        } else {
            Ok(BodyRule::Empty {
                method: pending.method.into(),
            })
        }
    }

    /// Step 3a, on every body chunk: `size` is the body received so far. A refusal here needs
    /// no more of the body.
    pub fn check_body_size(&self, rule: &BodyRule, size: usize) -> Option<Reply> {
        match rule {
            BodyRule::Empty { method } if size > 0 => Some(reply::body_not_allowed(method)),
            _ if size > self.settings.max_body_bytes => {
                Some(reply::body_too_large(self.settings.max_body_bytes))
            }
            _ => None,
        }
    }

    /// Step 3b, once the body is complete (its last chunk, or the request's trailers).
    pub fn check_body(
        &self,
        identity: &Identity,
        server: ServerId,
        rule: &BodyRule,
        body: &[u8],
    ) -> BodyDecision {
        if let Some(reply) = self.check_body_size(rule, body.len()) {
            return BodyDecision::refused(reply);
        }
        let (mcp_method, mcp_name) = match rule {
            BodyRule::NoBody | BodyRule::Empty { .. } => return BodyDecision::allowed(None, None),
            BodyRule::JsonRpc {
                mcp_method,
                mcp_name,
            } => (mcp_method.as_deref(), mcp_name.as_deref()),
        };
        let messages = match parse_body(body) {
            Ok(messages) => messages,
            Err(error) => return BodyDecision::refused(reply::malformed_jsonrpc(&error)),
        };
        if let Err(reply) = check_transport_headers(&messages, mcp_method, mcp_name) {
            return BodyDecision::refused(reply);
        }
        if let Err(deny) = self.authorize_messages(identity, server, &messages) {
            return BodyDecision {
                reply: Some(reply::forbidden(
                    self,
                    &self.servers[server],
                    &deny,
                    &identity.token_scopes,
                )),
                method: deny.method,
                tool: deny.tool,
            };
        }
        match messages.as_slice() {
            [RpcMessage::Call { method, tool, .. }] => {
                BodyDecision::allowed(Some(method), tool.as_deref())
            }
            [RpcMessage::Response] | [] => BodyDecision::allowed(None, None),
            _ => BodyDecision::allowed(Some("batch"), None),
        }
    }
}

/// MCP 2026-07-28's value encoding for its headers: a value that cannot travel as printable
/// ASCII (non-ASCII, control characters, edge whitespace, or one that looks like the marker)
/// arrives as `=?base64?<standard Base64 of the UTF-8 bytes>?=`; anything else is the value.
fn decode_header_value(raw: &str, header: &str) -> Result<Box<str>, Reply> {
    use base64::Engine;
    let Some(encoded) = raw
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Ok(raw.into());
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(String::into_boxed_str)
        .ok_or_else(|| {
            reply::bad_request(
                &format!("the {header} header's =?base64?…?= value does not decode to UTF-8"),
                "bad_header",
            )
        })
}

fn bad_method() -> Reply {
    reply::bad_request("the request method is missing or malformed", "bad_method")
}

fn bad_path() -> Reply {
    reply::bad_request(&PathError.to_string(), "bad_path")
}

/// MCP 2026-07-28's `Mcp-Method` and `Mcp-Name` mirror the body so intermediaries can route on
/// them; when a client sends them they must say what the body says (the body decides).
fn check_transport_headers(
    messages: &[RpcMessage<'_>],
    mcp_method: Option<&str>,
    mcp_name: Option<&str>,
) -> Result<(), Reply> {
    if mcp_method.is_none() && mcp_name.is_none() {
        return Ok(());
    }
    let (method, tool, target) = match messages {
        [RpcMessage::Call {
            method,
            tool,
            target,
        }] => (method.as_ref(), tool.as_deref(), target.as_deref()),
        _ => {
            return Err(reply::header_mismatch(
                "Mcp-Method and Mcp-Name headers need a body of one JSON-RPC request",
            ))
        }
    };
    if mcp_method.is_some_and(|m| m != method) {
        return Err(reply::header_mismatch(
            "the Mcp-Method header does not match the body's method",
        ));
    }
    if let Some(name) = mcp_name {
        if tool.or(target) != Some(name) {
            return Err(reply::header_mismatch(
                "the Mcp-Name header does not match the body's params.name or params.uri",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
