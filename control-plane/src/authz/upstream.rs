//! Logging a person in at the upstream IdP (broker mode with `PORTCULLIS_IDP_ISSUER` and
//! `PORTCULLIS_BROKER_CLIENT_ID` / `_SECRET`): the broker is one confidential client of the
//! IdP with one callback, `<PUBLIC_URL>/oauth/callback`. Authorization code + PKCE S256 toward
//! the IdP, a `nonce`, never `resource` (Entra refuses it; the audience of our own tokens is
//! ours to set); the ID token is verified as the filter verifies tokens (keys, `iss`, `aud` =
//! our client id, expiry) and its groups read at the profile's claim path.

use std::time::Duration;

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

/// What the IdP's token endpoint answered.
#[derive(Clone)]
pub struct UpstreamTokens {
    pub id_token: String,
    /// The IdP's refresh token, when it gave one: the broker refreshes there to re-read the
    /// person's groups.
    pub refresh_token: Option<String>,
}

/// Never shows the tokens.
impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<set>"),
            )
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

    /// The scopes asked of the IdP: an ID token with the profile and groups, and
    /// `offline_access` where the profile has it (a refresh token, so a refresh here re-reads
    /// the person's groups there; Cognito has no such scope and gives one anyway).
    fn scopes(&self) -> String {
        if self.idp.profile.traits().offline_access {
            "openid profile email offline_access".to_string()
        } else {
            "openid profile email".to_string()
        }
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

    /// Exchanges the IdP's code for its tokens.
    pub async fn exchange(
        &self,
        metadata: &Value,
        code: &str,
        verifier: &str,
    ) -> Result<UpstreamTokens, UpstreamError> {
        self.token_request(
            metadata,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.callback.as_str()),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// Refreshes at the IdP (a new ID token with the person's groups as they are now).
    pub async fn refresh(
        &self,
        metadata: &Value,
        refresh_token: &str,
    ) -> Result<UpstreamTokens, UpstreamError> {
        self.token_request(
            metadata,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn token_request(
        &self,
        metadata: &Value,
        params: &[(&str, &str)],
    ) -> Result<UpstreamTokens, UpstreamError> {
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
            .form(params)
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
        let id_token = body["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| UpstreamError::BadAnswer("no id_token (is openid allowed?)".into()))?;
        Ok(UpstreamTokens {
            id_token,
            refresh_token: body["refresh_token"].as_str().map(str::to_string),
        })
    }

    /// Verifies the ID token with the IdP's keys (as the filter verifies tokens), then its
    /// `nonce`: the login's, or (`None`, a refreshed ID token, OIDC Core 12.2) none to check.
    pub fn verify_id_token(
        &self,
        jwks: Option<Jwks>,
        id_token: &str,
        nonce: Option<&str>,
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
        let payload = super::token::verified_claims(id_token)
            .ok_or_else(|| UpstreamError::IdToken("unreadable payload".into()))?;
        if nonce.is_some_and(|n| payload.get("nonce").and_then(Value::as_str) != Some(n)) {
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

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jwt_simple::prelude::*;

    use super::*;
    use crate::authz::signing::public_jwk;

    const ISSUER: &str = "https://idp.example";
    const NOW: u64 = 1_800_000_000;

    fn upstream(profile: &str) -> Upstream {
        let config = crate::config::Config::from_lookup(|k| match k {
            "PORTCULLIS_IDP_ISSUER" => Some(ISSUER.into()),
            "PORTCULLIS_IDP_PROFILE" => Some(profile.into()),
            "PORTCULLIS_IDP_CLIENT_IDS" => Some("portcullis-broker".into()),
            "PORTCULLIS_IDP_ALGORITHMS" => Some("ES256".into()),
            _ => None,
        })
        .unwrap();
        Upstream::new(
            config.idp.unwrap(),
            "portcullis-broker".into(),
            Secret::new("s"),
            "https://gw.example",
        )
        .unwrap()
    }

    fn key() -> ES256KeyPair {
        ES256KeyPair::from_bytes(&[7u8; 32])
            .unwrap()
            .with_key_id("k1")
    }

    fn jwks(pair: &ES256KeyPair) -> Option<Jwks> {
        Some(Jwks {
            keys: vec![public_jwk(pair, "k1").unwrap()],
        })
    }

    fn id_token(pair: &ES256KeyPair, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = json!({
            "iss": ISSUER, "aud": "portcullis-broker", "sub": "00u1", "nonce": "n-1",
            "preferred_username": "alice", "groups": ["engineering"],
            "iat": NOW, "exp": NOW + 300,
        });
        edit(&mut claims);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        // The same key through p256 (jwt-simple signs whole claim sets, not raw input).
        use p256::ecdsa::signature::Signer as _;
        let signer = p256::ecdsa::SigningKey::from_slice(&pair.to_bytes()).unwrap();
        let signature: p256::ecdsa::Signature = signer.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    use serde_json::json;

    #[test]
    fn a_good_id_token_names_the_person_and_their_groups() {
        let u = upstream("okta");
        let pair = key();
        let person = u
            .verify_id_token(jwks(&pair), &id_token(&pair, |_| {}), Some("n-1"), NOW)
            .unwrap();
        assert_eq!(person.subject, "00u1");
        assert_eq!(person.username, "alice");
        assert_eq!(person.groups, ["engineering"]);
    }

    #[test]
    fn every_bad_id_token_is_refused() {
        let u = upstream("okta");
        let pair = key();
        let other = ES256KeyPair::from_bytes(&[9u8; 32])
            .unwrap()
            .with_key_id("k1");
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "replayed (another login's nonce)",
                id_token(&pair, |_| {}),
                "n-2",
            ),
            (
                "no nonce",
                id_token(&pair, |c| {
                    c.as_object_mut().unwrap().remove("nonce");
                }),
                "n-1",
            ),
            (
                "for another client",
                id_token(&pair, |c| c["aud"] = json!("someone-else")),
                "n-1",
            ),
            (
                "from another issuer",
                id_token(&pair, |c| c["iss"] = json!("https://evil.example")),
                "n-1",
            ),
            (
                "expired",
                id_token(&pair, |c| c["exp"] = json!(NOW - 3600)),
                "n-1",
            ),
            ("signed by another key", id_token(&other, |_| {}), "n-1"),
            ("not a JWT", "a.b.c".to_string(), "n-1"),
        ];
        for (what, token, nonce) in cases {
            let err = u.verify_id_token(jwks(&pair), &token, Some(nonce), NOW);
            assert!(
                matches!(err, Err(UpstreamError::IdToken(_))),
                "{what}: {err:?}"
            );
        }
        assert!(matches!(
            u.verify_id_token(None, &id_token(&pair, |_| {}), Some("n-1"), NOW),
            Err(UpstreamError::NoKeys)
        ));
    }

    #[test]
    fn cognito_id_tokens_are_not_held_to_the_access_token_rules() {
        // `token_use: id` and the groups at `cognito:groups`.
        let u = upstream("cognito");
        let pair = key();
        let token = id_token(&pair, |c| {
            c["token_use"] = json!("id");
            c.as_object_mut().unwrap().remove("groups");
            c["cognito:groups"] = json!(["engineering"]);
        });
        let person = u
            .verify_id_token(jwks(&pair), &token, Some("n-1"), NOW)
            .unwrap();
        // A refreshed ID token carries no nonce (OIDC Core 12.2): none is asked for.
        let refreshed = id_token(&pair, |c| {
            c.as_object_mut().unwrap().remove("nonce");
        });
        assert!(u
            .verify_id_token(jwks(&pair), &refreshed, None, NOW)
            .is_ok());
        assert_eq!(person.groups, ["engineering"]);
    }

    #[test]
    fn the_authorization_request_asks_for_an_id_token_with_pkce_and_never_resource() {
        let u = upstream("entra");
        let metadata = json!({"authorization_endpoint": "https://idp.example/authorize?tenant=x"});
        let url = url::Url::parse(
            &u.authorize_url(&metadata, "st", &"v".repeat(43), "n")
                .unwrap(),
        )
        .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "x", "the endpoint's own query stays");
        assert_eq!(q["client_id"], "portcullis-broker");
        assert_eq!(q["redirect_uri"], "https://gw.example/oauth/callback");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["code_challenge"],
            crate::authz::pkce::s256(&"v".repeat(43))
        );
        assert_eq!((q["state"].as_str(), q["nonce"].as_str()), ("st", "n"));
        assert!(q["scope"].split(' ').any(|s| s == "openid"));
        // A refresh token from Entra (offline_access), none asked of Cognito (no such scope).
        assert!(q["scope"].split(' ').any(|s| s == "offline_access"));
        let cognito = upstream("cognito")
            .authorize_url(&metadata, "st", &"v".repeat(43), "n")
            .unwrap();
        assert!(!cognito.contains("offline_access"), "{cognito}");
        assert!(!q.contains_key("resource"));
        assert!(matches!(
            u.authorize_url(&json!({}), "st", "v", "n"),
            Err(UpstreamError::Metadata(_))
        ));
    }
}
