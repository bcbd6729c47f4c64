//! The OAuth discovery documents the control plane publishes about its servers: RFC 9728
//! protected-resource metadata, and where the authorization-server documents live.

use serde_json::{json, Value};

use crate::config::{AuthMode, Config};
use crate::registry::Server;

pub const PRM: &str = "/.well-known/oauth-protected-resource";
pub const OAUTH_AS: &str = "/.well-known/oauth-authorization-server";
pub const OIDC: &str = "/.well-known/openid-configuration";

/// Direct mode names the IdP as the authorization server, so it needs one.
#[derive(Debug, thiserror::Error)]
#[error("direct mode needs an identity provider: set PORTCULLIS_IDP_ISSUER")]
pub struct NoAuthorizationServer;

/// The path of the IdP issuer URL (`""` for an issuer at its origin's root).
pub fn issuer_path(config: &Config) -> Option<String> {
    let idp = config.idp.as_ref()?;
    let url = url::Url::parse(&idp.issuer).ok()?;
    Some(url.path().trim_end_matches('/').to_string())
}

/// The protected-resource metadata of one server.
pub fn protected_resource(
    config: &Config,
    server: &Server,
) -> Result<Value, NoAuthorizationServer> {
    let authorization_servers = match config.auth_mode {
        AuthMode::Broker => vec![config.public_url().to_string()],
        AuthMode::Direct => match &config.idp {
            Some(idp) => vec![idp.issuer.clone()],
            None => return Err(NoAuthorizationServer),
        },
    };
    Ok(json!({
        "resource": server.mcp_url(config.public_url()),
        "resource_name": server.name,
        "authorization_servers": authorization_servers,
        "scopes_supported": config.resource_scopes(),
        "bearer_methods_supported": ["header"],
    }))
}
