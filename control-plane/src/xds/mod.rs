//! Routes by xDS: the control plane is Envoy's management server for clusters and routes.
//!
//! Every registered MCP server becomes one upstream cluster (`mcp_<sanitised name>`) and routes
//! in one route configuration; the OAuth discovery paths route to the control plane. Envoy
//! subscribes over gRPC ADS (state of the world, CDS and RDS, [`ads`]); a registry change
//! reaches every connected Envoy as soon as the inputs change. The rules are in
//! [`resources::plan`]; `docs/xds.md` has the operator's view and `envoy/bootstrap-xds.yaml` a
//! bootstrap.
//!
//! Configuration ([`XdsConfig::from_lookup`]):
//! - `PORTCULLIS_XDS_LISTEN`: the gRPC listen address, default `127.0.0.1:18000`; empty or
//!   `off` disables xDS.
//! - `PORTCULLIS_CONTROL_PLANE_CLUSTER`: name of the static Envoy cluster that reaches the
//!   control plane's HTTP port (discovery routes point at it), default `portcullis_control_plane`.
//! - `PORTCULLIS_XDS_ROUTE_CONFIG`: name of the route configuration Envoy's HTTP connection
//!   manager asks for (`rds.route_config_name`), default `portcullis_routes`.
//! - `PORTCULLIS_XDS_UPSTREAM_CA_FILE`: CA bundle (path on the Envoy host) that https upstreams'
//!   certificates are checked against, default `/etc/ssl/certs/ca-certificates.crt`.
//!
//! Authentication: when [`XdsConfig::token_sha256`] is set (the caller sets it from the sync
//! token, `PORTCULLIS_SYNC_TOKEN`), a stream must carry gRPC metadata
//! `authorization: Bearer <token>` (Envoy: `grpc_service.initial_metadata`); compared in
//! constant time by hash.

pub mod ads;
pub mod resources;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::registry::Server;

pub use crate::config::xds::{
    XdsConfig, DEFAULT_CONTROL_PLANE_CLUSTER, DEFAULT_LISTEN, DEFAULT_ROUTE_CONFIG,
    DEFAULT_UPSTREAM_CA_FILE,
};
pub use ads::AdsService;
pub use resources::XdsResources;

/// What the routes are built from. `version` must grow whenever `servers` change; it becomes
/// the xDS `version_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdsInputs {
    pub version: u64,
    pub servers: Vec<Server>,
}

/// Serves ADS on `listener` (bound by the caller, so a taken port stops the start with a clear
/// message; tests bind port 0) until `shutdown` completes; then open streams are closed so
/// Envoy reconnects, to another replica if there is one.
pub async fn serve_xds_on<F>(
    listener: TcpListener,
    config: XdsConfig,
    inputs: watch::Receiver<Arc<XdsInputs>>,
    shutdown: F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let service = AdsService::new(config, inputs, stop_rx);
    tracing::info!(%addr, "xDS (ADS: CDS, RDS) listening");
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        // Notice dead Envoys (and let Envoy notice us) on idle streams.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(AggregatedDiscoveryServiceServer::new(service))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            // Streams never end by themselves; graceful shutdown waits for them.
            let _ = stop_tx.send(true);
        })
        .await
        .context("xDS server")
}

/// An xDS server on a thread of its own with its own runtime, fed through [`publish`]: for
/// tests and tools that have no tokio runtime. Stops on drop.
///
/// [`publish`]: StandaloneXds::publish
pub struct StandaloneXds {
    addr: SocketAddr,
    inputs: watch::Sender<Arc<XdsInputs>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandaloneXds {
    /// Binds `config.listen` (port 0 picks a free port; `None` means 127.0.0.1:0) and serves
    /// `initial`.
    pub fn start(config: XdsConfig, initial: XdsInputs) -> anyhow::Result<StandaloneXds> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let bind = config
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = runtime.block_on(TcpListener::bind(bind))?;
        let addr = listener.local_addr()?;
        let (inputs_tx, inputs_rx) = watch::channel(Arc::new(initial));
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("xds-{}", addr.port()))
            .spawn(move || {
                let shutdown = async {
                    let _ = shutdown_rx.await;
                };
                if let Err(e) =
                    runtime.block_on(serve_xds_on(listener, config, inputs_rx, shutdown))
                {
                    tracing::error!(error = %e, "standalone xDS server failed");
                }
            })?;
        Ok(StandaloneXds {
            addr,
            inputs: inputs_tx,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `servers` from now on, as the next version; returns that version.
    pub fn publish(&self, servers: Vec<Server>) -> u64 {
        let version = self.inputs.borrow().version + 1;
        self.inputs
            .send_replace(Arc::new(XdsInputs { version, servers }));
        version
    }
}

impl Drop for StandaloneXds {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
