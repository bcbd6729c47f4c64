//! Step 4: authorization-server metadata for each issuer the protected-resource metadata names
//! (RFC 8414, then OpenID Connect discovery), and what clients check in it: the issuer, PKCE,
//! http endpoints, `offline_access`.

use serde_json::{Map, Value};
use url::Url;

use super::http::Doc;
use super::{scopes, Doctor};
use crate::discovery;
use crate::findings::Code;
use crate::report::AuthorizationServer;

impl Doctor {
    /// Step 4: authorization-server metadata for each entry. Returns whether the first one was
    /// found.
    pub(super) async fn authorization_servers(&mut self) -> bool {
        self.begin("authorization_server", "Authorization-server metadata");
        let issuers: Vec<String> = self
            .prm
            .as_ref()
            .and_then(|p| p.get("authorization_servers"))
            .and_then(Value::as_array)
            .map(|a| {
                let mut v: Vec<String> = Vec::new();
                for s in a.iter().filter_map(Value::as_str) {
                    if !v.iter().any(|x| x == s) {
                        v.push(s.to_string());
                    }
                }
                v
            })
            .unwrap_or_default();
        let mut first_found = false;
        for (i, issuer) in issuers.iter().enumerate() {
            let mut entry = AuthorizationServer {
                issuer: issuer.clone(),
                metadata_url: None,
                source: None,
                registration_endpoint: false,
                client_id_metadata_document_supported: false,
            };
            let parsed = Url::parse(issuer).ok().filter(|u| {
                (u.scheme() == "https" || u.scheme() == "http")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            let Some(iss_url) = parsed else {
                self.find(
                    Code::AsIssuerInvalid,
                    format!("authorization server `{issuer}` is not an absolute http(s) URL without query or fragment"),
                );
                self.servers.push(entry);
                continue;
            };
            if discovery::is_insecure(&iss_url) {
                self.find(
                    Code::InsecureTransport,
                    format!("authorization server {issuer} is plain http to a host that is not loopback"),
                );
            }
            let mut meta = None;
            for c in discovery::as_candidates(&iss_url) {
                match self.get_doc(&c.url).await {
                    Doc::Json {
                        doc,
                        content_type_ok,
                        content_type,
                    } => {
                        if !content_type_ok {
                            self.find(
                                Code::AsMetadataContentType,
                                format!(
                                    "{} is served as {}, not application/json; strict clients refuse it",
                                    c.url,
                                    content_type.as_deref().unwrap_or("(no content-type)")
                                ),
                            );
                        }
                        self.note(format!("{issuer}: found {} at {}", c.source.describe(), c.url));
                        entry.metadata_url = Some(c.url.clone());
                        entry.source = Some(c.source);
                        meta = Some(doc);
                        break;
                    }
                    Doc::NotJson { content_type } => self.find(
                        Code::AsMetadataNotJson,
                        format!(
                            "{} answers 200 with something that is not a JSON object ({}); clients that reach it fail",
                            c.url,
                            content_type.as_deref().unwrap_or("no content-type")
                        ),
                    ),
                    Doc::TooLarge => self.find(
                        Code::ResponseTooLarge,
                        format!("{} is larger than 256 KB", c.url),
                    ),
                    Doc::Status(_) | Doc::TooManyRedirects | Doc::Failed => {}
                }
            }
            let Some(meta) = meta else {
                let tried: Vec<String> = discovery::as_candidates(&iss_url)
                    .into_iter()
                    .map(|c| c.url)
                    .collect();
                self.find(
                    Code::AsMetadataNotFound,
                    format!(
                        "no authorization-server metadata for {issuer} (tried {})",
                        tried.join(", ")
                    ),
                );
                self.servers.push(entry);
                continue;
            };
            self.check_as(issuer, &meta, &mut entry);
            if i == 0 {
                first_found = true;
                self.as_meta = Some(meta);
            }
            self.servers.push(entry);
        }
        if issuers.len() > 1 {
            self.note("several authorization servers: most clients use the first one");
        }
        first_found
    }

    fn check_as(
        &mut self,
        issuer: &str,
        meta: &Map<String, Value>,
        entry: &mut AuthorizationServer,
    ) {
        match meta.get("issuer").and_then(Value::as_str) {
            Some(i) if i == issuer => self.note(format!("issuer = {i} (matches)")),
            Some(i) => {
                let hint = if i.trim_end_matches('/') == issuer.trim_end_matches('/') {
                    " (only a trailing slash differs: the comparison is exact)"
                } else {
                    ""
                };
                self.find(
                    Code::AsIssuerMismatch,
                    format!("metadata for {issuer} says issuer = {i}{hint}; clients (Codex among them) compare exactly and refuse it (RFC 8414 §3.3)"),
                );
            }
            None => self.find(
                Code::AsIssuerMismatch,
                format!("metadata for {issuer} has no `issuer`; clients refuse it (RFC 8414 §3.3)"),
            ),
        }
        match meta.get("code_challenge_methods_supported") {
            None => self.find(
                Code::PkceMethodsAbsent,
                format!("{issuer}: code_challenge_methods_supported is absent; MCP clients must refuse an authorization server that does not advertise PKCE (some older ones carry on); advertise [\"S256\"] (Portcullis' mirrored metadata adds it)"),
            ),
            Some(v) => {
                let methods = scopes(Some(v)).unwrap_or_default();
                if methods.iter().any(|m| m == "S256") {
                    self.note("PKCE S256 supported");
                } else {
                    self.find(
                        Code::PkceS256Missing,
                        format!(
                            "{issuer}: code_challenge_methods_supported = [{}] has no S256; MCP clients only use S256",
                            methods.join(", ")
                        ),
                    );
                }
            }
        }
        entry.registration_endpoint = meta
            .get("registration_endpoint")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        entry.client_id_metadata_document_supported =
            meta.get("client_id_metadata_document_supported") == Some(&Value::Bool(true));
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "registration_endpoint",
        ] {
            match meta.get(field).and_then(Value::as_str) {
                Some(v) if Url::parse(v).is_ok_and(|u| discovery::is_insecure(&u)) => self.find(
                    Code::InsecureTransport,
                    format!("{field} {v} is plain http to a host that is not loopback"),
                ),
                Some(_) => {}
                None if field != "registration_endpoint" => {
                    self.note(format!("{issuer}: no {field}"));
                }
                None => {}
            }
        }
        if meta.get("authorization_response_iss_parameter_supported") == Some(&Value::Bool(true)) {
            self.note("sends iss in the authorization response (RFC 9207)");
        }
        // offline_access: asked for by clients when the challenge or the PRM advertise it.
        let mut advertised: Vec<&str> = Vec::new();
        if self
            .challenge
            .as_ref()
            .and_then(|c| c.scope.as_deref())
            .is_some_and(|s| s.split_ascii_whitespace().any(|x| x == "offline_access"))
        {
            advertised.push("the challenge's scope");
        }
        if scopes(self.prm.as_ref().and_then(|p| p.get("scopes_supported")))
            .is_some_and(|s| s.iter().any(|x| x == "offline_access"))
        {
            advertised.push("the protected-resource metadata's scopes_supported");
        }
        if !advertised.is_empty() {
            match scopes(meta.get("scopes_supported")) {
                Some(s) if !s.iter().any(|x| x == "offline_access") => self.find(
                    Code::OfflineAccessUnsupported,
                    format!("offline_access is advertised in {}, but {issuer} does not list it in scopes_supported; clients ask for it and IdPs such as Amazon Cognito reject the authorization request (drop it from MCP_ADVERTISED_SCOPES)", advertised.join(" and ")),
                ),
                Some(_) => {}
                None => self.note(format!(
                    "offline_access is advertised but {issuer} publishes no scopes_supported: cannot tell whether it accepts it"
                )),
            }
        }
    }
}
