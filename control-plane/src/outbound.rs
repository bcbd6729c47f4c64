//! The one way the control plane builds an HTTP client for what it fetches from elsewhere (the
//! IdP's discovery document and signing keys): bounded in time, at most three redirects (a
//! caller may narrow that), and our user agent so an IdP's logs name us.

use std::net::IpAddr;
use std::time::Duration;

/// Redirects followed by default; enough for an IdP behind a canonical-host redirect.
pub const MAX_REDIRECTS: usize = 3;

/// A client builder with the shared settings; `timeout` bounds a whole request.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
}

/// An error with its causes, on one line (reqwest's own message leaves out why a connection
/// failed); a cause already in the text is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A URL we will not fetch signing keys from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jwks_uri {uri:?} refused: {problem}")]
pub struct RefusedUrl {
    pub uri: String,
    pub problem: String,
}

/// Checks where a JWKS may be fetched from: `https`, or `http` on a loopback host; never with
/// credentials in the URL.
pub fn check_jwks_uri(uri: &str) -> Result<url::Url, RefusedUrl> {
    let refuse = |problem: &str| RefusedUrl {
        uri: uri.to_string(),
        problem: problem.to_string(),
    };
    let url = url::Url::parse(uri).map_err(|e| refuse(&format!("not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not carry credentials"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(refuse(
            "must be https (plain http is only accepted for loopback hosts)",
        )),
        _ => Err(refuse("must be an https URL")),
    }
}

/// Whether `url`'s host is a loopback address or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}
