//! Portcullis proxy-wasm filter: authenticates and authorizes every request to a registered
//! MCP server inside Envoy, from a policy snapshot, with no network call on the request path.
//!
//! The glue only: decisions are made by the `policy` crate. The same module is also the
//! singleton that brings snapshots from the control plane and ships audit events (`sync`);
//! the plugin configuration decides which (`config`).
//!
//! `unsafe` is denied everywhere but [`host`]: its two host calls read and write header maps
//! as bytes, which the SDK cannot do without panicking on a non-UTF-8 name (so `forbid`, which
//! no module can lift, does not fit this crate).

#![deny(unsafe_code)]

mod audit;
mod backoff;
mod cache;
mod clock;
mod config;
#[allow(unsafe_code)] // the two host calls, see the module doc
mod host;
mod metrics;
mod request;
mod shared_policy;
mod sync;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use audit::AuditSink;
use config::{Hold, Role};
use metrics::Metrics;
use shared_policy::PolicySlot;
use sync::SyncService;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(PortcullisRoot::default()) });
}}

/// What every request context of one worker shares.
pub(crate) struct Shared {
    pub policy: PolicySlot,
    pub metrics: Metrics,
    pub clock: clock::Clock,
    /// Whether the missing-body hint was logged already.
    pub warned_no_body: Cell<bool>,
    /// Where decisions are recorded, when audit is on.
    pub audit: Option<AuditSink>,
    /// What is held back while a body is decided.
    pub hold: Hold,
}

impl Shared {
    fn new(policy: PolicySlot, audit: Option<AuditSink>, hold: Hold) -> Shared {
        Shared {
            policy,
            metrics: Metrics::default(),
            clock: clock::Clock::default(),
            warned_no_body: Cell::new(false),
            audit,
            hold,
        }
    }
}

/// A worker's tick: refreshes the cached clock, flushes stats, and puts the audit events it
/// gathered on the queue (so an event waits at most this long in the worker).
const FILTER_TICK: Duration = Duration::from_millis(250);

/// One root context: an HTTP filter's (per worker) or the singleton's, by configuration.
#[derive(Default)]
struct PortcullisRoot {
    shared: Option<Rc<Shared>>,
    sync: Option<SyncService>,
}

impl Context for PortcullisRoot {
    /// The plugin is stopping: what this worker gathered still goes on the queue.
    fn on_done(&mut self) -> bool {
        if let Some(shared) = &self.shared {
            if let Some(audit) = &shared.audit {
                audit.flush(&shared.metrics, shared.clock.cached().unwrap_or(0));
            }
            shared.metrics.flush();
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(sync) = &mut self.sync {
            sync.on_http_call_response(token_id, body_size);
        }
    }
}

impl PortcullisRoot {
    /// This VM's end of the audit queue, with its own event ids (when audit is on).
    fn audit_sink(&self, audit: bool, access_log: bool) -> Option<AuditSink> {
        audit.then(|| {
            let start_ms = sync::unix_millis(self.get_current_time());
            AuditSink::new(audit::IdSource::random(start_ms), access_log)
        })
    }
}

impl RootContext for PortcullisRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(Role::Static {
                policy,
                audit,
                access_log,
                hold,
            }) => {
                log::info!(
                    "portcullis: policy version {} loaded ({} issuers, {} servers)",
                    policy.version,
                    policy.issuers.len(),
                    policy.server_count()
                );
                self.shared = Some(Rc::new(Shared::new(
                    PolicySlot::fixed(*policy),
                    self.audit_sink(audit, access_log),
                    hold,
                )));
                self.set_tick_period(FILTER_TICK);
                true
            }
            Ok(Role::Shared {
                audit,
                access_log,
                hold,
            }) => {
                self.shared = Some(Rc::new(Shared::new(
                    PolicySlot::shared(),
                    self.audit_sink(audit, access_log),
                    hold,
                )));
                self.set_tick_period(FILTER_TICK);
                true
            }
            Ok(Role::Singleton(config)) => {
                self.sync = Some(SyncService::start(config));
                self.set_tick_period(sync::TICK);
                true
            }
            Err(e) => {
                log::error!("portcullis: invalid configuration: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(sync) = &mut self.sync {
            sync.on_tick();
        }
        if let Some(shared) = &self.shared {
            if let Ok(now) = self
                .get_current_time()
                .duration_since(std::time::UNIX_EPOCH)
            {
                shared.clock.set(now.as_secs());
            }
            if let Some(audit) = &shared.audit {
                audit.flush(&shared.metrics, shared.clock.cached().unwrap_or(0));
            }
            shared.metrics.flush();
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if let Some(sync) = &mut self.sync {
            sync.on_queue_ready(queue_id);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(request::Request::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
