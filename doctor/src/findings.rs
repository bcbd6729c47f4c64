//! The mistakes `portcullis doctor` knows by name. Codes are stable (scripts match on them);
//! `docs/doctor.md` explains each one.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Some client will fail to connect or log in.
    Error,
    /// Works for most clients, or works today by luck; worth fixing.
    Warning,
    /// Worth knowing.
    Info,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARN",
            Severity::Info => "INFO",
        }
    }
}

macro_rules! codes {
    ($($variant:ident => $code:literal, $sev:ident, $what:literal;)*) => {
        /// Every finding code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable code, e.g. `prm_resource_mismatch`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            pub fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$sev,)*
                }
            }

            /// One line saying what the code means.
            pub fn what(self) -> &'static str {
                match self {
                    $(Code::$variant => $what,)*
                }
            }
        }
    };
}

codes! {
    Unreachable => "unreachable", Error,
        "The MCP URL could not be reached at all (DNS, connection, TLS or timeout).";
    InvalidUrl => "invalid_url", Error,
        "The URL given is not an absolute http(s) URL.";
    InsecureTransport => "insecure_transport", Error,
        "A URL uses plain http to a host that is not loopback; OAuth needs TLS.";
    NoAuth => "no_auth", Warning,
        "The server answered without asking for a token: anyone who can reach it can use it.";
    ForbiddenWithoutToken => "forbidden_without_token", Error,
        "A request without a token got 403; clients start OAuth only on 401.";
    ProbeRedirect => "probe_redirect", Error,
        "The MCP URL answers with a redirect; clients should be given the final URL.";
    UnexpectedStatus => "unexpected_status", Error,
        "A request without a token got neither 401 nor a success, so no client starts OAuth.";
    ChallengeMissing => "challenge_missing", Error,
        "401 without a `WWW-Authenticate: Bearer …` challenge.";
    ChallengeMalformed => "challenge_malformed", Error,
        "The WWW-Authenticate header does not parse (RFC 9110 auth-params).";
    ChallengeNoResourceMetadata => "challenge_no_resource_metadata", Error,
        "The Bearer challenge has no `resource_metadata` parameter.";
    ChallengeNoScope => "challenge_no_scope", Warning,
        "The Bearer challenge has no `scope` parameter.";
    GetNoChallenge => "get_no_challenge", Warning,
        "An unauthenticated GET does not get the 401 challenge (Codex reads it only from a GET).";
    Redirect => "redirect", Warning,
        "A metadata URL redirects; some clients do not follow redirects there.";
    ResponseTooLarge => "response_too_large", Error,
        "A metadata document is larger than the doctor's limit (256 KB).";
    PrmNotFound => "prm_not_found", Error,
        "No protected-resource metadata at the challenge URL or any well-known location.";
    PrmChallengeUrlFailed => "prm_challenge_url_failed", Error,
        "The challenge's resource_metadata URL does not serve the metadata.";
    PrmOnlyViaChallenge => "prm_only_via_challenge", Warning,
        "Metadata is found only through the challenge; Claude Code never reads it.";
    PrmNotJson => "prm_not_json", Error,
        "Protected-resource metadata is not a JSON object.";
    PrmContentType => "prm_content_type", Warning,
        "Protected-resource metadata is not served as application/json.";
    PrmResourceMissing => "prm_resource_missing", Error,
        "Protected-resource metadata has no `resource`.";
    PrmResourceMismatch => "prm_resource_mismatch", Error,
        "Protected-resource metadata `resource` is not exactly the URL clients connect to.";
    PrmNoAuthorizationServers => "prm_no_authorization_servers", Error,
        "Protected-resource metadata has no `authorization_servers`.";
    AsIssuerInvalid => "as_issuer_invalid", Error,
        "An `authorization_servers` entry is not an absolute http(s) URL without query or fragment.";
    AsMetadataNotFound => "as_metadata_not_found", Error,
        "No authorization-server metadata at any location the specification tries.";
    AsMetadataNotJson => "as_metadata_not_json", Error,
        "Authorization-server metadata is not a JSON object.";
    AsMetadataContentType => "as_metadata_content_type", Warning,
        "Authorization-server metadata is not served as application/json.";
    AsIssuerMismatch => "as_issuer_mismatch", Error,
        "Authorization-server metadata `issuer` is not exactly the URL it was discovered for.";
    PkceS256Missing => "pkce_s256_missing", Error,
        "`code_challenge_methods_supported` does not list S256.";
    PkceMethodsAbsent => "pkce_methods_absent", Error,
        "`code_challenge_methods_supported` is absent; MCP clients must refuse such a server.";
    NoClientRegistration => "no_client_registration", Error,
        "No registration_endpoint, no Client ID Metadata Documents and no client id.";
    OfflineAccessUnsupported => "offline_access_unsupported", Error,
        "`offline_access` is advertised to clients but the authorization server does not list it.";
    TokenNotJwt => "token_not_jwt", Warning,
        "The --token is not a JWS JWT, so its claims cannot be read.";
    TokenExpired => "token_expired", Warning,
        "The --token has expired.";
    TokenNoGroups => "token_no_groups", Error,
        "The --token carries no groups-like claim; group-based access will deny everything.";
    TokenMissingClaims => "token_missing_claims", Error,
        "The --token lacks `iss`, `sub` or `exp`, which every token must carry.";
    TokenIssuerOther => "token_issuer_other", Error,
        "The --token's `iss` is none of the authorization servers the metadata names.";
    TokenIsIdToken => "token_is_id_token", Error,
        "The --token is an ID token (`token_use: id`), not an access token.";
    TokenNoAudience => "token_no_audience", Warning,
        "The --token has no `aud`: accepted only when the issuer's client_ids lists its client.";
    TokenAudienceOther => "token_audience_other", Warning,
        "The --token's `aud` is not this server's resource: accepted only with PORTCULLIS_IDP_AUDIENCE.";
    TokenWeakAudience => "token_weak_audience", Warning,
        "The --token's only `aud` is Keycloak's `account`, which every token of the realm carries.";
    TokenGroupsUnmapped => "token_groups_unmapped", Error,
        "None of the --token's groups is mapped to a registry scope (403 no_mapped_scopes).";
    TokenNoServerAccess => "token_no_server_access", Error,
        "No scope the --token's groups map to grants this server (403 no_server_access).";
    MappingCheckFailed => "mapping_check_failed", Warning,
        "The control plane's group mappings could not be read (--control-plane, --admin-token-env).";
}

/// One named mistake.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "ser_code")]
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Id of the step that found it.
    pub step: &'static str,
}

fn ser_code<S: serde::Serializer>(code: &Code, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(code.as_str())
}

impl Finding {
    pub fn new(code: Code, step: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            code,
            severity: code.severity(),
            message: message.into(),
            step,
        }
    }
}

#[cfg(test)]
mod tests;
