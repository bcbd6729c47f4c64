//! `portcullis serve`: opens the database, starts the snapshot publisher, the IdP key rotation,
//! audit retention and the xDS server, and serves the HTTP edge until SIGINT/SIGTERM.

use std::net::SocketAddr;

use anyhow::Context as _;

use crate::config::{Config, LogFormat};
use crate::http::state::AppState;
use crate::storage::Db;

/// Logs to stderr, as text or JSON; `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// `portcullis serve`: opens the database (migrating it), then serves until SIGINT/SIGTERM.
pub async fn serve(mut config: Config, listen: SocketAddr) -> anyhow::Result<()> {
    init_logging(config.log_format);
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{listen}"));
    }
    tracing::info!(?config, "starting");
    // In broker mode the filters check the broker's own tokens: the IdP's audience rules only
    // matter to tokens people get from the IdP directly (direct mode).
    if let Some(idp) = config
        .idp
        .as_ref()
        .filter(|_| config.auth_mode == crate::config::AuthMode::Direct)
    {
        if let Some(problem) = idp.audience_problem() {
            tracing::warn!(profile = %idp.profile, "{problem}");
        }
        if let Some(weak) = idp.weak_audience() {
            tracing::warn!(
                "PORTCULLIS_IDP_AUDIENCE accepts {weak:?}, which Keycloak puts in every token of the realm: any client's token reaches the MCP servers. Add an Audience mapper with an audience of its own and accept only that"
            );
        }
    }
    let db = Db::connect(&config).await?;
    let authorization_server = match config.auth_mode {
        crate::config::AuthMode::Broker => {
            Some(crate::authz::server::AuthorizationServer::start(&config, db.clone()).await?)
        }
        crate::config::AuthMode::Direct => None,
    };
    let state = AppState::new(config, db.clone(), authorization_server)?;
    state.publisher.spawn();
    crate::audit::spawn_retention(db.clone(), state.config.audit.clone());
    {
        let (publisher, db) = (state.publisher.clone(), db.clone());
        state.idp_keys.clone().spawn(move || {
            let (publisher, db) = (publisher.clone(), db.clone());
            tokio::spawn(async move { publisher.issuers_changed(&db).await });
        });
    }
    if let Some(server) = state.authorization_server.clone() {
        // PORTCULLIS_CIMD=auto: CIMD is advertised while the assistants' documents are at hand.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                every.tick().await;
                server
                    .check_assistant_documents(crate::storage::now())
                    .await;
            }
        });
    }
    if let Some(server) = state.authorization_server.clone() {
        // Revoked access tokens go out in a new snapshot at once.
        let (publisher, db) = (state.publisher.clone(), db.clone());
        tokio::spawn(async move {
            loop {
                server.revocations().notified().await;
                publisher.issuers_changed(&db).await;
            }
        });
    }
    if let Some(server) = state.authorization_server.clone() {
        let (publisher, db) = (state.publisher.clone(), db.clone());
        tokio::spawn(async move {
            // Key rotation (and other replicas' new keys) and clean-up of spent grant records,
            // hourly; a key change is a new snapshot for every filter.
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            every.tick().await;
            loop {
                every.tick().await;
                match server.keys().tick().await {
                    Ok(true) => publisher.issuers_changed(&db).await,
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "rotating the signing keys"),
                }
                // Codes and refresh tokens are kept a refresh lifetime past their end, so a
                // late replay still finds its family.
                if let Err(e) = db
                    .prune_grant_records(crate::storage::now(), 30 * 24 * 3600)
                    .await
                {
                    tracing::error!(error = %e, "pruning grant records");
                }
                let now_ms = u64::try_from(crate::storage::now_ms()).unwrap_or(0);
                if let Err(e) = server.remove_expired_clients(now_ms).await {
                    tracing::error!(error = %e, "removing expired clients");
                }
                // Expired revoked tokens leave the list (and the next snapshot).
                match db.prune_revoked_tokens(crate::storage::now()).await {
                    Ok(0) => {}
                    Ok(_) => publisher.issuers_changed(&db).await,
                    Err(e) => tracing::error!(error = %e, "pruning revoked tokens"),
                }
            }
        });
    }
    let (stop_xds, mut xds_stopped) = tokio::sync::oneshot::channel::<()>();
    // Bound now so a taken port stops the start with a clear message.
    let xds_listener = match state.config.xds.listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("xDS: cannot listen on {addr} (PORTCULLIS_XDS_LISTEN; `off` disables xDS)")
        })?),
        None => {
            tracing::info!("xDS is off (PORTCULLIS_XDS_LISTEN=off)");
            None
        }
    };
    let xds = {
        let (config, publisher) = (state.config.xds.clone(), state.publisher.clone());
        tokio::spawn(async move {
            // Envoy must never be sent an empty registry by a control plane that has not read
            // its database yet (a restart would drop every route for a moment).
            let inputs = tokio::select! {
                inputs = xds_inputs(&publisher) => inputs,
                _ = &mut xds_stopped => return Ok(()),
            };
            let Some(listener) = xds_listener else {
                return Ok(());
            };
            crate::xds::serve_xds_on(listener, config, inputs, async move {
                let _ = xds_stopped.await;
            })
            .await
        })
    };
    let publisher = state.publisher.clone();
    let app = crate::http::router(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    // The peer address keys the authorization server's rate limits when no proxy names one.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        publisher.close();
        let _ = stop_xds.send(());
    })
    .await
    .context("serving")?;
    match xds.await {
        Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "xDS server failed"),
        Err(e) => tracing::error!(error = %e, "xDS server task failed"),
        Ok(Ok(())) => {}
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The registry of every published snapshot, as the xDS server's inputs (same version); ready
/// once the first snapshot is.
async fn xds_inputs(
    publisher: &crate::sync::Publisher,
) -> tokio::sync::watch::Receiver<std::sync::Arc<crate::xds::XdsInputs>> {
    use std::sync::Arc;
    let inputs = |p: &crate::sync::Published| {
        Arc::new(crate::xds::XdsInputs {
            version: p.version,
            servers: p.servers.to_vec(),
        })
    };
    let mut snapshots = publisher.subscribe();
    let first = loop {
        if let Some(p) = snapshots.borrow_and_update().clone() {
            break p;
        }
        if snapshots.changed().await.is_err() {
            // Never published: hand out a channel that never changes.
            return tokio::sync::watch::channel(Arc::new(crate::xds::XdsInputs::default())).1;
        }
    };
    let (tx, rx) = tokio::sync::watch::channel(inputs(&first));
    tokio::spawn(async move {
        // Only a snapshot whose servers changed is new to xDS: a mapping or scope change
        // leaves 10,000 clusters and routes alone.
        let mut servers = first.servers.clone();
        while snapshots.changed().await.is_ok() {
            let current = snapshots.borrow_and_update().clone();
            if let Some(p) = current {
                if !Arc::ptr_eq(&p.servers, &servers) {
                    servers = p.servers.clone();
                    tx.send_replace(inputs(&p));
                }
            }
        }
    });
    rx
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
