//! Connect configs: the full matrix (assistant × client id set/unset × IdP with DCR / without /
//! with CIMD × callback port set/unset) with each case's login method, warnings and rendered
//! config, plus the resolution rules, quoting, strict-redirect IdPs and the static-token fallback.
//!
//! The rendered text of every matrix case is compared with
//! `tests/connect_fixtures/matrix.golden`; after an intended change, regenerate it with
//! `UPDATE_GOLDEN=1 cargo test -p portcullis-control-plane --test connect_matrix` and review the diff.

// Tests may unwrap: a panic is the failure report (the workspace lints deny it elsewhere).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use portcullis::connect::{
    self, render, AppendSource, ConnectConfig, ConnectError, ConnectRequest, ConnectSettings,
    Format, Ide, IdpCapabilities, LoginMethod, ServerEntry, StaticToken, WarningCode,
};
use url::Url;

const CLIENT_ID: &str = "mcp-gateway-ide";
const PORT: u16 = 33418;

fn server() -> ServerEntry {
    ServerEntry {
        name: "my-server".into(),
        path: "/my-server".into(),
        proxy_pass_url: "http://upstream.internal:8000/".into(),
        ..Default::default()
    }
}

fn settings() -> ConnectSettings {
    ConnectSettings {
        public_url: "https://gateway.example.com".into(),
        advertised_scopes: vec!["openid".into(), "email".into(), "profile".into()],
        ..Default::default()
    }
}

#[derive(Clone, Copy, Debug)]
enum Idp {
    Dcr,
    NoDcr,
    Cimd,
}

impl Idp {
    const ALL: [Idp; 3] = [Idp::Dcr, Idp::NoDcr, Idp::Cimd];
    fn caps(self) -> IdpCapabilities {
        let issuer = Some("https://idp.example.com/realms/acme".to_string());
        match self {
            Idp::Dcr => IdpCapabilities {
                issuer,
                registration_endpoint: Some(
                    Url::parse("https://idp.example.com/realms/acme/register").unwrap(),
                ),
                ..Default::default()
            },
            Idp::NoDcr => IdpCapabilities {
                issuer,
                ..Default::default()
            },
            Idp::Cimd => IdpCapabilities {
                issuer,
                cimd_supported: true,
                ..Default::default()
            },
        }
    }
    fn label(self) -> &'static str {
        match self {
            Idp::Dcr => "dcr",
            Idp::NoDcr => "no-dcr",
            Idp::Cimd => "cimd",
        }
    }
}

fn one(
    server: &ServerEntry,
    settings: &ConnectSettings,
    idp: Option<&IdpCapabilities>,
    ide: Ide,
) -> ConnectConfig {
    render(ConnectRequest {
        server,
        settings,
        idp,
        ide: Some(ide),
    })
    .expect("renders")
}

fn codes(c: &ConnectConfig) -> BTreeSet<&'static str> {
    c.warnings.iter().map(|w| w.code.as_str()).collect()
}

/// Expected login method per assistant for (client id set?, IdP), static-token fallback off.
/// Columns: client id set with IdP dcr / no-dcr / cimd, then client id unset with the same.
/// The callback port never changes the method.
const METHODS: &str = "
cursor          pre  pre  pre   dcr  none none
claude-code     pre  pre  pre   dcr  none cimd
codex           pre  pre  pre   dcr  none cimd
vscode          dcr  pre  cimd  dcr  none cimd
claude-desktop  pre  pre  pre   dcr  none none
windsurf        dcr  none none  dcr  none none
roo-code        none none none  none none none
kiro            pre  pre  pre   dcr  none none
goose           dcr  none none  dcr  none none
curl            none none none  none none none
";

fn method_of(s: &str) -> LoginMethod {
    match s {
        "pre" => LoginMethod::PreRegistered,
        "dcr" => LoginMethod::Dcr,
        "cimd" => LoginMethod::Cimd,
        "none" => LoginMethod::None,
        other => panic!("bad method {other}"),
    }
}

fn expected_method(ide: Ide, client: bool, idp: Idp) -> LoginMethod {
    let row = METHODS
        .lines()
        .map(str::split_whitespace)
        .map(std::iter::Iterator::collect::<Vec<_>>)
        .find(|w| w.first() == Some(&ide.as_str()))
        .unwrap_or_else(|| panic!("no row for {ide}"));
    let col = (if client { 0 } else { 3 })
        + match idp {
            Idp::Dcr => 0,
            Idp::NoDcr => 1,
            Idp::Cimd => 2,
        };
    method_of(row[1 + col])
}

/// The warning codes each case must carry (and no others).
fn expected_warnings(ide: Ide, client: bool, idp: Idp, port: bool) -> BTreeSet<&'static str> {
    let sup = ide.support();
    let method = expected_method(ide, client, idp);
    let mut w = BTreeSet::new();
    if method == LoginMethod::None {
        w.insert("no_login_method");
    }
    if client && !sup.client_id {
        // VS Code without DCR/CIMD asks for the id instead.
        if method == LoginMethod::PreRegistered {
            w.insert("client_id_manual_entry");
        } else {
            w.insert("client_id_unsupported");
        }
    }
    if port && method == LoginMethod::PreRegistered && !sup.callback_port {
        w.insert("callback_port_ignored");
    }
    w
}

fn shell_line(text: &str) -> &str {
    text.lines()
        .rfind(|l| !l.starts_with('#') && !l.starts_with("export "))
        .unwrap()
}

#[test]
fn matrix() {
    let mut golden = String::new();
    let mut n = 0;
    for ide in Ide::ALL {
        for client in [true, false] {
            for idp in Idp::ALL {
                for port in [true, false] {
                    n += 1;
                    let mut st = settings();
                    if client {
                        st.ide_oauth_client_id = Some(CLIENT_ID.into());
                    }
                    if port {
                        st.ide_oauth_callback_port = Some(PORT);
                    }
                    let caps = idp.caps();
                    let c = one(&server(), &st, Some(&caps), ide);
                    let case = format!(
                        "{ide} client={} idp={} port={}",
                        if client { "set" } else { "unset" },
                        idp.label(),
                        if port { "set" } else { "unset" }
                    );
                    let r = &c.rendered[&ide];
                    assert_eq!(c.rendered.len(), 1, "{case}");
                    assert_eq!(c.login_method, Some(r.login_method), "{case}");
                    assert_eq!(r.login_method, expected_method(ide, client, idp), "{case}");
                    assert_eq!(
                        codes(&c),
                        expected_warnings(ide, client, idp, port),
                        "{case}"
                    );
                    assert_eq!(c.url, "https://gateway.example.com/my-server/mcp", "{case}");
                    assert!(r.text.contains(&c.url), "{case}: URL missing");

                    // The client id is in the config exactly when the assistant logs in with it
                    // and its config has a place for it.
                    let carries_id =
                        r.login_method == LoginMethod::PreRegistered && ide.support().client_id;
                    assert_eq!(r.text.contains(CLIENT_ID), carries_id, "{case}: client id");
                    // The port is written only where it is pinned.
                    let pins_port = ide.support().callback_port
                        && port
                        && (r.login_method == LoginMethod::PreRegistered
                            || (ide == Ide::ClaudeCode
                                && matches!(r.login_method, LoginMethod::Dcr | LoginMethod::Cimd)));
                    assert_eq!(
                        r.text.contains(&PORT.to_string()),
                        pins_port,
                        "{case}: port"
                    );
                    // No static token was offered.
                    assert!(!r.text.contains("Authorization"), "{case}: auth header");

                    match r.format {
                        Format::Json => {
                            serde_json::from_str::<serde_json::Value>(&r.text)
                                .unwrap_or_else(|e| panic!("{case}: not JSON: {e}"));
                        }
                        Format::Shell => {
                            let split = shlex::split(shell_line(&r.text)).expect("splits");
                            assert_eq!(Some(&split), r.argv.as_ref(), "{case}: argv");
                        }
                        Format::Yaml => {}
                    }

                    golden.push_str(&format!(
                        "=== {case}\nmethod: {}\n",
                        serde_json::to_value(r.login_method)
                            .unwrap()
                            .as_str()
                            .unwrap()
                    ));
                    for w in &c.warnings {
                        golden.push_str(&format!("warning: {}: {}\n", w.code.as_str(), w.message));
                    }
                    golden.push_str(&r.text);
                    if !r.text.ends_with('\n') {
                        golden.push('\n');
                    }
                }
            }
        }
    }
    assert_eq!(n, 120);
    check_golden("matrix.golden", &golden);
}

fn check_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/connect_fixtures")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the rendered output at line {}:\n  golden: {:?}\n  actual: {:?}\n\
             (UPDATE_GOLDEN=1 regenerates it; review the diff)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn all_assistants_when_none_requested() {
    let mut st = settings();
    st.ide_oauth_client_id = Some(CLIENT_ID.into());
    let caps = Idp::NoDcr.caps();
    let c = render(ConnectRequest {
        server: &server(),
        settings: &st,
        idp: Some(&caps),
        ide: None,
    })
    .unwrap();
    assert_eq!(c.rendered.len(), Ide::ALL.len());
    assert_eq!(c.login_method, None);
    // Per-assistant warnings are collected at the top, tagged with their assistant.
    let per_ide: usize = c.rendered.values().map(|r| r.warnings.len()).sum();
    assert_eq!(c.warnings.len(), per_ide);
    assert!(c
        .warnings
        .iter()
        .any(|w| w.code == WarningCode::ClientIdUnsupported && w.ide == Some(Ide::Windsurf)));

    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["url"], "https://gateway.example.com/my-server/mcp");
    assert_eq!(v["oauth_client_id"], CLIENT_ID);
    assert_eq!(v["append_mcp_path"], true);
    assert_eq!(v["append_mcp_path_source"], "auto_detected");
    assert_eq!(
        v["scopes"],
        serde_json::json!(["openid", "email", "profile"])
    );
    assert_eq!(
        v["rendered"]["claude-code"]["login_method"],
        "pre_registered"
    );
    assert_eq!(v["rendered"]["vscode"]["login_method"], "pre_registered");
    assert_eq!(v["rendered"]["claude-code"]["format"], "shell");
    assert_eq!(
        v["rendered"]["claude-code"]["text"],
        "claude mcp add --transport http --client-id mcp-gateway-ide my-server https://gateway.example.com/my-server/mcp"
    );
    assert_eq!(v["rendered"]["roo-code"]["warnings"][0]["ide"], "roo-code");
    assert!(v.get("login_method").is_none());
}

#[test]
fn client_id_resolution() {
    let mut s = server();
    let mut st = settings();
    assert_eq!(connect::resolve_client_id(&s, &st), None);
    st.ide_oauth_client_id = Some("global".into());
    assert_eq!(
        connect::resolve_client_id(&s, &st).as_deref(),
        Some("global")
    );
    s.oauth_client_id = Some("per-server".into());
    assert_eq!(
        connect::resolve_client_id(&s, &st).as_deref(),
        Some("per-server")
    );
    s.oauth_client_id = Some("  ".into());
    assert_eq!(
        connect::resolve_client_id(&s, &st).as_deref(),
        Some("global")
    );
    st.ide_oauth_client_id = Some(String::new());
    assert_eq!(connect::resolve_client_id(&s, &st), None);
}

#[test]
fn url_resolution() {
    let st = settings();
    let url = |proxy: &str, append: Option<bool>, ep: Option<&str>| {
        let s = ServerEntry {
            proxy_pass_url: proxy.into(),
            append_mcp_path: append,
            mcp_endpoint: ep.map(str::to_string),
            ..server()
        };
        let r = connect::resolve_url(&s, &st).unwrap();
        (r.url, r.append_mcp_path, r.source)
    };
    use AppendSource::*;
    let base = "https://gateway.example.com/my-server";
    // Auto-detection from proxy_pass_url.
    assert_eq!(
        url("http://up:8000/", None, None),
        (format!("{base}/mcp"), true, AutoDetected)
    );
    assert_eq!(
        url("http://up:8000", None, None),
        (format!("{base}/mcp"), true, AutoDetected)
    );
    assert_eq!(
        url("http://up:8000/api", None, None),
        (format!("{base}/mcp"), true, AutoDetected)
    );
    assert_eq!(
        url("http://up:8000/mcp", None, None),
        (base.to_string(), false, AutoDetected)
    );
    assert_eq!(
        url("http://up:8000/v1/mcp/", None, None),
        (base.to_string(), false, AutoDetected)
    );
    assert_eq!(
        url("http://up:8000/SSE", None, None),
        (format!("{base}/mcp"), true, AutoDetected)
    );
    assert_eq!(
        url("http://up:8000/mcpx", None, None),
        (format!("{base}/mcp"), true, AutoDetected)
    );
    // Explicit values win over auto-detection.
    assert_eq!(
        url("http://up:8000/mcp", Some(true), None),
        (format!("{base}/mcp"), true, Configured)
    );
    assert_eq!(
        url("http://up:8000/", Some(false), None),
        (base.to_string(), false, Configured)
    );
    // mcp_endpoint overrides the whole URL.
    assert_eq!(
        url(
            "http://up:8000/",
            Some(true),
            Some("https://other.example.com/x/stream")
        ),
        (
            "https://other.example.com/x/stream".to_string(),
            false,
            McpEndpoint
        )
    );
    assert_eq!(
        url("http://up:8000/", None, Some("/custom/endpoint")),
        (
            "https://gateway.example.com/custom/endpoint".to_string(),
            false,
            McpEndpoint
        )
    );
    assert_eq!(url("http://up:8000/", None, Some("  ")).2, AutoDetected);
    // No trailing slash, as in the protected-resource `resource` (the registry's `mcp_url`).
    assert_eq!(
        url(
            "http://up:8000/",
            None,
            Some("https://other.example.com/custom/endpoint/")
        )
        .0,
        "https://other.example.com/custom/endpoint"
    );
    assert_eq!(
        url("http://up:8000/", None, Some("https://other.example.com")).0,
        "https://other.example.com"
    );
    assert_eq!(
        url("http://up:8000/sse", None, None),
        (base.to_string(), false, AutoDetected)
    );

    // A public URL with a path prefix and a trailing slash; a path without leading slash.
    let st2 = ConnectSettings {
        public_url: "https://example.com/gw/".into(),
        ..settings()
    };
    let s2 = ServerEntry {
        path: "team/tools/".into(),
        ..server()
    };
    assert_eq!(
        connect::resolve_url(&s2, &st2).unwrap().url,
        "https://example.com/gw/team/tools/mcp"
    );

    // Errors.
    let bad = ConnectSettings {
        public_url: "gateway.example.com".into(),
        ..settings()
    };
    assert!(matches!(
        connect::resolve_url(&server(), &bad),
        Err(ConnectError::BadPublicUrl(_))
    ));
    let s3 = ServerEntry {
        mcp_endpoint: Some("ftp://x/y".into()),
        ..server()
    };
    assert!(matches!(
        connect::resolve_url(&s3, &st),
        Err(ConnectError::BadMcpEndpoint(_))
    ));
}

#[test]
fn quoting_names_ids_and_urls() {
    let s = ServerEntry {
        name: "Team's \"odd\" server $(rm -rf /)".into(),
        mcp_endpoint: Some("https://gateway.example.com/o'k/mcp?a=1&b=$HOME".into()),
        ..server()
    };
    let mut st = settings();
    st.ide_oauth_client_id = Some("-id with 'quotes' and \"dq\" $x `y`".into());
    st.ide_oauth_callback_port = Some(PORT);
    let caps = Idp::NoDcr.caps();
    let c = render(ConnectRequest {
        server: &s,
        settings: &st,
        idp: Some(&caps),
        ide: None,
    })
    .unwrap();
    assert_eq!(c.name, "Team-s-odd-server-rm-rf");
    assert!(codes(&c).contains("name_adjusted"));
    assert_eq!(c.url, "https://gateway.example.com/o'k/mcp?a=1&b=$HOME");

    let id = st.ide_oauth_client_id.clone().unwrap();
    for ide in [Ide::ClaudeCode, Ide::Codex] {
        let r = &c.rendered[&ide];
        let argv = shlex::split(shell_line(&r.text)).unwrap();
        assert_eq!(Some(&argv), r.argv.as_ref(), "{ide}");
        assert!(argv.contains(&c.url), "{ide}: URL is one argument");
        assert!(argv.contains(&c.name), "{ide}: name is one argument");
        // A value starting with '-' is attached with '=' so no parser takes it for a flag.
        let flag = if ide == Ide::Codex {
            "--oauth-client-id"
        } else {
            "--client-id"
        };
        assert!(argv.contains(&format!("{flag}={id}")), "{ide}: {argv:?}");
    }
    let cc = &c.rendered[&Ide::ClaudeCode];
    assert_eq!(
        cc.text,
        "claude mcp add --transport http '--client-id=-id with '\\''quotes'\\'' and \"dq\" $x `y`' \
         --callback-port 33418 Team-s-odd-server-rm-rf 'https://gateway.example.com/o'\\''k/mcp?a=1&b=$HOME'"
    );
    // JSON configs carry the values verbatim.
    let cursor: serde_json::Value = serde_json::from_str(&c.rendered[&Ide::Cursor].text).unwrap();
    assert_eq!(
        cursor["mcpServers"]["Team-s-odd-server-rm-rf"]["auth"]["CLIENT_ID"],
        id.as_str()
    );
    let desktop: serde_json::Value =
        serde_json::from_str(&c.rendered[&Ide::ClaudeDesktop].text).unwrap();
    let info = desktop["mcpServers"]["Team-s-odd-server-rm-rf"]["args"][4]
        .as_str()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(info).unwrap()["client_id"],
        id.as_str()
    );
    // YAML: a double-quoted scalar.
    assert!(c.rendered[&Ide::Goose]
        .text
        .contains("uri: \"https://gateway.example.com/o'k/mcp?a=1&b=$HOME\"\n"));
}

#[test]
fn unusable_name_falls_back_to_path() {
    let s = ServerEntry {
        name: "💥".into(),
        path: "/tools/search".into(),
        ..server()
    };
    assert_eq!(connect::config_name(&s), "tools-search");
    let s = ServerEntry {
        name: " ".into(),
        path: "/".into(),
        ..server()
    };
    assert_eq!(connect::config_name(&s), "mcp-server");
}

fn strict_caps() -> IdpCapabilities {
    Idp::NoDcr.caps().with_strict_redirects(true)
}

#[test]
fn strict_redirect_idp_needs_a_pinned_port() {
    let mut st = settings();
    st.ide_oauth_client_id = Some(CLIENT_ID.into());
    let caps = strict_caps();

    // Port not set: even the assistants that can pin it would use a random one.
    for ide in [Ide::ClaudeCode, Ide::ClaudeDesktop, Ide::Kiro] {
        let c = one(&server(), &st, Some(&caps), ide);
        assert_eq!(
            codes(&c),
            BTreeSet::from(["callback_port_required"]),
            "{ide}"
        );
    }
    // Codex can pin its port (globally) but appends /callback/<id>: no fixed redirect matches.
    for port in [None, Some(PORT)] {
        st.ide_oauth_callback_port = port;
        let c = one(&server(), &st, Some(&caps), Ide::Codex);
        assert_eq!(
            codes(&c),
            BTreeSet::from(["callback_path_unmatchable"]),
            "codex {port:?}"
        );
        let w = &c.warnings[0];
        assert!(
            w.message.contains("mcp_oauth_callback_port")
                && w.message.contains("/callback/<id>")
                && w.message.contains("broker mode"),
            "{}",
            w.message
        );
    }
    st.ide_oauth_callback_port = None;
    // Assistants that cannot pin the port: warned, with what works instead.
    for ide in [Ide::Cursor, Ide::VsCode] {
        for port in [None, Some(PORT)] {
            st.ide_oauth_callback_port = port;
            let c = one(&server(), &st, Some(&caps), ide);
            assert_eq!(
                codes(&c),
                {
                    let mut s = BTreeSet::from(["callback_port_unpinnable"]);
                    if ide == Ide::VsCode {
                        s.insert("client_id_manual_entry");
                    }
                    s
                },
                "{ide} {port:?}"
            );
            let w = c
                .warnings
                .iter()
                .find(|w| w.code == WarningCode::CallbackPortUnpinnable)
                .unwrap();
            assert!(
                w.message.contains("Claude Code (--callback-port)"),
                "{}",
                w.message
            );
            assert_eq!(w.ide, Some(ide));
        }
    }
    // Port set: the assistants that can pin it do, with no warning.
    st.ide_oauth_callback_port = Some(PORT);
    let c = one(&server(), &st, Some(&caps), Ide::ClaudeCode);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.rendered[&Ide::ClaudeCode].text,
        "claude mcp add --transport http --client-id mcp-gateway-ide --callback-port 33418 my-server https://gateway.example.com/my-server/mcp"
    );
    let c = one(&server(), &st, Some(&caps), Ide::ClaudeDesktop);
    assert!(c.warnings.is_empty());
    let v: serde_json::Value = serde_json::from_str(&c.rendered[&Ide::ClaudeDesktop].text).unwrap();
    assert_eq!(
        v["mcpServers"]["my-server"],
        serde_json::json!({
            "command": "npx",
            "args": ["mcp-remote", "https://gateway.example.com/my-server/mcp", "33418",
                     "--static-oauth-client-info", "{\"client_id\":\"mcp-gateway-ide\"}",
                     "--callback-path", "/callback"]
        })
    );
    let c = one(&server(), &st, Some(&caps), Ide::Kiro);
    assert!(c.warnings.is_empty());
    let v: serde_json::Value = serde_json::from_str(&c.rendered[&Ide::Kiro].text).unwrap();
    assert_eq!(
        v["mcpServers"]["my-server"]["oauth"],
        serde_json::json!({"clientId": "mcp-gateway-ide", "redirectUri": "http://localhost:33418/callback"})
    );

    // With DCR the assistant registers its own redirect URI: no port warnings.
    let dcr_strict = Idp::Dcr.caps().with_strict_redirects(true);
    st.ide_oauth_client_id = None;
    for ide in [Ide::Cursor, Ide::Codex] {
        let c = one(&server(), &st, Some(&dcr_strict), ide);
        assert_eq!(c.login_method, Some(LoginMethod::Dcr));
        assert!(c.warnings.is_empty(), "{ide}: {:?}", c.warnings);
    }
}

#[test]
fn static_token_fallback() {
    let secret = "s3cr3t-gateway-token";
    let caps = Idp::NoDcr.caps();
    let mut st = settings();

    // Allowed and visible: embedded, with a warning that it is a shared credential.
    st.static_token = StaticToken::Visible(secret.into());
    for ide in Ide::ALL {
        let c = one(&server(), &st, Some(&caps), ide);
        assert_eq!(c.login_method, Some(LoginMethod::StaticToken), "{ide}");
        assert_eq!(
            codes(&c),
            BTreeSet::from(["static_token_fallback"]),
            "{ide}"
        );
        let r = &c.rendered[&ide];
        let carried = r.text.contains(secret) || r.env.values().any(|v| v == secret);
        assert!(carried, "{ide}: token missing:\n{}", r.text);
    }
    let c = one(&server(), &st, Some(&caps), Ide::Cursor);
    let v: serde_json::Value = serde_json::from_str(&c.rendered[&Ide::Cursor].text).unwrap();
    assert_eq!(
        v["mcpServers"]["my-server"]["headers"]["Authorization"],
        format!("Bearer {secret}")
    );
    let c = one(&server(), &st, Some(&caps), Ide::Codex);
    assert_eq!(
        c.rendered[&Ide::Codex].argv.as_ref().unwrap().join(" "),
        "codex mcp add my-server --url https://gateway.example.com/my-server/mcp --bearer-token-env-var MCP_AUTH_TOKEN"
    );
    assert!(c.rendered[&Ide::Codex]
        .text
        .contains(&format!("export MCP_AUTH_TOKEN={secret}\n")));

    // A per-user login wins over the fallback wherever one works.
    let dcr = Idp::Dcr.caps();
    let c = one(&server(), &st, Some(&dcr), Ide::ClaudeCode);
    assert_eq!(c.login_method, Some(LoginMethod::Dcr));
    assert!(!serde_json::to_string(&c).unwrap().contains(secret));
    st.ide_oauth_client_id = Some(CLIENT_ID.into());
    let c = one(&server(), &st, Some(&caps), Ide::Cursor);
    assert_eq!(c.login_method, Some(LoginMethod::PreRegistered));
    assert!(!serde_json::to_string(&c).unwrap().contains(secret));
    st.ide_oauth_client_id = None;

    // Allowed, but this caller may not see it: placeholders only.
    st.static_token = StaticToken::Hidden;
    let c = render(ConnectRequest {
        server: &server(),
        settings: &st,
        idp: Some(&caps),
        ide: None,
    })
    .unwrap();
    for (ide, r) in &c.rendered {
        assert_eq!(r.login_method, LoginMethod::StaticToken, "{ide}");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.code == WarningCode::StaticTokenHidden),
            "{ide}"
        );
        assert!(r.env.is_empty(), "{ide}");
    }
    let v: serde_json::Value = serde_json::from_str(&c.rendered[&Ide::VsCode].text).unwrap();
    assert_eq!(
        v["servers"]["my-server"]["headers"]["Authorization"],
        "Bearer ${input:mcp-auth-token}"
    );
    assert_eq!(v["inputs"][0]["password"], true);
    assert_eq!(
        c.rendered[&Ide::ClaudeCode].text,
        "claude mcp add --transport http my-server https://gateway.example.com/my-server/mcp -H \"Authorization: Bearer ${MCP_AUTH_TOKEN}\""
    );
}

#[test]
fn no_login_method_is_a_warning_not_a_broken_config() {
    let caps = Idp::NoDcr.caps();
    let c = one(&server(), &settings(), Some(&caps), Ide::ClaudeCode);
    assert_eq!(c.login_method, Some(LoginMethod::None));
    let w = &c.warnings[0];
    assert_eq!(w.code, WarningCode::NoLoginMethod);
    assert!(w.message.contains("IDE_OAUTH_CLIENT_ID"), "{}", w.message);
    assert!(w.message.contains("neither DCR"), "{}", w.message);
    // The config still names the server, with no auth in it.
    assert_eq!(
        c.rendered[&Ide::ClaudeCode].text,
        "claude mcp add --transport http my-server https://gateway.example.com/my-server/mcp"
    );
}

#[test]
fn dcr_expected_but_absent() {
    let mut st = settings();
    st.expect_dcr = true;
    let caps = Idp::NoDcr.caps();
    let c = one(&server(), &st, Some(&caps), Ide::Codex);
    assert!(codes(&c).contains("dcr_expected_but_absent"));
    assert!(c
        .warnings
        .iter()
        .find(|w| w.code == WarningCode::DcrExpectedButAbsent)
        .unwrap()
        .ide
        .is_none());
    // Metadata with DCR: no such warning, DCR used.
    let caps = Idp::Dcr.caps();
    let c = one(&server(), &st, Some(&caps), Ide::Codex);
    assert!(c.warnings.is_empty());
    assert_eq!(c.login_method, Some(LoginMethod::Dcr));
}

#[test]
fn unknown_idp_capabilities() {
    let c = one(&server(), &settings(), None, Ide::ClaudeCode);
    assert_eq!(
        codes(&c),
        BTreeSet::from(["idp_metadata_unavailable", "no_login_method"])
    );
    assert_eq!(c.login_method, Some(LoginMethod::None));
    assert!(c.idp.is_none());
    let mut st = settings();
    st.ide_oauth_client_id = Some(CLIENT_ID.into());
    let c = one(&server(), &st, None, Ide::ClaudeCode);
    assert_eq!(c.login_method, Some(LoginMethod::PreRegistered));
}

#[test]
fn insecure_url() {
    let mut st = settings();
    st.public_url = "http://gateway.example.com".into();
    let caps = Idp::Dcr.caps();
    assert!(codes(&one(&server(), &st, Some(&caps), Ide::Curl)).contains("insecure_url"));
    for local in [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        st.public_url = local.into();
        assert!(
            !codes(&one(&server(), &st, Some(&caps), Ide::Curl)).contains("insecure_url"),
            "{local}"
        );
    }
}

#[test]
fn ide_names() {
    for ide in Ide::ALL {
        assert_eq!(ide.as_str().parse::<Ide>().unwrap(), ide);
        assert_eq!(serde_json::to_value(ide).unwrap(), ide.as_str());
        assert_eq!(
            serde_json::from_value::<Ide>(serde_json::json!(ide.as_str())).unwrap(),
            ide
        );
    }
    assert_eq!("claude_code".parse::<Ide>().unwrap(), Ide::ClaudeCode);
    assert_eq!("VS Code".parse::<Ide>().unwrap(), Ide::VsCode);
    assert_eq!("RooCode".parse::<Ide>().unwrap(), Ide::RooCode);
    let e = "emacs".parse::<Ide>().unwrap_err();
    assert!(e.to_string().contains("claude-code"));
}

/// Every assistant's static-token form, visible and hidden, against `static.golden`.
#[test]
fn static_token_forms() {
    let caps = Idp::NoDcr.caps();
    let mut golden = String::new();
    for (label, token) in [
        ("visible", StaticToken::Visible("gw-token-123".into())),
        ("hidden", StaticToken::Hidden),
    ] {
        let st = ConnectSettings {
            static_token: token,
            ..settings()
        };
        for ide in Ide::ALL {
            let c = one(&server(), &st, Some(&caps), ide);
            let r = &c.rendered[&ide];
            assert_eq!(r.login_method, LoginMethod::StaticToken);
            if label == "hidden" {
                assert!(!r.text.contains("gw-token-123"));
            }
            match r.format {
                Format::Json => {
                    serde_json::from_str::<serde_json::Value>(&r.text).unwrap();
                }
                Format::Shell => {
                    let split = shlex::split(shell_line(&r.text)).unwrap();
                    assert_eq!(Some(&split), r.argv.as_ref(), "{ide}");
                }
                Format::Yaml => {}
            }
            golden.push_str(&format!("=== {ide} token={label}\n"));
            for (k, v) in &r.env {
                golden.push_str(&format!("env: {k}={v}\n"));
            }
            golden.push_str(&r.text);
            if !r.text.ends_with('\n') {
                golden.push('\n');
            }
        }
    }
    check_golden("static.golden", &golden);
}

/// Direct mode with an IdP that breaks every login or every token: each assistant's config says
/// why and what would work (the IdP profiles' quirks, `config::idp_profile`).
#[test]
fn idp_quirks_are_warned_for_every_assistant() {
    let entra = connect::IdpQuirks {
        label: "Entra ID".into(),
        refuses_resource: true,
        ..Default::default()
    };
    let keycloak = connect::IdpQuirks {
        label: "Keycloak".into(),
        audience_problem: Some("Keycloak does not put the MCP server's URL in aud".into()),
        ..Default::default()
    };
    let weak = connect::IdpQuirks {
        label: "Keycloak".into(),
        weak_audience: Some("account".into()),
        ..Default::default()
    };
    for (quirks, code, needles) in [
        (
            entra,
            "idp_refuses_resource",
            &["AADSTS9010010", "broker mode"][..],
        ),
        (
            keycloak,
            "idp_audience_mismatch",
            &["refuse the tokens", "aud"][..],
        ),
        (
            weak,
            "weak_audience",
            &["Audience mapper", "\"account\""][..],
        ),
    ] {
        let st = ConnectSettings {
            idp_quirks: quirks,
            ..settings()
        };
        for ide in Ide::ALL {
            let c = one(&server(), &st, Some(&Idp::Dcr.caps()), ide);
            let w = c
                .warnings
                .iter()
                .find(|w| w.code.as_str() == code)
                .unwrap_or_else(|| panic!("{ide}: no {code}: {:?}", codes(&c)));
            assert_eq!(w.ide, None, "{code} is about the IdP, for every assistant");
            for needle in needles {
                assert!(w.message.contains(needle), "{code}: {}", w.message);
            }
        }
    }
    // Without quirks (a standards-following IdP, or broker mode) none of them appears.
    for ide in Ide::ALL {
        let c = one(&server(), &settings(), Some(&Idp::Dcr.caps()), ide);
        for code in [
            "idp_refuses_resource",
            "idp_audience_mismatch",
            "weak_audience",
        ] {
            assert!(!codes(&c).contains(code), "{ide}: {code}");
        }
    }
}
