//! The authorization server's HTML: the login-and-consent page and the error page. Server-
//! rendered, no JavaScript, every value escaped. The caller sends them with
//! `Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; form-action 'self';
//! frame-ancestors 'none'` (see [`CONTENT_SECURITY_POLICY`]).

/// No scripts, no framing, forms only to ourselves.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;\
    padding:0 1rem;line-height:1.5}label{display:block;margin-top:1rem}input{width:100%;\
    padding:.4rem;font-size:1rem}button{margin-top:1.2rem;margin-right:.5rem;padding:.5rem 1rem;\
    font-size:1rem}.warn{background:#fff3cd;padding:.5rem}.error{color:#a00}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    )
}

/// What the login page says about the request.
pub struct LoginPage<'a> {
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub redirect_host: &'a str,
    /// Every redirect URI of the client is on this machine (a CLI or desktop app).
    pub loopback_only: bool,
    pub server: &'a str,
    pub scopes: &'a [String],
    /// The signed authorization request (hidden field).
    pub request: &'a str,
    pub error: Option<&'a str>,
    pub username: &'a str,
    /// People log in at this IdP (its host): the page asks for consent only, then sends them
    /// there.
    pub upstream: Option<&'a str>,
    /// The browser is signed in as this person (a session): only the approval is asked.
    pub signed_in_as: Option<&'a str>,
    /// A client known by its metadata document: the host of its `client_id` URL.
    pub published_by: Option<&'a str>,
    /// The signed-in person's groups do not open the server; these groups would (maybe none).
    pub lacking_groups: Option<&'a [String]>,
}

pub fn login(p: &LoginPage<'_>) -> String {
    let scopes = if p.scopes.is_empty() {
        "no extra scopes (access comes from your groups)".to_string()
    } else {
        p.scopes
            .iter()
            .map(|s| format!("<code>{}</code>", escape(s)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let error = p
        .error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let loopback = match (p.loopback_only, p.published_by) {
        // Anyone can name a loopback redirect in a document: the host vouches for nothing here.
        (true, Some(host)) => format!(
            "<p class=\"error\" role=\"alert\">Its sign-in returns to your own computer, so any \
             program on it can present itself as this application from {}. Allow only if you \
             started this sign-in yourself, just now.</p>",
            escape(host)
        ),
        (true, None) => "<p>It runs on your own computer: after you approve, your browser hands \
             the login to it on this machine.</p>"
            .to_string(),
        (false, _) => String::new(),
    };
    let publisher = p
        .published_by
        .map(|host| format!(", published by <strong>{}</strong>", escape(host)))
        .unwrap_or_default();
    let (fields, approve) = match (p.signed_in_as, p.upstream) {
        (Some(user), _) => match p.lacking_groups {
            Some(groups) => (
                format!(
                    "<p>You are signed in as <strong>{}</strong>.</p>\
                     <p class=\"warn\" role=\"alert\">None of your groups gives access to \
                     <code>{}</code>: every call to it will be refused (403) until an \
                     administrator adds you to {}.</p>\
                     <input type=\"hidden\" name=\"acknowledged\" value=\"yes\">",
                    escape(user),
                    escape(p.server),
                    if groups.is_empty() {
                        "a group that it is mapped to (no group is yet)".to_string()
                    } else {
                        format!(
                            "one of these groups: {}",
                            groups
                                .iter()
                                .map(|g| format!("<strong>{}</strong>", escape(g)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
                "Continue anyway".to_string(),
            ),
            None => (
                format!("<p>You are signed in as <strong>{}</strong>.</p>", escape(user)),
                "Allow".to_string(),
            ),
        },
        (None, Some(idp)) => (
            String::new(),
            format!("Allow and sign in at {}", escape(idp)),
        ),
        (None, None) => (
            format!(
                "<label for=\"username\">Username</label>\
                 <input id=\"username\" name=\"username\" autocomplete=\"username\" value=\"{}\" required>\
                 <label for=\"password\">Password</label>\
                 <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>",
                escape(p.username)
            ),
            "Sign in and allow".to_string(),
        ),
    };
    page(
        "Sign in to Portcullis",
        &format!(
            "<h1>Sign in to Portcullis</h1>{error}\
             <p><strong>{name}</strong> (<code>{id}</code>{publisher}) asks to use the MCP server \
             <code>{server}</code> as you.</p>\
             <p>After sign-in you are sent back to <strong>{host}</strong>.</p>{loopback}\
             <p>Scopes: {scopes}</p>\
             <form method=\"post\" action=\"/oauth/authorize\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">{fields}\
             <button type=\"submit\" name=\"decision\" value=\"approve\">{approve}</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button>\
             </form>",
            name = escape(p.client_name),
            id = escape(p.client_id),
            server = escape(p.server),
            host = escape(p.redirect_host),
            request = escape(p.request),
            fields = fields,
            approve = approve,
        ),
    )
}

/// An error that must not go back to the client (unknown client, unregistered redirect URI).
pub fn error(title: &str, detail: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p>\
             <p>Nothing was sent to the application. Start the login again from it.</p>",
            escape(title),
            escape(detail)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        let html = login(&LoginPage {
            client_name: "<script>alert(1)</script>",
            client_id: "c\"id",
            redirect_host: "evil.example'",
            loopback_only: false,
            server: "http://x/&",
            scopes: &["a<b".into()],
            request: "r\"><img>",
            error: Some("<b>"),
            username: "\"><x",
            upstream: None,
            signed_in_as: None,
            published_by: None,
            lacking_groups: None,
        });
        for raw in [
            "<script>",
            "c\"id",
            "evil.example'",
            "a<b",
            "r\"><img>",
            "<b>",
            "\"><x",
        ] {
            assert!(!html.contains(raw), "{raw} reached the page unescaped");
        }
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script"), "no script at all");
        let e = error("Bad <request>", "redirect_uri \"javascript:x\"");
        assert!(!e.contains("<request>") && !e.contains("\"javascript"));
    }

    #[test]
    fn approve_is_the_first_submit_button() {
        let html = login(&LoginPage {
            client_name: "n",
            client_id: "i",
            redirect_host: "h",
            loopback_only: true,
            server: "s",
            scopes: &[],
            request: "r",
            error: None,
            username: "",
            upstream: None,
            signed_in_as: None,
            published_by: None,
            lacking_groups: None,
        });
        let approve = html.find("value=\"approve\"").unwrap();
        let deny = html.find("value=\"deny\"").unwrap();
        assert!(approve < deny);
    }
}
