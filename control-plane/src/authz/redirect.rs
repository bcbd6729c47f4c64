//! Redirect URIs: which ones a client may register (DCR, CIMD, pre-registration), and which
//! registered one a `redirect_uri` at `/authorize` names.
//!
//! Registration ([`validate_registered`], error `invalid_redirect_uri`, RFC 7591 §3.2.2):
//! - an absolute URI of printable ASCII, no spaces, no backslash, at most [`MAX_LEN`] bytes;
//!   no fragment (not even an empty `#`);
//! - written the way the WHATWG URL parser (which browsers use) would write it back: lowercase
//!   scheme and host, no encoded host, no IPv4 shorthand, no dot segments (`.`, `..`, `%2e`),
//!   no character a browser would re-encode. So the string we compare is the one a browser
//!   follows, and exact string matching means what it says;
//! - no userinfo (`user@`, even empty): `http://localhost@evil.com` is a URL for `evil.com`;
//! - `https` to any host; `http` only to the loopback literals `127.0.0.1`, `[::1]` and
//!   `localhost` (RFC 8252 §7.3/§8.3; other spellings of loopback, `127.0.0.2` or
//!   IPv4-mapped IPv6, are refused so the port rule below stays exact);
//! - private-use schemes (RFC 8252 §7.1) are allowed: desktop MCP clients register them
//!   (Cursor registers `cursor://anysphere.cursor-mcp/oauth/callback`, a scheme without the
//!   reverse-domain dot RFC 8252 recommends, so that is not required), and PKCE S256, which
//!   every code needs, is what defends against another app claiming the scheme. Schemes with a
//!   meaning inside the browser or the OS shell ([`REFUSED_SCHEMES`]: `javascript:`, `data:`,
//!   `file:`, …) and one-letter schemes (Windows drive letters) are refused.
//!
//! Matching ([`resolve`], error `invalid_request`): the requested string equals a registered
//! one, byte for byte; never a prefix, never case-folded, never normalised. The one exception
//! is RFC 8252 §7.3: for an `http` loopback registration, the request may carry any port (or
//! none); scheme, host spelling, path and query must still be equal. On a mismatch the
//! endpoint shows an error page and never redirects: the description does not echo the URI.

use url::Url;

use super::error::OAuthError;

/// Longest redirect URI we register.
pub const MAX_LEN: usize = 2000;

/// Schemes that mean something inside a browser or the OS shell: never a redirect target.
pub const REFUSED_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
    "view-source",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
    "intent",
    "jar",
    "chrome",
    "chrome-extension",
    "moz-extension",
];

/// The loopback hosts `http` may use, as written in the URI.
pub const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];

/// What kind of redirect a registered URI is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    Https,
    /// `http` to a loopback host: any port at `/authorize`.
    Loopback,
    /// A private-use scheme (a native app).
    PrivateUse,
}

/// A redirect URI that passed [`validate_registered`], kept as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    raw: String,
    kind: RedirectKind,
}

impl RedirectUri {
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    pub fn kind(&self) -> RedirectKind {
        self.kind
    }
}

/// The pieces of a URI as written: `scheme ":" ["//" authority] rest`.
struct Parts<'a> {
    scheme: &'a str,
    authority: Option<&'a str>,
    rest: &'a str,
}

fn split(raw: &str) -> Option<Parts<'_>> {
    let (scheme, after) = raw.split_once(':')?;
    match after.strip_prefix("//") {
        Some(a) => {
            let end = a.find(['/', '?']).unwrap_or(a.len());
            Some(Parts {
                scheme,
                authority: Some(&a[..end]),
                rest: &a[end..],
            })
        }
        None => Some(Parts {
            scheme,
            authority: None,
            rest: after,
        }),
    }
}

/// `host[:port]` as written; `None` when the port part is not a canonical port number.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let close = v6.find(']')? + 2; // include both brackets
            let (host, after) = authority.split_at(close);
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if let Some(port) = port {
        let canonical = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && !port.starts_with('0')
            && port.parse::<u16>().is_ok();
        if !canonical {
            return None;
        }
    }
    Some((host, port))
}

fn refuse(why: &'static str) -> OAuthError {
    OAuthError::invalid_redirect_uri(why)
}

/// The registration check: see the module documentation.
pub fn validate_registered(raw: &str) -> Result<RedirectUri, OAuthError> {
    if raw.is_empty() || raw.len() > MAX_LEN {
        return Err(refuse("redirect URI must be 1 to 2000 characters"));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(refuse(
            "redirect URI must be printable ASCII without spaces or backslashes",
        ));
    }
    if raw.contains('#') {
        return Err(refuse("redirect URI must not have a fragment"));
    }
    let url = Url::parse(raw).map_err(|_| refuse("redirect URI must be an absolute URI"))?;
    let parts = split(raw).ok_or_else(|| refuse("redirect URI must be an absolute URI"))?;
    if parts.scheme != url.scheme() {
        return Err(refuse("redirect URI scheme must be lowercase"));
    }
    let scheme = url.scheme();
    if REFUSED_SCHEMES.contains(&scheme) {
        return Err(refuse(
            "redirect URI scheme is not allowed (javascript, data, file and the like)",
        ));
    }
    if let Some(authority) = parts.authority {
        if authority.contains('@') {
            return Err(refuse("redirect URI must not contain userinfo"));
        }
        if authority.contains('%') {
            return Err(refuse("redirect URI host must not be percent-encoded"));
        }
    }
    let kind = match scheme {
        "https" | "http" => {
            let (host, port) = parts
                .authority
                .and_then(split_host_port)
                .ok_or_else(|| refuse("redirect URI has a malformed host or port"))?;
            let loopback = LOOPBACK_HOSTS.contains(&host);
            if scheme == "http" && !loopback {
                return Err(refuse(
                    "http redirect URIs are allowed only for loopback (127.0.0.1, [::1], localhost); use https",
                ));
            }
            // Written the way a browser would write it back (an empty path is allowed: a
            // browser adds the `/`, and clients such as VS Code register `http://127.0.0.1:33418`).
            let path = if parts.rest.is_empty() {
                ""
            } else {
                url.path()
            };
            let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let canonical = format!(
                "{scheme}://{}{port}{path}{query}",
                url.host_str().unwrap_or_default()
            );
            if canonical != raw {
                return Err(refuse(
                    "redirect URI is not in canonical form (host case or spelling, dot segments, or characters a browser rewrites)",
                ));
            }
            if scheme == "http" {
                RedirectKind::Loopback
            } else {
                RedirectKind::Https
            }
        }
        _ => {
            if scheme.len() < 2 {
                return Err(refuse(
                    "redirect URI scheme is a drive letter, not a scheme",
                ));
            }
            if url.username() != "" || url.password().is_some() {
                return Err(refuse("redirect URI must not contain userinfo"));
            }
            if url.as_str() != raw {
                return Err(refuse(
                    "redirect URI is not in canonical form (dot segments or characters a browser rewrites)",
                ));
            }
            RedirectKind::PrivateUse
        }
    };
    Ok(RedirectUri {
        raw: raw.to_string(),
        kind,
    })
}

/// Whether `requested` is the loopback registration `registered` with another port.
fn same_loopback_except_port(registered: &str, requested: &str) -> bool {
    let (Some(a), Some(b)) = (split(registered), split(requested)) else {
        return false;
    };
    let host_a = a.authority.and_then(split_host_port).map(|(h, _)| h);
    let host_b = b.authority.and_then(split_host_port).map(|(h, _)| h);
    a.scheme == "http"
        && b.scheme == "http"
        && host_a.is_some()
        && host_a == host_b
        && a.rest == b.rest
}

/// The `/authorize` match: the redirect URI to send the person back to, or `invalid_request`
/// (show an error page; never redirect). `requested` may be omitted only when exactly one URI
/// is registered (OAuth 2.1 §4.1.1).
pub fn resolve<'a>(
    requested: Option<&'a str>,
    registered: &'a [RedirectUri],
) -> Result<&'a str, OAuthError> {
    let Some(requested) = requested.filter(|r| !r.is_empty()) else {
        return match registered {
            [only] => Ok(only.as_str()),
            [] => Err(OAuthError::invalid_request(
                "the client has no registered redirect URI",
            )),
            _ => Err(OAuthError::invalid_request(
                "redirect_uri is required: the client registered several",
            )),
        };
    };
    if registered.iter().any(|r| r.raw == requested) {
        return Ok(requested);
    }
    let not_registered =
        || OAuthError::invalid_request("redirect_uri is not registered for this client");
    let candidate = validate_registered(requested).map_err(|_| not_registered())?;
    if candidate.kind == RedirectKind::Loopback
        && registered.iter().any(|r| {
            r.kind == RedirectKind::Loopback && same_loopback_except_port(&r.raw, requested)
        })
    {
        return Ok(requested);
    }
    Err(not_registered())
}

#[cfg(test)]
mod tests;
