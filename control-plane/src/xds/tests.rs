//! Resource building (the routing rules, names, clusters) and the ADS protocol over a real
//! gRPC connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{address, data_source, socket_address, Node};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, route_match, Route, RouteConfiguration, RouteList,
    VirtualHost,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, subject_alt_name_matcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

use super::ads::{cluster_type_url, route_type_url};
use super::resources::{
    plan, sanitised_cluster_name, PathMatch, PlannedRoute, RouteTarget, UpstreamError,
    DISCOVERY_DOCUMENTS,
};
use super::*;
use crate::registry::{Server, ServerFields};

fn server(name: &str, path: &str, proxy: &str) -> Server {
    Server::from_fields(
        ServerFields {
            name: name.into(),
            path: path.into(),
            proxy_pass_url: proxy.into(),
            ..Default::default()
        },
        0,
        0,
    )
}

fn with_append(mut s: Server, append: Option<bool>) -> Server {
    s.append_mcp_path = append;
    s
}

/// Where Envoy would send a `GET` of `path` under `routes`.
fn route_for(routes: &[PlannedRoute], path: &str) -> Option<(String, String)> {
    route_with(routes, "GET", path)
}

/// Where Envoy would send `method` `path` under `routes`: first match wins; exact matches
/// compare the path without its query; a route with methods matches only those; the matched
/// part is replaced by the rewrite.
fn route_with(routes: &[PlannedRoute], method: &str, path: &str) -> Option<(String, String)> {
    let bare = path.split('?').next().unwrap_or(path);
    let route = routes.iter().find(|r| {
        (r.methods.is_empty() || r.methods.contains(&method))
            && match &r.matcher {
                PathMatch::Exact(p) => bare == p,
                PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            }
    })?;
    let matched = route.matcher.text().len();
    Some(match &route.target {
        RouteTarget::ControlPlane => ("control-plane".into(), path.into()),
        RouteTarget::Upstream {
            cluster, rewrite, ..
        } => (cluster.clone(), format!("{rewrite}{}", &path[matched..])),
    })
}

/// Every route of a virtual host's matcher tree, each once (a route is in the list of its owner
/// and of every owner its owner is a prefix of).
fn tree_routes(vh: &VirtualHost) -> Vec<Route> {
    let mut seen = std::collections::BTreeMap::new();
    for list in tree_lists(vh).into_values() {
        for r in list.routes {
            seen.entry((r.name.clone(), format!("{:?}", r.r#match)))
                .or_insert(r);
        }
    }
    seen.into_values().collect()
}

/// The route lists of a virtual host's matcher tree, by prefix key.
fn tree_lists(vh: &VirtualHost) -> std::collections::BTreeMap<String, RouteList> {
    use envoy_types::pb::xds::r#type::matcher::v3::matcher;
    use prost::Message as _;
    let tree = vh.matcher.as_ref().expect("a matcher tree");
    let Some(matcher::MatcherType::MatcherTree(tree)) = &tree.matcher_type else {
        panic!("a matcher tree")
    };
    let input = tree.input.as_ref().expect("input");
    let header = envoy_types::pb::envoy::r#type::matcher::v3::HttpRequestHeaderMatchInput::decode(
        input
            .typed_config
            .as_ref()
            .expect("typed input")
            .value
            .as_slice(),
    )
    .expect("a header input");
    assert_eq!(header.header_name, ":path");
    let Some(matcher::matcher_tree::TreeType::PrefixMatchMap(map)) = &tree.tree_type else {
        panic!("a prefix map")
    };
    map.map
        .iter()
        .map(|(key, on_match)| {
            let Some(matcher::on_match::OnMatch::Action(action)) = &on_match.on_match else {
                panic!("an action")
            };
            let any = action.typed_config.as_ref().expect("typed action");
            assert_eq!(
                any.type_url,
                "type.googleapis.com/envoy.config.route.v3.RouteList"
            );
            let list = RouteList::decode(any.value.as_slice()).expect("a route list");
            (key.clone(), list)
        })
        .collect()
}

/// Where Envoy sends `method` `path` through the matcher tree: the list under the longest key
/// that prefixes the `:path` (query included), then its first matching route.
fn route_via_tree(vh: &VirtualHost, method: &str, path: &str) -> Option<(String, String)> {
    let lists = tree_lists(vh);
    let (_, list) = lists
        .iter()
        .filter(|(key, _)| path.starts_with(key.as_str()))
        .max_by_key(|(key, _)| key.len())?;
    let bare = path.split('?').next().unwrap_or(path);
    let route = list.routes.iter().find(|r| {
        let m = r.r#match.as_ref().expect("match");
        let methods_ok = m.headers.iter().all(|h| {
            let Some(header_matcher::HeaderMatchSpecifier::StringMatch(sm)) =
                &h.header_match_specifier
            else {
                panic!("string match")
            };
            let Some(string_matcher::MatchPattern::SafeRegex(re)) = &sm.match_pattern else {
                panic!("regex")
            };
            re.regex.split('|').any(|m| m == method)
        });
        methods_ok
            && match &m.path_specifier {
                Some(route_match::PathSpecifier::Path(p)) => bare == p,
                Some(route_match::PathSpecifier::Prefix(p)) => path.starts_with(p.as_str()),
                other => panic!("unexpected path specifier {other:?}"),
            }
    })?;
    let Some(route::Action::Route(a)) = &route.action else {
        panic!("route action")
    };
    let matched = match &route.r#match.as_ref().expect("match").path_specifier {
        Some(route_match::PathSpecifier::Path(p) | route_match::PathSpecifier::Prefix(p)) => {
            p.len()
        }
        _ => unreachable!(),
    };
    Some(match a.cluster_specifier.as_ref().expect("cluster") {
        route_action::ClusterSpecifier::Cluster(c) if c == "control-plane-cluster" => {
            ("control-plane".into(), path.into())
        }
        route_action::ClusterSpecifier::Cluster(c) => (
            c.clone(),
            format!("{}{}", a.prefix_rewrite, &path[matched..]),
        ),
        other => panic!("unexpected cluster specifier {other:?}"),
    })
}

/// The matcher tree sends every request where the plan's list, checked in order, would: nested
/// server paths, servers whose paths are string prefixes of each other, discovery documents,
/// `/oauth`, queries, every method.
#[test]
fn the_route_tree_routes_as_the_ordered_list_does() {
    let servers = [
        server("t", "/t", "http://127.0.0.1:3001"),
        server("tea", "/tea", "http://127.0.0.1:3002/mcp"),
        server("team", "/team", "http://127.0.0.1:3003"),
        server("team-github", "/team/github", "http://127.0.0.1:3004/mcp"),
        server(
            "team-github-mcp",
            "/team/github/mcp",
            "http://127.0.0.1:3005",
        ),
        with_append(
            server("aws", "/aws", "https://knowledge.example.com"),
            Some(false),
        ),
        server("oauth2", "/oauth2", "http://127.0.0.1:3006"),
    ];
    let config = XdsConfig {
        control_plane_cluster: "control-plane-cluster".into(),
        ..XdsConfig::default()
    };
    let list = plan(&servers).routes;
    let built = XdsResources::build(&servers, &config);
    let vh = &built.route_configuration.virtual_hosts[0];
    let mut paths = vec![
        "/".to_string(),
        "/nothing".into(),
        "/oauth".into(),
        "/oauth/token".into(),
        "/oauth2".into(),
        "/oauth2/mcp".into(),
        "/oauthx".into(),
        "/aws".into(),
        "/aws?x=1".into(),
        "/aws/".into(),
        "/awsx".into(),
    ];
    for prefix in [
        "/t",
        "/tea",
        "/team",
        "/team/github",
        "/team/github/mcp",
        "/teamx",
    ] {
        for rest in [
            "",
            "/",
            "/mcp",
            "/mcp?session=1",
            "/mcpx",
            "x",
            "x/mcp",
            "/github",
            "/githubx/mcp",
            "?q=/mcp",
        ] {
            paths.push(format!("{prefix}{rest}"));
        }
        for doc in DISCOVERY_DOCUMENTS {
            paths.push(format!("{prefix}/.well-known/{doc}"));
            paths.push(format!("{prefix}/mcp/.well-known/{doc}"));
            paths.push(format!("{prefix}/mcp/.well-known/{doc}?x=1"));
            paths.push(format!("{prefix}/x/.well-known/{doc}"));
        }
    }
    for doc in DISCOVERY_DOCUMENTS {
        paths.push(format!("/.well-known/{doc}"));
        paths.push(format!("/.well-known/{doc}/team/github/mcp"));
        paths.push(format!("/.well-known/{doc}x"));
    }
    for path in &paths {
        for method in ["GET", "HEAD", "OPTIONS", "POST", "DELETE"] {
            let expected = route_with(&list, method, path);
            assert_eq!(
                route_via_tree(vh, method, path),
                expected,
                "{method} {path}"
            );
        }
    }
    // Each route is in its owner's list (and in the lists of longer owners it prefixes), so
    // the tree holds as many distinct routes as the list.
    assert_eq!(tree_routes(vh).len(), list.len());
}

fn goes(cluster: &str, path: &str) -> Option<(String, String)> {
    Some((cluster.to_string(), path.to_string()))
}

fn cp(path: &str) -> Option<(String, String)> {
    goes("control-plane", path)
}

#[test]
fn root_upstream_is_reached_at_path_mcp() {
    // The demo's layout: mcp-server-everything serves /mcp at its root.
    let p = plan(&[server("everything", "/everything", "http://127.0.0.1:3001")]);
    assert!(p.skipped.is_empty());
    let r = &p.routes;
    assert_eq!(
        route_for(r, "/everything/mcp"),
        goes("mcp_everything", "/mcp")
    );
    assert_eq!(
        route_for(r, "/everything/mcp?session=1"),
        goes("mcp_everything", "/mcp?session=1")
    );
    assert_eq!(route_for(r, "/everything"), goes("mcp_everything", "/"));
    assert_eq!(
        route_for(r, "/everythingx/mcp"),
        None,
        "prefixes end at a segment"
    );
    assert_eq!(
        route_for(r, "/other/mcp"),
        None,
        "no route: Envoy answers 404"
    );
    assert_eq!(route_for(r, "/"), None);
    for discovery in [
        "/.well-known/oauth-protected-resource/everything/mcp",
        "/.well-known/oauth-authorization-server",
        "/everything/.well-known/oauth-protected-resource",
        "/everything/mcp/.well-known/openid-configuration",
    ] {
        assert_eq!(route_for(r, discovery), cp(discovery), "{discovery}");
    }
    assert_eq!(p.upstreams.len(), 1);
    let u = &p.upstreams[0];
    assert_eq!(
        (
            u.cluster.as_str(),
            u.host.as_str(),
            u.port,
            u.tls,
            u.ip_literal
        ),
        ("mcp_everything", "127.0.0.1", 3001, false, true)
    );
    assert_eq!(u.authority, "127.0.0.1:3001");
}

/// Rules R3/R4 of `docs/policy.md`: the control plane gets exactly the discovery documents the
/// filter lets through (GET, HEAD, OPTIONS); every other path under a server, whatever its
/// segments, and every other method is the server's.
#[test]
fn only_the_discovery_documents_the_filter_passes_go_to_the_control_plane() {
    let p = plan(&[
        server("t", "/t", "http://127.0.0.1:3001"),
        server("team-github", "/team/github", "http://127.0.0.1:3002/mcp"),
    ]);
    let r = &p.routes;
    for doc in DISCOVERY_DOCUMENTS {
        for path in [
            format!("/.well-known/{doc}"),
            format!("/.well-known/{doc}?x=1"),
            format!("/.well-known/{doc}/t/mcp"),
            format!("/.well-known/{doc}/realms/acme"),
            format!("/t/.well-known/{doc}"),
            format!("/t/mcp/.well-known/{doc}"),
            format!("/t/mcp/.well-known/{doc}?x=1"),
            format!("/team/github/.well-known/{doc}"),
            format!("/team/github/mcp/.well-known/{doc}"),
        ] {
            for method in ["GET", "HEAD", "OPTIONS"] {
                assert_eq!(route_with(r, method, &path), cp(&path), "{method} {path}");
            }
            // Another method is a server request (credentials needed) for the server...
            for method in ["POST", "PUT", "PATCH", "DELETE"] {
                let to = route_with(r, method, &path);
                if path.starts_with("/.well-known/") {
                    // ...and outside every server, nothing (the filter answers 405 first).
                    assert_eq!(to, None, "{method} {path}");
                } else {
                    let cluster = if path.starts_with("/t/") {
                        "mcp_t"
                    } else {
                        "mcp_team_github"
                    };
                    assert_eq!(to.map(|t| t.0), Some(cluster.into()), "{method} {path}");
                }
            }
        }
    }
    // Any other `.well-known` path under a server is the server's, whatever the method.
    for (path, upstream) in [
        ("/t/mcp/.well-known", "/mcp/.well-known"),
        ("/t/mcp/.well-known/", "/mcp/.well-known/"),
        ("/t/mcp/.well-known/foo", "/mcp/.well-known/foo"),
        ("/t/x/.well-known/y", "/x/.well-known/y"),
        ("/t/.well-known/jwks.json", "/.well-known/jwks.json"),
        (
            "/t/.well-known/oauth-protected-resource/more",
            "/.well-known/oauth-protected-resource/more",
        ),
        (
            "/t/mcp/.well-known/oauth-protected-resourcex",
            "/mcp/.well-known/oauth-protected-resourcex",
        ),
        (
            "/t/a/mcp/.well-known/openid-configuration",
            "/a/mcp/.well-known/openid-configuration",
        ),
    ] {
        for method in ["GET", "POST"] {
            assert_eq!(
                route_with(r, method, path),
                goes("mcp_t", upstream),
                "{method} {path}"
            );
        }
    }
    // Other root `.well-known` documents are nobody's (the filter answers 404 first).
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/",
        "/.well-known/oauth-protected-resourcex",
    ] {
        assert_eq!(route_for(r, path), None, "{path}");
    }
    // The authorization server's endpoints (broker mode; the filter decides whether they
    // exist): `/oauth` and under it, every method; `/oauthx` is nobody's.
    for path in [
        "/oauth",
        "/oauth/token",
        "/oauth/authorize?client_id=x",
        "/oauth/callback",
    ] {
        for method in ["GET", "POST", "PUT"] {
            assert_eq!(route_with(r, method, path), cp(path), "{method} {path}");
        }
    }
    assert_eq!(route_for(r, "/oauthx/token"), None);
    // 6 root discovery routes, 2 for the authorization server; 6 discovery routes per server
    // and 2 server routes each (neither appends /mcp to an endpoint).
    assert_eq!(r.len(), 6 + 2 + 2 * (6 + 2), "{r:#?}");
}

#[test]
fn upstream_ending_in_mcp_is_reached_at_the_path_itself() {
    // Auto-detect: proxy_pass_url is the MCP endpoint; clients use /github.
    let s = server("GitHub", "/github", "http://gh-mcp:8000/mcp/");
    assert_eq!(s.mcp_url("https://gw"), "https://gw/github");
    let r = plan(&[s]).routes;
    assert_eq!(route_for(&r, "/github"), goes("mcp_github", "/mcp"));
    assert_eq!(route_for(&r, "/github?x=1"), goes("mcp_github", "/mcp?x=1"));
    // Below the path, the reverse-proxy rule: the rest is appended to the upstream path.
    assert_eq!(
        route_for(&r, "/github/messages"),
        goes("mcp_github", "/mcp/messages")
    );
    let sse = plan(&[server("legacy", "/legacy", "http://old:9000/sse")]).routes;
    assert_eq!(route_for(&sse, "/legacy"), goes("mcp_legacy", "/sse"));
}

#[test]
fn append_mcp_path_true_on_an_mcp_endpoint_does_not_double_mcp() {
    let s = with_append(
        server("GitHub", "/github", "http://gh-mcp:8000/mcp"),
        Some(true),
    );
    assert_eq!(s.mcp_url("https://gw"), "https://gw/github/mcp");
    let r = plan(&[s]).routes;
    assert_eq!(route_for(&r, "/github/mcp"), goes("mcp_github", "/mcp"));
    assert_eq!(
        route_for(&r, "/github/mcp?a=b"),
        goes("mcp_github", "/mcp?a=b")
    );
    assert_eq!(route_for(&r, "/github"), goes("mcp_github", "/mcp"));
    assert_eq!(
        route_for(&r, "/github/mcp/.well-known/oauth-protected-resource"),
        cp("/github/mcp/.well-known/oauth-protected-resource")
    );
}

#[test]
fn append_mcp_path_false_on_a_root_endpoint() {
    let s = with_append(
        server(
            "AWS Knowledge",
            "/aws-knowledge",
            "https://knowledge-mcp.example.com",
        ),
        Some(false),
    );
    assert_eq!(s.mcp_url("https://gw"), "https://gw/aws-knowledge");
    let p = plan(&[s]);
    assert_eq!(
        route_for(&p.routes, "/aws-knowledge"),
        goes("mcp_aws_knowledge", "/")
    );
    assert_eq!(
        route_for(&p.routes, "/aws-knowledge/"),
        goes("mcp_aws_knowledge", "/")
    );
    let u = &p.upstreams[0];
    assert_eq!(
        (
            u.host.as_str(),
            u.port,
            u.tls,
            u.ip_literal,
            u.authority.as_str()
        ),
        (
            "knowledge-mcp.example.com",
            443,
            true,
            false,
            "knowledge-mcp.example.com"
        )
    );
}

#[test]
fn mcp_endpoint_changes_what_clients_are_told_not_the_routes() {
    let plain = server("s", "/github", "http://up:8000");
    let mut custom = plain.clone();
    custom.mcp_endpoint = Some("https://gw.example.com/github/custom/endpoint".into());
    assert_eq!(
        custom.mcp_url("https://gw.example.com"),
        "https://gw.example.com/github/custom/endpoint"
    );
    let routes = plan(&[custom]).routes;
    assert_eq!(routes, plan(&[plain]).routes);
    // A custom endpoint under the server's path takes the reverse-proxy rule.
    assert_eq!(
        route_for(&routes, "/github/custom/endpoint"),
        goes("mcp_s", "/custom/endpoint")
    );
}

#[test]
fn upstream_path_is_kept_under_the_server_path() {
    let r = plan(&[server("api", "/team/api", "http://10.0.0.7:8080/base/v1/")]).routes;
    assert_eq!(
        route_for(&r, "/team/api/mcp"),
        goes("mcp_api", "/base/v1/mcp")
    );
    assert_eq!(route_for(&r, "/team/api"), goes("mcp_api", "/base/v1"));
}

#[test]
fn nested_paths_each_get_their_own_traffic_longest_first() {
    let servers = vec![
        server("team", "/team", "http://127.0.0.1:9001"),
        server("team-github", "/team/github", "http://127.0.0.1:9002"),
    ];
    let p = plan(&servers);
    let r = &p.routes;
    assert_eq!(route_for(r, "/team/mcp"), goes("mcp_team", "/mcp"));
    assert_eq!(
        route_for(r, "/team/github/mcp"),
        goes("mcp_team_github", "/mcp")
    );
    assert_eq!(route_for(r, "/team/github"), goes("mcp_team_github", "/"));
    assert_eq!(
        route_for(r, "/team/githubber"),
        goes("mcp_team", "/githubber")
    );
    assert_eq!(route_for(r, "/team"), goes("mcp_team", "/"));
    // Longest match text first, exact before prefix on a tie.
    let lengths: Vec<usize> = r.iter().map(|x| x.matcher.text().len()).collect();
    let mut sorted = lengths.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(lengths, sorted);
    // Same result whatever order the servers come in.
    let reversed: Vec<Server> = servers.iter().rev().cloned().collect();
    assert_eq!(plan(&reversed), p);
    assert_eq!(
        XdsResources::build(&reversed, &XdsConfig::default()),
        XdsResources::build(&servers, &XdsConfig::default())
    );
}

/// The filter's match (`policy`: longest prefix on segment boundaries) for a server path.
fn filter_server<'a>(servers: &'a [Server], path: &str) -> Option<&'a Server> {
    let bare = path.split('?').next().unwrap_or(path);
    servers
        .iter()
        .filter(|s| {
            bare.strip_prefix(s.path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|s| s.path.len())
}

#[test]
fn a_contested_exact_path_goes_where_the_filter_sends_it() {
    // Written around the registry (it refuses this pair): /t appends /mcp to an upstream that
    // is itself the MCP endpoint (an exact /t/mcp route), and another server sits at /t/mcp.
    let servers = vec![
        with_append(server("t", "/t", "http://127.0.0.1:9001/mcp"), Some(true)),
        server("t-mcp", "/t/mcp", "http://127.0.0.1:9002"),
    ];
    let reversed: Vec<Server> = servers.iter().rev().cloned().collect();
    for order in [&servers, &reversed] {
        let r = plan(order).routes;
        // The filter gives /t/mcp to the longer path; so does the route, in either order.
        assert_eq!(route_for(&r, "/t/mcp"), goes("mcp_t_mcp", "/"));
        assert_eq!(
            filter_server(&servers, "/t/mcp").map(|s| s.name.as_str()),
            Some("t-mcp")
        );
    }
    assert_eq!(plan(&servers), plan(&reversed));
}

#[test]
fn xds_and_the_filter_agree_on_every_server_path() {
    let servers = vec![
        server("team", "/team", "http://127.0.0.1:9001"),
        server("team-github", "/team/github", "http://127.0.0.1:9002/mcp"),
        with_append(server("gh", "/gh", "http://127.0.0.1:9003/mcp"), Some(true)),
        with_append(
            server("root", "/root", "https://r.example.com"),
            Some(false),
        ),
        server("api", "/x/api", "http://127.0.0.1:9004/base/v1"),
    ];
    let p = plan(&servers);
    let cluster_of = |name: &str| {
        p.upstreams
            .iter()
            .find(|u| u.cluster == sanitised_cluster_name(name))
            .map(|u| u.cluster.clone())
    };
    let mut checked = 0;
    for s in &servers {
        for suffix in [
            "",
            "/",
            "/mcp",
            "/mcp/",
            "/mcp?x=1",
            "/sse",
            "/messages/1",
            "/github",
            "/githubber/mcp",
            "/.well-known/oauth-protected-resource",
            "/mcp/.well-known/openid-configuration",
            "/mcp/.well-known/foo",
            "/x/.well-known/oauth-protected-resource",
        ] {
            let path = format!("{}{suffix}", s.path);
            for method in ["GET", "POST", "DELETE"] {
                let routed = route_with(&p.routes, method, &path).map(|(c, _)| c);
                let discovery = matches!(method, "GET")
                    && (suffix == "/.well-known/oauth-protected-resource"
                        || suffix == "/mcp/.well-known/openid-configuration");
                let expected = if discovery {
                    Some("control-plane".to_string())
                } else {
                    filter_server(&servers, &path).and_then(|s| cluster_of(&s.name))
                };
                assert_eq!(routed, expected, "{method} {path}");
                checked += 1;
            }
        }
    }
    for outside in ["/", "/teams", "/x", "/x/apis", "/other/mcp"] {
        assert_eq!(filter_server(&servers, outside), None);
        assert_eq!(route_for(&p.routes, outside), None, "{outside}");
    }
    assert_eq!(checked, servers.len() * 13 * 3);
}

#[test]
fn cluster_names_are_sanitised_and_collisions_disambiguated() {
    assert_eq!(sanitised_cluster_name("AWS Knowledge"), "mcp_aws_knowledge");
    assert_eq!(sanitised_cluster_name("git-hub.v2"), "mcp_git_hub_v2");
    assert_eq!(sanitised_cluster_name("Zürich"), "mcp_z_rich");
    let p = plan(&[
        server("a-b", "/one", "http://127.0.0.1:1"),
        server("a b", "/two", "http://127.0.0.1:2"),
        server("c", "/three", "http://127.0.0.1:3"),
    ]);
    let names: Vec<&str> = p.upstreams.iter().map(|u| u.cluster.as_str()).collect();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"mcp_c"));
    let collided: Vec<&&str> = names.iter().filter(|n| n.starts_with("mcp_a_b_")).collect();
    assert_eq!(collided.len(), 2, "{names:?}");
    assert_ne!(collided[0], collided[1]);
    assert_eq!(
        route_for(&p.routes, "/one/mcp").unwrap().0.len(),
        "mcp_a_b_".len() + 8
    );
    // Sorted by name.
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn bad_upstreams_are_left_out_and_the_rest_still_served() {
    let p = plan(&[
        server("ftp", "/ftp", "ftp://files.example.com"),
        server("garbage", "/garbage", "not a url"),
        server("nopath", "relative", "http://127.0.0.1:1"),
        server("ok", "/ok", "http://127.0.0.1:2"),
    ]);
    let skipped: HashMap<&str, &UpstreamError> =
        p.skipped.iter().map(|(n, e)| (n.as_str(), e)).collect();
    assert_eq!(skipped.len(), 3);
    assert_eq!(skipped["ftp"], &UpstreamError::Scheme("ftp".into()));
    assert!(matches!(skipped["garbage"], UpstreamError::NotAUrl(_)));
    assert!(matches!(skipped["nopath"], UpstreamError::Path(_)));
    assert_eq!(route_for(&p.routes, "/ok/mcp"), goes("mcp_ok", "/mcp"));
    assert_eq!(route_for(&p.routes, "/ftp/mcp"), None);
    assert_eq!(p.upstreams.len(), 1);
}

#[test]
fn ipv6_upstream() {
    let p = plan(&[server("v6", "/v6", "http://[::1]:9000/x")]);
    let u = &p.upstreams[0];
    assert_eq!(
        (u.host.as_str(), u.authority.as_str(), u.port, u.ip_literal),
        ("::1", "[::1]:9000", 9000, true)
    );
    assert_eq!(route_for(&p.routes, "/v6/mcp"), goes("mcp_v6", "/x/mcp"));
}

fn cluster_by_name<'a>(clusters: &'a [Cluster], name: &str) -> &'a Cluster {
    clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn endpoint_of(c: &Cluster) -> (String, u32) {
    let la = c.load_assignment.as_ref().expect("load assignment");
    assert_eq!(la.cluster_name, c.name);
    let ep = &la.endpoints[0].lb_endpoints[0];
    let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &ep.host_identifier else {
        panic!("no endpoint")
    };
    let Some(address::Address::SocketAddress(sa)) =
        ep.address.as_ref().and_then(|a| a.address.clone())
    else {
        panic!("no socket address")
    };
    let Some(socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else {
        panic!("no port")
    };
    (sa.address, port)
}

fn tls_of(c: &Cluster) -> Option<UpstreamTlsContext> {
    let ts = c.transport_socket.as_ref()?;
    assert_eq!(ts.name, "envoy.transport_sockets.tls");
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &ts.config_type
    else {
        panic!("no typed config")
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    Some(UpstreamTlsContext::decode(any.value.as_slice()).expect("decode tls context"))
}

#[test]
fn clusters_plain_https_and_dns() {
    let config = XdsConfig {
        upstream_ca_file: "/etc/test-ca.pem".into(),
        ..XdsConfig::default()
    };
    let built = XdsResources::build(
        &[
            server("plain", "/plain", "http://127.0.0.1:3001"),
            server("dns", "/dns", "http://mcp.internal:8080/mcp"),
            server("tls", "/tls", "https://knowledge-mcp.example.com/v1"),
            server("tls-ip", "/tls-ip", "https://10.1.2.3:8443"),
        ],
        &config,
    );
    let names: Vec<&str> = built.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mcp_dns", "mcp_plain", "mcp_tls", "mcp_tls_ip"]);
    let kind = |c: &Cluster| match c.cluster_discovery_type {
        Some(cluster::ClusterDiscoveryType::Type(t)) => t,
        _ => -1,
    };

    let plain = cluster_by_name(&built.clusters, "mcp_plain");
    assert_eq!(kind(plain), cluster::DiscoveryType::Static as i32);
    assert_eq!(endpoint_of(plain), ("127.0.0.1".to_string(), 3001));
    assert!(plain.transport_socket.is_none());
    assert_eq!(plain.connect_timeout.as_ref().map(|d| d.seconds), Some(5));
    // HTTP/1.1 upstream: no HTTP/2 options anywhere.
    assert!(plain.typed_extension_protocol_options.is_empty());

    let dns = cluster_by_name(&built.clusters, "mcp_dns");
    assert_eq!(kind(dns), cluster::DiscoveryType::StrictDns as i32);
    assert_eq!(
        dns.dns_lookup_family,
        cluster::DnsLookupFamily::V4Preferred as i32
    );
    assert_eq!(endpoint_of(dns), ("mcp.internal".to_string(), 8080));

    let tls = cluster_by_name(&built.clusters, "mcp_tls");
    assert_eq!(
        endpoint_of(tls),
        ("knowledge-mcp.example.com".to_string(), 443)
    );
    let ctx = tls_of(tls).expect("https gets TLS");
    assert_eq!(ctx.sni, "knowledge-mcp.example.com");
    let Some(common_tls_context::ValidationContextType::ValidationContext(v)) = ctx
        .common_tls_context
        .as_ref()
        .and_then(|c| c.validation_context_type.clone())
    else {
        panic!("certificates must be checked")
    };
    assert_eq!(
        v.trusted_ca.and_then(|d| d.specifier),
        Some(data_source::Specifier::Filename("/etc/test-ca.pem".into()))
    );
    assert_eq!(v.match_typed_subject_alt_names.len(), 1);
    let san = &v.match_typed_subject_alt_names[0];
    assert_eq!(san.san_type, subject_alt_name_matcher::SanType::Dns as i32);
    assert_eq!(
        san.matcher.as_ref().and_then(|m| m.match_pattern.clone()),
        Some(string_matcher::MatchPattern::Exact(
            "knowledge-mcp.example.com".into()
        ))
    );

    let tls_ip = cluster_by_name(&built.clusters, "mcp_tls_ip");
    assert_eq!(kind(tls_ip), cluster::DiscoveryType::Static as i32);
    let ctx = tls_of(tls_ip).expect("https gets TLS");
    assert_eq!(ctx.sni, "", "no SNI for an IP address");
    let Some(common_tls_context::ValidationContextType::ValidationContext(v)) = ctx
        .common_tls_context
        .and_then(|c| c.validation_context_type)
    else {
        panic!("certificates must be checked")
    };
    assert_eq!(
        v.match_typed_subject_alt_names[0].san_type,
        subject_alt_name_matcher::SanType::IpAddress as i32
    );
}

#[test]
fn route_configuration_in_envoy_form() {
    let config = XdsConfig {
        control_plane_cluster: "cp".into(),
        route_config_name: "my_routes".into(),
        ..XdsConfig::default()
    };
    let built = XdsResources::build(
        &[server("everything", "/everything", "http://127.0.0.1:3001")],
        &config,
    );
    let rc = &built.route_configuration;
    assert_eq!(rc.name, "my_routes");
    assert_eq!(rc.virtual_hosts.len(), 1);
    assert_eq!(rc.virtual_hosts[0].domains, ["*"]);
    let routes = tree_routes(&rc.virtual_hosts[0]);
    assert!(
        rc.virtual_hosts[0].routes.is_empty(),
        "routes come by the matcher tree"
    );
    let actions: Vec<(String, route_action::ClusterSpecifier, String)> = routes
        .iter()
        .map(|r| {
            let Some(route::Action::Route(a)) = &r.action else {
                panic!("route action")
            };
            (
                r.name.clone(),
                a.cluster_specifier.clone().expect("cluster"),
                a.prefix_rewrite.clone(),
            )
        })
        .collect();
    assert_eq!(actions.len(), 16, "{actions:?}");
    use route_action::ClusterSpecifier::Cluster as C;
    assert!(actions.contains(&("discovery".into(), C("cp".into()), String::new())));
    // Discovery routes carry one `:method` matcher (GET, HEAD, OPTIONS); server routes none.
    for r in &routes {
        let Some(route::Action::Route(a)) = &r.action else {
            unreachable!()
        };
        let headers = &r.r#match.as_ref().expect("match").headers;
        if r.name == "authorization-server" {
            // Every method: the authorization server takes forms and JSON.
            assert!(headers.is_empty(), "{}", r.name);
        } else if a.cluster_specifier == Some(C("cp".into())) {
            assert_eq!(headers.len(), 1, "{}", r.name);
            assert_eq!(headers[0].name, ":method");
            assert!(!headers[0].invert_match);
            let Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)) =
                &headers[0].header_match_specifier
            else {
                panic!("string match")
            };
            let Some(string_matcher::MatchPattern::SafeRegex(re)) = &m.match_pattern else {
                panic!("regex")
            };
            assert_eq!(re.regex, "GET|HEAD|OPTIONS");
        } else {
            assert!(headers.is_empty(), "{}", r.name);
        }
    }
    assert!(actions.contains(&(
        "server:everything".into(),
        C("mcp_everything".into()),
        "/".into()
    )));
    for r in &routes {
        let Some(route::Action::Route(a)) = &r.action else {
            unreachable!()
        };
        if a.cluster_specifier == Some(C("mcp_everything".into())) {
            assert_eq!(
                a.timeout.as_ref().map(|t| (t.seconds, t.nanos)),
                Some((0, 0)),
                "MCP streams must not time out"
            );
            assert_eq!(
                a.host_rewrite_specifier,
                Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
                    "127.0.0.1:3001".into()
                ))
            );
        }
    }
    // Round trip: what goes on the wire decodes to the same thing.
    let bytes = rc.encode_to_vec();
    assert_eq!(&RouteConfiguration::decode(bytes.as_slice()).unwrap(), rc);
}

#[test]
fn config_from_lookup() {
    let lookup = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let c = XdsConfig::from_lookup(&lookup(&[])).unwrap();
    assert_eq!(c, XdsConfig::default());
    assert_eq!(c.listen, Some("127.0.0.1:18000".parse().unwrap()));
    assert_eq!(c.control_plane_cluster, "portcullis_control_plane");
    assert_eq!(c.route_config_name, "portcullis_routes");
    assert_eq!(c.token_sha256, None);

    for off in ["off", "OFF", "", "  "] {
        let vars: &'static [(&str, &str)] = Box::leak(Box::new([("PORTCULLIS_XDS_LISTEN", off)]));
        assert_eq!(XdsConfig::from_lookup(&lookup(vars)).unwrap().listen, None);
    }
    let c = XdsConfig::from_lookup(&lookup(&[
        ("PORTCULLIS_XDS_LISTEN", "0.0.0.0:19000"),
        ("PORTCULLIS_CONTROL_PLANE_CLUSTER", "portcullis"),
        ("PORTCULLIS_XDS_ROUTE_CONFIG", "routes_a"),
        ("PORTCULLIS_XDS_UPSTREAM_CA_FILE", "/ca.pem"),
    ]))
    .unwrap();
    assert_eq!(c.listen, Some("0.0.0.0:19000".parse().unwrap()));
    assert_eq!(
        (
            c.control_plane_cluster.as_str(),
            c.route_config_name.as_str(),
            c.upstream_ca_file.as_str()
        ),
        ("portcullis", "routes_a", "/ca.pem")
    );

    for bad in [
        &[("PORTCULLIS_XDS_LISTEN", "localhost")][..],
        &[("PORTCULLIS_XDS_LISTEN", "127.0.0.1")][..],
        &[("PORTCULLIS_CONTROL_PLANE_CLUSTER", "two words")][..],
        &[("PORTCULLIS_CONTROL_PLANE_CLUSTER", "")][..],
        &[("PORTCULLIS_XDS_ROUTE_CONFIG", "tab\there")][..],
        &[("PORTCULLIS_XDS_UPSTREAM_CA_FILE", " ")][..],
    ] {
        let vars: &'static [(&str, &str)] = Box::leak(bad.to_vec().into_boxed_slice());
        let err = XdsConfig::from_lookup(&lookup(vars)).unwrap_err();
        assert!(err.to_string().contains(bad[0].0), "{err:#}");
    }
    let dbg = format!(
        "{:?}",
        XdsConfig {
            token_sha256: Some([7; 32]),
            ..XdsConfig::default()
        }
    );
    assert!(dbg.contains("<set>") && !dbg.contains("7, 7"), "{dbg}");
}

// ---- the ADS protocol, over gRPC ----

const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

struct TestServer {
    addr: std::net::SocketAddr,
    inputs: watch::Sender<Arc<XdsInputs>>,
    shutdown: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    async fn start(config: XdsConfig, servers: Vec<Server>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(Arc::new(XdsInputs {
            version: 1,
            servers,
        }));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let done = tokio::spawn(serve_xds_on(listener, config, rx, async {
            let _ = stop_rx.await;
        }));
        TestServer {
            addr,
            inputs: tx,
            shutdown: Some(stop_tx),
            done,
        }
    }

    fn publish(&self, version: u64, servers: Vec<Server>) {
        self.inputs
            .send_replace(Arc::new(XdsInputs { version, servers }));
    }

    async fn client(&self) -> AggregatedDiscoveryServiceClient<Channel> {
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }
}

struct Envoyish {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
}

impl Envoyish {
    async fn open(client: &mut AggregatedDiscoveryServiceClient<Channel>) -> Envoyish {
        Envoyish::try_open(client, None).await.expect("open stream")
    }

    /// A stream whose `authorization` metadata is these bytes.
    async fn try_open(
        client: &mut AggregatedDiscoveryServiceClient<Channel>,
        authorization: Option<&[u8]>,
    ) -> Result<Envoyish, tonic::Status> {
        let (tx, rx) = mpsc::channel(16);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(value) = authorization {
            request.metadata_mut().insert(
                "authorization",
                tonic::metadata::AsciiMetadataValue::try_from(value).unwrap(),
            );
        }
        let responses = client
            .stream_aggregated_resources(request)
            .await?
            .into_inner();
        Ok(Envoyish {
            requests: tx,
            responses,
        })
    }

    async fn request(&self, r: DiscoveryRequest) {
        self.requests.send(r).await.expect("send request");
    }

    async fn subscribe(&self, type_url: String, names: &[&str]) {
        self.request(DiscoveryRequest {
            type_url,
            resource_names: names.iter().map(std::string::ToString::to_string).collect(),
            node: Some(Node {
                id: "test-envoy".into(),
                cluster: "test".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    }

    async fn ack(&self, response: &DiscoveryResponse, names: &[&str]) {
        self.request(DiscoveryRequest {
            type_url: response.type_url.clone(),
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            resource_names: names.iter().map(std::string::ToString::to_string).collect(),
            ..Default::default()
        })
        .await;
    }

    async fn nack(&self, response: &DiscoveryResponse, kept_version: &str) {
        self.request(DiscoveryRequest {
            type_url: response.type_url.clone(),
            version_info: kept_version.into(),
            response_nonce: response.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: "test: cluster rejected".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(WAIT, self.responses.message())
            .await
            .expect("a response in time")
            .expect("stream ok")
            .expect("stream open")
    }

    async fn assert_quiet(&mut self) {
        if let Ok(got) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected no response, got {got:?}");
        }
    }
}

fn cluster_names(r: &DiscoveryResponse) -> Vec<String> {
    assert_eq!(r.type_url, cluster_type_url());
    r.resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, cluster_type_url());
            Cluster::decode(any.value.as_slice()).unwrap().name
        })
        .collect()
}

fn route_configs(r: &DiscoveryResponse) -> Vec<RouteConfiguration> {
    assert_eq!(r.type_url, route_type_url());
    r.resources
        .iter()
        .map(|any| RouteConfiguration::decode(any.value.as_slice()).unwrap())
        .collect()
}

fn one() -> Vec<Server> {
    vec![server("one", "/one", "http://127.0.0.1:9001")]
}

fn two() -> Vec<Server> {
    vec![
        server("one", "/one", "http://127.0.0.1:9001"),
        server("two", "/two", "http://127.0.0.1:9002"),
    ]
}

#[tokio::test]
async fn ads_ack_flow_push_on_change_and_removal() {
    let server = TestServer::start(XdsConfig::default(), one()).await;
    let mut envoy = Envoyish::open(&mut server.client().await).await;

    envoy.subscribe(cluster_type_url(), &[]).await;
    let cds = envoy.next().await;
    assert_eq!(cluster_names(&cds), ["mcp_one"]);
    assert_eq!(cds.version_info, "1");
    assert!(!cds.nonce.is_empty());
    envoy.ack(&cds, &[]).await;

    envoy
        .subscribe(route_type_url(), &[DEFAULT_ROUTE_CONFIG])
        .await;
    let rds = envoy.next().await;
    let rcs = route_configs(&rds);
    assert_eq!(rcs.len(), 1);
    assert_eq!(rcs[0].name, DEFAULT_ROUTE_CONFIG);
    assert_eq!(rds.version_info, "1");
    assert_ne!(rds.nonce, cds.nonce);
    envoy.ack(&rds, &[DEFAULT_ROUTE_CONFIG]).await;
    // ACKs get no answer.
    envoy.assert_quiet().await;

    // A server is added: clusters first, then routes, both at the new version.
    server.publish(2, two());
    let cds2 = envoy.next().await;
    assert_eq!(cluster_names(&cds2), ["mcp_one", "mcp_two"]);
    assert_eq!(cds2.version_info, "2");
    let rds2 = envoy.next().await;
    assert_eq!(rds2.version_info, "2");
    let routes = tree_routes(&route_configs(&rds2)[0].virtual_hosts[0]);
    assert!(routes.iter().any(|r| r.name == "server:two"));
    envoy.ack(&cds2, &[]).await;
    envoy.ack(&rds2, &[DEFAULT_ROUTE_CONFIG]).await;

    // Same content under a new version (a policy-only change): nothing is sent.
    server.publish(3, two());
    envoy.assert_quiet().await;

    // Removed: the cluster is left out (state of the world: omission deletes) and so is
    // its route; the versions move on.
    server.publish(4, one());
    let cds4 = envoy.next().await;
    assert_eq!(cluster_names(&cds4), ["mcp_one"]);
    assert_eq!(cds4.version_info, "4");
    let rds4 = envoy.next().await;
    assert_eq!(rds4.version_info, "4");
    assert!(!tree_routes(&route_configs(&rds4)[0].virtual_hosts[0])
        .iter()
        .any(|r| r.name == "server:two"));

    // A second Envoy connecting now gets the current state at once.
    let mut late = Envoyish::open(&mut server.client().await).await;
    late.subscribe(cluster_type_url(), &[]).await;
    let late_cds = late.next().await;
    assert_eq!(late_cds.version_info, "4");
    assert_eq!(cluster_names(&late_cds), ["mcp_one"]);
}

#[tokio::test]
async fn ads_nack_is_logged_not_resent_and_stale_nonces_ignored() {
    let server = TestServer::start(XdsConfig::default(), one()).await;
    let mut envoy = Envoyish::open(&mut server.client().await).await;
    envoy.subscribe(cluster_type_url(), &[]).await;
    let first = envoy.next().await;
    envoy.ack(&first, &[]).await;

    server.publish(2, two());
    let second = envoy.next().await;
    assert_eq!(second.version_info, "2");
    // Envoy rejects version 2 and keeps 1: no resend loop.
    envoy.nack(&second, "1").await;
    envoy.assert_quiet().await;
    // An ACK carrying an old nonce is stale: ignored.
    envoy.ack(&first, &[]).await;
    envoy.assert_quiet().await;

    // The next change is sent.
    server.publish(3, vec![]);
    let third = envoy.next().await;
    assert_eq!(third.version_info, "3");
    assert!(cluster_names(&third).is_empty());
}

#[tokio::test]
async fn ads_serves_only_the_named_routes_and_answers_other_types_empty() {
    let server = TestServer::start(XdsConfig::default(), one()).await;
    let mut envoy = Envoyish::open(&mut server.client().await).await;

    envoy.subscribe(route_type_url(), &["someone_elses"]).await;
    let rds = envoy.next().await;
    assert!(route_configs(&rds).is_empty());
    // Envoy changes its subscription in an ACK: the new name is answered.
    envoy
        .ack(&rds, &["someone_elses", DEFAULT_ROUTE_CONFIG])
        .await;
    let rds2 = envoy.next().await;
    assert_eq!(route_configs(&rds2).len(), 1);
    envoy
        .ack(&rds2, &["someone_elses", DEFAULT_ROUTE_CONFIG])
        .await;

    let lds = "type.googleapis.com/envoy.config.listener.v3.Listener".to_string();
    envoy.subscribe(lds.clone(), &[]).await;
    let answer = envoy.next().await;
    assert_eq!(answer.type_url, lds);
    assert!(answer.resources.is_empty());
    envoy.ack(&answer, &[]).await;
    // A change re-sends routes, never the empty type again.
    server.publish(2, two());
    let next = envoy.next().await;
    assert_eq!(next.type_url, route_type_url());
    envoy.assert_quiet().await;
}

#[tokio::test]
async fn ads_requires_the_token_when_configured() {
    let token = "a-sync-token-of-some-length";
    let config = XdsConfig {
        token_sha256: Some(Sha256::digest(token.as_bytes()).into()),
        ..XdsConfig::default()
    };
    let server = TestServer::start(config, one()).await;
    let mut client = server.client().await;
    let wrong: [Option<&[u8]>; 9] = [
        None,
        Some(b"Bearer not-the-token-at-all"),
        Some(b"Bearer "),
        // The token's bytes, but not one Bearer token.
        Some(b"Basic a-sync-token-of-some-length"),
        Some(b"Bearer a-sync-token-of-some-length junk"),
        Some(b"Bearer a-sync-token-of-some-length\xff"),
        Some(b"Bearer\ta-sync-token-of-some-length"),
        Some(b"Bearera-sync-token-of-some-length"),
        Some(b"a-sync-token-of-some-length"),
    ];
    for wrong in wrong {
        let err = match Envoyish::try_open(&mut client, wrong).await {
            Ok(mut stream) => {
                // The status may also arrive as the stream's first item.
                stream.subscribe(cluster_type_url(), &[]).await;
                stream.responses.message().await.expect_err("refused")
            }
            Err(status) => status,
        };
        let shown = wrong.map(String::from_utf8_lossy);
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{shown:?}: {err}");
    }
    // The scheme is case-insensitive (RFC 6750), one or more spaces before the token.
    for good in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER  {token} "),
    ] {
        let mut ok = Envoyish::try_open(&mut client, Some(good.as_bytes()))
            .await
            .unwrap();
        ok.subscribe(cluster_type_url(), &[]).await;
        assert_eq!(cluster_names(&ok.next().await), ["mcp_one"], "{good}");
    }
}

#[tokio::test]
async fn shutdown_closes_streams_and_returns() {
    let mut server = TestServer::start(XdsConfig::default(), one()).await;
    let mut envoy = Envoyish::open(&mut server.client().await).await;
    envoy.subscribe(cluster_type_url(), &[]).await;
    envoy.next().await;
    server.shutdown.take().unwrap().send(()).unwrap();
    let end = tokio::time::timeout(WAIT, envoy.responses.message())
        .await
        .expect("stream ends in time");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    tokio::time::timeout(WAIT, &mut server.done)
        .await
        .expect("server returns in time")
        .unwrap()
        .unwrap();
}

#[test]
fn standalone_server_serves_and_stops() {
    let xds = StandaloneXds::start(
        XdsConfig {
            listen: None,
            ..XdsConfig::default()
        },
        XdsInputs {
            version: 7,
            servers: one(),
        },
    )
    .unwrap();
    assert_eq!(xds.publish(two()), 8);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client =
            AggregatedDiscoveryServiceClient::connect(format!("http://{}", xds.addr()))
                .await
                .unwrap();
        let mut envoy = Envoyish::open(&mut client).await;
        envoy.subscribe(cluster_type_url(), &[]).await;
        let cds = envoy.next().await;
        assert_eq!(cds.version_info, "8");
        assert_eq!(cluster_names(&cds), ["mcp_one", "mcp_two"]);
    });
    // Client connections go first, so the server's graceful shutdown has nothing to wait for.
    drop(rt);
    drop(xds);
}
