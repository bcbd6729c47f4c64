//! Benchmark baseline filters (see `docs/benchmarks.md`).
//!
//! Default build: a root context and an HTTP context that do nothing, so a benchmark measures
//! the fixed cost of running any Rust proxy-wasm filter in Envoy. With the `read-auth` feature
//! the HTTP context reads the `authorization` request header once per request, the least a
//! token-checking filter must do. With `mimic` it makes exactly the host calls the Portcullis
//! filter makes on a warm-cache `GET`, and nothing else: the floor for our filter as designed.
//! With `read-body` it holds a request's headers while a body follows and reads the whole body
//! once at its end: the floor for any filter that decides a `POST` by its JSON-RPC body.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopHttp))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct NoopHttp;

/// Reads every request header once and writes them back in one call without `authorization`
/// and with three identity headers: the header work the Portcullis filter does.
#[cfg(feature = "mimic-map")]
fn rewrite_headers(http: &dyn HttpContext) {
    let mut headers = http.get_http_request_headers();
    headers.retain(|(name, _)| name != "authorization");
    headers.push(("x-portcullis-user".into(), "bench-user".into()));
    headers.push(("x-portcullis-groups".into(), "bench".into()));
    headers.push(("x-portcullis-scopes".into(), "bench-all".into()));
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http.set_http_request_headers(pairs);
}

impl Context for NoopHttp {}

impl HttpContext for NoopHttp {
    #[cfg(feature = "read-auth")]
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // One host call, as a real filter would make; black_box keeps the read from being
        // optimized away.
        let auth = self.get_http_request_header("authorization");
        std::hint::black_box(&auth);
        Action::Continue
    }

    #[cfg(feature = "mimic")]
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers();
        std::hint::black_box(&headers);
        let now = self.get_current_time();
        std::hint::black_box(&now);
        self.set_http_request_header("authorization", None);
        self.set_http_request_header("x-portcullis-user", Some("bench-user"));
        self.set_http_request_header("x-portcullis-groups", Some("bench"));
        self.set_http_request_header("x-portcullis-scopes", Some("bench-all"));
        Action::Continue
    }

    #[cfg(all(feature = "mimic-map", not(feature = "read-body")))]
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        rewrite_headers(self);
        Action::Continue
    }

    #[cfg(feature = "read-body")]
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // With `mimic-map`: the whole-map header rewrite the Portcullis filter makes too.
        #[cfg(feature = "mimic-map")]
        rewrite_headers(self);
        // Hold the headers while a body follows (needs `allow_on_headers_stop_iteration`).
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    #[cfg(feature = "read-body")]
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size);
        #[cfg(feature = "parse-body")]
        if let Some(body) = &body {
            let messages = policy::parse_body(body);
            std::hint::black_box(&messages);
        }
        std::hint::black_box(&body);
        Action::Continue
    }

    #[cfg(not(any(
        feature = "read-auth",
        feature = "mimic",
        feature = "mimic-map",
        feature = "read-body"
    )))]
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}
