//! Steps 1 and 2: what the MCP URL answers without a token (a POST `initialize` and a GET), and
//! the `WWW-Authenticate` challenge of its 401 (or 403).

use serde_json::json;
use url::Url;

use super::http::Fetched;
use super::Doctor;
use crate::challenge;
use crate::discovery;
use crate::findings::Code;
use crate::report::{ChallengeSummary, Exchange, IdeOutcome, Registration};

/// The MCP protocol revision sent in the probe's `initialize`.
const PROTOCOL_VERSION: &str = "2025-11-25";

impl Doctor {
    /// The URL must be an absolute http(s) URL; plain http only to loopback.
    pub(super) fn check_url(&mut self) -> Option<Url> {
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
    pub(super) async fn probe(&mut self, url: &Url) -> Option<Fetched> {
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
    pub(super) fn read_challenge(&mut self, resp: &Fetched) {
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
}
