//! Envoy's Aggregated Discovery Service, state of the world: every connected Envoy gets the
//! whole cluster list (CDS) and the route configuration it asks for (RDS) on connect and again
//! whenever the registry changes, on one gRPC stream.
//!
//! Protocol, per stream and resource type:
//! - a request with no `response_nonce` is a (re)subscription: answer with what is current;
//! - a request whose `response_nonce` is not the last one sent for its type is stale (Envoy
//!   answering an older response): ignored, as the xDS protocol says;
//! - an ACK (latest nonce, no `error_detail`) is noted; when it names other resources than
//!   before (RDS), the new set is sent;
//! - a NACK (latest nonce, `error_detail` set) is logged with Envoy's reason; nothing is resent
//!   until the content changes, so a bad config never loops;
//! - on a change, CDS goes out before RDS so routes never name a cluster Envoy does not have
//!   yet; a type is sent only when its content changed (`version_info` is the input version at
//!   which it last changed), so a policy-only change costs Envoy nothing.
//! - Type URLs other than CDS and RDS (say LDS, when a bootstrap points `lds_config` at ADS)
//!   get an empty answer once, so Envoy's initialisation never waits on them.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Name;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::resources::{to_any, XdsResources};
use super::{XdsConfig, XdsInputs};

/// `type.googleapis.com/envoy.config.cluster.v3.Cluster`.
pub fn cluster_type_url() -> String {
    Cluster::type_url()
}

/// `type.googleapis.com/envoy.config.route.v3.RouteConfiguration`.
pub fn route_type_url() -> String {
    RouteConfiguration::type_url()
}

/// Responses a slow Envoy may have outstanding before its stream's task waits for it.
const STREAM_BUFFER: usize = 16;

/// The resources of one type at one moment.
#[derive(Debug, Clone, PartialEq)]
struct TypedResources {
    /// The input version at which this content last changed.
    version: String,
    /// `(resource name, packed resource)`, sorted by name.
    resources: Vec<(String, Any)>,
}

/// What every stream serves from: rebuilt once per input change, shared by all streams.
#[derive(Debug, Clone, PartialEq)]
struct Built {
    clusters: TypedResources,
    routes: TypedResources,
    /// The route configuration as built: compared as a value, since its packed bytes are not
    /// canonical (the route tree is a protobuf map, written in hash-map order).
    route_configuration: RouteConfiguration,
}

impl Built {
    fn from_inputs(inputs: &XdsInputs, config: &XdsConfig, previous: Option<&Built>) -> Built {
        let built = XdsResources::build(&inputs.servers, config);
        for (server, why) in &built.skipped {
            tracing::warn!(%server, error = %why, "xDS: server left out of Envoy's routes");
        }
        let version = inputs.version.to_string();
        // Keep the old version string when the content is the same: Envoy then sees nothing
        // new and the stream sends nothing.
        let typed = |resources: Vec<(String, Any)>, old: Option<&TypedResources>| match old {
            Some(old) if old.resources == resources => old.clone(),
            _ => TypedResources {
                version: version.clone(),
                resources,
            },
        };
        let clusters = built
            .clusters
            .iter()
            .map(|c| (c.name.clone(), to_any(c)))
            .collect();
        let routes = match previous {
            Some(p) if p.route_configuration == built.route_configuration => p.routes.clone(),
            _ => TypedResources {
                version: version.clone(),
                resources: vec![(
                    built.route_configuration.name.clone(),
                    to_any(&built.route_configuration),
                )],
            },
        };
        Built {
            clusters: typed(clusters, previous.map(|p| &p.clusters)),
            routes,
            route_configuration: built.route_configuration,
        }
    }

    fn for_type(&self, type_url: &str) -> Option<&TypedResources> {
        if type_url == cluster_type_url() {
            Some(&self.clusters)
        } else if type_url == route_type_url() {
            Some(&self.routes)
        } else {
            None
        }
    }
}

/// The ADS gRPC service (`envoy.service.discovery.v3.AggregatedDiscoveryService`).
#[derive(Debug, Clone)]
pub struct AdsService {
    built: watch::Receiver<Arc<Built>>,
    stop: watch::Receiver<bool>,
    token_sha256: Option<[u8; 32]>,
    stream_ids: Arc<AtomicU64>,
}

impl AdsService {
    /// Builds the resources from `inputs` now, then again on every change of `inputs` (in a
    /// task of the current runtime). Streams end when `stop` turns true.
    pub fn new(
        config: XdsConfig,
        mut inputs: watch::Receiver<Arc<XdsInputs>>,
        stop: watch::Receiver<bool>,
    ) -> AdsService {
        let first = Built::from_inputs(&inputs.borrow_and_update(), &config, None);
        let (built_tx, built_rx) = watch::channel(Arc::new(first));
        let token_sha256 = config.token_sha256;
        tokio::spawn(async move {
            // Ends when the inputs' sender is dropped (the last resources stay served) or
            // when every stream and the service are gone.
            while inputs.changed().await.is_ok() {
                let next = {
                    let current = inputs.borrow_and_update();
                    let previous = built_tx.borrow().clone();
                    Built::from_inputs(&current, &config, Some(&previous))
                };
                tracing::debug!(
                    clusters = %next.clusters.version,
                    routes = %next.routes.version,
                    "xDS resources rebuilt"
                );
                if built_tx.send(Arc::new(next)).is_err() {
                    break;
                }
            }
        });
        AdsService {
            built: built_rx,
            stop,
            token_sha256,
            stream_ids: Arc::new(AtomicU64::new(0)),
        }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.token_sha256 else {
            return Ok(());
        };
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| policy::bearer_token(v.as_encoded_bytes()).ok())
            .ok_or_else(|| {
                Status::unauthenticated("expected metadata authorization: Bearer <sync token>")
            })?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(presented.ct_eq(expected)) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid sync token"))
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaResponseStream =
    Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaResponseStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        self.authorize(&request)?;
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".into(), |a| a.to_string());
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = AdsStream {
            id: self.stream_ids.fetch_add(1, Ordering::Relaxed) + 1,
            peer,
            node: String::new(),
            nonces: 0,
            subscriptions: BTreeMap::new(),
            tx,
        };
        tokio::spawn(stream.run(request.into_inner(), self.built.clone(), self.stop.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaResponseStream>, Status> {
        Err(Status::unimplemented(
            "incremental (delta) xDS is not served; use the state-of-the-world ADS (api_type: GRPC)",
        ))
    }
}

/// One type's state on one stream.
#[derive(Debug, Default)]
struct Subscription {
    /// Requested resource names; empty = all (wildcard).
    names: Vec<String>,
    /// Nonce of the last response sent.
    nonce: Option<String>,
    /// `version_info` of the last response sent.
    sent_version: Option<String>,
}

/// Answers for types this server does not serve: empty, and constant.
const EMPTY_VERSION: &str = "empty";

/// The order types go out in on a change: clusters before routes (see the module docs), then
/// anything else.
fn type_rank(type_url: &str) -> u8 {
    if type_url == cluster_type_url() {
        0
    } else if type_url == route_type_url() {
        1
    } else {
        2
    }
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not across the caller's await.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

struct AdsStream {
    id: u64,
    peer: String,
    /// Envoy's node id (the first request carries it).
    node: String,
    nonces: u64,
    subscriptions: BTreeMap<String, Subscription>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
}

/// Why a stream's task stops.
enum End {
    /// Envoy closed its side, or the connection broke.
    Envoy,
    /// The response side is gone (Envoy reset the stream or the server is shutting down).
    Closed,
}

impl AdsStream {
    async fn run(
        mut self,
        mut requests: Streaming<DiscoveryRequest>,
        mut built: watch::Receiver<Arc<Built>>,
        mut stop: watch::Receiver<bool>,
    ) {
        tracing::debug!(stream = self.id, peer = %self.peer, "xDS stream opened");
        let end = loop {
            tokio::select! {
                message = requests.message() => match message {
                    Ok(Some(request)) => {
                        let current = built.borrow_and_update().clone();
                        if self.on_request(request, &current).await.is_err() {
                            break End::Closed;
                        }
                    }
                    Ok(None) => break End::Envoy,
                    Err(status) => {
                        tracing::debug!(stream = self.id, node = %self.node, error = %status, "xDS stream broke");
                        break End::Envoy;
                    }
                },
                changed = built.changed() => {
                    if changed.is_err() {
                        break End::Closed;
                    }
                    let current = built.borrow_and_update().clone();
                    if self.push_changes(&current).await.is_err() {
                        break End::Closed;
                    }
                }
                _ = stopped(&mut stop) => break End::Closed,
            }
        };
        let how = match end {
            End::Envoy => "by Envoy",
            End::Closed => "by the server",
        };
        tracing::info!(stream = self.id, node = %self.node, peer = %self.peer, "xDS stream closed {how}");
    }

    async fn on_request(&mut self, request: DiscoveryRequest, built: &Built) -> Result<(), ()> {
        if self.node.is_empty() {
            if let Some(node) = &request.node {
                self.node = node.id.clone();
                tracing::info!(stream = self.id, node = %self.node, cluster = %node.cluster, peer = %self.peer, "Envoy connected for xDS");
            }
        }
        let type_url = request.type_url.clone();
        let sub = self.subscriptions.entry(type_url.clone()).or_default();
        if !request.response_nonce.is_empty() {
            if sub.nonce.as_deref() != Some(request.response_nonce.as_str()) {
                tracing::debug!(stream = self.id, %type_url, nonce = %request.response_nonce, "xDS: stale nonce, ignored");
                return Ok(());
            }
            let names_changed = sub.names != request.resource_names;
            sub.names = request.resource_names;
            if let Some(error) = &request.error_detail {
                tracing::warn!(
                    stream = self.id,
                    node = %self.node,
                    %type_url,
                    rejected_version = sub.sent_version.as_deref().unwrap_or(""),
                    kept_version = %request.version_info,
                    code = error.code,
                    error = %error.message,
                    "Envoy rejected an xDS update (NACK); it keeps its previous config until the next change"
                );
                return Ok(());
            }
            tracing::debug!(stream = self.id, node = %self.node, %type_url, version = %request.version_info, "xDS ACK");
            if !names_changed {
                return Ok(());
            }
        } else {
            // A new subscription (or Envoy reconnected and tells what it has): answer in full.
            sub.names = request.resource_names;
        }
        self.send(&type_url, built).await
    }

    /// Sends every subscribed type whose content differs from what this stream last sent,
    /// clusters first.
    async fn push_changes(&mut self, built: &Built) -> Result<(), ()> {
        let mut due: Vec<String> = self
            .subscriptions
            .iter()
            .filter(|(type_url, sub)| {
                let current = built
                    .for_type(type_url)
                    .map_or(EMPTY_VERSION, |r| r.version.as_str());
                sub.sent_version.as_deref() != Some(current)
            })
            .map(|(type_url, _)| type_url.clone())
            .collect();
        due.sort_by_key(|t| type_rank(t));
        for type_url in due {
            self.send(&type_url, built).await?;
        }
        Ok(())
    }

    async fn send(&mut self, type_url: &str, built: &Built) -> Result<(), ()> {
        self.nonces += 1;
        let nonce = format!("{}-{}", self.id, self.nonces);
        let sub = self.subscriptions.entry(type_url.to_string()).or_default();
        let (version, resources) = match built.for_type(type_url) {
            Some(typed) => {
                let wildcard = sub.names.is_empty() || sub.names.iter().any(|n| n == "*");
                let resources: Vec<Any> = typed
                    .resources
                    .iter()
                    .filter(|(name, _)| wildcard || sub.names.contains(name))
                    .map(|(_, any)| any.clone())
                    .collect();
                (typed.version.clone(), resources)
            }
            None => {
                tracing::debug!(stream = self.id, node = %self.node, %type_url, "xDS: type not served; answering with no resources");
                (EMPTY_VERSION.to_string(), Vec::new())
            }
        };
        tracing::debug!(stream = self.id, node = %self.node, %type_url, %version, %nonce, resources = resources.len(), "xDS response");
        sub.nonce = Some(nonce.clone());
        sub.sent_version = Some(version.clone());
        let response = DiscoveryResponse {
            version_info: version,
            resources,
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        };
        self.tx.send(Ok(response)).await.map_err(|_| ())
    }
}
