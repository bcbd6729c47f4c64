//! The audit event's wire type: what the filter reports for each request it decides and the
//! control plane stores (`POST /v1/audit`, contract "AuditEvent"), and the limits of what the
//! control plane stores. The filter builds events zero-copy (borrowed fields) and makes every
//! field storable with [`storable`]; the control plane reads them owned (`AuditEvent<'static>`)
//! and refuses, field by field, what [`text_problem`] names, never altering a record.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Longest text the control plane stores in one field; it refuses a whole batch with a longer
/// one (or with control characters), so the filter makes every event storable, visibly.
pub const MAX_FIELD_CHARS: usize = 2048;
/// Most groups or scopes the control plane stores for one event.
pub const MAX_LIST_ITEMS: usize = 256;
const TRUNCATED: &str = "…[truncated]";

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "allow" => Some(Decision::Allow),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }
}

/// One decision (contract: "AuditEvent"). Every field is always written, `null` when unknown
/// and `[]` for no groups or scopes; reading, missing optional fields are `null`/`[]` and
/// fields a newer filter adds are ignored, so filters can be upgraded before the control plane.
///
/// The fields are `Cow` so the filter borrows from the request and the policy while the control
/// plane reads owned values: `AuditEvent<'static>` is `DeserializeOwned` (no `#[serde(borrow)]`,
/// which would tie a parsed event to its input buffer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent<'a> {
    /// Unix milliseconds, by the filter's clock.
    pub time_ms: u64,
    /// `x-request-id`.
    pub request_id: Option<Cow<'a, str>>,
    /// 0 when no policy was loaded.
    pub policy_version: u64,
    pub decision: Decision,
    /// The HTTP status the filter answered; 200 when it let the request through.
    pub status: u16,
    /// `allowed`, or the refusal's reason code (`missing_credentials`, `unknown_kid`, …).
    pub reason: Cow<'a, str>,
    pub sub: Option<Cow<'a, str>>,
    pub username: Option<Cow<'a, str>>,
    pub issuer: Option<Cow<'a, str>>,
    pub client_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub groups: Vec<Cow<'a, str>>,
    #[serde(default)]
    pub scopes: Vec<Cow<'a, str>>,
    /// Registry name of the server.
    pub server: Option<Cow<'a, str>>,
    /// JSON-RPC method (for a batch, the refused message's, or `batch`).
    pub method: Option<Cow<'a, str>>,
    pub tool: Option<Cow<'a, str>>,
    pub http_method: Cow<'a, str>,
    /// The path without query or fragment.
    pub path: Cow<'a, str>,
}

/// Why the control plane would refuse `text` in an event field (`None`: storable as it is).
pub fn text_problem(text: &str) -> Option<&'static str> {
    if text.chars().count() > MAX_FIELD_CHARS {
        Some("too long")
    } else if text.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    }
}

/// `text` as the control plane can store it: control characters become U+FFFD and text over
/// [`MAX_FIELD_CHARS`] is cut, ending in `…[truncated]`. Client-controlled values (paths, tool
/// names, claims) must not be able to get a batch refused and with it other users' records.
pub fn storable(text: &str) -> Cow<'_, str> {
    let clean = !text.chars().any(char::is_control);
    // Byte length bounds the char count: most texts need no counting.
    if clean && (text.len() <= MAX_FIELD_CHARS || text.chars().count() <= MAX_FIELD_CHARS) {
        return Cow::Borrowed(text);
    }
    let keep = if text.chars().count() > MAX_FIELD_CHARS {
        MAX_FIELD_CHARS - TRUNCATED.chars().count()
    } else {
        MAX_FIELD_CHARS
    };
    let mut out: String = text
        .chars()
        .take(keep)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if keep < MAX_FIELD_CHARS {
        out.push_str(TRUNCATED);
    }
    Cow::Owned(out)
}

/// A list as the control plane can store it: at most [`MAX_LIST_ITEMS`], the last one saying
/// how many were left out.
pub fn storable_list<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> Vec<Cow<'a, str>> {
    let total = items.len();
    if total <= MAX_LIST_ITEMS {
        return items.map(storable).collect();
    }
    let mut out: Vec<Cow<'a, str>> = items.take(MAX_LIST_ITEMS - 1).map(storable).collect();
    out.push(Cow::Owned(format!(
        "…[{} more]",
        total - (MAX_LIST_ITEMS - 1)
    )));
    out
}

#[cfg(test)]
mod tests;
