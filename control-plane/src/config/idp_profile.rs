//! IdP profiles: what each identity provider does differently, as data. `PORTCULLIS_IDP_PROFILE`
//! picks one; every field has its own variable so an IdP we do not know can be described too.
//! Direct mode reads them for the snapshot (audience, client ids, `token_use`, groups claim) and
//! the connect configs' warnings; the broker will read the same table toward the IdP.
//! `docs/idp-profiles.md` is the table for people.

use std::fmt;
use std::str::FromStr;

/// The IdPs we know the quirks of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdpProfile {
    /// A standards-following OIDC provider: `resource` becomes `aud` (RFC 8707).
    #[default]
    Generic,
    Keycloak,
    Okta,
    Cognito,
    Entra,
}

/// How an IdP's access tokens say whom they are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceStyle {
    /// `aud` is the RFC 8707 `resource` the client asked for: the MCP server's URL.
    Resource,
    /// `aud` is a value fixed at the IdP (Keycloak's `account` or an audience mapper's value,
    /// Okta's authorization-server audience, Entra's application id): it must be configured
    /// (`PORTCULLIS_IDP_AUDIENCE`).
    Fixed,
    /// No `aud` at all; the token names its client (`client_id`): those must be listed
    /// (`PORTCULLIS_IDP_CLIENT_IDS`). Cognito.
    ClientId,
}

/// What one IdP does; the defaults a profile sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpTraits {
    /// Dotted path of the groups claim (`PORTCULLIS_IDP_GROUPS_CLAIM`).
    pub groups_claim: &'static str,
    pub audience: AudienceStyle,
    /// Required `token_use` claim (`PORTCULLIS_IDP_TOKEN_USE`): Cognito's access tokens say
    /// `access`, its ID tokens (signed by the same keys) `id`.
    pub token_use: Option<&'static str>,
    /// Whether an authorization request carrying RFC 8707 `resource` (which every MCP client
    /// sends) is accepted (`PORTCULLIS_IDP_ACCEPTS_RESOURCE`). Entra refuses it (AADSTS9010010).
    pub accepts_resource: bool,
    /// Scopes must be qualified by the API they are for (`api://<app>/<scope>` on Entra,
    /// `<resource server>/<scope>` on Cognito) (`PORTCULLIS_IDP_SCOPE_PREFIX` gives the prefix).
    pub qualified_scopes: bool,
    /// Whether `offline_access` exists (refresh tokens through that scope); Cognito has none.
    pub offline_access: bool,
    /// Redirect URIs matched literally, loopback port included (`PORTCULLIS_IDP_STRICT_REDIRECTS`).
    pub strict_redirects: bool,
    /// Expected to offer dynamic client registration (`PORTCULLIS_IDP_EXPECT_DCR`); never used to
    /// choose a login method, only to warn when the metadata disagrees.
    pub dcr: bool,
}

impl IdpProfile {
    pub const ALL: [IdpProfile; 5] = [
        IdpProfile::Generic,
        IdpProfile::Keycloak,
        IdpProfile::Okta,
        IdpProfile::Cognito,
        IdpProfile::Entra,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdpProfile::Generic => "generic",
            IdpProfile::Keycloak => "keycloak",
            IdpProfile::Okta => "okta",
            IdpProfile::Cognito => "cognito",
            IdpProfile::Entra => "entra",
        }
    }

    /// The product's name, for messages.
    pub fn label(self) -> &'static str {
        match self {
            IdpProfile::Generic => "the IdP",
            IdpProfile::Keycloak => "Keycloak",
            IdpProfile::Okta => "Okta",
            IdpProfile::Cognito => "Cognito",
            IdpProfile::Entra => "Entra ID",
        }
    }

    /// The table (`docs/idp-profiles.md` says where each value comes from).
    pub fn traits(self) -> IdpTraits {
        let generic = IdpTraits {
            groups_claim: "groups",
            audience: AudienceStyle::Resource,
            token_use: None,
            accepts_resource: true,
            qualified_scopes: false,
            offline_access: true,
            strict_redirects: false,
            dcr: false,
        };
        match self {
            IdpProfile::Generic => generic,
            // Ignores `resource`; `aud: account` unless an Audience mapper adds one. Groups
            // through a "Group Membership" mapper named `groups`. Anonymous DCR; any loopback
            // port for a client registered with `http://127.0.0.1/*`-style redirects.
            IdpProfile::Keycloak => IdpTraits {
                audience: AudienceStyle::Fixed,
                dcr: true,
                ..generic
            },
            // Custom authorization servers issue their configured audience (`api://default`);
            // groups through a groups claim on the authorization server; exact redirect URIs.
            IdpProfile::Okta => IdpTraits {
                audience: AudienceStyle::Fixed,
                strict_redirects: true,
                ..generic
            },
            // Access tokens: no `aud`, `client_id`, `token_use: access`, `cognito:groups`;
            // resource-server scopes `<id>/<scope>`; no `offline_access`; exact callback URLs.
            IdpProfile::Cognito => IdpTraits {
                groups_claim: "cognito:groups",
                audience: AudienceStyle::ClientId,
                token_use: Some("access"),
                qualified_scopes: true,
                offline_access: false,
                strict_redirects: true,
                ..generic
            },
            // v2 tokens: `aud` is the API application's id; `resource` with v2 scopes is refused
            // (AADSTS9010010); scopes `api://<app>/<scope>`; `groups` holds object ids (GUIDs).
            IdpProfile::Entra => IdpTraits {
                audience: AudienceStyle::Fixed,
                accepts_resource: false,
                qualified_scopes: true,
                ..generic
            },
        }
    }
}

impl fmt::Display for IdpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdpProfile {
    type Err = String;

    fn from_str(s: &str) -> Result<IdpProfile, String> {
        let s = s.trim();
        IdpProfile::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "expected one of {}, got {s:?}",
                    IdpProfile::ALL.map(IdpProfile::as_str).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests;
