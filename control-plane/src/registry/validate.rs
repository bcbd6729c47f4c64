//! Validation of everything written to the registry. Every error names the field.

use crate::registry::{Grant, ServerFields};

/// First path segments that belong to the control plane or the gateway, never to a server
/// (`oauth`: the authorization server's endpoints in broker mode, passed without credentials).
const RESERVED_FIRST: &[&str] = &["api", "healthz", "readyz", "metrics", "register", "oauth"];
/// Last segments that would collide with the API's own sub-resources.
const RESERVED_LAST: &[&str] = &["connect-config"];

/// A value the registry refuses, naming its field (the API answers 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(field, "control characters are not allowed"));
    }
    Ok(())
}

/// `/segment[/segment]`: segments of `A-Z a-z 0-9 . _ ~ -`, none starting with `.` (so no
/// `.`, `..` or `.well-known`), no reserved names, at most 128 characters.
pub fn path(value: &str) -> Result<(), Invalid> {
    const F: &str = "path";
    let Some(rest) = value.strip_prefix('/') else {
        return Err(invalid(
            F,
            "must start with / (like /github or /team/github)",
        ));
    };
    if value.len() > 128 {
        return Err(invalid(F, "at most 128 characters"));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > 2 {
        return Err(invalid(
            F,
            "at most two segments (/segment or /segment/segment)",
        ));
    }
    for seg in &segments {
        if seg.is_empty() {
            return Err(invalid(F, "empty segment (no trailing / or //)"));
        }
        if seg.starts_with('.') {
            return Err(invalid(
                F,
                format!("segment {seg:?} may not start with . (no ., .. or .well-known)"),
            ));
        }
        if let Some(c) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')))
        {
            return Err(invalid(
                F,
                format!("character {c:?} not allowed (use A-Z a-z 0-9 . _ ~ -)"),
            ));
        }
    }
    if RESERVED_FIRST.contains(&segments[0]) {
        return Err(invalid(F, format!("/{} is reserved", segments[0])));
    }
    if segments.len() == 2 && RESERVED_LAST.contains(&segments[1]) {
        return Err(invalid(
            F,
            format!("a last segment {:?} is reserved", segments[1]),
        ));
    }
    Ok(())
}

/// An absolute http(s) URL with a host and no credentials or fragment.
pub fn http_url(field: &str, value: &str) -> Result<(), Invalid> {
    let url = url::Url::parse(value)
        .map_err(|e| invalid(field, format!("not a URL ({e}): {value:?}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            field,
            format!(
                "must be an http:// or https:// URL, got {}://",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "missing host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(field, "credentials in the URL are not allowed"));
    }
    if url.fragment().is_some() {
        return Err(invalid(field, "a fragment (#…) is not allowed"));
    }
    check_text(field, value, 2048)
}

pub fn server(f: &ServerFields) -> Result<(), Invalid> {
    if f.name.trim().is_empty() {
        return Err(invalid("name", "required"));
    }
    if f.name.trim() == "*" {
        return Err(invalid(
            "name",
            "\"*\" is reserved (it means every server in a grant)",
        ));
    }
    check_text("name", &f.name, 128)?;
    check_text("description", &f.description, 4096)?;
    path(&f.path)?;
    if f.proxy_pass_url.is_empty() {
        return Err(invalid("proxy_pass_url", "required"));
    }
    http_url("proxy_pass_url", &f.proxy_pass_url)?;
    if let Some(endpoint) = &f.mcp_endpoint {
        http_url("mcp_endpoint", endpoint)?;
    }
    if let Some(id) = &f.oauth_client_id {
        if id.is_empty()
            || id.len() > 512
            || id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "oauth_client_id",
                "1-512 characters without spaces",
            ));
        }
    }
    if f.tags.len() > 32 {
        return Err(invalid("tags", "at most 32 tags"));
    }
    for t in &f.tags {
        if t.is_empty() || t.contains(',') {
            return Err(invalid(
                "tags",
                format!("bad tag {t:?} (empty or contains a comma)"),
            ));
        }
        check_text("tags", t, 64)?;
    }
    if let Some(l) = &f.license {
        check_text("license", l, 128)?;
    }
    if f.num_tools.is_some_and(|n| n < 0) {
        return Err(invalid("num_tools", "must not be negative"));
    }
    Ok(())
}

/// Normalises tags: trimmed, non-empty, de-duplicated, order kept.
pub fn normalize_tags<I: IntoIterator<Item = String>>(tags: I) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim().to_string();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Scope names: what `scope="…"` carries, so no spaces, quotes, commas or backslashes.
pub fn scope_name(field: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.len() > 128 {
        return Err(invalid(field, "1-128 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | ',' | '\\'))
    {
        return Err(invalid(
            field,
            format!("character {c:?} not allowed in a scope name"),
        ));
    }
    Ok(())
}

pub fn group_name(name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(invalid("group", "required"));
    }
    check_text("group", name, 256)?;
    if name.chars().any(char::is_control) {
        return Err(invalid("group", "control characters are not allowed"));
    }
    Ok(())
}

/// Grants; `server_exists` says whether a server name is registered.
pub fn grants(grants: &[Grant], server_exists: impl Fn(&str) -> bool) -> Result<(), Invalid> {
    if grants.len() > 256 {
        return Err(invalid("grants", "at most 256 grants"));
    }
    for (i, g) in grants.iter().enumerate() {
        if g.server != "*" && !server_exists(&g.server) {
            return Err(invalid(
                &format!("grants[{i}].server"),
                format!(
                    "no registered server is named {:?} (use a server name or *)",
                    g.server
                ),
            ));
        }
        for (list, values) in [("methods", &g.methods), ("tools", &g.tools)] {
            for (j, p) in values.iter().enumerate() {
                policy::Pattern::parse(p)
                    .map_err(|e| invalid(&format!("grants[{i}].{list}[{j}]"), e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in ["/github", "/team/github", "/a.b", "/x-y_z~1"] {
            path(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "github",
            "/",
            "//x",
            "/x/",
            "/a/b/c",
            "/..",
            "/a/..",
            "/.well-known",
            "/a/.well-known",
            "/a%2fb",
            "/a b",
            "/api",
            "/healthz",
            "/x/connect-config",
            "/ü",
            "/a?b",
            "/a#b",
        ] {
            let e = path(bad).unwrap_err();
            assert!(e.to_string().starts_with("path:"), "{bad}: {e}");
        }
    }

    #[test]
    fn urls() {
        http_url("u", "https://x.example.com/mcp").unwrap();
        for bad in [
            "ftp://x",
            "javascript:alert(1)",
            "http://u:p@x",
            "x",
            "http://x/#f",
            "file:///etc/passwd",
        ] {
            assert!(http_url("u", bad).is_err(), "{bad}");
        }
    }
}
