//! The doctor's HTTP: one client with no automatic redirects, every body read up to
//! [`MAX_BODY_BYTES`], metadata redirects reported and followed hop by hop, every request recorded
//! in the current step.

use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use super::{Doctor, Options};
use crate::findings::Code;
use crate::report::Exchange;

/// Largest response body read from any URL.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most redirect hops reported (and followed) for one metadata document.
const MAX_REDIRECTS: usize = 5;

pub(super) fn build_client(opts: &Options) -> reqwest::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("portcullis-doctor/", env!("CARGO_PKG_VERSION")));
    for (host, addr) in &opts.resolve {
        b = b.resolve(host, *addr);
    }
    b.build()
}

/// A response, with its body read up to [`MAX_BODY_BYTES`].
pub(super) struct Fetched {
    pub(super) status: u16,
    pub(super) content_type: Option<String>,
    pub(super) location: Option<String>,
    pub(super) www_authenticate: Vec<String>,
    body: Vec<u8>,
    too_large: bool,
}

impl Fetched {
    /// The body as JSON; `None` when it is not JSON or was cut at [`MAX_BODY_BYTES`].
    pub(super) fn json(&self) -> Option<Value> {
        if self.too_large {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }
}

/// What a metadata URL gave.
pub(super) enum Doc {
    /// A JSON object; `content_type_ok` says whether it was served as JSON.
    Json {
        doc: Map<String, Value>,
        content_type_ok: bool,
        content_type: Option<String>,
    },
    /// 200 but not a JSON object.
    NotJson {
        content_type: Option<String>,
    },
    TooLarge,
    /// Another status (after redirects).
    Status(u16),
    /// A redirect loop or too many hops.
    TooManyRedirects,
    /// Transport error.
    Failed,
}

impl Doctor {
    pub(super) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        read_body: bool,
    ) -> Result<Fetched, String> {
        let resp = req.send().await.map_err(|e| error_chain(&e))?;
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let mut f = Fetched {
            status: resp.status().as_u16(),
            content_type: header(reqwest::header::CONTENT_TYPE),
            location: header(reqwest::header::LOCATION),
            www_authenticate: resp
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect(),
            body: Vec::new(),
            too_large: false,
        };
        if read_body {
            if resp
                .content_length()
                .is_some_and(|n| n > MAX_BODY_BYTES as u64)
            {
                f.too_large = true;
                return Ok(f);
            }
            let mut resp = resp;
            while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
                if f.body.len() + chunk.len() > MAX_BODY_BYTES {
                    f.too_large = true;
                    break;
                }
                f.body.extend_from_slice(&chunk);
            }
        }
        Ok(f)
    }

    /// GETs a metadata document, following (and recording) at most [`MAX_REDIRECTS`] redirects.
    pub(super) async fn get_doc(&mut self, url: &str) -> Doc {
        let Some(http) = self.http.clone() else {
            return Doc::Failed;
        };
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut ex = Exchange {
                method: "GET".into(),
                url: url.clone(),
                ..Exchange::default()
            };
            let fetched = self
                .send(http.get(&url).header("accept", "application/json"), true)
                .await;
            let f = match fetched {
                Ok(f) => f,
                Err(e) => {
                    ex.error = Some(e.clone());
                    self.record(ex);
                    return Doc::Failed;
                }
            };
            ex.status = Some(f.status);
            ex.content_type = f.content_type.clone();
            ex.location = f.location.clone();
            if (300..400).contains(&f.status) {
                let next = f
                    .location
                    .as_deref()
                    .and_then(|l| Url::parse(&url).ok()?.join(l).ok());
                let Some(next) = next else {
                    ex.result = Some("redirect without a usable Location".into());
                    self.record(ex);
                    return Doc::Status(f.status);
                };
                ex.result = Some("redirect (followed, as most clients do)".into());
                self.record(ex);
                self.find(
                    Code::Redirect,
                    format!(
                        "{url} redirects ({}) to {next}; serve the document at the URL itself",
                        f.status
                    ),
                );
                url = next.to_string();
                continue;
            }
            let doc = if f.status != 200 {
                Doc::Status(f.status)
            } else if f.too_large {
                Doc::TooLarge
            } else {
                match serde_json::from_slice::<Value>(&f.body) {
                    Ok(Value::Object(doc)) => Doc::Json {
                        doc,
                        content_type_ok: f
                            .content_type
                            .as_deref()
                            .is_some_and(is_json_content_type),
                        content_type: f.content_type.clone(),
                    },
                    _ => Doc::NotJson {
                        content_type: f.content_type.clone(),
                    },
                }
            };
            ex.result = Some(
                match &doc {
                    Doc::Json { .. } => "JSON document",
                    Doc::NotJson { .. } => "not a JSON object",
                    Doc::TooLarge => "larger than 256 KB",
                    Doc::Status(404) => "not found",
                    Doc::Status(_) => "no document",
                    Doc::TooManyRedirects | Doc::Failed => "",
                }
                .to_string(),
            )
            .filter(|r| !r.is_empty());
            self.record(ex);
            return doc;
        }
        Doc::TooManyRedirects
    }
}

/// `application/json` or any `+json` type, parameters ignored.
fn is_json_content_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests;
