//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use super::metrics::Metrics;
use crate::auth::Authenticator;
use crate::authz::server::AuthorizationServer;
use crate::config::{is_postgres_url, AuthMode, Config};
use crate::connect::CapabilityCache;
use crate::idp::keys::IdpKeys;
use crate::idp::metadata::IdpMetadata;
use crate::outbound;
use crate::registry::SnapshotSettings;
use crate::storage::Db;
use crate::sync::{Publisher, Sources};

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: Db,
    pub auth: Arc<Authenticator>,
    pub metrics: Arc<Metrics>,
    pub idp_metadata: Arc<IdpMetadata>,
    /// What the IdP can do (DCR, CIMD), for connect configs; failures are not cached.
    pub idp_capabilities: CapabilityCache,
    /// The current policy snapshot and its rebuild task.
    pub publisher: Publisher,
    /// The IdP's signing keys, fetched and rotated.
    pub idp_keys: IdpKeys,
    /// Broker mode's authorization server (`None` in direct mode).
    pub authorization_server: Option<Arc<AuthorizationServer>>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state around an open database; refuses a configuration that cannot work.
    /// In broker mode, `authorization_server` is the started one ([`AuthorizationServer::start`]).
    pub fn new(
        config: Config,
        db: Db,
        authorization_server: Option<Arc<AuthorizationServer>>,
    ) -> anyhow::Result<AppState> {
        if (config.auth_mode == AuthMode::Broker) != authorization_server.is_some() {
            anyhow::bail!(
                "broker mode needs its authorization server, and only broker mode has one"
            );
        }
        let auth = Arc::new(Authenticator::new(&config)?);
        let client = outbound::client_builder(Duration::from_secs(5)).build()?;
        let idp_metadata = Arc::new(IdpMetadata::new(client.clone(), config.idp_metadata_ttl));
        let idp_capabilities = CapabilityCache::with_client(client, config.idp_metadata_ttl);
        let idp_keys = IdpKeys::new(
            &db,
            config.idp.clone(),
            config.idp_keys.clone(),
            idp_metadata.clone(),
        )?;
        let metrics = Arc::new(Metrics::default());
        let sources = Sources {
            db: db.clone(),
            idp_keys: idp_keys.clone(),
            settings: Arc::new(SnapshotSettings {
                public_url: config.public_url().to_string(),
                advertised_scopes: config.resource_scopes(),
                idp: config.idp.clone(),
                step_up_scopes: config.auth_mode == AuthMode::Broker,
                authorization_server: authorization_server.is_some(),
            }),
            broker_keys: authorization_server.as_ref().map(|s| s.keys().clone()),
            listen_url: config.database_url.clone().filter(|u| is_postgres_url(u)),
        };
        let publisher = {
            let (auth, metrics) = (auth.clone(), metrics.clone());
            let broker = authorization_server.clone();
            Publisher::new(
                sources,
                Box::new(move |published| {
                    metrics.set_policy_version(published.version);
                    auth.set_idp_jwks(published.idp_jwks.clone());
                    if let Some(broker) = &broker {
                        broker.use_policy(published.policy.clone());
                    }
                }),
            )
        };
        Ok(AppState(Arc::new(Inner {
            config,
            db,
            auth,
            metrics,
            idp_metadata,
            idp_capabilities,
            publisher,
            idp_keys,
            authorization_server,
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
