use super::*;
use crate::authz::error::ErrorCode;

fn ok(raw: &str) -> RedirectUri {
    validate_registered(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

fn refused(raw: &str) -> String {
    let e = validate_registered(raw).expect_err(raw);
    assert_eq!(e.error, ErrorCode::InvalidRedirectUri, "{raw}");
    e.error_description.into_owned()
}

fn registered(list: &[&str]) -> Vec<RedirectUri> {
    list.iter().map(|r| ok(r)).collect()
}

#[test]
fn accepts_what_real_clients_register() {
    for (raw, kind) in [
        (
            "https://app.example.com/oauth/callback",
            RedirectKind::Https,
        ),
        (
            "https://claude.ai/api/mcp/auth_callback",
            RedirectKind::Https,
        ),
        ("https://vscode.dev/redirect", RedirectKind::Https),
        (
            "https://app.example.com:8443/cb?tenant=a",
            RedirectKind::Https,
        ),
        ("http://localhost:3000/callback", RedirectKind::Loopback),
        ("http://127.0.0.1:33418", RedirectKind::Loopback),
        ("http://127.0.0.1/callback", RedirectKind::Loopback),
        ("http://[::1]:8080/cb", RedirectKind::Loopback),
        (
            "http://127.0.0.1:1455/callback/AbC-12_x",
            RedirectKind::Loopback,
        ),
        (
            "cursor://anysphere.cursor-mcp/oauth/callback",
            RedirectKind::PrivateUse,
        ),
        ("com.example.app:/oauth2redirect", RedirectKind::PrivateUse),
    ] {
        let r = ok(raw);
        assert_eq!(r.as_str(), raw);
        assert_eq!(r.kind(), kind, "{raw}");
    }
}

#[test]
fn refuses_dangerous_schemes() {
    for raw in [
        "javascript:alert(1)",
        "javascript://localhost/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "blob:https://app.example.com/uuid",
        "about:blank",
        "ws://localhost/cb",
        "ftp://127.0.0.1/cb",
        "mailto:a@example.com",
        "c:/windows/cb",
    ] {
        let why = refused(raw);
        assert!(
            why.contains("scheme") || why.contains("printable ASCII") || why.contains("userinfo"),
            "{raw}: {why}"
        );
    }
    assert!(refused("javascript:alert(1)").contains("not allowed"));
    assert!(refused("JavaScript:alert(1)").contains("lowercase"));
}

#[test]
fn refuses_http_except_loopback() {
    for raw in [
        "http://app.example.com/cb",
        "http://127.0.0.1.evil.com/cb",
        "http://localhost.evil.com/cb",
        "http://evil.com/127.0.0.1/cb",
        "http://127.0.0.2/cb",
        "http://[::ffff:127.0.0.1]/cb",
        "http://[::ffff:7f00:1]/cb",
        "http://0.0.0.0/cb",
        "http://10.0.0.1/cb",
    ] {
        assert!(refused(raw).contains("only for loopback"), "{raw}");
    }
}

#[test]
fn refuses_userinfo() {
    for raw in [
        "http://localhost@evil.com",
        "http://localhost@evil.com/cb",
        "https://user:pass@app.example.com/cb",
        "http://@localhost/cb",
        "http://127.0.0.1:80@evil.com/cb",
        "cursor://x@anysphere.cursor-mcp/cb",
    ] {
        assert!(refused(raw).contains("userinfo"), "{raw}");
    }
}

#[test]
fn refuses_fragments_relative_and_odd_characters() {
    assert!(refused("https://app.example.com/cb#x").contains("fragment"));
    assert!(refused("https://app.example.com/cb#").contains("fragment"));
    for raw in ["/cb", "cb", "//app.example.com/cb", "app.example.com/cb"] {
        assert!(refused(raw).contains("absolute"), "{raw}");
    }
    for raw in [
        "https://app.example.com/c b",
        " https://app.example.com/cb",
        "https://app.example.com/cb\t",
        "https://app.example.com/c\tb",
        "http:\\\\127.0.0.1\\cb",
        "https://app.example.com/é",
        "",
    ] {
        let why = refused(raw);
        assert!(
            why.contains("printable ASCII") || why.contains("1 to 2000"),
            "{raw:?}: {why}"
        );
    }
    let long = format!("https://app.example.com/{}", "a".repeat(MAX_LEN));
    assert!(refused(&long).contains("1 to 2000"));
}

#[test]
fn refuses_spellings_a_browser_would_rewrite() {
    for raw in ["HTTP://LOCALHOST/cb", "Https://app.example.com/cb"] {
        assert!(refused(raw).contains("lowercase"), "{raw}");
    }
    for raw in [
        "http://LOCALHOST/cb",
        "https://App.Example.com/cb",
        "http://[0:0:0:0:0:0:0:1]/cb",
        "https://app.example.com/a/../cb",
        "https://app.example.com/a/./cb",
        "https://app.example.com/a/%2e%2e/cb",
        "https://app.example.com/a/%2E%2E/cb",
        "http://127.0.0.1/a/.%2e/cb",
        "https://app.example.com/cb?q=<x>",
        "https://app.example.com?x=1",
    ] {
        let why = refused(raw);
        assert!(
            why.contains("canonical") || why.contains("only for loopback"),
            "{raw}: {why}"
        );
    }
    // IPv4 shorthand for 127.0.0.1 is not the literal.
    for raw in [
        "http://2130706433/cb",
        "http://0x7f.0.0.1/cb",
        "http://127.1/cb",
    ] {
        assert!(refused(raw).contains("only for loopback"), "{raw}");
    }
    assert!(refused("http://127.0.0.1%2eevil.com/cb").contains("percent-encoded"));
    assert!(refused("https://app%2eexample.com/cb").contains("percent-encoded"));
    for raw in [
        "http://127.0.0.1:/cb",
        "http://127.0.0.1:080/cb",
        "http://127.0.0.1:0/cb",
        "http://[::1]x/cb",
    ] {
        let why = refused(raw);
        assert!(
            why.contains("host or port") || why.contains("absolute"),
            "{raw}: {why}"
        );
    }
    assert!(refused("cursor://anysphere.cursor-mcp/a/../cb").contains("canonical"));
}

#[test]
fn exact_match_only() {
    let regs = registered(&[
        "https://app.example.com/cb",
        "https://app.example.com/cb2?x=1",
    ]);
    assert_eq!(
        resolve(Some("https://app.example.com/cb"), &regs),
        Ok("https://app.example.com/cb")
    );
    assert_eq!(
        resolve(Some("https://app.example.com/cb2?x=1"), &regs),
        Ok("https://app.example.com/cb2?x=1")
    );
    for req in [
        "https://app.example.com/cb/",
        "https://app.example.com/cb/evil",
        "https://app.example.com/c",
        "https://app.example.com/CB",
        "https://APP.example.com/cb",
        "https://app.example.com/cb?",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb2",
        "https://app.example.com/cb2?x=1&y=2",
        "https://app.example.com/cb2?x=2",
        "https://app.example.com:443/cb",
        "https://app.example.com:8443/cb",
        "http://app.example.com/cb",
        "https://app.example.com/cb#",
        "https://app.example.com/cb#x",
        "https://app.example.com.evil.com/cb",
        "https://evil.com/https://app.example.com/cb",
        "https://app.example.com@evil.com/cb",
        "https://app.example.com/%63b",
        "https://app.example.com/x/../cb",
        "javascript:alert(1)",
    ] {
        let e = resolve(Some(req), &regs).expect_err(req);
        assert_eq!(e.error, ErrorCode::InvalidRequest, "{req}");
        assert_eq!(
            e.error_description,
            "redirect_uri is not registered for this client"
        );
    }
}

#[test]
fn loopback_may_use_any_port() {
    let regs = registered(&[
        "http://127.0.0.1/callback",
        "http://localhost:3000/cb?x=1",
        "http://[::1]:8080/cb",
        "http://127.0.0.1:33418",
    ]);
    for req in [
        "http://127.0.0.1/callback",
        "http://127.0.0.1:54321/callback",
        "http://127.0.0.1:80/callback",
        "http://127.0.0.1:65535/callback",
        "http://localhost/cb?x=1",
        "http://localhost:49152/cb?x=1",
        "http://[::1]/cb",
        "http://[::1]:1/cb",
        "http://127.0.0.1:40000",
    ] {
        assert_eq!(resolve(Some(req), &regs), Ok(req), "{req}");
    }
    for req in [
        // path and query still exact
        "http://127.0.0.1:54321/callback/",
        "http://127.0.0.1:54321/callback?x=1",
        "http://127.0.0.1:54321/Callback",
        "http://127.0.0.1:54321/",
        "http://localhost:49152/cb",
        "http://localhost:49152/cb?x=2",
        "http://127.0.0.1:40000/",
        // the host as registered, not another loopback spelling
        "http://localhost:54321/callback",
        "http://[::1]:54321/callback",
        "http://127.0.0.1:3000/cb?x=1",
        "http://LOCALHOST:3000/cb?x=1",
        // not loopback, and no tricks with the port
        "https://127.0.0.1:54321/callback",
        "http://127.0.0.1.evil.com:54321/callback",
        "http://127.0.0.1:54321@evil.com/callback",
        "http://127.0.0.1:054321/callback",
        "http://127.0.0.1:65536/callback",
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:/callback",
        "http://[::ffff:127.0.0.1]:54321/callback",
        "http://127.0.0.1:54321/x/../callback",
        "http://127.0.0.1:54321/%2e/callback",
        "http://127.0.0.1:54321/callback#x",
    ] {
        let e = resolve(Some(req), &regs).expect_err(req);
        assert_eq!(e.error, ErrorCode::InvalidRequest, "{req}");
    }
}

#[test]
fn https_and_private_use_get_no_port_exception() {
    let regs = registered(&[
        "https://127.0.0.1/cb",
        "cursor://anysphere.cursor-mcp/oauth/callback",
    ]);
    assert!(resolve(Some("https://127.0.0.1:8443/cb"), &regs).is_err());
    assert!(resolve(
        Some("cursor://anysphere.cursor-mcp:1/oauth/callback"),
        &regs
    )
    .is_err());
    assert_eq!(
        resolve(Some("cursor://anysphere.cursor-mcp/oauth/callback"), &regs),
        Ok("cursor://anysphere.cursor-mcp/oauth/callback")
    );
}

#[test]
fn omitted_redirect_uri() {
    let one = registered(&["http://127.0.0.1/cb"]);
    assert_eq!(resolve(None, &one), Ok("http://127.0.0.1/cb"));
    assert_eq!(resolve(Some(""), &one), Ok("http://127.0.0.1/cb"));
    let two = registered(&["http://127.0.0.1/cb", "https://app.example.com/cb"]);
    let e = resolve(None, &two).unwrap_err();
    assert_eq!(e.error, ErrorCode::InvalidRequest);
    assert!(e.error_description.contains("several"));
    let e = resolve(None, &[]).unwrap_err();
    assert!(e.error_description.contains("no registered redirect URI"));
    assert!(resolve(Some("http://127.0.0.1/cb"), &[]).is_err());
}
