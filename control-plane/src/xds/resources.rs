//! The registry as Envoy resources: one upstream cluster per server and one route configuration
//! that sends each server's path to its cluster and the discovery paths to the control plane.
//!
//! Building happens in two steps so the rules can be read (and tested) apart from protobuf: a
//! plan ([`plan`]: [`PlannedRoute`]s and [`Upstream`]s in plain Rust), then its Envoy form
//! ([`XdsResources::build`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    address, data_source, socket_address, transport_socket, Address, DataSource, SocketAddress,
    TransportSocket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, route_match, HeaderMatcher, Route, RouteAction,
    RouteConfiguration, RouteList, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, subject_alt_name_matcher, CertificateValidationContext, CommonTlsContext,
    SubjectAltNameMatcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    string_matcher, HttpRequestHeaderMatchInput, RegexMatcher, StringMatcher,
};
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::{matcher, Matcher};
use prost::{Message, Name};
use sha2::{Digest, Sha256};
use url::{Host, Url};

use crate::registry::Server;

use super::XdsConfig;

/// How long Envoy waits for a TCP (and TLS) connection to an MCP server.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Prefix of every upstream cluster name (`mcp_<sanitised server name>`).
pub const CLUSTER_PREFIX: &str = "mcp_";
/// Envoy's name for the TLS transport socket.
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
/// The discovery documents the filter lets through without credentials (`docs/policy.md`),
/// and the only ones routed to the control plane.
pub const DISCOVERY_DOCUMENTS: [&str; 3] = [
    "oauth-protected-resource",
    "oauth-authorization-server",
    "openid-configuration",
];
/// The methods discovery requests may use; any other method on a discovery path under a server
/// is a server request (the filter asks for credentials) and goes to the server's cluster.
pub const DISCOVERY_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS"];

/// Why a server gets no route and no cluster. The registry validates `proxy_pass_url` on write,
/// so these only show for rows written by something else (or by an older version).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("proxy_pass_url is not a URL: {0}")]
    NotAUrl(String),
    #[error("proxy_pass_url must be http or https, not {0}")]
    Scheme(String),
    #[error("proxy_pass_url has no host")]
    NoHost,
    #[error("server path must start with / and not end with /: {0:?}")]
    Path(String),
}

/// Where one server's traffic goes, read from its `proxy_pass_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Cluster name: `mcp_<sanitised server name>`.
    pub cluster: String,
    pub tls: bool,
    /// Host as Envoy dials it: a hostname, or an IP literal without brackets.
    pub host: String,
    pub ip_literal: bool,
    pub port: u16,
    /// `Host` header sent upstream: `host[:port]` as in the URL (default port left out), like
    /// a reverse proxy that passes `proxy_pass_url` on.
    pub authority: String,
    /// The upstream URL's path without its trailing `/` (empty for the root).
    pub base_path: String,
}

/// What a route matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The whole path (query excluded).
    Exact(String),
    /// A path prefix (always ending in `/`, so `/github` never matches `/githubx`).
    Prefix(String),
}

impl PathMatch {
    pub fn text(&self) -> &str {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p,
        }
    }
}

/// Where a route sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// The control plane's static cluster (OAuth discovery documents), path unchanged.
    ControlPlane,
    /// A server's cluster, with the matched part of the path replaced by `rewrite`.
    Upstream {
        cluster: String,
        rewrite: String,
        authority: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRoute {
    /// Route name in Envoy (shows in `/config_dump` and debug logs).
    pub name: String,
    /// The path the route is keyed under in Envoy's route tree (see [`route_tree`]): its
    /// server's path, or `/.well-known/` and `/oauth` for the routes of no server. Every path
    /// the route matches starts with it.
    pub owner: String,
    pub matcher: PathMatch,
    /// The `:method`s the route is for; empty: every method.
    pub methods: &'static [&'static str],
    pub target: RouteTarget,
}

/// The route-tree key of the root discovery documents (`/.well-known/DOC[/…]`).
const ROOT_DISCOVERY_KEY: &str = "/.well-known/";
/// The route-tree key of the authorization server's endpoints.
const ROOT_OAUTH_KEY: &str = policy::AUTHORIZATION_SERVER_PATH;

/// The rules applied to a set of servers, before they become protobuf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Most specific first: Envoy takes the first route that matches.
    pub routes: Vec<PlannedRoute>,
    /// Sorted by cluster name.
    pub upstreams: Vec<Upstream>,
    /// Servers left out, with why.
    pub skipped: Vec<(String, UpstreamError)>,
}

/// The upstream's MCP endpoint ends in one of these: a server registered with such a
/// `proxy_pass_url` is served at the URL itself (see `connect::auto_append_mcp_path`).
fn is_mcp_endpoint_path(path: &str) -> bool {
    path.ends_with("/mcp") || path.ends_with("/sse")
}

/// `mcp_` + the server name lowercased with every character outside `[a-z0-9_]` replaced by
/// `_`. Names that collide after this get a hash suffix (see [`plan`]).
pub fn sanitised_cluster_name(server_name: &str) -> String {
    let body: String = server_name
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{CLUSTER_PREFIX}{body}")
}

fn name_hash8(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a server's upstream from its `proxy_pass_url`.
pub fn upstream_of(server: &Server, cluster: String) -> Result<Upstream, UpstreamError> {
    let url = Url::parse(server.proxy_pass_url.trim())
        .map_err(|e| UpstreamError::NotAUrl(e.to_string()))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(UpstreamError::Scheme(other.to_string())),
    };
    let (host, ip_literal) = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => (d.to_string(), false),
        Some(Host::Ipv4(ip)) => (ip.to_string(), true),
        Some(Host::Ipv6(ip)) => (ip.to_string(), true),
        _ => return Err(UpstreamError::NoHost),
    };
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let mut authority = url.host_str().unwrap_or_default().to_string();
    if let Some(explicit) = url.port() {
        authority.push_str(&format!(":{explicit}"));
    }
    Ok(Upstream {
        cluster,
        tls,
        host,
        ip_literal,
        port,
        authority,
        base_path: url.path().trim_end_matches('/').to_string(),
    })
}

fn check_server_path(path: &str) -> Result<&str, UpstreamError> {
    let p = path.trim();
    if p.len() < 2 || !p.starts_with('/') || p.ends_with('/') {
        return Err(UpstreamError::Path(path.to_string()));
    }
    Ok(p)
}

/// The routing rules: `/oauth` and `/oauth/…` (any method) go to the control plane (the
/// authorization server in broker mode); for every server:
///
/// - the OAuth discovery documents (RFC 9728, RFC 8414, OIDC: [`DISCOVERY_DOCUMENTS`]) go to
///   the control plane for `GET`, `HEAD` and `OPTIONS` only ([`DISCOVERY_METHODS`]), exactly
///   where the filter lets them through without credentials: `/.well-known/DOC` and
///   `/.well-known/DOC/…` once, and exactly `<path>/.well-known/DOC` and
///   `<path>/mcp/.well-known/DOC` for every server. Any other path under a server (another
///   `.well-known` document, one deeper, another method) is the server's: the filter wants
///   credentials for it and the server's cluster gets it;
/// - `<path>` and `<path>/…` go to the server's cluster with `<path>` replaced by the path of
///   `proxy_pass_url` (the reverse-proxy rule: `/github/mcp` → `http://up:8000` + `/mcp`;
///   a root-endpoint server with `append_mcp_path: false` is reached at `/github` → `/`);
/// - when `/mcp` is appended (`append_mcp_path: true`) to a `proxy_pass_url` that is itself the
///   MCP endpoint (ends in `/mcp` or `/sse`), the client's `<path>/mcp` is that endpoint:
///   exactly `<path>/mcp` → the `proxy_pass_url` path (not `…/mcp/mcp`);
/// - `mcp_endpoint` changes what clients are told, not the routing: a custom endpoint on this
///   gateway lies under the server's path (the filter knows servers by path) and takes the rule
///   above; one elsewhere is not ours to route.
///
/// Routes are ordered most specific first (longest match text, exact before prefix, method
/// restricted before any method, then by text) so nested server paths (`/team` and
/// `/team/github`) each get their own traffic and a discovery request with another method
/// falls through to its server; paths no route matches get Envoy's 404.
pub fn plan(servers: &[Server]) -> Plan {
    // Cluster names: the sanitised name, plus a hash of the real name for every server whose
    // sanitised name is shared (both get one, so neither name depends on the other's order).
    let mut by_sanitised: HashMap<String, usize> = HashMap::new();
    for s in servers {
        *by_sanitised
            .entry(sanitised_cluster_name(&s.name))
            .or_default() += 1;
    }
    let mut out = Plan::default();
    type Key = (std::cmp::Reverse<usize>, u8, bool, String);
    let mut routes: BTreeMap<Key, (usize, PlannedRoute)> = BTreeMap::new();
    // `owner`: the path of the server the route is for (a root key for the routes of no
    // server); a contested route goes to the longer server path.
    let mut add = |mut route: PlannedRoute, owner: &str| {
        route.owner = owner.to_string();
        let owner = if owner.starts_with("/.well-known/") || owner == ROOT_OAUTH_KEY {
            0
        } else {
            owner.len()
        };
        let kind = match route.matcher {
            PathMatch::Exact(_) => 0,
            PathMatch::Prefix(_) => 1,
        };
        let key = (
            std::cmp::Reverse(route.matcher.text().len()),
            kind,
            route.methods.is_empty(),
            route.matcher.text().to_string(),
        );
        // The registry refuses two servers claiming one exact path (`registry::Server::
        // claimed_paths`), so a key is contested only by rows written some other way, or by
        // discovery routes that are the same whoever adds them. Then the server with the
        // longer path wins, as in the filter (longest prefix), whatever the servers' order.
        match routes.entry(key) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((owner, route));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if owner > o.get().0 {
                    o.insert((owner, route));
                }
            }
        }
    };
    for doc in DISCOVERY_DOCUMENTS {
        // RFC 9728 / RFC 8414 / OIDC at the root, and with the resource's or issuer's path
        // inserted after the document name.
        for matcher in [
            PathMatch::Exact(format!("/.well-known/{doc}")),
            PathMatch::Prefix(format!("/.well-known/{doc}/")),
        ] {
            add(
                PlannedRoute {
                    name: "discovery".into(),
                    owner: String::new(),
                    matcher,
                    methods: DISCOVERY_METHODS,
                    target: RouteTarget::ControlPlane,
                },
                ROOT_DISCOVERY_KEY,
            );
        }
    }
    // The authorization server's endpoints (broker mode), every method: the filter decides
    // whether they exist (its snapshot says broker mode or not) and the registry keeps
    // servers off this path.
    for matcher in [
        PathMatch::Exact(policy::AUTHORIZATION_SERVER_PATH.to_string()),
        PathMatch::Prefix(format!("{}/", policy::AUTHORIZATION_SERVER_PATH)),
    ] {
        add(
            PlannedRoute {
                name: "authorization-server".into(),
                owner: String::new(),
                matcher,
                methods: &[],
                target: RouteTarget::ControlPlane,
            },
            ROOT_OAUTH_KEY,
        );
    }
    for server in servers {
        let sanitised = sanitised_cluster_name(&server.name);
        let cluster = if by_sanitised.get(&sanitised).copied().unwrap_or(0) > 1 {
            format!("{sanitised}_{}", name_hash8(&server.name))
        } else {
            sanitised
        };
        let path = match check_server_path(&server.path) {
            Ok(p) => p.to_string(),
            Err(e) => {
                out.skipped.push((server.name.clone(), e));
                continue;
            }
        };
        let upstream = match upstream_of(server, cluster) {
            Ok(u) => u,
            Err(e) => {
                out.skipped.push((server.name.clone(), e));
                continue;
            }
        };
        let to_upstream = |rewrite: String| RouteTarget::Upstream {
            cluster: upstream.cluster.clone(),
            rewrite,
            authority: upstream.authority.clone(),
        };
        let base = &upstream.base_path;
        let owner = path.as_str();
        for at in [path.clone(), format!("{path}/mcp")] {
            for doc in DISCOVERY_DOCUMENTS {
                add(
                    PlannedRoute {
                        name: format!("discovery:{}", server.name),
                        owner: String::new(),
                        matcher: PathMatch::Exact(format!("{at}/.well-known/{doc}")),
                        methods: DISCOVERY_METHODS,
                        target: RouteTarget::ControlPlane,
                    },
                    owner,
                );
            }
        }
        if server.appends_mcp_path() && is_mcp_endpoint_path(base) {
            add(
                PlannedRoute {
                    name: format!("mcp-endpoint:{}", server.name),
                    owner: String::new(),
                    matcher: PathMatch::Exact(format!("{path}/mcp")),
                    methods: &[],
                    target: to_upstream(base.clone()),
                },
                owner,
            );
        }
        add(
            PlannedRoute {
                name: format!("server:{}", server.name),
                owner: String::new(),
                matcher: PathMatch::Exact(path.clone()),
                methods: &[],
                target: to_upstream(if base.is_empty() {
                    "/".to_string()
                } else {
                    base.clone()
                }),
            },
            owner,
        );
        add(
            PlannedRoute {
                name: format!("server:{}", server.name),
                owner: String::new(),
                matcher: PathMatch::Prefix(format!("{path}/")),
                methods: &[],
                target: to_upstream(format!("{base}/")),
            },
            owner,
        );
        out.upstreams.push(upstream);
    }
    out.routes = routes.into_values().map(|(_, route)| route).collect();
    out.upstreams.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    out
}

/// Packs a message as `google.protobuf.Any`.
pub fn to_any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn duration(d: Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// The Envoy route for one planned route.
fn envoy_route(planned: &PlannedRoute, config: &XdsConfig) -> Route {
    let path_specifier = match &planned.matcher {
        PathMatch::Exact(p) => route_match::PathSpecifier::Path(p.clone()),
        PathMatch::Prefix(p) => route_match::PathSpecifier::Prefix(p.clone()),
    };
    let action = match &planned.target {
        RouteTarget::ControlPlane => RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                config.control_plane_cluster.clone(),
            )),
            ..Default::default()
        },
        RouteTarget::Upstream {
            cluster,
            rewrite,
            authority,
        } => RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.clone())),
            prefix_rewrite: rewrite.clone(),
            host_rewrite_specifier: Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
                authority.clone(),
            )),
            // MCP streams (SSE) and long tool calls must not be cut by the 15 s default.
            timeout: Some(duration(Duration::ZERO)),
            ..Default::default()
        },
    };
    // One `:method` matcher for a restricted route (RE2, matched against the whole value).
    let headers = if planned.methods.is_empty() {
        Vec::new()
    } else {
        vec![HeaderMatcher {
            name: ":method".into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                        regex: planned.methods.join("|"),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }]
    };
    Route {
        name: planned.name.clone(),
        r#match: Some(RouteMatch {
            path_specifier: Some(path_specifier),
            headers,
            ..Default::default()
        }),
        action: Some(route::Action::Route(action)),
        ..Default::default()
    }
}

/// The Envoy cluster for one upstream: STATIC for an IP literal, STRICT_DNS for a hostname
/// (re-resolved as DNS changes; IPv4 preferred so `localhost` reaches a server listening on
/// 127.0.0.1), HTTP/1.1 (Envoy's default), TLS with SNI and certificate checks for https.
fn envoy_cluster(upstream: &Upstream, config: &XdsConfig) -> Cluster {
    let discovery_type = if upstream.ip_literal {
        cluster::DiscoveryType::Static
    } else {
        cluster::DiscoveryType::StrictDns
    };
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: upstream.host.clone(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                        upstream.port,
                    ))),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    Cluster {
        name: upstream.cluster.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery_type as i32)),
        connect_timeout: Some(duration(UPSTREAM_CONNECT_TIMEOUT)),
        dns_lookup_family: if upstream.ip_literal {
            cluster::DnsLookupFamily::Auto as i32
        } else {
            cluster::DnsLookupFamily::V4Preferred as i32
        },
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: upstream.cluster.clone(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![endpoint],
                ..Default::default()
            }],
            ..Default::default()
        }),
        transport_socket: upstream.tls.then(|| tls_transport_socket(upstream, config)),
        ..Default::default()
    }
}

/// TLS to an https upstream: SNI = the URL's host (not for IP literals, where SNI is not
/// allowed), the peer certificate checked against the CA bundle and the host (DNS or IP SAN).
fn tls_transport_socket(upstream: &Upstream, config: &XdsConfig) -> TransportSocket {
    let san = SubjectAltNameMatcher {
        san_type: if upstream.ip_literal {
            subject_alt_name_matcher::SanType::IpAddress as i32
        } else {
            subject_alt_name_matcher::SanType::Dns as i32
        },
        matcher: Some(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(upstream.host.clone())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let context = UpstreamTlsContext {
        sni: if upstream.ip_literal {
            String::new()
        } else {
            upstream.host.clone()
        },
        common_tls_context: Some(CommonTlsContext {
            validation_context_type: Some(
                common_tls_context::ValidationContextType::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: Some(DataSource {
                            specifier: Some(data_source::Specifier::Filename(
                                config.upstream_ca_file.clone(),
                            )),
                            ..Default::default()
                        }),
                        match_typed_subject_alt_names: vec![san],
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(to_any(&context))),
    }
}

/// The routes as Envoy's route matcher tree instead of one list: a lookup of the request's
/// `:path` by longest prefix among the route owners (server paths and the root keys), then the
/// routes of that owner and of every owner that is a prefix of it, in the plan's order. A route
/// that can match a path has an owner that is a prefix of that path, hence of the longest one,
/// so the first route that matches is the one the whole list would give; but a request checks a
/// handful of routes instead of every server's (a list of 90,000 routes cost Envoy about 17 ms
/// per request at 10,000 servers). The `:path` holds the query too: no owner contains `?`, so a
/// prefix of it is a prefix of the path.
pub fn route_tree(routes: &[PlannedRoute], config: &XdsConfig) -> Matcher {
    let mut by_owner: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, route) in routes.iter().enumerate() {
        by_owner.entry(route.owner.as_str()).or_default().push(i);
    }
    let mut map = HashMap::new();
    for key in by_owner.keys() {
        let mut indices: Vec<usize> = (1..=key.len())
            .filter(|&end| key.is_char_boundary(end))
            .filter_map(|end| by_owner.get(&key[..end]))
            .flatten()
            .copied()
            .collect();
        indices.sort_unstable();
        let list = RouteList {
            routes: indices
                .into_iter()
                .map(|i| envoy_route(&routes[i], config))
                .collect(),
        };
        let action = TypedExtensionConfig {
            name: format!("routes:{key}"),
            typed_config: Some(to_any(&list)),
        };
        map.insert(
            (*key).to_string(),
            matcher::OnMatch {
                on_match: Some(matcher::on_match::OnMatch::Action(action)),
                keep_matching: false,
            },
        );
    }
    let input = TypedExtensionConfig {
        name: "request-path".into(),
        typed_config: Some(to_any(&HttpRequestHeaderMatchInput {
            header_name: ":path".into(),
        })),
    };
    Matcher {
        matcher_type: Some(matcher::MatcherType::MatcherTree(matcher::MatcherTree {
            input: Some(input),
            tree_type: Some(matcher::matcher_tree::TreeType::PrefixMatchMap(
                matcher::matcher_tree::MatchMap { map },
            )),
        })),
        on_no_match: None,
    }
}

/// Envoy's view of one set of servers.
#[derive(Debug, Clone, PartialEq)]
pub struct XdsResources {
    /// Sorted by name.
    pub clusters: Vec<Cluster>,
    pub route_configuration: RouteConfiguration,
    /// Servers that got no route (logged by the caller).
    pub skipped: Vec<(String, UpstreamError)>,
}

impl XdsResources {
    pub fn build(servers: &[Server], config: &XdsConfig) -> XdsResources {
        let plan = plan(servers);
        XdsResources {
            clusters: plan
                .upstreams
                .iter()
                .map(|u| envoy_cluster(u, config))
                .collect(),
            route_configuration: RouteConfiguration {
                name: config.route_config_name.clone(),
                virtual_hosts: vec![VirtualHost {
                    name: "portcullis".into(),
                    domains: vec!["*".into()],
                    matcher: Some(route_tree(&plan.routes, config)),
                    ..Default::default()
                }],
                ..Default::default()
            },
            skipped: plan.skipped,
        }
    }
}
