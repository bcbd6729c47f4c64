//! The registry compiled into policy snapshot v1 (`docs/policy.md`), the document every filter
//! decides from.

use serde_json::{json, Value};

use crate::config::Config;
use crate::db::Db;
use crate::idp_keys::IdpKeys;

/// Compiles the database into a policy snapshot (`format: 1`) with the given version. The IdP's
/// keys come from `idp_keys` (the static `PORTCULLIS_IDP_JWKS_FILE`, else the fetched ones); an
/// issuer with no key yet is left out, so its tokens are refused until the first fetch.
///
/// Grants naming a server that is no longer registered, and mappings naming a scope that no
/// longer exists, are left out (the API refuses to create them; they appear when a server or a
/// scope is deleted), so the snapshot always validates.
pub async fn compile_snapshot(
    db: &Db,
    config: &Config,
    idp_keys: &IdpKeys,
    version: u64,
) -> anyhow::Result<Value> {
    let public_url = config.public_url();
    let servers = db.list_servers().await?;
    let scopes = db.list_scopes().await?;
    let mappings = db.list_group_mappings().await?;

    let server_names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let servers_json: Vec<Value> = servers
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "path_prefix": s.path,
                "resource": s.mcp_url(public_url),
                "resource_metadata": s.resource_metadata_url(public_url),
                "scopes_supported": config.advertised_scopes,
            })
        })
        .collect();

    let scope_names: Vec<&str> = scopes.iter().map(|s| s.name.as_str()).collect();
    let scopes_json: Vec<Value> = scopes
        .iter()
        .map(|scope| {
            let grants: Vec<Value> = scope
                .grants
                .iter()
                .filter(|g| {
                    let known = g.server == "*" || server_names.contains(&g.server.as_str());
                    if !known {
                        tracing::warn!(scope = %scope.name, server = %g.server, "grant names an unregistered server; left out of the snapshot");
                    }
                    known
                })
                .map(|g| json!({"server": g.server, "methods": g.methods, "tools": g.tools}))
                .collect();
            json!({"name": scope.name, "grants": grants})
        })
        .collect();

    let mappings_json: Vec<Value> = mappings
        .iter()
        .map(|m| {
            let scopes: Vec<&String> = m
                .scopes
                .iter()
                .filter(|s| scope_names.contains(&s.as_str()))
                .collect();
            json!({"group": m.group, "scopes": scopes})
        })
        .collect();

    let api_keys_json: Vec<Value> = db
        .list_api_keys()
        .await?
        .into_iter()
        .map(|k| {
            let scopes: Vec<&String> = k
                .scopes
                .iter()
                .filter(|s| scope_names.contains(&s.as_str()))
                .collect();
            json!({
                "name": k.name,
                "sha256": k.sha256,
                "subject": k.subject,
                "groups": k.groups,
                "scopes": scopes,
                "expires_at": k.expires_at.map(|t| t.max(0) as u64),
            })
        })
        .collect();

    let mut issuers = Vec::new();
    if let Some(idp) = &config.idp {
        if let Some(jwks) = idp_keys.snapshot_jwks(&idp.issuer).await? {
            // RFC 8707 / MCP: a token whose audience is the server's resource URL is for that
            // server; `audiences` adds operator-configured ones.
            issuers.push(json!({
                "issuer": idp.issuer,
                "jwks": jwks,
                "algorithms": idp.algorithms,
                "audiences": idp.audiences,
                "audience_is_resource": true,
                "groups_claim": idp.groups_claim,
            }));
        }
    }

    Ok(json!({
        "format": 1,
        "version": version,
        "issuers": issuers,
        "servers": servers_json,
        "group_mappings": mappings_json,
        "scopes": scopes_json,
        "api_keys": api_keys_json,
    }))
}
