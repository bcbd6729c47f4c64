//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::connect::CapabilityCache;
use crate::db::Db;
use crate::metadata::IdpMetadata;
use crate::metrics::Metrics;
use crate::snapshots::Publisher;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: Db,
    pub auth: Authenticator,
    pub metrics: Metrics,
    pub idp_metadata: IdpMetadata,
    /// What the IdP can do (DCR, CIMD), for connect configs; failures are not cached.
    pub idp_capabilities: CapabilityCache,
    /// The current policy snapshot and its rebuild task.
    pub publisher: Publisher,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state around an open database; refuses a configuration that cannot work.
    pub fn new(config: Config, db: Db) -> anyhow::Result<AppState> {
        let auth = Authenticator::new(&config)?;
        let idp_metadata = IdpMetadata::new(&config)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let idp_capabilities = CapabilityCache::with_client(client, config.idp_metadata_ttl);
        Ok(AppState(Arc::new(Inner {
            config,
            db,
            auth,
            metrics: Metrics::default(),
            idp_metadata,
            idp_capabilities,
            publisher: Publisher::new(),
        })))
    }

    /// A filter refused a token for an unknown `kid`: the IdP may have rotated its keys.
    pub fn unknown_kid_seen(&self) {
        tracing::info!("a filter saw an unknown key id");
    }

    pub fn public_url(&self) -> &str {
        self.config.public_url()
    }
}
