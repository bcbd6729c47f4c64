//! What a diagnosis returns: the steps with the requests made and the notes taken, the findings,
//! and a summary (what each IDE will do, the exit code). [`Report::to_text`] is the human
//! report; the `--json` report is the [`Report`]'s serialisation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::discovery::{AsSource, PrmSource};
use crate::findings::{Code, Finding, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Warn,
    Fail,
    Skipped,
}

/// One HTTP request the doctor made and what came back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub www_authenticate: Vec<String>,
    /// Transport error (connection refused, timeout, TLS, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the doctor made of it (`metadata`, `not found`, `not JSON`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Stable id: `probe`, `challenge`, `resource_metadata`, `authorization_server`,
    /// `client_registration`, `token`.
    pub id: &'static str,
    pub title: String,
    pub status: StepStatus,
    pub requests: Vec<Exchange>,
    pub notes: Vec<String>,
}

/// How an IDE will get a client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// The pre-registered client id (`--client-id` / `IDE_OAUTH_CLIENT_ID`).
    Prereg,
    /// Client ID Metadata Documents.
    Cimd,
    /// Dynamic Client Registration (RFC 7591).
    Dcr,
    /// None of those: someone must type a client id in.
    Manual,
    /// The server asks for no token.
    None,
    /// Discovery stopped before the authorization server.
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChallengeSummary {
    pub scheme: String,
    /// Every parameter (names lowercased).
    pub params: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthorizationServer {
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<AsSource>,
    pub registration_endpoint: bool,
    pub client_id_metadata_document_supported: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdeOutcome {
    pub client: &'static str,
    pub outcome: String,
}

/// Whom the token's `aud` says it is for, next to the server's resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// `aud` contains the server's resource URL (RFC 8707).
    Resource,
    /// Only other values (a fixed audience: Okta, Entra, a Keycloak Audience mapper).
    Other,
    /// Only Keycloak's `account`.
    Weak,
    /// No `aud` (Cognito access tokens).
    Absent,
}

/// The `--token`'s claims next to the server's policy. Claims only: never the token.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenSummary {
    pub jwt: bool,
    /// Groups-like claims present, with how many values each has.
    pub groups_claims: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Whether `iss` is one of the metadata's `authorization_servers` (absent: not compared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_listed: Option<bool>,
    /// The `aud` values (empty when there is none).
    pub aud: Vec<String>,
    /// What `aud` was compared with: the metadata's `resource`, else the URL given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    /// `client_id`, else `azp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// The values of every groups-like claim, deduplicated.
    pub groups: Vec<String>,
    /// Some groups are GUIDs (Entra object ids): mappings must name the ids.
    pub groups_look_like_guids: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingSummary>,
}

/// The token's groups next to the control plane's group mappings and scopes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MappingSummary {
    /// Whether the mappings were read (`--control-plane` and `--admin-token-env`).
    pub checked: bool,
    /// Why not, and how to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
    /// The registry server whose `mcp_url` is the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Each of the token's groups that has a mapping, with its scopes.
    pub scopes_by_group: BTreeMap<String, Vec<String>>,
    /// The mapped scopes with a grant on the server (or on `*`).
    pub granting: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<ChallengeSummary>,
    /// The protected-resource metadata a spec-following client uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_metadata_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_metadata_source: Option<PrmSource>,
    /// Every location that served usable protected-resource metadata.
    pub resource_metadata_found_at: Vec<PrmSource>,
    pub authorization_servers: Vec<AuthorizationServer>,
    pub client_registration: Registration,
    pub ide: Vec<IdeOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenSummary>,
    pub errors: usize,
    pub warnings: usize,
    pub exit_code: i32,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub steps: Vec<Step>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

impl Report {
    pub fn has(&self, code: Code) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "portcullis doctor {}", self.url);
        for (i, step) in self.steps.iter().enumerate() {
            let mark = match step.status {
                StepStatus::Ok => "ok",
                StepStatus::Warn => "warn",
                StepStatus::Fail => "FAIL",
                StepStatus::Skipped => "skipped",
            };
            let _ = writeln!(s, "\n{}. {} [{mark}]", i + 1, step.title);
            for r in &step.requests {
                let mut line = format!("   {} {}", r.method, r.url);
                match (r.status, &r.error) {
                    (Some(st), _) => {
                        let _ = write!(line, " -> {st}");
                    }
                    (None, Some(e)) => {
                        let _ = write!(line, " -> failed: {e}");
                    }
                    (None, None) => {}
                }
                if let Some(ct) = &r.content_type {
                    let _ = write!(line, " ({ct})");
                }
                if let Some(loc) = &r.location {
                    let _ = write!(line, " Location: {loc}");
                }
                if let Some(res) = &r.result {
                    let _ = write!(line, ": {res}");
                }
                let _ = writeln!(s, "{line}");
                for w in &r.www_authenticate {
                    let _ = writeln!(s, "      WWW-Authenticate: {w}");
                }
            }
            for n in &step.notes {
                let _ = writeln!(s, "   - {n}");
            }
            for f in self.findings.iter().filter(|f| f.step == step.id) {
                let _ = writeln!(
                    s,
                    "   {} {}: {}",
                    f.severity.label(),
                    f.code.as_str(),
                    f.message
                );
            }
        }
        let sum = &self.summary;
        if let Some(t) = &sum.token {
            token_text(&mut s, t);
        }
        let _ = writeln!(s, "\nWhat an IDE will do:");
        if sum.ide.is_empty() {
            let _ = writeln!(s, "   (unknown: discovery did not get that far)");
        }
        for o in &sum.ide {
            let _ = writeln!(s, "   {}: {}", o.client, o.outcome);
        }
        let _ = writeln!(
            s,
            "\nSummary: {} error(s), {} warning(s); client registration: {}; exit code {}",
            sum.errors,
            sum.warnings,
            serde_json::to_value(sum.client_registration)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            sum.exit_code
        );
        for f in self
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
        {
            let _ = writeln!(
                s,
                "   {} {}: {}",
                f.severity.label(),
                f.code.as_str(),
                f.message
            );
        }
        s
    }
}

/// The token lines of the text report's summary.
fn token_text(s: &mut String, t: &TokenSummary) {
    let _ = writeln!(s, "\nThe token (claims only, not verified):");
    if !t.jwt {
        let _ = writeln!(s, "   not a JWT: its claims cannot be read");
        return;
    }
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let issuer = match t.issuer_listed {
        Some(true) => "an authorization server of the metadata",
        Some(false) => "NOT an authorization server of the metadata",
        None => "not compared",
    };
    let _ = writeln!(s, "   iss: {} ({issuer})", or_none(&t.iss));
    let aud = if t.aud.is_empty() {
        "none".to_string()
    } else {
        t.aud.join(", ")
    };
    let verdict = match t.audience {
        Some(Audience::Resource) => "contains the server's resource",
        Some(Audience::Other) => "not the resource: needs PORTCULLIS_IDP_AUDIENCE",
        Some(Audience::Weak) => "Keycloak's `account` only: weak, add an Audience mapper",
        Some(Audience::Absent) => "needs the client id in PORTCULLIS_IDP_CLIENT_IDS",
        None => "",
    };
    let _ = writeln!(s, "   aud: {aud} ({verdict})");
    let _ = writeln!(
        s,
        "   client_id: {}; token_use: {}",
        or_none(&t.client_id),
        or_none(&t.token_use)
    );
    let _ = writeln!(
        s,
        "   groups: {}{}",
        if t.groups.is_empty() {
            "none".to_string()
        } else {
            t.groups.join(", ")
        },
        if t.groups_look_like_guids {
            " (GUIDs: Entra object ids; group mappings must name the ids, not display names)"
        } else {
            ""
        }
    );
    match &t.mapping {
        Some(m) if m.checked => {
            let mapped: Vec<String> = m
                .scopes_by_group
                .iter()
                .map(|(g, sc)| format!("{g} -> {}", sc.join(" ")))
                .collect();
            let _ = writeln!(
                s,
                "   group mappings: {}",
                if mapped.is_empty() {
                    "none of its groups is mapped".to_string()
                } else {
                    mapped.join("; ")
                }
            );
            let _ = writeln!(
                s,
                "   scopes granting {}: {}",
                m.server
                    .as_deref()
                    .unwrap_or("the server (not found in the registry)"),
                if m.granting.is_empty() {
                    "none".to_string()
                } else {
                    m.granting.join(", ")
                }
            );
        }
        Some(m) => {
            let _ = writeln!(
                s,
                "   group mappings: not checked ({})",
                m.not_checked.as_deref().unwrap_or("")
            );
        }
        None => {}
    }
}
