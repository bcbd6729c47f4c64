//! Who a verified credential stands for, with everything a request decision needs precomputed.

use crate::idset::IdSet;

/// A verified caller. Built once per credential and cached, so a cache hit reuses it as is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `sub` of a token, or the subject configured for an API key.
    pub subject: String,
    /// Display name (`preferred_username` or the configured claim; falls back to `sub`).
    pub username: String,
    /// `iss` of a token, or `api-key:<name>`.
    pub issuer: String,
    /// `client_id` / `azp` of a token, when present.
    pub client_id: Option<String>,
    pub groups: Box<[String]>,
    /// Registry scopes mapped from the groups (and granted directly, for API keys).
    pub scopes: IdSet,
    /// The OAuth scopes the token was granted (`scope`, or Entra's `scp`): a 403's step-up
    /// challenge asks for these plus what is missing, so a client does not lose them.
    pub token_scopes: Box<[String]>,
    /// Servers this credential was issued for (audience check), by server id.
    pub audience_servers: IdSet,
    /// Unix time after which the credential is no longer valid.
    pub expires_at: Option<u64>,
    /// Values of the trusted identity headers for the upstream, already escaped.
    pub headers: IdentityHeaders,
}

/// Header values for the upstream; `,` separates list items, anything else unsafe is
/// percent-encoded so a hostile claim cannot forge a second header or list item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub user: String,
    pub groups: String,
    pub scopes: String,
}

impl IdentityHeaders {
    pub(crate) fn build<G: AsRef<str>, S: AsRef<str>>(
        user: &str,
        groups: &[G],
        scopes: impl Iterator<Item = S>,
    ) -> IdentityHeaders {
        IdentityHeaders {
            user: header_safe(user),
            groups: join_header_safe(groups.iter().map(AsRef::as_ref)),
            scopes: join_header_safe(scopes),
        }
    }
}

fn join_header_safe<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    let mut out = String::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&header_safe(item.as_ref()));
    }
    out
}

/// Printable ASCII stays; `%`, `,`, `"`, control characters and non-ASCII bytes are
/// percent-encoded.
pub fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && !matches!(byte, b'%' | b',' | b'"') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
