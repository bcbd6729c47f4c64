//! The checks, in the order an MCP client meets them: [`Options`] in, a [`Report`] out.
//!
//! [`diagnose`] builds the HTTP client and runs the steps on a `Doctor`, which keeps the report
//! as it grows (steps, requests, notes, findings) and what later steps need from earlier ones.
//! One module per step, each adding its checks to `Doctor`:
//! - `probe`: the unauthenticated POST and GET, and the `WWW-Authenticate` challenge;
//! - `resource_metadata`: protected-resource metadata (RFC 9728) at every location clients try;
//! - `authorization_server`: authorization-server metadata (RFC 8414, OIDC discovery);
//! - `client_registration`: how each IDE will get a client id;
//! - `token`: with `--token`, the token's claims (decoded, not verified, never printed) against
//!   the server's policy: `iss`, `aud`, `client_id`, `token_use`, groups;
//! - `mappings`: the token's groups against the control plane's group mappings and scopes
//!   (`--control-plane`, `--admin-token-env`).
//!
//! `http` makes the requests: bounded bodies, redirects reported and followed hop by hop.

mod authorization_server;
mod client_registration;
mod http;
mod mappings;
mod probe;
mod resource_metadata;
mod token;

pub use self::http::MAX_BODY_BYTES;
pub use self::token::GROUP_CLAIMS;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::discovery::PrmSource;
use crate::findings::{Code, Finding, Severity};
use crate::report::{
    AuthorizationServer, ChallengeSummary, Exchange, IdeOutcome, Registration, Report, Step,
    StepStatus, Summary, TokenSummary,
};

/// What to check, independent of the command line. Its `Debug` hides the two tokens.
#[derive(Clone)]
pub struct Options {
    pub url: String,
    pub client_id: Option<String>,
    pub token: Option<String>,
    pub timeout: Duration,
    pub strict: bool,
    pub resolve: Vec<(String, SocketAddr)>,
    /// The control plane's URL, for the token's group mappings (with `admin_token`).
    pub control_plane: Option<String>,
    /// An admin (API) token for the control plane: never printed, sent only there.
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |t: &Option<String>| t.as_ref().map(|_| "<hidden>");
        f.debug_struct("Options")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("token", &hidden(&self.token))
            .field("timeout", &self.timeout)
            .field("strict", &self.strict)
            .field("resolve", &self.resolve)
            .field("control_plane", &self.control_plane)
            .field("admin_token", &hidden(&self.admin_token))
            .finish()
    }
}

impl Options {
    pub fn new(url: impl Into<String>) -> Options {
        Options {
            url: url.into(),
            client_id: None,
            token: None,
            timeout: Duration::from_secs(10),
            strict: false,
            resolve: Vec::new(),
            control_plane: None,
            admin_token: None,
        }
    }
}

/// [`diagnose`] on a runtime of its own (for callers without one).
pub fn diagnose_blocking(opts: &Options) -> Report {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(diagnose(opts)),
        Err(e) => {
            let mut d = Doctor::new(opts.clone(), None);
            d.begin("probe", "Connect without a token");
            d.find(
                Code::Unreachable,
                format!("cannot start an async runtime: {e}"),
            );
            d.reachable = false;
            d.finish()
        }
    }
}

/// Runs every check against `opts.url`.
pub async fn diagnose(opts: &Options) -> Report {
    let client = http::build_client(opts);
    let mut d = Doctor::new(opts.clone(), client.as_ref().ok().cloned());
    if let Err(e) = client {
        d.begin("probe", "Connect without a token");
        d.find(
            Code::Unreachable,
            format!("cannot build an HTTP client: {e}"),
        );
        d.reachable = false;
        return d.finish();
    }
    d.run().await;
    d.finish()
}

/// A diagnosis under way: the report so far and what later steps need from earlier ones.
struct Doctor {
    opts: Options,
    http: Option<reqwest::Client>,
    steps: Vec<Step>,
    findings: Vec<Finding>,
    reachable: bool,
    auth_required: Option<bool>,
    challenge: Option<ChallengeSummary>,
    prm_url: Option<String>,
    prm_source: Option<PrmSource>,
    prm_found_at: Vec<PrmSource>,
    prm: Option<Map<String, Value>>,
    servers: Vec<AuthorizationServer>,
    /// The first authorization server's metadata.
    as_meta: Option<Map<String, Value>>,
    registration: Registration,
    ide: Vec<IdeOutcome>,
    token: Option<TokenSummary>,
    /// Whether the GET probe carried the Bearer challenge with resource_metadata (Codex).
    get_has_challenge: bool,
}

impl Doctor {
    fn new(opts: Options, http: Option<reqwest::Client>) -> Doctor {
        Doctor {
            opts,
            http,
            steps: Vec::new(),
            findings: Vec::new(),
            reachable: true,
            auth_required: None,
            challenge: None,
            prm_url: None,
            prm_source: None,
            prm_found_at: Vec::new(),
            prm: None,
            servers: Vec::new(),
            as_meta: None,
            registration: Registration::Unknown,
            ide: Vec::new(),
            token: None,
            get_has_challenge: false,
        }
    }

    // ---- report building ----

    fn begin(&mut self, id: &'static str, title: &str) {
        self.steps.push(Step {
            id,
            title: title.into(),
            status: StepStatus::Ok,
            requests: Vec::new(),
            notes: Vec::new(),
        });
    }

    fn skip(&mut self, id: &'static str, title: &str, why: &str) {
        self.begin(id, title);
        self.note(why);
        if let Some(s) = self.steps.last_mut() {
            s.status = StepStatus::Skipped;
        }
    }

    fn step_id(&self) -> &'static str {
        self.steps.last().map_or("probe", |s| s.id)
    }

    fn note(&mut self, n: impl Into<String>) {
        if let Some(s) = self.steps.last_mut() {
            s.notes.push(n.into());
        }
    }

    fn find(&mut self, code: Code, message: impl Into<String>) {
        let step = self.step_id();
        let f = Finding::new(code, step, message);
        if let Some(s) = self.steps.last_mut() {
            s.status = match (s.status, f.severity) {
                (_, Severity::Error) | (StepStatus::Fail, _) => StepStatus::Fail,
                (_, Severity::Warning) | (StepStatus::Warn, _) => StepStatus::Warn,
                (st, Severity::Info) => st,
            };
        }
        // One finding per code and message.
        if !self
            .findings
            .iter()
            .any(|g| g.code == f.code && g.message == f.message)
        {
            self.findings.push(f);
        }
    }

    fn record(&mut self, ex: Exchange) {
        if let Some(s) = self.steps.last_mut() {
            s.requests.push(ex);
        }
    }

    fn finish(self) -> Report {
        let errors = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let warnings = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count();
        let exit_code = if !self.reachable {
            2
        } else if errors > 0 || (self.opts.strict && warnings > 0) {
            1
        } else {
            0
        };
        Report {
            url: self.opts.url.clone(),
            steps: self.steps,
            findings: self.findings,
            summary: Summary {
                reachable: self.reachable,
                auth_required: self.auth_required,
                challenge: self.challenge,
                resource_metadata_url: self.prm_url,
                resource_metadata_source: self.prm_source,
                resource_metadata_found_at: self.prm_found_at,
                authorization_servers: self.servers,
                client_registration: self.registration,
                ide: self.ide,
                token: self.token,
                errors,
                warnings,
                exit_code,
            },
        }
    }

    // ---- the checks, one module per step ----

    async fn run(&mut self) {
        let Some(url) = self.check_url() else { return };
        let Some(bearer) = self.probe(&url).await else {
            let why = if !self.reachable {
                "skipped: the URL cannot be reached"
            } else if self.auth_required == Some(false) {
                "skipped: the server asks for no token"
            } else {
                "skipped: no 401 or 403 to start OAuth discovery from"
            };
            for (id, title) in [
                ("challenge", "Read the WWW-Authenticate challenge"),
                (
                    "resource_metadata",
                    "Protected-resource metadata (RFC 9728)",
                ),
                ("authorization_server", "Authorization-server metadata"),
                ("client_registration", "How an IDE gets a client id"),
            ] {
                self.skip(id, title, why);
            }
            if self.opts.token.is_some() {
                self.inspect_token();
                self.check_mappings().await;
            }
            return;
        };
        self.read_challenge(&bearer);
        let resource_metadata = self
            .challenge
            .as_ref()
            .and_then(|c| c.resource_metadata.clone());
        if !self.resource_metadata(&url, resource_metadata).await {
            self.skip(
                "authorization_server",
                "Authorization-server metadata",
                "skipped: no protected-resource metadata naming an authorization server",
            );
            self.skip(
                "client_registration",
                "How an IDE gets a client id",
                "skipped: no authorization-server metadata",
            );
        } else if self.authorization_servers().await {
            self.client_registration();
        } else {
            self.skip(
                "client_registration",
                "How an IDE gets a client id",
                "skipped: no authorization-server metadata",
            );
        }
        if self.opts.token.is_some() {
            self.inspect_token();
            self.check_mappings().await;
        }
    }
}

/// A JSON array of strings (or a space-separated string) as a list.
fn scopes(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
        ),
        Value::String(s) => Some(s.split_ascii_whitespace().map(String::from).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
