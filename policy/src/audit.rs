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
    /// The event's own id, made by the filter that decided it ([`event_id`]): the control plane
    /// stores each id once, so a batch sent again after a lost answer is not stored twice.
    /// `null` from filters older than this field (those events are stored without dedup).
    #[serde(default)]
    pub event_id: Option<Cow<'a, str>>,
}

/// Longest event or gap id the control plane stores.
pub const MAX_ID_CHARS: usize = 128;

/// `<nonce>-<start>-<seq>`: the id of one event (or gap record) made in the filter, unique
/// without coordination. Proxy-wasm gives a VM no worker id, so each VM draws a random 64-bit
/// `nonce` when it starts and numbers its events; `start_ms` (the VM's start, unix ms) keeps
/// ids of a VM that drew the same nonce after a restart apart. All hex, lowercase.
pub fn event_id(nonce: u64, start_ms: u64, seq: u64) -> String {
    format!("{nonce:016x}-{start_ms:x}-{seq:x}")
}

/// Why an id cannot be stored (`None`: it can): at most [`MAX_ID_CHARS`] of `[A-Za-z0-9._:-]`.
/// A strict alphabet, not just "storable text": ids are compared, never displayed as prose.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() || id.len() > MAX_ID_CHARS {
        Some("expected 1 to 128 characters")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        Some("expected letters, digits, '.', '_', ':' or '-'")
    } else {
        None
    }
}

/// Why events were lost before reaching the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The singleton's buffer was full (events or bytes) while no control plane took events:
    /// the oldest went.
    BufferFull,
    /// The control plane refused a batch for good (400, or 413 for a single event).
    Refused,
    /// A queue item that was not a well-formed event (a broken or foreign writer).
    Malformed,
}

impl GapReason {
    pub const ALL: [GapReason; 3] = [
        GapReason::BufferFull,
        GapReason::Refused,
        GapReason::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::BufferFull => "buffer_full",
            GapReason::Refused => "refused",
            GapReason::Malformed => "malformed",
        }
    }

    pub fn parse(s: &str) -> Option<GapReason> {
        GapReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Where the trail is incomplete (contract "AuditGap", in `POST /v1/audit` as `gaps`): `lost`
/// decisions made between `from_ms` and `to_ms` (the times of the first and last lost event,
/// by the filter's clock) never reached the control plane, for `reason`. One Envoy reports one
/// gap per run of losses; while the run goes on it sends the same `id` again with a larger
/// `lost` and a later `to_ms`, and the control plane keeps the largest (so a lost answer
/// neither duplicates nor undercounts a gap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditGap<'a> {
    /// Made like [`AuditEvent::event_id`] (by the singleton).
    pub id: Cow<'a, str>,
    pub reason: GapReason,
    pub from_ms: u64,
    pub to_ms: u64,
    pub lost: u64,
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
