//! One HTTP request through the filter, following DESIGN.md's request path.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use policy::{looks_like_jwt, parse_body, Identity, Policy, Route, ServerId, TokenError};

use crate::audit::{summarize, AuditEvent, Outcome, RequestFacts};
use crate::cache::Cached;
use crate::clock;
use crate::response::{self, Reply};
use crate::shared_policy::Loaded;
use crate::sync::unix_millis;
use crate::Shared;

/// Identity headers clients must never be able to set themselves.
const RESERVED_PREFIX: &str = "x-portcullis-";

enum State {
    /// Headers not seen yet, or the request was passed on or answered.
    Idle,
    /// A `POST` whose JSON-RPC body must be checked before anything goes upstream.
    AwaitBody {
        server: ServerId,
        identity: Rc<Identity>,
        body_seen: bool,
    },
}

pub struct Request {
    shared: Option<Rc<Shared>>,
    /// The policy this request is decided by, from headers to body, even if a new snapshot
    /// arrives in between.
    loaded: Option<Rc<Loaded>>,
    state: State,
    /// For the audit event; captured only when audit is on.
    facts: Option<RequestFacts>,
    /// Who and where, once known, for the audit event.
    identity: Option<Rc<Identity>>,
    server: Option<ServerId>,
}

impl Request {
    pub fn new(shared: Option<Rc<Shared>>) -> Self {
        Request {
            shared,
            loaded: None,
            state: State::Idle,
            facts: None,
            identity: None,
            server: None,
        }
    }

    /// Unix seconds from the host, also refreshing the shared clock.
    fn real_now(&self, shared: &Shared) -> u64 {
        let now = unix_seconds(self.get_current_time());
        shared.clock.set(now);
        now
    }

    fn now(&self, shared: &Shared) -> u64 {
        shared
            .clock
            .cached()
            .unwrap_or_else(|| self.real_now(shared))
    }

    fn reply(&mut self, shared: Option<&Shared>, reply: Reply) -> Action {
        self.reply_about(shared, reply, None, None)
    }

    /// A local refusal, recorded with the refused JSON-RPC message's method and tool when the
    /// body was what got refused.
    fn reply_about(
        &mut self,
        shared: Option<&Shared>,
        reply: Reply,
        method: Option<&str>,
        tool: Option<&str>,
    ) -> Action {
        if let Some(shared) = shared {
            shared.metrics.denied(reply.reason);
        }
        self.record(Outcome {
            status: reply.status,
            reason: reply.reason,
            method,
            tool,
        });
        let mut headers = vec![
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        if let Some(challenge) = reply.www_authenticate.as_deref() {
            headers.push(("www-authenticate", challenge));
        }
        self.send_http_response(reply.status, headers, Some(reply.body.as_bytes()));
        self.state = State::Idle;
        Action::Pause
    }

    /// The request goes on upstream.
    fn allow(&self, shared: &Shared, method: Option<&str>, tool: Option<&str>) {
        shared.metrics.allowed();
        self.record(Outcome::allowed(method, tool));
    }

    /// Pushes the audit event of this request's decision (when audit is on). Never blocks or
    /// fails the request: a missing queue is only counted.
    fn record(&self, outcome: Outcome<'_>) {
        let (Some(shared), Some(facts)) = (&self.shared, &self.facts) else {
            return;
        };
        let Some(sink) = &shared.audit else {
            return;
        };
        let time_ms = unix_millis(self.get_current_time());
        let event = AuditEvent::new(
            time_ms,
            facts,
            self.loaded.as_deref().map(|l| &l.policy),
            self.identity.as_deref(),
            self.server,
            outcome,
        );
        sink.record(&event, &shared.metrics, time_ms / 1000);
    }

    /// Resolves a credential through the cache, verifying it on a miss.
    fn authenticate(
        &self,
        shared: &Shared,
        loaded: &Loaded,
        credential: Credential<'_>,
    ) -> Result<Rc<Identity>, TokenError> {
        let token = credential.text();
        let mut now = self.now(shared);
        {
            // The cache lives beside its policy in `Loaded`: a new snapshot comes with an empty one.
            let cache = loaded.cache.borrow();
            let mut entry = cache.lookup(token);
            if let Some((_, until)) = entry {
                // Near its deadline an entry is judged by the real clock, not the cached one.
                if until < now.saturating_add(clock::SLACK_SECONDS) {
                    now = self.real_now(shared);
                    if until < now {
                        entry = None;
                    }
                }
            }
            match entry {
                Some((Cached::Valid(identity), _)) => {
                    shared.metrics.cache(true);
                    return Ok(identity.clone());
                }
                Some((Cached::Invalid(error), _)) => {
                    shared.metrics.cache(true);
                    return Err(error.clone());
                }
                None => shared.metrics.cache(false),
            }
        }
        // One clock read both stamps the verification and refreshes the shared clock.
        let started = self.get_current_time();
        now = unix_seconds(started);
        shared.clock.set(now);
        let outcome = match credential {
            Credential::Bearer(t) if looks_like_jwt(t) => loaded.policy.verify_jwt(t, now),
            Credential::Bearer(key) | Credential::ApiKey(key) => {
                loaded.policy.verify_api_key(key, now)
            }
        };
        if let Ok(elapsed) = self.get_current_time().duration_since(started) {
            shared.metrics.verify_time(elapsed.as_micros() as u64);
        }
        let mut cache = loaded.cache.borrow_mut();
        match outcome {
            Ok(identity) => {
                let identity = Rc::new(identity);
                cache.insert_valid(token, identity.clone(), now);
                Ok(identity)
            }
            Err(error) => {
                // Time-dependent refusals may turn valid; do not remember them.
                if !matches!(error, TokenError::NotYetValid | TokenError::IssuedInFuture) {
                    cache.insert_invalid(token, error.clone(), now);
                }
                Err(error)
            }
        }
    }

    /// Writes the request headers back in one host call (measured: several µs cheaper than a
    /// call per header), without the credentials and client-sent identity headers, and with the
    /// trusted identity headers.
    fn forward_identity(
        &self,
        policy: &Policy,
        identity: &Identity,
        headers: &[(String, String)],
        strip: &[&str],
    ) {
        let settings = &policy.settings;
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 3);
        pairs.extend(
            headers
                .iter()
                .filter(|(name, _)| !strip.contains(&name.as_str()))
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        pairs.push((&settings.user_header, &identity.headers.user));
        pairs.push((&settings.groups_header, &identity.headers.groups));
        pairs.push((&settings.scopes_header, &identity.headers.scopes));
        self.set_http_request_headers(pairs);
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Clone, Copy)]
enum Credential<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
}

impl<'a> Credential<'a> {
    fn text(self) -> &'a str {
        match self {
            Credential::Bearer(t) | Credential::ApiKey(t) => t,
        }
    }
}

/// The request headers a decision needs, from one host call.
#[derive(Default)]
struct Seen<'a> {
    path: Option<&'a str>,
    method: Option<&'a str>,
    request_id: Option<&'a str>,
    authorization: Option<&'a str>,
    authorization_count: usize,
    api_key: Option<&'a str>,
    origin: Option<&'a str>,
    content_length: Option<&'a str>,
    /// Headers to remove before forwarding: credentials and client-sent identity headers.
    strip: [&'a str; MAX_STRIPPED],
    strip_count: usize,
}

/// More credential or identity headers than this in one request is refused, so the list of
/// headers to strip needs no allocation.
const MAX_STRIPPED: usize = 8;

impl<'a> Seen<'a> {
    fn strip(&mut self, name: &'a str) {
        if let Some(slot) = self.strip.get_mut(self.strip_count) {
            *slot = name;
        }
        self.strip_count += 1;
    }

    fn stripped(&self) -> &[&'a str] {
        &self.strip[..self.strip_count.min(MAX_STRIPPED)]
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

impl Context for Request {
    fn on_done(&mut self) -> bool {
        // Envoy only lets a filter see the body of a request whose headers it holds when the
        // plugin is configured with `allow_on_headers_stop_iteration: true`; without it every
        // POST hangs. Say so once per worker instead of leaving operators with timeouts.
        if let (
            State::AwaitBody {
                body_seen: false, ..
            },
            Some(shared),
        ) = (&self.state, &self.shared)
        {
            if !shared.warned_no_body.replace(true) {
                log::error!(
                    "portcullis: a POST body never reached the filter; set `allow_on_headers_stop_iteration: true` in the wasm filter's plugin config"
                );
            }
        }
        true
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return self.reply(None, response::no_policy("no valid policy is configured"));
        };
        let Some(loaded) = shared.policy.current() else {
            if shared.audit.is_some() {
                let headers = self.get_http_request_headers();
                let find = |wanted: &str| {
                    headers
                        .iter()
                        .find(|(name, _)| name == wanted)
                        .map(|(_, value)| value.as_str())
                };
                self.facts = Some(RequestFacts::new(
                    find("x-request-id"),
                    find(":method"),
                    find(":path"),
                ));
            }
            return self.reply(
                Some(&shared),
                response::no_policy("the control plane has not delivered a policy yet"),
            );
        };
        self.loaded = Some(loaded.clone());
        let policy = &loaded.policy;
        let settings = &policy.settings;
        let headers = self.get_http_request_headers();
        let mut seen = Seen::default();
        for (name, value) in &headers {
            match name.as_str() {
                ":path" => seen.path = Some(value),
                ":method" => seen.method = Some(value),
                "x-request-id" => seen.request_id = Some(value),
                "authorization" => {
                    seen.authorization = Some(value);
                    seen.authorization_count += 1;
                    seen.strip(name);
                }
                "origin" => seen.origin = Some(value),
                "content-length" => seen.content_length = Some(value),
                n if n == settings.api_key_header => {
                    seen.api_key = Some(value);
                    seen.strip(name);
                }
                n if n.starts_with(RESERVED_PREFIX)
                    || n == settings.user_header
                    || n == settings.groups_header
                    || n == settings.scopes_header =>
                {
                    seen.strip(name)
                }
                _ => {}
            }
        }
        if shared.audit.is_some() {
            self.facts = Some(RequestFacts::new(seen.request_id, seen.method, seen.path));
        }

        if seen.strip_count > MAX_STRIPPED {
            return self.reply(
                Some(&shared),
                response::plain(
                    400,
                    "invalid_request",
                    "too many credential or identity headers",
                    "too_many_headers",
                ),
            );
        }
        let server_id = match policy.route(seen.path.unwrap_or_default()) {
            Err(e) => {
                return self.reply(
                    Some(&shared),
                    response::plain(400, "invalid_request", &e.to_string(), "bad_path"),
                )
            }
            Ok(Route::WellKnown) => {
                // Discovery needs no credentials; any the client sent still stay here.
                for name in seen.stripped() {
                    self.set_http_request_header(name, None);
                }
                return Action::Continue;
            }
            Ok(Route::Unknown) => {
                return self.reply(
                    Some(&shared),
                    response::plain(
                        404,
                        "not_found",
                        "no MCP server is registered at this path",
                        "unknown_server",
                    ),
                )
            }
            Ok(Route::Server(id)) => id,
        };
        self.server = Some(server_id);
        let server = &policy.servers[server_id];

        if let Some(origin) = seen.origin {
            if !settings.allowed_origins.iter().any(|o| o == origin) {
                return self.reply(
                    Some(&shared),
                    response::plain(
                        403,
                        "forbidden_origin",
                        "requests from this Origin are not allowed",
                        "origin_not_allowed",
                    ),
                );
            }
        }

        let credential = match (seen.authorization, seen.api_key) {
            _ if seen.authorization_count > 1 => {
                return self.reply(Some(&shared), response::not_bearer(server))
            }
            (Some(value), _) => match bearer_token(value) {
                Some(token) => Credential::Bearer(token),
                None => return self.reply(Some(&shared), response::not_bearer(server)),
            },
            (None, Some(key)) => Credential::ApiKey(key.trim()),
            (None, None) => {
                return self.reply(Some(&shared), response::missing_credentials(server))
            }
        };
        let identity = match self.authenticate(&shared, &loaded, credential) {
            Ok(identity) => identity,
            Err(error) => {
                return self.reply(Some(&shared), response::invalid_token(server, &error))
            }
        };
        if self.facts.is_some() {
            self.identity = Some(identity.clone());
        }
        if let Err(error) = policy.check_audience(&identity, server_id) {
            return self.reply(Some(&shared), response::invalid_token(server, &error));
        }
        if let Err(deny) = policy.authorize_server(&identity, server_id) {
            return self.reply(Some(&shared), response::forbidden(policy, server, &deny));
        }

        if seen.method == Some("POST") {
            if end_of_stream {
                return self.reply(
                    Some(&shared),
                    response::malformed_jsonrpc(&policy::RpcError::NotJson("empty body".into())),
                );
            }
            let declared = seen
                .content_length
                .and_then(|v| v.trim().parse::<usize>().ok());
            if declared.is_some_and(|n| n > settings.max_body_bytes) {
                return self.reply(
                    Some(&shared),
                    response::body_too_large(settings.max_body_bytes),
                );
            }
            self.forward_identity(policy, &identity, &headers, seen.stripped());
            self.state = State::AwaitBody {
                server: server_id,
                identity,
                body_seen: false,
            };
            return Action::Pause;
        }

        self.forward_identity(policy, &identity, &headers, seen.stripped());
        self.allow(&shared, None, None);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let State::AwaitBody {
            server, body_seen, ..
        } = &mut self.state
        else {
            return Action::Continue;
        };
        *body_seen = true;
        let server = *server;
        let (Some(shared), Some(loaded)) = (self.shared.clone(), self.loaded.clone()) else {
            return Action::Continue;
        };
        let policy = &loaded.policy;
        if body_size > policy.settings.max_body_bytes {
            return self.reply(
                Some(&shared),
                response::body_too_large(policy.settings.max_body_bytes),
            );
        }
        if !end_of_stream {
            // Buffer until the whole body is here.
            return Action::Pause;
        }
        let State::AwaitBody { identity, .. } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return Action::Continue;
        };
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        let messages = match parse_body(&body) {
            Ok(messages) => messages,
            Err(error) => return self.reply(Some(&shared), response::malformed_jsonrpc(&error)),
        };
        if let Err(deny) = policy.authorize_messages(&identity, server, &messages) {
            return self.reply_about(
                Some(&shared),
                response::forbidden(policy, &policy.servers[server], &deny),
                deny.method.as_deref(),
                deny.tool.as_deref(),
            );
        }
        let (method, tool) = summarize(&messages);
        self.allow(&shared, method, tool);
        Action::Continue
    }
}
