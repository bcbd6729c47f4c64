//! Step 3: protected-resource metadata (RFC 9728) at every location clients try, in their
//! order, and what it says: the resource (exactly the MCP URL) and its authorization servers.

use serde_json::{Map, Value};
use url::Url;

use super::http::Doc;
use super::{scopes, Doctor};
use crate::discovery::{self, PrmSource};
use crate::findings::Code;

impl Doctor {
    /// Step 3: protected-resource metadata. Returns whether a usable document names an
    /// authorization server.
    pub(super) async fn resource_metadata(
        &mut self,
        url: &Url,
        from_challenge: Option<String>,
    ) -> bool {
        self.begin(
            "resource_metadata",
            "Protected-resource metadata (RFC 9728)",
        );
        let from_challenge = from_challenge.filter(|u| Url::parse(u).is_ok());
        let candidates = discovery::prm_candidates(url, from_challenge.as_deref());
        let mut found: Vec<(PrmSource, String, Map<String, Value>)> = Vec::new();
        for c in &candidates {
            match self.get_doc(&c.url).await {
                Doc::Json {
                    doc,
                    content_type_ok,
                    content_type,
                } => {
                    if !content_type_ok {
                        self.find(
                            Code::PrmContentType,
                            format!(
                                "{} is served as {}, not application/json",
                                c.url,
                                content_type.as_deref().unwrap_or("(no content-type)")
                            ),
                        );
                    }
                    found.push((c.source, c.url.clone(), doc));
                }
                Doc::NotJson { content_type } => {
                    if found.is_empty() {
                        self.find(
                            Code::PrmNotJson,
                            format!(
                                "{} answers 200 with something that is not a JSON object ({})",
                                c.url,
                                content_type.as_deref().unwrap_or("no content-type")
                            ),
                        );
                    } else {
                        self.note(format!(
                            "{} answers 200 with something that is not JSON (not reached by clients that stop at the first document)",
                            c.url
                        ));
                    }
                }
                Doc::TooLarge => self.find(
                    Code::ResponseTooLarge,
                    format!("{} is larger than 256 KB", c.url),
                ),
                Doc::Status(_) | Doc::TooManyRedirects | Doc::Failed => {}
            }
            if c.source == PrmSource::Challenge && !found.iter().any(|f| f.0 == c.source) {
                self.find(
                    Code::PrmChallengeUrlFailed,
                    format!(
                        "the challenge's resource_metadata {} does not serve the metadata; clients that follow the challenge stop there",
                        c.url
                    ),
                );
            }
        }
        // The challenge URL may be one of the well-known locations too: list it under both.
        let well_known = discovery::prm_candidates(url, None);
        let wk_source = |u: &str| well_known.iter().find(|c| c.url == u).map(|c| c.source);
        for (source, u, _) in &found {
            self.prm_found_at.push(*source);
            if *source == PrmSource::Challenge {
                if let Some(alias) = wk_source(u) {
                    self.prm_found_at.push(alias);
                }
            }
        }
        let Some((source, prm_url, doc)) = found.first().cloned() else {
            let tried: Vec<&str> = candidates.iter().map(|c| c.url.as_str()).collect();
            self.find(
                Code::PrmNotFound,
                format!(
                    "no protected-resource metadata at any location clients try ({})",
                    tried.join(", ")
                ),
            );
            return false;
        };
        self.note(format!("found at {} ({prm_url})", source.describe()));
        // Claude Code does not read the challenge: it tries the well-known locations.
        let claude = found.iter().find(|f| {
            matches!(
                wk_source(&f.1),
                Some(PrmSource::PathSuffixed | PrmSource::Root)
            )
        });
        let any_well_known = found.iter().any(|f| wk_source(&f.1).is_some());
        if !any_well_known {
            self.find(
                Code::PrmOnlyViaChallenge,
                "the metadata is found only through the challenge's resource_metadata URL; Claude Code never reads WWW-Authenticate and looks at /.well-known/oauth-protected-resource/<path> and the root, so it will not find it",
            );
        } else if claude.is_none() {
            self.find(
                Code::PrmOnlyViaChallenge,
                "the metadata is not at /.well-known/oauth-protected-resource/<path> or the root, where Claude Code looks",
            );
        }
        // What a spec client uses, and what Claude Code uses (when different).
        self.check_prm(&prm_url, &doc, None);
        if let Some((_, c_url, c_doc)) = claude {
            if *c_url != prm_url {
                let (c_url, c_doc) = (c_url.clone(), c_doc.clone());
                self.check_prm(&c_url, &c_doc, Some("what Claude Code reads"));
            }
        }
        self.prm_url = Some(prm_url);
        self.prm_source = Some(source);
        let has_as = doc
            .get("authorization_servers")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(Value::is_string));
        self.prm = Some(doc);
        has_as
    }

    fn check_prm(&mut self, at: &str, doc: &Map<String, Value>, who: Option<&str>) {
        let given = self.opts.url.trim().to_string();
        let whose = who.map(|w| format!(" ({w})")).unwrap_or_default();
        match doc.get("resource").and_then(Value::as_str) {
            None => self.find(
                Code::PrmResourceMissing,
                format!("{at}{whose} has no `resource`; it must be {given}"),
            ),
            Some(r) if r != given => {
                let hint = if r.trim_end_matches('/') == given.trim_end_matches('/') {
                    " (they differ only in a trailing slash: clients compare exactly)"
                } else if r.eq_ignore_ascii_case(&given) {
                    " (they differ only in letter case)"
                } else {
                    ""
                };
                self.find(
                    Code::PrmResourceMismatch,
                    format!("{at}{whose} says resource = {r}, but clients connect to {given}{hint}; clients reject metadata for another resource and send it as the token's audience"),
                );
            }
            Some(r) => self.note(format!("resource = {r} (matches the URL)")),
        }
        match doc.get("authorization_servers") {
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                let list: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                if who.is_none() {
                    self.note(format!("authorization_servers = {}", list.join(", ")));
                }
            }
            Some(_) => self.find(
                Code::PrmNoAuthorizationServers,
                format!("{at}{whose}: `authorization_servers` must be a non-empty array of issuer URLs"),
            ),
            None => self.find(
                Code::PrmNoAuthorizationServers,
                format!("{at}{whose} has no `authorization_servers`: clients cannot find where to log in"),
            ),
        }
        if who.is_none() {
            if let Some(s) = scopes(doc.get("scopes_supported")) {
                self.note(format!("scopes_supported = {}", s.join(" ")));
            }
        }
    }
}
