//! `portcullis doctor <mcp-url>`: does what an MCP client does before it can log in, and says,
//! step by step, what it found, what each coding assistant will do, and which known mistakes the
//! setup has (see [`findings::Code`] and `docs/doctor.md`).
//!
//! 1. POST an `initialize` request and GET the URL, both without a token; expect 401 with
//!    `WWW-Authenticate: Bearer resource_metadata="…", scope="…"`.
//! 2. Fetch protected-resource metadata (RFC 9728) at every location clients try.
//! 3. Fetch authorization-server metadata for each `authorization_servers` entry, in the
//!    specification's order.
//! 4. Work out how an IDE gets a client id (pre-registered, CIMD, DCR, by hand).
//! 5. With `--token`, read (without verifying, never printing) the token's groups claims.
//!
//! Nothing is followed silently: redirects are reported (and metadata redirects followed, hop by
//! hop), every response is bounded in size and time.

#![forbid(unsafe_code)]

pub mod challenge;
pub mod discovery;
pub mod findings;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use serde::Serialize;
use serde_json::{json, Map, Value};
use url::Url;

use self::discovery::{AsSource, PrmSource};
use self::findings::{Code, Finding, Severity};

/// Largest response body read from any URL.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most redirect hops reported (and followed) for one metadata document.
const MAX_REDIRECTS: usize = 5;
/// The MCP protocol revision sent in the probe's `initialize`.
const PROTOCOL_VERSION: &str = "2025-11-25";
/// Claims that carry groups at the IdPs we know (`realm_access.roles` is Keycloak's nested one).
pub const GROUP_CLAIMS: &[&str] = &["groups", "cognito:groups", "roles", "realm_access.roles"];

/// `portcullis doctor` arguments.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// The MCP server URL, exactly as clients are given it.
    pub url: String,
    /// Print a machine-readable JSON report instead of text.
    #[arg(long)]
    pub json: bool,
    /// Pre-registered OAuth client id the IDEs will be handed [default: $IDE_OAUTH_CLIENT_ID].
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// An access token whose claims to inspect (decoded, NOT verified, never printed or sent);
    /// `-` reads it from stdin.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Seconds allowed for each request.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Connect to ADDR (an IP, or IP:PORT used when a URL has no port) whenever a URL names
    /// HOST, like curl's --resolve; repeatable. Checks a deployment before DNS points at it.
    #[arg(long, value_name = "HOST=ADDR", value_parser = parse_resolve)]
    pub resolve: Vec<(String, SocketAddr)>,
}

/// `HOST=IP` or `HOST=IP:PORT` (IPv6 as `[::1]:PORT` or bare).
pub fn parse_resolve(s: &str) -> Result<(String, SocketAddr), String> {
    let (host, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected HOST=ADDR, got `{s}`"))?;
    let host = host.trim().to_ascii_lowercase();
    if host.is_empty() {
        return Err("empty HOST in --resolve".into());
    }
    let addr = addr.trim();
    let sa = addr
        .parse::<SocketAddr>()
        .or_else(|_| addr.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
        .map_err(|_| format!("`{addr}` is neither an IP address nor IP:PORT"))?;
    Ok((host, sa))
}

/// What to check, independent of the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub client_id: Option<String>,
    pub token: Option<String>,
    pub timeout: Duration,
    pub strict: bool,
    pub resolve: Vec<(String, SocketAddr)>,
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
        }
    }
}

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

#[derive(Debug, Clone, Serialize)]
pub struct TokenSummary {
    pub jwt: bool,
    /// Groups-like claims present, with how many values each has.
    pub groups_claims: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<bool>,
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

/// Runs the doctor for the command line: prints the report, returns the exit code
/// (0 = no error, 1 = an error finding (or a warning with `--strict`), 2 = unreachable).
pub fn run(args: &DoctorArgs) -> i32 {
    let token = match args.token.as_deref() {
        Some("-") => {
            let mut t = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut t) {
                eprintln!("portcullis doctor: reading the token from stdin: {e}");
                return 2;
            }
            Some(t.trim().to_string())
        }
        other => other.map(|t| t.trim().to_string()),
    };
    let opts = Options {
        url: args.url.clone(),
        client_id: args
            .client_id
            .clone()
            .or_else(|| std::env::var("IDE_OAUTH_CLIENT_ID").ok())
            .filter(|c| !c.trim().is_empty()),
        token,
        timeout: Duration::from_secs(args.timeout.max(1)),
        strict: args.strict,
        resolve: args.resolve.clone(),
    };
    let report = diagnose_blocking(&opts);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_text());
    }
    report.summary.exit_code
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
    let client = build_client(opts);
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

fn build_client(opts: &Options) -> reqwest::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("portcullis-doctor/", env!("CARGO_PKG_VERSION")));
    for (host, addr) in &opts.resolve {
        b = b.resolve(host, *addr);
    }
    b.build()
}

/// A response, with its body read up to [`MAX_BODY_BYTES`].
struct Fetched {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    www_authenticate: Vec<String>,
    body: Vec<u8>,
    too_large: bool,
}

/// What a metadata URL gave.
enum Doc {
    /// A JSON object; `content_type_ok` says whether it was served as JSON.
    Json {
        doc: Map<String, Value>,
        content_type_ok: bool,
        content_type: Option<String>,
    },
    /// 200 but not a JSON object.
    NotJson {
        content_type: Option<String>,
    },
    TooLarge,
    /// Another status (after redirects).
    Status(u16),
    /// A redirect loop or too many hops.
    TooManyRedirects,
    /// Transport error.
    Failed,
}

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
        self.steps.last().map(|s| s.id).unwrap_or("probe")
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

    // ---- HTTP ----

    async fn send(&self, req: reqwest::RequestBuilder, read_body: bool) -> Result<Fetched, String> {
        let resp = req.send().await.map_err(|e| error_chain(&e))?;
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let mut f = Fetched {
            status: resp.status().as_u16(),
            content_type: header(reqwest::header::CONTENT_TYPE),
            location: header(reqwest::header::LOCATION),
            www_authenticate: resp
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect(),
            body: Vec::new(),
            too_large: false,
        };
        if read_body {
            if resp
                .content_length()
                .is_some_and(|n| n > MAX_BODY_BYTES as u64)
            {
                f.too_large = true;
                return Ok(f);
            }
            let mut resp = resp;
            while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
                if f.body.len() + chunk.len() > MAX_BODY_BYTES {
                    f.too_large = true;
                    break;
                }
                f.body.extend_from_slice(&chunk);
            }
        }
        Ok(f)
    }

    /// GETs a metadata document, following (and recording) at most [`MAX_REDIRECTS`] redirects.
    async fn get_doc(&mut self, url: &str) -> Doc {
        let Some(http) = self.http.clone() else {
            return Doc::Failed;
        };
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut ex = Exchange {
                method: "GET".into(),
                url: url.clone(),
                ..Exchange::default()
            };
            let fetched = self
                .send(http.get(&url).header("accept", "application/json"), true)
                .await;
            let f = match fetched {
                Ok(f) => f,
                Err(e) => {
                    ex.error = Some(e.clone());
                    self.record(ex);
                    return Doc::Failed;
                }
            };
            ex.status = Some(f.status);
            ex.content_type = f.content_type.clone();
            ex.location = f.location.clone();
            if (300..400).contains(&f.status) {
                let next = f
                    .location
                    .as_deref()
                    .and_then(|l| Url::parse(&url).ok()?.join(l).ok());
                let Some(next) = next else {
                    ex.result = Some("redirect without a usable Location".into());
                    self.record(ex);
                    return Doc::Status(f.status);
                };
                ex.result = Some("redirect (followed, as most clients do)".into());
                self.record(ex);
                self.find(
                    Code::Redirect,
                    format!(
                        "{url} redirects ({}) to {next}; serve the document at the URL itself",
                        f.status
                    ),
                );
                url = next.to_string();
                continue;
            }
            let doc = if f.status != 200 {
                Doc::Status(f.status)
            } else if f.too_large {
                Doc::TooLarge
            } else {
                match serde_json::from_slice::<Value>(&f.body) {
                    Ok(Value::Object(doc)) => Doc::Json {
                        doc,
                        content_type_ok: f
                            .content_type
                            .as_deref()
                            .is_some_and(is_json_content_type),
                        content_type: f.content_type.clone(),
                    },
                    _ => Doc::NotJson {
                        content_type: f.content_type.clone(),
                    },
                }
            };
            ex.result = Some(
                match &doc {
                    Doc::Json { .. } => "JSON document",
                    Doc::NotJson { .. } => "not a JSON object",
                    Doc::TooLarge => "larger than 256 KB",
                    Doc::Status(404) => "not found",
                    Doc::Status(_) => "no document",
                    Doc::TooManyRedirects | Doc::Failed => "",
                }
                .to_string(),
            )
            .filter(|r| !r.is_empty());
            self.record(ex);
            return doc;
        }
        Doc::TooManyRedirects
    }

    // ---- the checks ----

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
        }
    }

    /// The URL must be an absolute http(s) URL; plain http only to loopback.
    fn check_url(&mut self) -> Option<Url> {
        let raw = self.opts.url.trim().to_string();
        self.begin("probe", "Connect without a token (POST initialize, GET)");
        match Url::parse(&raw) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                if discovery::is_insecure(&u) {
                    self.find(
                        Code::InsecureTransport,
                        format!("{raw} is plain http to a host that is not loopback: tokens would cross the network in the clear, and clients may refuse it"),
                    );
                }
                Some(u)
            }
            _ => {
                self.find(
                    Code::InvalidUrl,
                    format!("`{raw}` is not an absolute http(s) URL"),
                );
                self.reachable = false;
                None
            }
        }
    }

    /// Step 1: POST initialize and GET without a token. Returns the 401/403 response whose
    /// challenge discovery continues from, or `None` when discovery stops here.
    async fn probe(&mut self, url: &Url) -> Option<Fetched> {
        let http = self.http.clone()?;
        let body = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "portcullis-doctor", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let raw = self.opts.url.trim().to_string();
        let post = self
            .send(
                http.post(url.clone())
                    .header("accept", "application/json, text/event-stream")
                    .header("content-type", "application/json")
                    .body(body.to_string()),
                false,
            )
            .await;
        let get = self
            .send(
                http.get(url.clone()).header("accept", "text/event-stream"),
                false,
            )
            .await;
        for (method, r) in [("POST", &post), ("GET", &get)] {
            let mut ex = Exchange {
                method: method.into(),
                url: raw.clone(),
                ..Exchange::default()
            };
            match r {
                Ok(f) => {
                    ex.status = Some(f.status);
                    ex.content_type = f.content_type.clone();
                    ex.location = f.location.clone();
                    ex.www_authenticate = f.www_authenticate.clone();
                }
                Err(e) => ex.error = Some(e.clone()),
            }
            self.record(ex);
        }
        let (primary, other) = match (post, get) {
            (Err(e), Err(_)) => {
                self.find(Code::Unreachable, format!("{raw} cannot be reached: {e}"));
                self.reachable = false;
                return None;
            }
            (Ok(p), g) => (p, g.ok()),
            (Err(e), Ok(g)) => {
                self.note(format!(
                    "the POST failed ({e}); continuing with the GET's answer"
                ));
                (g, None)
            }
        };
        // Codex reads the challenge only from an unauthenticated GET.
        if let Some(g) = &other {
            self.get_has_challenge = g.status == 401
                && challenge::parse_all(g.www_authenticate.iter().map(String::as_str))
                    .ok()
                    .is_some_and(|cs| {
                        challenge::bearer(&cs)
                            .is_some_and(|b| b.param("resource_metadata").is_some())
                    });
        }
        match primary.status {
            401 => {
                self.auth_required = Some(true);
                self.note("401 without a token: clients will start OAuth discovery");
                if let Some(g) = &other {
                    if !self.get_has_challenge {
                        self.find(
                            Code::GetNoChallenge,
                            format!(
                                "an unauthenticated GET got {} without a Bearer challenge carrying resource_metadata; Codex reads WWW-Authenticate only from that GET and falls back to the well-known locations",
                                g.status
                            ),
                        );
                    }
                }
                Some(primary)
            }
            403 => {
                self.auth_required = Some(true);
                self.find(
                    Code::ForbiddenWithoutToken,
                    "a request without a token got 403; MCP clients start OAuth only on 401 (for Envoy's jwt_authn or RBAC, answer missing credentials with 401 and a WWW-Authenticate challenge)",
                );
                Some(primary)
            }
            s if (200..300).contains(&s) => {
                self.auth_required = Some(false);
                self.registration = Registration::None;
                self.find(
                    Code::NoAuth,
                    format!("POST initialize without a token got {s}: the server asks for no authentication, so IDEs connect without logging in and anyone who can reach it can use it"),
                );
                self.ide.push(IdeOutcome {
                    client: "every client",
                    outcome: "connects without OAuth".into(),
                });
                None
            }
            s if (300..400).contains(&s) => {
                self.find(
                    Code::ProbeRedirect,
                    format!(
                        "the MCP URL answers {s} (Location: {}); clients POST to the URL they are given, so give them the final URL",
                        primary.location.as_deref().unwrap_or("none")
                    ),
                );
                None
            }
            s => {
                self.find(
                    Code::UnexpectedStatus,
                    format!("POST initialize without a token got {s}, not 401: no client starts OAuth discovery (is this the MCP endpoint?)"),
                );
                None
            }
        }
    }

    /// Step 2: parse the challenge of the 401 (or 403).
    fn read_challenge(&mut self, resp: &Fetched) {
        self.begin("challenge", "Read the WWW-Authenticate challenge");
        if resp.www_authenticate.is_empty() {
            self.find(
                Code::ChallengeMissing,
                format!("the {} has no WWW-Authenticate header", resp.status),
            );
            if resp.status == 401 {
                self.find(
                    Code::ChallengeNoResourceMetadata,
                    "no resource_metadata in a challenge: clients of the 2025-06-18 MCP revision find the metadata only through it",
                );
            }
            return;
        }
        let challenges =
            match challenge::parse_all(resp.www_authenticate.iter().map(String::as_str)) {
                Ok(c) => c,
                Err(e) => {
                    self.find(
                        Code::ChallengeMalformed,
                        format!("WWW-Authenticate does not parse: {e}"),
                    );
                    return;
                }
            };
        let Some(b) = challenge::bearer(&challenges) else {
            let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
            self.find(
                Code::ChallengeMissing,
                format!(
                    "no Bearer challenge (schemes: {})",
                    if schemes.is_empty() {
                        "none".into()
                    } else {
                        schemes.join(", ")
                    }
                ),
            );
            return;
        };
        let summary = ChallengeSummary {
            scheme: b.scheme.clone(),
            params: b.params.iter().cloned().collect(),
            resource_metadata: b.param("resource_metadata").map(String::from),
            scope: b.param("scope").map(String::from),
        };
        match &summary.resource_metadata {
            None => self.find(
                Code::ChallengeNoResourceMetadata,
                "the Bearer challenge has no resource_metadata: clients of the 2025-06-18 MCP revision find the protected-resource metadata only through it",
            ),
            Some(rm) => match Url::parse(rm) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
                    self.note(format!("resource_metadata = {rm}"));
                    if discovery::is_insecure(&u) {
                        self.find(
                            Code::InsecureTransport,
                            format!("resource_metadata {rm} is plain http to a host that is not loopback"),
                        );
                    }
                }
                _ => self.find(
                    Code::ChallengeMalformed,
                    format!("resource_metadata `{rm}` is not an absolute http(s) URL"),
                ),
            },
        }
        match &summary.scope {
            None => self.find(
                Code::ChallengeNoScope,
                "the Bearer challenge has no scope: clients fall back to the metadata's scopes_supported (or ask for none)",
            ),
            Some(s) => self.note(format!("scope = {s}")),
        }
        if let Some(e) = b.param("error") {
            self.note(format!(
                "error = {e} (RFC 6750 §3.1: a request without credentials should get no error code)"
            ));
        }
        self.challenge = Some(summary);
    }

    /// Step 3: protected-resource metadata. Returns whether a usable document names an
    /// authorization server.
    async fn resource_metadata(&mut self, url: &Url, from_challenge: Option<String>) -> bool {
        self.begin(
            "resource_metadata",
            "Protected-resource metadata (RFC 9728)",
        );
        let from_challenge = from_challenge.filter(|u| Url::parse(u).is_ok());
        let candidates = discovery::prm_candidates(url, from_challenge.as_deref());
        let mut found: Vec<(PrmSource, String, Map<String, Value>)> = Vec::new();
        for c in &candidates {
            match self.get_doc(&c.url).await {
                Doc::Json {
                    doc,
                    content_type_ok,
                    content_type,
                } => {
                    if !content_type_ok {
                        self.find(
                            Code::PrmContentType,
                            format!(
                                "{} is served as {}, not application/json",
                                c.url,
                                content_type.as_deref().unwrap_or("(no content-type)")
                            ),
                        );
                    }
                    found.push((c.source, c.url.clone(), doc));
                }
                Doc::NotJson { content_type } => {
                    if found.is_empty() {
                        self.find(
                            Code::PrmNotJson,
                            format!(
                                "{} answers 200 with something that is not a JSON object ({})",
                                c.url,
                                content_type.as_deref().unwrap_or("no content-type")
                            ),
                        );
                    } else {
                        self.note(format!(
                            "{} answers 200 with something that is not JSON (not reached by clients that stop at the first document)",
                            c.url
                        ));
                    }
                }
                Doc::TooLarge => self.find(
                    Code::ResponseTooLarge,
                    format!("{} is larger than 256 KB", c.url),
                ),
                Doc::Status(_) | Doc::TooManyRedirects | Doc::Failed => {}
            }
            if c.source == PrmSource::Challenge && !found.iter().any(|f| f.0 == c.source) {
                self.find(
                    Code::PrmChallengeUrlFailed,
                    format!(
                        "the challenge's resource_metadata {} does not serve the metadata; clients that follow the challenge stop there",
                        c.url
                    ),
                );
            }
        }
        // The challenge URL may be one of the well-known locations too: list it under both.
        let well_known = discovery::prm_candidates(url, None);
        let wk_source = |u: &str| well_known.iter().find(|c| c.url == u).map(|c| c.source);
        for (source, u, _) in &found {
            self.prm_found_at.push(*source);
            if *source == PrmSource::Challenge {
                if let Some(alias) = wk_source(u) {
                    self.prm_found_at.push(alias);
                }
            }
        }
        let Some((source, prm_url, doc)) = found.first().cloned() else {
            let tried: Vec<&str> = candidates.iter().map(|c| c.url.as_str()).collect();
            self.find(
                Code::PrmNotFound,
                format!(
                    "no protected-resource metadata at any location clients try ({})",
                    tried.join(", ")
                ),
            );
            return false;
        };
        self.note(format!("found at {} ({prm_url})", source.describe()));
        // Claude Code does not read the challenge: it tries the well-known locations.
        let claude = found.iter().find(|f| {
            matches!(
                wk_source(&f.1),
                Some(PrmSource::PathSuffixed | PrmSource::Root)
            )
        });
        let any_well_known = found.iter().any(|f| wk_source(&f.1).is_some());
        if !any_well_known {
            self.find(
                Code::PrmOnlyViaChallenge,
                "the metadata is found only through the challenge's resource_metadata URL; Claude Code never reads WWW-Authenticate and looks at /.well-known/oauth-protected-resource/<path> and the root, so it will not find it",
            );
        } else if claude.is_none() {
            self.find(
                Code::PrmOnlyViaChallenge,
                "the metadata is not at /.well-known/oauth-protected-resource/<path> or the root, where Claude Code looks",
            );
        }
        // What a spec client uses, and what Claude Code uses (when different).
        self.check_prm(&prm_url, &doc, None);
        if let Some((_, c_url, c_doc)) = claude {
            if *c_url != prm_url {
                let (c_url, c_doc) = (c_url.clone(), c_doc.clone());
                self.check_prm(&c_url, &c_doc, Some("what Claude Code reads"));
            }
        }
        self.prm_url = Some(prm_url);
        self.prm_source = Some(source);
        let has_as = doc
            .get("authorization_servers")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(Value::is_string));
        self.prm = Some(doc);
        has_as
    }

    fn check_prm(&mut self, at: &str, doc: &Map<String, Value>, who: Option<&str>) {
        let given = self.opts.url.trim().to_string();
        let whose = who.map(|w| format!(" ({w})")).unwrap_or_default();
        match doc.get("resource").and_then(Value::as_str) {
            None => self.find(
                Code::PrmResourceMissing,
                format!("{at}{whose} has no `resource`; it must be {given}"),
            ),
            Some(r) if r != given => {
                let hint = if r.trim_end_matches('/') == given.trim_end_matches('/') {
                    " (they differ only in a trailing slash: clients compare exactly)"
                } else if r.eq_ignore_ascii_case(&given) {
                    " (they differ only in letter case)"
                } else {
                    ""
                };
                self.find(
                    Code::PrmResourceMismatch,
                    format!("{at}{whose} says resource = {r}, but clients connect to {given}{hint}; clients reject metadata for another resource and send it as the token's audience"),
                );
            }
            Some(r) => self.note(format!("resource = {r} (matches the URL)")),
        }
        match doc.get("authorization_servers") {
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                let list: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                if who.is_none() {
                    self.note(format!("authorization_servers = {}", list.join(", ")));
                }
            }
            Some(_) => self.find(
                Code::PrmNoAuthorizationServers,
                format!("{at}{whose}: `authorization_servers` must be a non-empty array of issuer URLs"),
            ),
            None => self.find(
                Code::PrmNoAuthorizationServers,
                format!("{at}{whose} has no `authorization_servers`: clients cannot find where to log in"),
            ),
        }
        if who.is_none() {
            if let Some(s) = scopes(doc.get("scopes_supported")) {
                self.note(format!("scopes_supported = {}", s.join(" ")));
            }
        }
    }

    /// Step 4: authorization-server metadata for each entry. Returns whether the first one was
    /// found.
    async fn authorization_servers(&mut self) -> bool {
        self.begin("authorization_server", "Authorization-server metadata");
        let issuers: Vec<String> = self
            .prm
            .as_ref()
            .and_then(|p| p.get("authorization_servers"))
            .and_then(Value::as_array)
            .map(|a| {
                let mut v: Vec<String> = Vec::new();
                for s in a.iter().filter_map(Value::as_str) {
                    if !v.iter().any(|x| x == s) {
                        v.push(s.to_string());
                    }
                }
                v
            })
            .unwrap_or_default();
        let mut first_found = false;
        for (i, issuer) in issuers.iter().enumerate() {
            let mut entry = AuthorizationServer {
                issuer: issuer.clone(),
                metadata_url: None,
                source: None,
                registration_endpoint: false,
                client_id_metadata_document_supported: false,
            };
            let parsed = Url::parse(issuer).ok().filter(|u| {
                (u.scheme() == "https" || u.scheme() == "http")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            let Some(iss_url) = parsed else {
                self.find(
                    Code::AsIssuerInvalid,
                    format!("authorization server `{issuer}` is not an absolute http(s) URL without query or fragment"),
                );
                self.servers.push(entry);
                continue;
            };
            if discovery::is_insecure(&iss_url) {
                self.find(
                    Code::InsecureTransport,
                    format!("authorization server {issuer} is plain http to a host that is not loopback"),
                );
            }
            let mut meta = None;
            for c in discovery::as_candidates(&iss_url) {
                match self.get_doc(&c.url).await {
                    Doc::Json {
                        doc,
                        content_type_ok,
                        content_type,
                    } => {
                        if !content_type_ok {
                            self.find(
                                Code::AsMetadataContentType,
                                format!(
                                    "{} is served as {}, not application/json; strict clients refuse it",
                                    c.url,
                                    content_type.as_deref().unwrap_or("(no content-type)")
                                ),
                            );
                        }
                        self.note(format!("{issuer}: found {} at {}", c.source.describe(), c.url));
                        entry.metadata_url = Some(c.url.clone());
                        entry.source = Some(c.source);
                        meta = Some(doc);
                        break;
                    }
                    Doc::NotJson { content_type } => self.find(
                        Code::AsMetadataNotJson,
                        format!(
                            "{} answers 200 with something that is not a JSON object ({}); clients that reach it fail",
                            c.url,
                            content_type.as_deref().unwrap_or("no content-type")
                        ),
                    ),
                    Doc::TooLarge => self.find(
                        Code::ResponseTooLarge,
                        format!("{} is larger than 256 KB", c.url),
                    ),
                    Doc::Status(_) | Doc::TooManyRedirects | Doc::Failed => {}
                }
            }
            let Some(meta) = meta else {
                let tried: Vec<String> = discovery::as_candidates(&iss_url)
                    .into_iter()
                    .map(|c| c.url)
                    .collect();
                self.find(
                    Code::AsMetadataNotFound,
                    format!(
                        "no authorization-server metadata for {issuer} (tried {})",
                        tried.join(", ")
                    ),
                );
                self.servers.push(entry);
                continue;
            };
            self.check_as(issuer, &meta, &mut entry);
            if i == 0 {
                first_found = true;
                self.as_meta = Some(meta);
            }
            self.servers.push(entry);
        }
        if issuers.len() > 1 {
            self.note("several authorization servers: most clients use the first one");
        }
        first_found
    }

    fn check_as(
        &mut self,
        issuer: &str,
        meta: &Map<String, Value>,
        entry: &mut AuthorizationServer,
    ) {
        match meta.get("issuer").and_then(Value::as_str) {
            Some(i) if i == issuer => self.note(format!("issuer = {i} (matches)")),
            Some(i) => {
                let hint = if i.trim_end_matches('/') == issuer.trim_end_matches('/') {
                    " (only a trailing slash differs: the comparison is exact)"
                } else {
                    ""
                };
                self.find(
                    Code::AsIssuerMismatch,
                    format!("metadata for {issuer} says issuer = {i}{hint}; clients (Codex among them) compare exactly and refuse it (RFC 8414 §3.3)"),
                );
            }
            None => self.find(
                Code::AsIssuerMismatch,
                format!("metadata for {issuer} has no `issuer`; clients refuse it (RFC 8414 §3.3)"),
            ),
        }
        match meta.get("code_challenge_methods_supported") {
            None => self.find(
                Code::PkceMethodsAbsent,
                format!("{issuer}: code_challenge_methods_supported is absent; MCP clients must refuse an authorization server that does not advertise PKCE (some older ones carry on); advertise [\"S256\"] (Portcullis' mirrored metadata adds it)"),
            ),
            Some(v) => {
                let methods = scopes(Some(v)).unwrap_or_default();
                if methods.iter().any(|m| m == "S256") {
                    self.note("PKCE S256 supported");
                } else {
                    self.find(
                        Code::PkceS256Missing,
                        format!(
                            "{issuer}: code_challenge_methods_supported = [{}] has no S256; MCP clients only use S256",
                            methods.join(", ")
                        ),
                    );
                }
            }
        }
        entry.registration_endpoint = meta
            .get("registration_endpoint")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        entry.client_id_metadata_document_supported =
            meta.get("client_id_metadata_document_supported") == Some(&Value::Bool(true));
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "registration_endpoint",
        ] {
            match meta.get(field).and_then(Value::as_str) {
                Some(v) if Url::parse(v).is_ok_and(|u| discovery::is_insecure(&u)) => self.find(
                    Code::InsecureTransport,
                    format!("{field} {v} is plain http to a host that is not loopback"),
                ),
                Some(_) => {}
                None if field != "registration_endpoint" => {
                    self.note(format!("{issuer}: no {field}"));
                }
                None => {}
            }
        }
        if meta.get("authorization_response_iss_parameter_supported") == Some(&Value::Bool(true)) {
            self.note("sends iss in the authorization response (RFC 9207)");
        }
        // offline_access: asked for by clients when the challenge or the PRM advertise it.
        let mut advertised: Vec<&str> = Vec::new();
        if self
            .challenge
            .as_ref()
            .and_then(|c| c.scope.as_deref())
            .is_some_and(|s| s.split_ascii_whitespace().any(|x| x == "offline_access"))
        {
            advertised.push("the challenge's scope");
        }
        if scopes(self.prm.as_ref().and_then(|p| p.get("scopes_supported")))
            .is_some_and(|s| s.iter().any(|x| x == "offline_access"))
        {
            advertised.push("the protected-resource metadata's scopes_supported");
        }
        if !advertised.is_empty() {
            match scopes(meta.get("scopes_supported")) {
                Some(s) if !s.iter().any(|x| x == "offline_access") => self.find(
                    Code::OfflineAccessUnsupported,
                    format!("offline_access is advertised in {}, but {issuer} does not list it in scopes_supported; clients ask for it and IdPs such as Amazon Cognito reject the authorization request (drop it from MCP_ADVERTISED_SCOPES)", advertised.join(" and ")),
                ),
                Some(_) => {}
                None => self.note(format!(
                    "offline_access is advertised but {issuer} publishes no scopes_supported: cannot tell whether it accepts it"
                )),
            }
        }
    }

    /// Step 5: how each IDE will get a client id.
    fn client_registration(&mut self) {
        self.begin("client_registration", "How an IDE gets a client id");
        let dcr = self
            .servers
            .first()
            .is_some_and(|s| s.registration_endpoint);
        let cimd = self
            .servers
            .first()
            .is_some_and(|s| s.client_id_metadata_document_supported);
        let client_id = self.opts.client_id.clone();
        self.note(format!(
            "dynamic client registration (registration_endpoint): {}",
            yes_no(dcr)
        ));
        self.note(format!(
            "client ID metadata documents (client_id_metadata_document_supported): {}",
            yes_no(cimd)
        ));
        match &client_id {
            Some(id) => self.note(format!("pre-registered client id: {id}")),
            None => self.note("pre-registered client id: none (--client-id / IDE_OAUTH_CLIENT_ID)"),
        }
        self.registration = if client_id.is_some() {
            Registration::Prereg
        } else if cimd {
            Registration::Cimd
        } else if dcr {
            Registration::Dcr
        } else {
            Registration::Manual
        };
        if self.registration == Registration::Manual {
            self.find(
                Code::NoClientRegistration,
                "the authorization server offers neither DCR (registration_endpoint) nor client ID metadata documents, and no client id is known: every user would have to type a client id by hand (set IDE_OAUTH_CLIENT_ID or the server's oauth_client_id, or pass --client-id to check with one)",
            );
        }
        let prm_claude = self
            .prm_found_at
            .iter()
            .any(|s| matches!(s, PrmSource::PathSuffixed | PrmSource::Root));
        let prm_codex =
            self.get_has_challenge || self.prm_found_at.iter().any(|s| *s != PrmSource::Challenge);
        let issuer_ok = !self
            .findings
            .iter()
            .any(|f| f.code == Code::AsIssuerMismatch);
        let how = |prefer_cimd: bool, cimd_id: &str, dcr_name: &str, flag: &str| -> String {
            if let Some(id) = &client_id {
                format!("uses the pre-registered client id {id} ({flag})")
            } else if cimd && prefer_cimd {
                format!("uses a client ID metadata document ({cimd_id})")
            } else if dcr {
                format!("registers itself with DCR ({dcr_name})")
            } else if cimd {
                format!("uses a client ID metadata document ({cimd_id})")
            } else {
                format!("cannot log in until it is given a client id ({flag})")
            }
        };
        let mut codex = how(
            true,
            "https://chatgpt.com/oauth/codex/…/client.json",
            "client_name \"Codex\"",
            "codex mcp add --oauth-client-id",
        );
        if !prm_codex {
            codex = format!("will not find the protected-resource metadata; {codex}");
        }
        if !issuer_ok {
            codex = format!(
                "refuses the authorization-server metadata (issuer mismatch); otherwise {codex}"
            );
        }
        let mut claude = how(
            true,
            "https://claude.ai/oauth/claude-code-client-metadata",
            "client_name \"Claude Code (<name>)\"",
            "claude mcp add --client-id",
        );
        if !prm_claude {
            claude = format!("will not find the protected-resource metadata (it does not read WWW-Authenticate); {claude}");
        }
        let spec = how(
            true,
            "an https URL of its own",
            "its own client_name",
            "typed in by the user",
        );
        self.ide = vec![
            IdeOutcome {
                client: "Claude Code",
                outcome: claude,
            },
            IdeOutcome {
                client: "Codex",
                outcome: codex,
            },
            IdeOutcome {
                client: "other MCP clients (pre-registered > CIMD > DCR > ask)",
                outcome: spec,
            },
        ];
    }

    /// Step 6: the token's groups claims, read without verification. The token itself is
    /// never printed.
    fn inspect_token(&mut self) {
        self.begin("token", "Access token claims (decoded, not verified)");
        let token = self.opts.token.clone().unwrap_or_default();
        let parts: Vec<&str> = token.split('.').collect();
        let payload = (parts.len() == 3).then(|| b64url_json(parts[1])).flatten();
        let Some(claims) = payload else {
            let what = match parts.len() {
                5 => "an encrypted JWT (JWE)",
                3 => "three dot-separated parts whose payload is not base64url JSON",
                _ => "not a JWT (an opaque token)",
            };
            self.find(
                Code::TokenNotJwt,
                format!("the token is {what}; the filter accepts only JWS JWTs it can verify from the snapshot"),
            );
            self.token = Some(TokenSummary {
                jwt: false,
                groups_claims: BTreeMap::new(),
                expired: None,
            });
            return;
        };
        let mut groups = BTreeMap::new();
        for name in GROUP_CLAIMS {
            if let Some(v) = claim(&claims, name) {
                let n = match v {
                    Value::Array(a) => a.len(),
                    Value::String(_) => 1,
                    _ => 0,
                };
                groups.insert((*name).to_string(), n);
            }
        }
        if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
            self.note(format!("iss = {iss}"));
        }
        match claims.get("aud") {
            Some(Value::String(a)) => self.note(format!("aud = {a}")),
            Some(Value::Array(a)) => {
                let list: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                self.note(format!("aud = {}", list.join(", ")));
            }
            _ => self
                .note("no aud (IdPs like Cognito: list the client id in the issuer's client_ids)"),
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let expired = claims.get("exp").and_then(Value::as_i64).map(|e| e < now);
        if expired == Some(true) {
            self.find(
                Code::TokenExpired,
                "the token has expired (exp is in the past)",
            );
        }
        if groups.is_empty() {
            self.find(
                Code::TokenNoGroups,
                format!("the token has none of the claims {}: Portcullis maps groups to scopes, so every request would be denied (no_groups). Configure the IdP to put groups in access tokens, or set the issuer's groups_claim", GROUP_CLAIMS.join(", ")),
            );
        } else {
            for (k, n) in &groups {
                self.note(format!("groups claim `{k}` present ({n} value(s))"));
            }
        }
        self.token = Some(TokenSummary {
            jwt: true,
            groups_claims: groups,
            expired,
        });
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `application/json` or any `+json` type, parameters ignored.
fn is_json_content_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
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

/// A claim by name, or by dotted path into nested objects (a literal name wins).
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Decodes a base64url (padded or not) JSON object.
fn b64url_json(s: &str) -> Option<Map<String, Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests;
