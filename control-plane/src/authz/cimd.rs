//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP
//! 2025-11-25 and 2026-07-28): a client whose `client_id` is an https URL is known by the JSON
//! document at that URL. The rules for reading one, which `server::cimd` carries out:
//!
//! - [`check_client_id`]: `https`, a host, a path other than `/`, no userinfo, no fragment, no
//!   dot segments, written as the WHATWG parser writes it back (so the string compared with
//!   the document's `client_id` is the one that was fetched).
//! - [`AddressPolicy`]: every address the host resolves to must be a public one; loopback,
//!   private, link-local, shared, documentation, multicast and IPv4-mapped/NAT64 forms of those
//!   are refused unless the operator allows the exact address
//!   (`PORTCULLIS_CIMD_ALLOWED_ADDRESSES`, for tests and internal hosts). The connection goes
//!   to the checked addresses only (no second DNS answer can move it) and never through a
//!   proxy.
//! - [`fetch`]: no redirect followed, a timeout, at most [`MAX_DOCUMENT_BYTES`], `200` only;
//!   how long the copy stays fresh comes from `Cache-Control: max-age` within
//!   [`MIN_FRESH_SECONDS`]..[`MAX_FRESH_SECONDS`]. Failures are never kept.
//! - [`parse_document`]: a JSON object whose `client_id` equals the URL, with redirect URIs
//!   that pass the registration rules, a public client (no shared secret, no other auth
//!   method), grant and response types we serve.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use super::clients::{string_list, GRANT_TYPES};
use super::redirect;

/// Largest document read (the draft suggests 5 KB).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// A whole fetch, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A fetched copy is used at least this long (a `max-age` below it, or `no-store`, is raised
/// to it so a busy client cannot make us fetch on every login).
pub const MIN_FRESH_SECONDS: i64 = 60;
/// ...and at most this long.
pub const MAX_FRESH_SECONDS: i64 = 24 * 3600;
/// Without `Cache-Control: max-age`.
pub const DEFAULT_FRESH_SECONDS: i64 = 3600;
/// Longest `client_id` URL.
pub const MAX_URL_LEN: usize = 2000;
/// Redirect URIs in one document.
pub const MAX_REDIRECT_URIS: usize = 20;

/// Why a metadata document was not used. The text is shown on the error page (to the person
/// and, through them, to the operator), so it names what was wrong and never echoes the
/// document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    /// The `client_id` is not a URL we fetch.
    #[error("the client_id URL is refused: {0}")]
    Url(&'static str),
    /// Where it points is not allowed.
    #[error("the client_id URL's host is refused: {0}")]
    Address(String),
    /// It could not be read.
    #[error("the client's metadata document could not be fetched: {0}")]
    Fetch(String),
    /// It was read and is not acceptable.
    #[error("the client's metadata document is refused: {0}")]
    Document(String),
}

/// Whether `client_id` is meant as a metadata document URL (and so is looked up as one rather
/// than as a registered id). `http://` counts, to be refused with a clear reason.
pub fn is_document_url(client_id: &str) -> bool {
    let lower = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// The `client_id` as a URL we may fetch; see the module documentation.
pub fn check_client_id(raw: &str) -> Result<Url, CimdError> {
    if raw.len() > MAX_URL_LEN {
        return Err(CimdError::Url("longer than 2000 characters"));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(CimdError::Url(
            "must be printable ASCII without spaces or backslashes",
        ));
    }
    if raw.contains('#') {
        return Err(CimdError::Url("must not have a fragment"));
    }
    let url = Url::parse(raw).map_err(|_| CimdError::Url("not an absolute URL"))?;
    if url.scheme() != "https" {
        return Err(CimdError::Url("must be https"));
    }
    if !url.username().is_empty() || url.password().is_some() || raw.contains('@') {
        return Err(CimdError::Url("must not contain userinfo"));
    }
    if url.host().is_none() {
        return Err(CimdError::Url("has no host"));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(CimdError::Url("must have a path (not just /)"));
    }
    // Dot segments, an uppercase scheme or host, percent-encoded hosts, a default port: the
    // parser writes each back differently, and the document's client_id must equal what was
    // fetched.
    if url.as_str() != raw {
        return Err(CimdError::Url(
            "must be written in normal form (no dot segments, lowercase scheme and host, no default port)",
        ));
    }
    Ok(url)
}

/// Which addresses a document may be fetched from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Special-use addresses the operator allows anyway (exact addresses).
    pub allowed: Vec<IpAddr>,
}

impl AddressPolicy {
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allowed.contains(&ip) || !is_special_use(ip)
    }

    /// The addresses of `url`'s host (an IP literal or a DNS answer), every one of them
    /// permitted; otherwise why not.
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, CimdError> {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(name)) => tokio::time::timeout(
                FETCH_TIMEOUT,
                tokio::net::lookup_host((name.to_string(), port)),
            )
            .await
            .map_err(|_| CimdError::Fetch(format!("{name}: DNS lookup timed out")))?
            .map_err(|e| CimdError::Fetch(format!("{name}: DNS lookup failed ({e})")))?
            .collect(),
            None => return Err(CimdError::Url("has no host")),
        };
        if addrs.is_empty() {
            return Err(CimdError::Fetch("the host has no address".into()));
        }
        // Every answer, not just the first: a name with one public and one private address
        // must not reach the private one.
        if let Some(bad) = addrs.iter().find(|a| !self.permits(a.ip())) {
            return Err(CimdError::Address(format!(
                "it resolves to {}, a special-use address (loopback, private, link-local or the like); \
                 an operator can allow it with PORTCULLIS_CIMD_ALLOWED_ADDRESSES",
                bad.ip()
            )));
        }
        Ok(addrs)
    }
}

/// Loopback, private, link-local, shared (CGNAT), documentation, benchmarking, reserved,
/// multicast, unspecified and broadcast addresses, and the IPv6 forms that carry an IPv4
/// address (mapped, compatible, NAT64, 6to4) judged by that address.
pub fn is_special_use(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking, RFC 2544
        || a >= 240 // reserved
}

fn special_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) and IPv4-compatible (::/96) carry an IPv4 address in the last 32 bits.
    let embedded = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return special_v4(embedded);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated) and the rest of ::/96
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0] == 0x2002 // 6to4: judged unsafe rather than decoded
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo, ORCHID, ...)
        || s[0] == 0x0100 && s[1..4] == [0, 0, 0] // discard-only, 100::/64
}

/// A fetched document's bytes and how long to keep it.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub fresh_seconds: i64,
}

/// Fetches `url` from exactly `addrs`, with the rules in the module documentation. `roots`:
/// certificate authorities trusted besides the system's (`PORTCULLIS_CIMD_CA_FILE`).
/// `http` URLs are fetched too (the unit tests use them); [`check_client_id`] keeps them out
/// of production.
pub async fn fetch(
    url: &Url,
    addrs: &[SocketAddr],
    roots: &[reqwest::Certificate],
    timeout: Duration,
) -> Result<Fetched, CimdError> {
    let host = url.host_str().unwrap_or_default().to_string();
    let mut builder = crate::outbound::client_builder(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if url.domain().is_some() {
        builder = builder.resolve_to_addrs(&host, addrs);
    }
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    let client = builder
        .build()
        .map_err(|e| CimdError::Fetch(format!("building the HTTP client: {e}")))?;
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| CimdError::Fetch(crate::outbound::error_chain(&e)))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(CimdError::Fetch(format!(
            "answered {status}: redirects are not followed (the document must be at its client_id URL)"
        )));
    }
    if status != reqwest::StatusCode::OK {
        return Err(CimdError::Fetch(format!("answered {status}")));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(CimdError::Document(format!(
            "larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    let fresh_seconds = fresh_seconds(
        response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CimdError::Fetch(crate::outbound::error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(CimdError::Document(format!(
                "larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        body,
        fresh_seconds,
    })
}

/// How long a copy stays fresh, from `Cache-Control` values, within the bounds.
pub fn fresh_seconds<'a>(cache_control: impl Iterator<Item = &'a str>) -> i64 {
    let mut max_age = None;
    for directive in cache_control.flat_map(|v| v.split(',')) {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return MIN_FRESH_SECONDS;
        }
        if let Some(age) = directive.strip_prefix("max-age=") {
            max_age = age.trim_matches('"').parse::<i64>().ok();
        }
    }
    max_age
        .unwrap_or(DEFAULT_FRESH_SECONDS)
        .clamp(MIN_FRESH_SECONDS, MAX_FRESH_SECONDS)
}

/// A document that passed [`parse_document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Everything else it says (`grant_types`, `client_uri`, ...), kept and shown to operators.
    pub metadata: Map<String, Value>,
}

/// Checks the document fetched from `client_id`.
pub fn parse_document(client_id: &str, body: &[u8]) -> Result<Document, CimdError> {
    let invalid = |why: String| CimdError::Document(why);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut doc) = value else {
        return Err(invalid("not a JSON object".into()));
    };
    match doc.get("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        Some(Value::String(_)) => {
            return Err(invalid(
                "its client_id is not the URL it was fetched from".into(),
            ))
        }
        _ => return Err(invalid("client_id is missing".into())),
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if doc.contains_key(secret) {
            return Err(invalid(format!(
                "{secret} is not allowed: a metadata document describes a public client"
            )));
        }
    }
    match doc.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(other) => {
            return Err(invalid(format!(
                "token_endpoint_auth_method {} is not supported (only none: no shared secrets, and private_key_jwt is not served here)",
                short(other)
            )))
        }
    }
    let strings = |name: &str| string_list(&doc, name).map_err(CimdError::Document);
    let redirect_uris = strings("redirect_uris")?.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(invalid("redirect_uris is required (at least one)".into()));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(invalid(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris"
        )));
    }
    for uri in &redirect_uris {
        redirect::validate_registered(uri)
            .map_err(|e| invalid(format!("redirect_uris: {}", e.error_description)))?;
    }
    let grant_types = strings("grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(bad) = grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(invalid(format!(
            "grant type {} is not supported (authorization_code, refresh_token)",
            short(&Value::String(bad.clone()))
        )));
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(invalid(
            "grant_types must include authorization_code".into(),
        ));
    }
    if let Some(types) = strings("response_types")? {
        if types != ["code"] {
            return Err(invalid("response_types must be [\"code\"]".into()));
        }
    }
    let client_name = match doc.get("client_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n))
            if !n.trim().is_empty()
                && n.chars().count() <= 200
                && !n.chars().any(char::is_control) =>
        {
            Some(n.trim().to_string())
        }
        Some(_) => {
            return Err(invalid(
                "client_name must be 1 to 200 characters without control characters".into(),
            ))
        }
    };
    for known in ["client_id", "redirect_uris", "client_name"] {
        doc.remove(known);
    }
    doc.insert("grant_types".into(), Value::from(grant_types));
    doc.insert("token_endpoint_auth_method".into(), "none".into());
    Ok(Document {
        client_name,
        redirect_uris,
        metadata: doc,
    })
}

/// A value named in an error, cut short (the document is the client's, not ours to echo).
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests;
