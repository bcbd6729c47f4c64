//! The registry compiled into policy snapshot v1 (`docs/policy.md`), the document every filter
//! decides from, built as the `policy` crate's own snapshot types.

use anyhow::Context as _;
use policy::keys::Jwks;
use policy::snapshot::{
    ApiKeySpec, GrantSpec, GroupMappingSpec, IssuerSpec, ScopeSpec, ServerSpec, SettingsSpec,
    Snapshot,
};

use crate::config::{Config, IdpConfig};
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
) -> anyhow::Result<Snapshot> {
    let public_url = config.public_url();
    let servers = db.list_servers().await?;
    let scopes = db.list_scopes().await?;
    let mappings = db.list_group_mappings().await?;

    let server_names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let server_specs = servers
        .iter()
        .map(|s| ServerSpec {
            name: s.name.clone(),
            path_prefix: s.path.clone(),
            resource: s.mcp_url(public_url),
            resource_metadata: s.resource_metadata_url(public_url),
            scopes_supported: config.advertised_scopes.clone(),
        })
        .collect();

    let scope_names: Vec<&str> = scopes.iter().map(|s| s.name.as_str()).collect();
    let known_scopes = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|s| scope_names.contains(&s.as_str()))
            .cloned()
            .collect()
    };
    let scope_specs = scopes
        .iter()
        .map(|scope| ScopeSpec {
            name: scope.name.clone(),
            grants: scope
                .grants
                .iter()
                .filter(|g| {
                    let known = g.server == "*" || server_names.contains(&g.server.as_str());
                    if !known {
                        tracing::warn!(scope = %scope.name, server = %g.server, "grant names an unregistered server; left out of the snapshot");
                    }
                    known
                })
                .map(|g| GrantSpec {
                    server: g.server.clone(),
                    methods: g.methods.clone(),
                    tools: g.tools.clone(),
                })
                .collect(),
        })
        .collect();

    let mapping_specs = mappings
        .iter()
        .map(|m| GroupMappingSpec {
            group: m.group.clone(),
            scopes: known_scopes(&m.scopes),
        })
        .collect();

    let api_key_specs = db
        .list_api_keys()
        .await?
        .into_iter()
        .map(|k| ApiKeySpec {
            scopes: known_scopes(&k.scopes),
            name: k.name,
            sha256: k.sha256,
            subject: k.subject,
            groups: k.groups,
            expires_at: k.expires_at.map(|t| t.max(0) as u64),
        })
        .collect();

    let mut issuers = Vec::new();
    if let Some(idp) = &config.idp {
        if let Some(jwks) = idp_keys.snapshot_jwks(&idp.issuer).await? {
            let jwks: Jwks = serde_json::from_value(jwks)
                .with_context(|| format!("the signing keys of {} are not a JWKS", idp.issuer))?;
            // RFC 8707 / MCP: a token whose audience is the server's resource URL is for that
            // server; `audiences` adds operator-configured ones.
            issuers.push(IssuerSpec {
                audiences: idp.audiences.clone(),
                audience_is_resource: true,
                ..issuer_spec(idp, jwks)
            });
        }
    }

    Ok(Snapshot {
        format: 1,
        version,
        issuers,
        servers: server_specs,
        group_mappings: mapping_specs,
        scopes: scope_specs,
        api_keys: api_key_specs,
        settings: SettingsSpec::default(),
    })
}

/// The IdP as a snapshot issuer with these keys: no audiences (the caller sets those: the MCP
/// servers' in the registry's snapshot, the API's for API authentication), the configured
/// groups claim, the policy crate's defaults for the rest.
pub fn issuer_spec(idp: &IdpConfig, jwks: Jwks) -> IssuerSpec {
    IssuerSpec {
        groups_claim: idp.groups_claim.clone(),
        ..IssuerSpec::new(idp.issuer.clone(), jwks, idp.algorithms.clone())
    }
}
