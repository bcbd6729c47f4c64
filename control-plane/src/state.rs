//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::connect::CapabilityCache;
use crate::db::Db;
use crate::idp_keys::IdpKeys;
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
    /// The IdP's signing keys, fetched and rotated.
    pub idp_keys: IdpKeys,
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
        let idp_keys = IdpKeys::with_db(&db, &config, config.idp_keys.clone())?;
        Ok(AppState(Arc::new(Inner {
            config,
            db,
            auth,
            metrics: Metrics::default(),
            idp_metadata,
            idp_capabilities,
            publisher: Publisher::new(),
            idp_keys,
        })))
    }

    /// A filter refused a token for an unknown `kid`: the IdP may have rotated its keys.
    /// Refreshes the keys in the background (rate-limited by
    /// `PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS`); a change triggers a new snapshot.
    pub fn unknown_kid_seen(&self) {
        let keys = self.idp_keys.clone();
        tokio::spawn(async move {
            if keys.refresh_if_due_for_unknown_kid().await {
                tracing::info!("the IdP's keys changed after a filter saw an unknown key id");
            }
        });
    }

    pub fn public_url(&self) -> &str {
        self.config.public_url()
    }
}
