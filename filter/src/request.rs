//! One HTTP request through the filter. Every rule is `policy`'s (`policy::request`): this file
//! reads the request from the host, verifies credentials through the worker's cache, and
//! carries the verdicts out (reply, forward with identity headers, hold the body).

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use policy::reply::{self, Reply};
use policy::{
    Admission, BodyRule, Credential, Head, HeadVerdict, HeaderPair, Identity, Policy, ServerId,
    TokenError,
};

use crate::audit::{decision_event, Outcome, RequestFacts, ACCESS_LOG_PROPERTY};
use crate::cache::Cached;
use crate::clock;
use crate::config::Hold;
use crate::host::{self, SerializedHeaders};
use crate::shared_policy::Loaded;
use crate::sync::unix_millis;
use crate::Shared;

enum State {
    /// Headers not seen yet, or the request was passed on or answered.
    Idle,
    /// An admitted request held until its body is decided (`POST`: the JSON-RPC body; any other
    /// method whose stream is still open: that it has none).
    AwaitBody {
        identity: Rc<Identity>,
        rule: BodyRule,
        /// Body bytes buffered so far (Envoy's count, from the last body callback).
        size: usize,
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
    /// An allowed browser `Origin`: every answer to it carries the CORS headers.
    cors_origin: Option<String>,
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
            cors_origin: None,
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
        let cors = self.cors_origin.as_deref().map(reply::cors_headers);
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(4 + reply.headers.len());
        if !reply.body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        headers.push(("cache-control", "no-store"));
        if let Some(challenge) = reply.www_authenticate.as_deref() {
            headers.push(("www-authenticate", challenge));
        }
        headers.extend(reply.headers.iter().map(|(n, v)| (*n, v.as_str())));
        if let Some(cors) = &cors {
            headers.extend(cors.iter().map(|(n, v)| (*n, v.as_str())));
        }
        let body = (!reply.body.is_empty()).then_some(reply.body.as_bytes());
        self.send_http_response(reply.status, headers, body);
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
        let event = decision_event(
            sink.ids.next(),
            time_ms,
            facts,
            self.loaded.as_deref().map(|l| &l.policy),
            self.identity.as_deref(),
            self.server,
            outcome,
        );
        // Plain strings, numbers and lists: serialisation cannot fail.
        let Ok(json) = serde_json::to_vec(&event) else {
            return;
        };
        if sink.access_log {
            // For Envoy's access log (`%FILTER_STATE(wasm.portcullis.audit:PLAIN)%`): the same
            // record, so a site's log pipeline keeps every decision without a control plane.
            // Proxy-wasm has no call to set dynamic metadata; a property is filter state.
            // A failure (e.g. the host refuses properties) must not fail the request.
            let _ = hostcalls::set_property(vec![ACCESS_LOG_PROPERTY], Some(&json));
        }
        sink.record(&json, &shared.metrics, time_ms / 1000);
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
            Credential::Jwt(t) => loaded.policy.verify_jwt(t, now),
            Credential::ApiKey(key) => loaded.policy.verify_api_key(key, now),
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
                if error.is_worth_caching() {
                    cache.insert_invalid(token, error.clone(), now);
                }
                Err(error)
            }
        }
    }

    /// Writes the request headers back in one host call without the credentials and
    /// client-sent identity headers, and with the trusted identity headers when there is an
    /// identity. Every other header keeps its bytes.
    fn forward(
        &mut self,
        shared: &Shared,
        policy: &Policy,
        headers: &[HeaderPair<'_>],
        head: &Head<'_>,
        identity: Option<&Identity>,
    ) -> Result<(), Action> {
        let settings = &policy.settings;
        let mut pairs: Vec<HeaderPair<'_>> = Vec::with_capacity(headers.len() + 3);
        pairs.extend(
            headers
                .iter()
                .filter(|(name, _)| !head.strip.contains(name))
                .copied(),
        );
        if let Some(identity) = identity {
            pairs.push((
                settings.user_header.as_bytes(),
                identity.headers.user.as_bytes(),
            ));
            pairs.push((
                settings.groups_header.as_bytes(),
                identity.headers.groups.as_bytes(),
            ));
            pairs.push((
                settings.scopes_header.as_bytes(),
                identity.headers.scopes.as_bytes(),
            ));
        } else if head.strip.is_empty() {
            // Nothing to change.
            return Ok(());
        }
        host::set_request_headers(&pairs).map_err(|_| {
            self.reply(
                Some(shared),
                reply::host_error("rewrite the request headers"),
            )
        })
    }

    /// The whole body is here (its last chunk, or the request's trailers): decide it.
    fn decide_body(&mut self) -> Action {
        let State::AwaitBody {
            identity,
            rule,
            size,
            ..
        } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return Action::Continue;
        };
        // A request is only held once its server, policy and identity are known.
        let (Some(shared), Some(loaded), Some(server)) =
            (self.shared.clone(), self.loaded.clone(), self.server)
        else {
            return self.reply(None, reply::no_policy("the policy went away"));
        };
        let policy = &loaded.policy;
        let body = if size == 0 {
            Vec::new()
        } else {
            match self.get_http_request_body(0, size) {
                Some(body) => body,
                // Fail closed: a body we were told of but cannot read is never forwarded.
                None => {
                    return self.reply(Some(&shared), reply::host_error("read the request body"))
                }
            }
        };
        let decision = policy.check_body(&identity, server, &rule, &body);
        match decision.reply {
            Some(reply) => self.reply_about(
                Some(&shared),
                reply,
                decision.method.as_deref(),
                decision.tool.as_deref(),
            ),
            None => {
                self.allow(
                    &shared,
                    decision.method.as_deref(),
                    decision.tool.as_deref(),
                );
                Action::Continue
            }
        }
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Context for Request {
    fn on_done(&mut self) -> bool {
        // Envoy only lets a filter see the body of a request whose headers it holds when the
        // plugin is configured with `allow_on_headers_stop_iteration: true`; without it every
        // POST hangs. Say so once per worker instead of leaving operators with timeouts. (With
        // `"hold": "body"` the headers are not held, so a missing body is the client's doing.)
        if let (
            State::AwaitBody {
                body_seen: false, ..
            },
            Some(shared),
        ) = (&self.state, &self.shared)
        {
            if shared.hold == Hold::Request && !shared.warned_no_body.replace(true) {
                log::error!(
                    "portcullis: a request body never reached the filter; set `allow_on_headers_stop_iteration: true` in the wasm filter's plugin config"
                );
            }
        }
        true
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return self.reply(None, reply::no_policy("no valid policy is configured"));
        };
        let Ok(serialized) = SerializedHeaders::request() else {
            return self.reply(Some(&shared), reply::host_error("read the request headers"));
        };
        let Ok(headers) = serialized.pairs() else {
            return self.reply(
                Some(&shared),
                reply::bad_request("the request headers could not be read", "bad_headers"),
            );
        };
        let Some(loaded) = shared.policy.current() else {
            if shared.audit.is_some() {
                let find = |wanted: &[u8]| {
                    headers
                        .iter()
                        .find(|(name, _)| *name == wanted)
                        .map(|(_, value)| *value)
                };
                self.facts = Some(RequestFacts::from_bytes(
                    find(b"x-request-id"),
                    find(b":method"),
                    find(b":path"),
                ));
            }
            return self.reply(
                Some(&shared),
                reply::no_policy("the control plane has not delivered a policy yet"),
            );
        };
        self.loaded = Some(loaded.clone());
        let policy = &loaded.policy;
        let head = policy.check_head(&headers, end_of_stream);
        if shared.audit.is_some() {
            self.facts = Some(RequestFacts::from_bytes(
                head.facts.request_id,
                head.facts.method,
                head.facts.path,
            ));
        }
        self.cors_origin = head.cors_origin.map(str::to_owned);
        self.server = head.server;
        let pending = match &head.verdict {
            HeadVerdict::Reply(reply) => return self.reply(Some(&shared), reply.clone()),
            // Discovery needs no credentials (any the client sent stay here); the authorization
            // server's endpoints authenticate clients themselves (only spoofed identity headers
            // are removed) and their bodies flow unbuffered.
            HeadVerdict::Discovery | HeadVerdict::AuthorizationServer => {
                return match self.forward(&shared, policy, &headers, &head, None) {
                    Ok(()) => Action::Continue,
                    Err(action) => action,
                };
            }
            HeadVerdict::Authenticate(pending) => *pending,
        };
        let verified = self.authenticate(&shared, &loaded, pending.credential);
        if let Ok(identity) = &verified {
            if self.facts.is_some() {
                self.identity = Some(identity.clone());
            }
        }
        let rule = match policy.admit(&pending, verified.as_deref()) {
            Admission::Reply(reply) => return self.reply(Some(&shared), reply),
            Admission::Forward(rule) => rule,
        };
        let Ok(identity) = verified else {
            // `admit` refuses every unverified credential; never forward one.
            return self.reply(Some(&shared), reply::no_policy("unverified credential"));
        };
        if let Err(action) = self.forward(&shared, policy, &headers, &head, Some(&identity)) {
            return action;
        }
        if !rule.holds() {
            self.allow(&shared, None, None);
            return Action::Continue;
        }
        self.state = State::AwaitBody {
            identity,
            rule,
            size: 0,
            body_seen: false,
        };
        match shared.hold {
            // Nothing goes upstream until the body is decided.
            Hold::Request => Action::Pause,
            // The headers go on; every body chunk is held (`on_http_request_body` pauses) until
            // the decision, and a refusal resets the upstream request before any of it is sent.
            Hold::Body => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let State::AwaitBody {
            rule,
            size,
            body_seen,
            ..
        } = &mut self.state
        else {
            return Action::Continue;
        };
        *body_seen = true;
        *size = body_size;
        let refusal = self
            .loaded
            .as_ref()
            .and_then(|loaded| loaded.policy.check_body_size(rule, body_size));
        if let Some(reply) = refusal {
            let shared = self.shared.clone();
            return self.reply(shared.as_deref(), reply);
        }
        if !end_of_stream {
            // Buffer until the whole body is here (or trailers end the request).
            return Action::Pause;
        }
        self.decide_body()
    }

    /// A request that ends with trailers (HTTP/2, or HTTP/1.1 chunked) never has a body chunk
    /// marked last: its body is decided here, before anything is forwarded.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if let State::AwaitBody { body_seen, .. } = &mut self.state {
            *body_seen = true;
            return self.decide_body();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(origin) = self.cors_origin.as_deref() {
            for (name, value) in reply::cors_headers(origin) {
                self.set_http_response_header(name, Some(&value));
            }
        }
        Action::Continue
    }
}
