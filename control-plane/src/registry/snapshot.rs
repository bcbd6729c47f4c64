//! The registry compiled into policy snapshot v1 (`docs/policy.md`), the document every filter
//! decides from, built as the `policy` crate's own snapshot types.

use std::collections::HashSet;
use std::sync::Arc;

use policy::keys::Jwks;
use policy::snapshot::{
    ApiKeySpec, GrantSpec, GroupMappingSpec, IssuerSpec, ScopeSpec, ServerSpec, SettingsSpec,
    Snapshot,
};

use super::{ApiKey, GroupMapping, Scope, Server};
use crate::config::IdpConfig;
use crate::storage::Db;

/// What shapes a snapshot besides the registry: where the servers are published and the IdP
/// whose tokens they accept.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// `PORTCULLIS_PUBLIC_URL`: every server's resource URL is built on it.
    pub public_url: String,
    /// `scopes_supported` of every server's protected-resource metadata.
    pub advertised_scopes: Vec<String>,
    pub idp: Option<IdpConfig>,
    /// Whether the authorization server can issue registry scopes (broker mode), so a 403 may
    /// ask for them; in direct mode access comes from IdP groups and the 403 names those.
    pub step_up_scopes: bool,
    /// Broker mode: the control plane is the authorization server (issuer `public_url`), its
    /// endpoints pass the filter, and its tokens are accepted with the keys passed in
    /// [`SnapshotKeys::broker`].
    pub authorization_server: bool,
}

/// The signing keys a snapshot carries.
#[derive(Debug, Clone, Default)]
pub struct SnapshotKeys {
    /// The IdP's (the static `PORTCULLIS_IDP_JWKS_FILE`, else the fetched ones); `None`: the
    /// IdP's tokens are refused until the first fetch.
    pub idp: Option<Jwks>,
    /// The broker's own (broker mode).
    pub broker: Option<Jwks>,
    /// `jti`s of the broker's access tokens whose grants were revoked (not yet expired).
    pub broker_revoked: Vec<String>,
}

/// The registry as one snapshot is compiled from it, read from storage once.
#[derive(Debug, Clone)]
pub struct RegistryContents {
    pub servers: Arc<[Server]>,
    pub scopes: Vec<Scope>,
    pub mappings: Vec<GroupMapping>,
    pub api_keys: Vec<ApiKey>,
}

impl RegistryContents {
    /// The four tables are read at the same time, each on its own pooled connection (as
    /// before, not in one transaction): with 10,000 servers the reads are a large part of a
    /// rebuild.
    pub async fn read(db: &Db) -> Result<RegistryContents, sqlx::Error> {
        let (servers, scopes, mappings, api_keys) = tokio::try_join!(
            db.list_servers(),
            db.list_scopes(),
            db.list_group_mappings(),
            db.list_api_keys(),
        )?;
        Ok(RegistryContents {
            servers: servers.into(),
            scopes,
            mappings,
            api_keys,
        })
    }
}

/// Compiles the registry into a policy snapshot (`format: 1`) with the given version and
/// signing keys ([`SnapshotKeys`]); an issuer without keys is left out. The same entries, one
/// at a time, are what `sync` recompiles after a change (`server_spec`, `scope_spec`, …).
///
/// Grants naming a server that is no longer registered, and mappings naming a scope that no
/// longer exists, are left out (the API refuses to create them; they appear when a server or a
/// scope is deleted), so the snapshot always validates.
pub fn compile_snapshot(
    contents: &RegistryContents,
    settings: &SnapshotSettings,
    keys: SnapshotKeys,
    version: u64,
) -> Snapshot {
    // Sets: every grant and every mapped scope is looked up here (100k grants over 10k servers
    // made a list scan the slowest step of a rebuild).
    let server_names: HashSet<&str> = contents.servers.iter().map(|s| s.name.as_str()).collect();
    let scope_names: HashSet<&str> = contents.scopes.iter().map(|s| s.name.as_str()).collect();
    let server_known = |name: &str| server_names.contains(name);
    let scope_known = |name: &str| scope_names.contains(name);
    Snapshot {
        format: 1,
        version,
        issuers: issuer_specs(settings, keys),
        servers: contents
            .servers
            .iter()
            .map(|s| server_spec(s, settings))
            .collect(),
        group_mappings: contents
            .mappings
            .iter()
            .map(|m| mapping_spec(m, scope_known))
            .collect(),
        scopes: contents
            .scopes
            .iter()
            .map(|s| scope_spec(s, server_known))
            .collect(),
        api_keys: api_key_specs(&contents.api_keys, scope_known),
        settings: settings_spec(settings),
    }
}

/// A server as the filters see it: its prefix, RFC 8707 resource and metadata URLs.
pub fn server_spec(server: &Server, settings: &SnapshotSettings) -> ServerSpec {
    let public_url = settings.public_url.as_str();
    ServerSpec {
        name: server.name.clone(),
        path_prefix: server.path.clone(),
        resource: server.mcp_url(public_url),
        resource_metadata: server.resource_metadata_url(public_url),
        scopes_supported: settings.advertised_scopes.clone(),
    }
}

/// A scope with its grants, less those naming a server `server_known` does not know.
pub fn scope_spec(scope: &Scope, server_known: impl Fn(&str) -> bool) -> ScopeSpec {
    ScopeSpec {
        name: scope.name.clone(),
        grants: scope
            .grants
            .iter()
            .filter(|g| {
                let known = g.server == "*" || server_known(&g.server);
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
    }
}

/// A group mapping, less the scopes `scope_known` does not know.
pub fn mapping_spec(
    mapping: &GroupMapping,
    scope_known: impl Fn(&str) -> bool,
) -> GroupMappingSpec {
    GroupMappingSpec {
        group: mapping.group.clone(),
        scopes: known(&mapping.scopes, scope_known),
    }
}

/// The API keys (their hashes), each less the scopes `scope_known` does not know.
pub fn api_key_specs(keys: &[ApiKey], scope_known: impl Fn(&str) -> bool) -> Vec<ApiKeySpec> {
    keys.iter()
        .map(|k| ApiKeySpec {
            scopes: known(&k.scopes, &scope_known),
            name: k.name.clone(),
            sha256: k.sha256.clone(),
            subject: k.subject.clone(),
            groups: k.groups.clone(),
            expires_at: k.expires_at.map(|t| t.max(0) as u64),
        })
        .collect()
}

fn known(names: &[String], is_known: impl Fn(&str) -> bool) -> Vec<String> {
    names.iter().filter(|s| is_known(s)).cloned().collect()
}

/// The filter settings the control plane's mode implies.
pub fn settings_spec(settings: &SnapshotSettings) -> SettingsSpec {
    SettingsSpec {
        step_up_scopes: settings.step_up_scopes,
        authorization_server: settings.authorization_server,
        ..SettingsSpec::default()
    }
}

/// The token issuers the filters trust, with `keys`.
pub fn issuer_specs(settings: &SnapshotSettings, keys: SnapshotKeys) -> Vec<IssuerSpec> {
    let public_url = settings.public_url.as_str();
    let mut issuers = Vec::new();
    if let (true, Some(jwks)) = (settings.authorization_server, keys.broker) {
        // Our own tokens: ES256, audience = the server's resource URL, groups as issued.
        issuers.push(IssuerSpec {
            audience_is_resource: true,
            revoked_token_ids: keys.broker_revoked,
            ..IssuerSpec::new(
                public_url.trim_end_matches('/').to_string(),
                jwks,
                vec![crate::authz::signing::ALGORITHM.to_string()],
            )
        });
    }
    // In broker mode the filters accept the broker's tokens only: every client goes through it
    // (the protected-resource metadata names no other authorization server), so a client it
    // disabled or a grant it revoked cannot come back with a token from the IdP directly. The
    // IdP's keys still verify its ID tokens at the broker and its tokens at the API.
    if let (Some(idp), Some(jwks), false) = (
        settings.idp.as_ref(),
        keys.idp,
        settings.authorization_server,
    ) {
        // RFC 8707 / MCP: a token whose audience is the server's resource URL is for that
        // server; `audiences` adds operator-configured ones.
        issuers.push(IssuerSpec {
            audiences: idp.audiences.clone(),
            audience_is_resource: true,
            // Tokens without `aud` (Cognito) are for the MCP servers when their client is one
            // of these; never for the API (its own audiences only).
            client_ids: idp.client_ids.clone(),
            ..issuer_spec(idp, jwks)
        });
    }
    issuers
}

/// The IdP as a snapshot issuer with these keys: no audiences (the caller sets those: the MCP
/// servers' in the registry's snapshot, the API's for API authentication), the configured
/// groups claim and `token_use`, the policy crate's defaults for the rest.
pub fn issuer_spec(idp: &IdpConfig, jwks: Jwks) -> IssuerSpec {
    IssuerSpec {
        groups_claim: idp.groups_claim.clone(),
        token_use: idp.token_use.clone(),
        ..IssuerSpec::new(idp.issuer.clone(), jwks, idp.algorithms.clone())
    }
}
