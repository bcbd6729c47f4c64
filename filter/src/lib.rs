//! Portcullis proxy-wasm filter: authenticates and authorizes every request to a registered
//! MCP server inside Envoy, from a policy snapshot, with no network call on the request path.
//!
//! The glue only: decisions are made by the `policy` crate.

mod cache;
mod clock;
mod config;
mod metrics;
mod request;
mod response;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use cache::CredentialCache;
use metrics::Metrics;
use policy::Policy;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(PortcullisRoot::default()) });
}}

/// What every request context of one worker shares.
pub(crate) struct Shared {
    pub policy: Rc<Policy>,
    pub cache: RefCell<CredentialCache>,
    pub metrics: Metrics,
    pub clock: clock::Clock,
    /// Whether the missing-body hint was logged already.
    pub warned_no_body: Cell<bool>,
}

#[derive(Default)]
struct PortcullisRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for PortcullisRoot {}

impl RootContext for PortcullisRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(policy) => {
                let settings = &policy.settings;
                let cache = CredentialCache::new(
                    settings.token_cache_entries,
                    settings.negative_cache_entries,
                    settings.negative_cache_seconds,
                );
                log::info!(
                    "portcullis: policy version {} loaded ({} issuers, {} servers)",
                    policy.version,
                    policy.issuers.len(),
                    policy.servers.len()
                );
                self.shared = Some(Rc::new(Shared {
                    policy: Rc::new(policy),
                    cache: RefCell::new(cache),
                    metrics: Metrics::default(),
                    clock: clock::Clock::default(),
                    warned_no_body: Cell::new(false),
                }));
                self.set_tick_period(Duration::from_secs(1));
                true
            }
            Err(e) => {
                log::error!("portcullis: invalid configuration: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(shared) = &self.shared {
            if let Ok(now) = self
                .get_current_time()
                .duration_since(std::time::UNIX_EPOCH)
            {
                shared.clock.set(now.as_secs());
            }
            shared.metrics.flush();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(request::Request::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
