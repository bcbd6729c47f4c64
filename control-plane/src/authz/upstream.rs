//! Logging a person in at the upstream IdP (broker mode with `PORTCULLIS_IDP_ISSUER` and
//! `PORTCULLIS_BROKER_CLIENT_ID` / `_SECRET`): the broker is one confidential client of the
//! IdP with one callback, `<PUBLIC_URL>/oauth/callback`. Authorization code + PKCE S256 toward
//! the IdP, a `nonce`, never `resource` (Entra refuses it; the audience of our own tokens is
//! ours to set); the ID token is verified as the filter verifies tokens (keys, `iss`, `aud` =
//! our client id, expiry) and its groups read at the profile's claim path.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use policy::keys::Jwks;
use policy::snapshot::{IssuerSpec, SettingsSpec, Snapshot};
use serde_json::Value;

use crate::config::{IdpConfig, Secret};

/// Why a login at the IdP failed; the person sees the message, the log gets the detail.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the IdP's metadata has no {0}")]
    Metadata(&'static str),
    #[error("the IdP refused the login: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        error: String,
        description: Option<String>,
    },
    #[error("the IdP could not be reached: {0}")]
    Unreachable(String),
    #[error("the IdP's token answer is not usable: {0}")]
    BadAnswer(String),
    #[error("the IdP's ID token was refused: {0}")]
    IdToken(String),
    #[error("the IdP's signing keys are not known yet")]
    NoKeys,
}

/// The IdP as the broker logs people in there.
pub struct Upstream {
    pub idp: IdpConfig,
    pub client_id: String,
    client_secret: Secret,
    /// `<PUBLIC_URL>/oauth/callback`.
    pub callback: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("issuer", &self.idp.issuer)
            .field("client_id", &self.client_id)
            .field("callback", &self.callback)
            .finish_non_exhaustive()
    }
}

/// Who logged in, as the IdP says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedPerson {
    /// The IdP's `sub`.
    pub subject: String,
    /// `preferred_username` (or the profile's username claim), else `sub`.
    pub username: String,
    pub groups: Vec<String>,
}

impl Upstream {
    pub fn new(
        idp: IdpConfig,
        client_id: String,
        client_secret: Secret,
        public_url: &str,
    ) -> anyhow::Result<Upstream> {
        Ok(Upstream {
            idp,
            client_id,
            client_secret,
            callback: format!(
                "{}{}/callback",
                public_url.trim_end_matches('/'),
                policy::AUTHORIZATION_SERVER_PATH
            ),
            http: crate::outbound::client_builder(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }

    /// The scopes asked of the IdP: an ID token with the profile and groups; never
    /// `offline_access` (the broker does not refresh at the IdP yet, and Cognito has none).
    fn scopes(&self) -> String {
        "openid profile email".to_string()
    }

    /// Where the person goes to log in.
    pub fn authorize_url(
        &self,
        metadata: &Value,
        state: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<String, UpstreamError> {
        let endpoint = metadata["authorization_endpoint"]
            .as_str()
            .ok_or(UpstreamError::Metadata("authorization_endpoint"))?;
        let mut url = url::Url::parse(endpoint)
            .map_err(|_| UpstreamError::Metadata("valid authorization_endpoint"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.callback)
            .append_pair("scope", &self.scopes())
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &crate::authz::pkce::s256(verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges the IdP's code for its tokens; returns the ID token.
    pub async fn exchange(
        &self,
        metadata: &Value,
        code: &str,
        verifier: &str,
    ) -> Result<String, UpstreamError> {
        let endpoint = metadata["token_endpoint"]
            .as_str()
            .ok_or(UpstreamError::Metadata("token_endpoint"))?;
        let form = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(endpoint)
            .basic_auth(
                form(&self.client_id),
                Some(form(self.client_secret.expose())),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.callback.as_str()),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(crate::outbound::error_chain(&e)))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| UpstreamError::BadAnswer(format!("HTTP {status}, not JSON: {e}")))?;
        if !status.is_success() {
            return Err(UpstreamError::Refused {
                error: body["error"].as_str().unwrap_or("unknown").to_string(),
                description: body["error_description"].as_str().map(str::to_string),
            });
        }
        body["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| UpstreamError::BadAnswer("no id_token (is openid allowed?)".into()))
    }

    /// Verifies the ID token with the IdP's keys (as the filter verifies tokens), then its
    /// `nonce`.
    pub fn verify_id_token(
        &self,
        jwks: Option<Jwks>,
        id_token: &str,
        nonce: &str,
        now: u64,
    ) -> Result<FederatedPerson, UpstreamError> {
        let jwks = jwks.ok_or(UpstreamError::NoKeys)?;
        let snapshot = Snapshot {
            format: 1,
            version: 0,
            issuers: vec![IssuerSpec {
                audiences: vec![self.client_id.clone()],
                groups_claim: self.idp.groups_claim.clone(),
                // An ID token: Cognito marks it `token_use: id`, the access-token check is not
                // for it.
                token_use: None,
                ..IssuerSpec::new(self.idp.issuer.clone(), jwks, self.idp.algorithms.clone())
            }],
            servers: Vec::new(),
            group_mappings: Vec::new(),
            scopes: Vec::new(),
            api_keys: Vec::new(),
            settings: SettingsSpec::default(),
        };
        let verifier = policy::Policy::compile(snapshot)
            .map_err(|e| UpstreamError::IdToken(format!("the IdP's keys do not load: {e}")))?;
        let identity = verifier
            .verify_jwt(id_token, now)
            .map_err(|e| UpstreamError::IdToken(e.reason().to_string()))?;
        let payload = id_token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .ok_or_else(|| UpstreamError::IdToken("unreadable payload".into()))?;
        if payload["nonce"].as_str() != Some(nonce) {
            return Err(UpstreamError::IdToken(
                "nonce differs from the login's (a replayed ID token)".into(),
            ));
        }
        Ok(FederatedPerson {
            subject: identity.subject.clone(),
            username: identity.username.clone(),
            groups: identity.groups.to_vec(),
        })
    }
}
