//! Clients known by their Client ID Metadata Document (the rules are in `authz::cimd`): at
//! `/authorize`, a `client_id` that is an https URL is the stored copy of its document while
//! that is fresh (or pinned by an operator), else the document fetched again. The first copy's
//! redirect URIs are used as they are (the person consents to the client by its host); a later
//! copy that adds redirect URIs has them staged as pending until an operator approves them,
//! and one that drops some stops them at once.

use serde_json::{Map, Value};

use super::{AuthorizationServer, AuthorizeOutcome};
use crate::authz::cimd::{self, AddressPolicy, CimdError, Document};
use crate::authz::clients::{Client, RegistrationType, TokenAuthMethod};
use crate::authz::error::{ErrorCode, OAuthError};
use crate::authz::rate_limit::RateLimiter;
use crate::config::{CimdConfig, CimdMode};

/// Document fetches per client IP per minute (a fresh stored copy costs nothing).
pub const FETCHES_PER_MINUTE: u32 = 30;

/// The documents of the assistants that use CIMD whenever it is advertised (and never fall
/// back to DCR): with `PORTCULLIS_CIMD=auto`, CIMD is advertised only while all of them are at
/// hand, pinned or fetched.
pub const ASSISTANT_DOCUMENTS: [&str; 2] = [
    "https://claude.ai/oauth/claude-code-client-metadata",
    "https://chatgpt.com/oauth/codex/client.json",
];

/// How this server reads metadata documents.
pub struct DocumentReader {
    mode: CimdMode,
    /// `auto`: every assistant's document was at hand at the last check.
    available: std::sync::atomic::AtomicBool,
    /// One check at a time, so an older check (the one at start, waiting on DNS) cannot finish
    /// after a newer one (an operator just pinned a document) and undo its answer.
    checking: tokio::sync::Mutex<()>,
    addresses: AddressPolicy,
    roots: Vec<reqwest::Certificate>,
    limit: RateLimiter,
}

impl DocumentReader {
    /// Reads `PORTCULLIS_CIMD_CA_FILE` now: a bad file stops the start.
    pub fn new(config: &CimdConfig) -> anyhow::Result<DocumentReader> {
        let roots = match &config.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("PORTCULLIS_CIMD_CA_FILE {}: {e}", path.display())
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    anyhow::anyhow!("PORTCULLIS_CIMD_CA_FILE {}: {e}", path.display())
                })?;
                if certs.is_empty() {
                    anyhow::bail!(
                        "PORTCULLIS_CIMD_CA_FILE {}: no PEM certificate in it",
                        path.display()
                    );
                }
                certs
            }
        };
        Ok(DocumentReader {
            mode: config.mode,
            available: std::sync::atomic::AtomicBool::new(false),
            checking: tokio::sync::Mutex::new(()),
            addresses: AddressPolicy {
                allowed: config.allowed_addresses.clone(),
            },
            roots,
            limit: RateLimiter::new(FETCHES_PER_MINUTE, 60),
        })
    }

    /// Whether the metadata advertises `client_id_metadata_document_supported`.
    pub fn advertised(&self) -> bool {
        match self.mode {
            CimdMode::On => true,
            CimdMode::Off => false,
            CimdMode::Auto => self.available.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Whether documents are fetched at all.
    fn fetches(&self) -> bool {
        self.mode != CimdMode::Off
    }
}

/// The error page for a document that could not be used. Where the cause is the network, it
/// says what an operator can do (the person reads it; the operator acts on it).
fn refused(client_id: &str, e: &CimdError) -> AuthorizeOutcome {
    tracing::warn!(client_id, error = %e, "client metadata document refused");
    let (status, title, advice) = match e {
        CimdError::Fetch(_) => (
            502,
            "The application's metadata could not be read",
            " If this server cannot reach the application's site, an administrator can store \
             the application's document here (POST /api/oauth-clients/cimd), or turn metadata \
             documents off (PORTCULLIS_CIMD=off) so applications register instead.",
        ),
        _ => (400, "Application refused", ""),
    };
    AuthorizeOutcome::Page {
        status,
        html: crate::authz::pages::error(title, &format!("{e}.{advice}")),
    }
}

/// Why a document could not be read and stored.
enum FetchFailure {
    Refused(CimdError),
    Storage(sqlx::Error),
}

fn page(status: u16, title: &str, detail: &str) -> AuthorizeOutcome {
    AuthorizeOutcome::Page {
        status,
        html: crate::authz::pages::error(title, detail),
    }
}

impl AuthorizationServer {
    /// The client a URL `client_id` names at `/authorize`; an error page otherwise. `ip` keys
    /// the fetch limit.
    pub(super) async fn document_client(
        &self,
        client_id: &str,
        ip: &str,
        now: i64,
    ) -> Result<Option<Client>, AuthorizeOutcome> {
        let stored = self.db.get_oauth_client(client_id).await.map_err(|e| {
            super::server_error("reading the client", &e);
            page(
                500,
                "Sign-in failed",
                "The authorization server could not read its clients.",
            )
        })?;
        if let Some(c) = &stored {
            let fresh = c.document_fresh_until.is_some_and(|t| now < t);
            if c.pinned || fresh || c.status == "disabled" {
                return Ok(stored);
            }
        }
        if !self.documents.fetches() {
            return Err(page(
                400,
                "Unknown application",
                "This server does not read client metadata documents (PORTCULLIS_CIMD=off) and \
                 no administrator stored this application's. The application should register \
                 instead.",
            ));
        }
        let url = cimd::check_client_id(client_id).map_err(|e| refused(client_id, &e))?;
        if let Err(retry) = self.documents.limit.hit(ip, now) {
            return Err(page(
                429,
                "Too many sign-in attempts",
                &format!(
                    "Too many new applications from your address; try again in {retry} seconds."
                ),
            ));
        }
        let client = match self.fetch_document_client(&url, stored, now).await {
            Ok(client) => client,
            Err(FetchFailure::Refused(e)) => return Err(refused(client_id, &e)),
            Err(FetchFailure::Storage(e)) => {
                super::server_error("storing the client", &e);
                return Err(page(
                    500,
                    "Sign-in failed",
                    "The authorization server could not store the application.",
                ));
            }
        };
        if client.pending_redirect_uris.is_empty() {
            tracing::info!(client_id, name = ?client.client_name, "client metadata document read");
        } else {
            tracing::warn!(
                client_id,
                pending = ?client.pending_redirect_uris,
                "client metadata document adds redirect URIs: pending until an administrator approves them"
            );
        }
        Ok(Some(client))
    }

    /// Fetches, checks and stores the document at `url` (`stored`: the copy kept so far).
    async fn fetch_document_client(
        &self,
        url: &url::Url,
        stored: Option<Client>,
        now: i64,
    ) -> Result<Client, FetchFailure> {
        let client_id = url.as_str();
        let addrs = self
            .documents
            .addresses
            .resolve(url)
            .await
            .map_err(FetchFailure::Refused)?;
        let fetched = cimd::fetch(url, &addrs, &self.documents.roots, cimd::FETCH_TIMEOUT)
            .await
            .map_err(FetchFailure::Refused)?;
        let document =
            cimd::parse_document(client_id, &fetched.body).map_err(FetchFailure::Refused)?;
        let client = self.document_client_record(
            client_id,
            stored,
            document,
            now,
            Some(now.saturating_add(fetched.fresh_seconds)),
        );
        self.db
            .upsert_document_client(&client)
            .await
            .map_err(FetchFailure::Storage)?;
        Ok(client)
    }

    /// `PORTCULLIS_CIMD=auto`: whether every assistant's document ([`ASSISTANT_DOCUMENTS`]) is
    /// at hand: pinned, stored and fresh, or fetched now. Sets what the metadata advertises and
    /// logs a change. Run at start, every ten minutes, and when an operator pins or deletes one.
    pub async fn check_assistant_documents(&self, now: i64) -> bool {
        if self.documents.mode != CimdMode::Auto {
            return self.documents.advertised();
        }
        let _one_at_a_time = self.documents.checking.lock().await;
        // Side by side: offline, each waits for its DNS lookup to fail.
        let [claude_code, codex] = ASSISTANT_DOCUMENTS;
        let (a, b) = tokio::join!(
            self.assistant_document(claude_code, now),
            self.assistant_document(codex, now)
        );
        let missing: Vec<String> = [(claude_code, a), (codex, b)]
            .into_iter()
            .filter_map(|(id, r)| r.err().map(|why| format!("{id}: {why}")))
            .collect();
        let available = missing.is_empty();
        let before = self
            .documents
            .available
            .swap(available, std::sync::atomic::Ordering::Relaxed);
        if available && !before {
            tracing::info!(
                "Client ID Metadata Documents advertised: the assistants' documents are at hand"
            );
        } else if !available && before {
            tracing::warn!(missing = ?missing, "Client ID Metadata Documents no longer advertised (clients register by DCR)");
        } else if !available {
            tracing::info!(missing = ?missing, "Client ID Metadata Documents not advertised (clients register by DCR): pin these documents (POST /api/oauth-clients/cimd) or let the control plane reach their hosts");
        }
        available
    }

    async fn assistant_document(&self, id: &str, now: i64) -> Result<(), String> {
        let stored = self
            .db
            .get_oauth_client(id)
            .await
            .map_err(|e| format!("reading the client: {e}"))?;
        if let Some(c) = &stored {
            if c.status != "active" {
                return Err("disabled here".into());
            }
            if c.pinned || c.document_fresh_until.is_some_and(|t| now < t) {
                return Ok(());
            }
        }
        let url = cimd::check_client_id(id).map_err(|e| e.to_string())?;
        match self.fetch_document_client(&url, stored, now).await {
            Ok(_) => Ok(()),
            Err(FetchFailure::Refused(e)) => Err(e.to_string()),
            Err(FetchFailure::Storage(e)) => Err(format!("storing the client: {e}")),
        }
    }

    /// The stored client for a document: new (every redirect URI used), or `stored` updated
    /// (redirect URIs it did not have are pending). `fresh_until`: `None` for a pinned copy.
    fn document_client_record(
        &self,
        client_id: &str,
        stored: Option<Client>,
        document: Document,
        now: i64,
        fresh_until: Option<i64>,
    ) -> Client {
        let pinned = fresh_until.is_none();
        match stored {
            Some(mut c) if !pinned => {
                let (approved, pending) = document
                    .redirect_uris
                    .into_iter()
                    .partition(|u| c.redirect_uris.contains(u));
                c.redirect_uris = approved;
                c.pending_redirect_uris = pending;
                c.client_name = document.client_name;
                c.metadata = document.metadata;
                c.document_fresh_until = fresh_until;
                c.pinned = false;
                c
            }
            stored => Client {
                client_id: client_id.to_string(),
                registration_type: RegistrationType::Cimd,
                client_name: document.client_name,
                redirect_uris: document.redirect_uris,
                token_endpoint_auth_method: TokenAuthMethod::None,
                secret_sha256: None,
                status: stored
                    .as_ref()
                    .map_or_else(|| "active".to_string(), |c| c.status.clone()),
                metadata: document.metadata,
                created_at: stored.as_ref().map_or(now, |c| c.created_at),
                expires_at: match &stored {
                    Some(c) => c.expires_at,
                    None if pinned => None,
                    None => self.dcr_lifetime().map(|l| now.saturating_add(l)),
                },
                last_used_at: stored.as_ref().and_then(|c| c.last_used_at),
                pending_redirect_uris: Vec::new(),
                document_fresh_until: fresh_until,
                pinned,
            },
        }
    }

    /// `POST /api/oauth-clients/cimd`: an operator stores a client's metadata document (for a
    /// site that cannot fetch it, or to vouch for its redirect URIs). It is checked as a
    /// fetched one would be, never fetched, and its redirect URIs are all used.
    pub async fn pin_document(
        &self,
        document: Map<String, Value>,
        now: i64,
    ) -> Result<(Client, bool), OAuthError> {
        let invalid =
            |e: &CimdError| OAuthError::new(ErrorCode::InvalidClientMetadata, e.to_string());
        let Some(client_id) = document
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "client_id (the document's https URL) is required",
            ));
        };
        cimd::check_client_id(&client_id).map_err(|e| invalid(&e))?;
        let bytes = serde_json::to_vec(&Value::Object(document)).unwrap_or_default();
        let parsed = cimd::parse_document(&client_id, &bytes).map_err(|e| invalid(&e))?;
        let stored = self
            .db
            .get_oauth_client(&client_id)
            .await
            .map_err(|e| super::server_error("reading the client", &e))?;
        if stored
            .as_ref()
            .is_some_and(|c| c.registration_type != RegistrationType::Cimd)
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "a client with this client_id was registered another way",
            ));
        }
        let created = stored.is_none();
        let client = self.document_client_record(&client_id, stored, parsed, now, None);
        self.db
            .upsert_document_client(&client)
            .await
            .map_err(|e| super::server_error("storing the client", &e))?;
        tracing::info!(client_id = %client.client_id, "client metadata document pinned by an administrator");
        Ok((client, created))
    }
}
