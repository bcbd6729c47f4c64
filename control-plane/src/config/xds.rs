//! xDS settings (`PORTCULLIS_XDS_*`, `PORTCULLIS_CONTROL_PLANE_CLUSTER`), read by `xds`.

use std::net::SocketAddr;

use anyhow::Context as _;

/// Default `PORTCULLIS_XDS_LISTEN`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:18000";
/// Default `PORTCULLIS_CONTROL_PLANE_CLUSTER`.
pub const DEFAULT_CONTROL_PLANE_CLUSTER: &str = "portcullis_control_plane";
/// Default `PORTCULLIS_XDS_ROUTE_CONFIG`.
pub const DEFAULT_ROUTE_CONFIG: &str = "portcullis_routes";
/// Default `PORTCULLIS_XDS_UPSTREAM_CA_FILE` (Debian, Ubuntu and Envoy's own images).
pub const DEFAULT_UPSTREAM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Clone, PartialEq, Eq)]
pub struct XdsConfig {
    /// `None`: xDS is off.
    pub listen: Option<SocketAddr>,
    pub control_plane_cluster: String,
    pub route_config_name: String,
    pub upstream_ca_file: String,
    /// SHA-256 of the bearer token a stream must present; `None`: no authentication. Not read
    /// from the environment here: the caller passes the sync token's hash.
    pub token_sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for XdsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsConfig")
            .field("listen", &self.listen)
            .field("control_plane_cluster", &self.control_plane_cluster)
            .field("route_config_name", &self.route_config_name)
            .field("upstream_ca_file", &self.upstream_ca_file)
            .field(
                "token_sha256",
                &self.token_sha256.map_or("<none>", |_| "<set>"),
            )
            .finish()
    }
}

impl Default for XdsConfig {
    fn default() -> Self {
        XdsConfig {
            listen: DEFAULT_LISTEN.parse().ok(),
            control_plane_cluster: DEFAULT_CONTROL_PLANE_CLUSTER.into(),
            route_config_name: DEFAULT_ROUTE_CONFIG.into(),
            upstream_ca_file: DEFAULT_UPSTREAM_CA_FILE.into(),
            token_sha256: None,
        }
    }
}

/// Envoy resource names: no whitespace, no control characters, not empty.
fn valid_resource_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic())
}

impl XdsConfig {
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<XdsConfig> {
        let mut config = XdsConfig::default();
        if let Some(listen) = get("PORTCULLIS_XDS_LISTEN") {
            let listen = listen.trim();
            config.listen = if listen.is_empty() || listen.eq_ignore_ascii_case("off") {
                None
            } else {
                Some(listen.parse().with_context(|| {
                    format!("PORTCULLIS_XDS_LISTEN: expected ip:port or `off`, got {listen:?}")
                })?)
            };
        }
        for (var, field) in [
            (
                "PORTCULLIS_CONTROL_PLANE_CLUSTER",
                &mut config.control_plane_cluster,
            ),
            ("PORTCULLIS_XDS_ROUTE_CONFIG", &mut config.route_config_name),
        ] {
            if let Some(value) = get(var) {
                let value = value.trim();
                anyhow::ensure!(
                    valid_resource_name(value),
                    "{var}: expected an Envoy resource name (printable ASCII, no spaces), got {value:?}"
                );
                *field = value.to_string();
            }
        }
        if let Some(ca) = get("PORTCULLIS_XDS_UPSTREAM_CA_FILE") {
            let ca = ca.trim();
            anyhow::ensure!(
                !ca.is_empty(),
                "PORTCULLIS_XDS_UPSTREAM_CA_FILE: expected a file path"
            );
            config.upstream_ca_file = ca.to_string();
        }
        Ok(config)
    }
}
