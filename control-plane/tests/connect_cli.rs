//! The emitted `claude mcp add …` and `codex mcp add …` lines, run with the real CLIs from npm
//! (`@anthropic-ai/claude-code`, `@openai/codex`, pinned in `tests/node/package.json`) in a
//! throwaway HOME, and the config each CLI writes checked: URL, transport, client id, callback
//! port, token header.
//!
//! The command lines are split into argv the way a POSIX shell would (`shlex`), never run
//! through a shell. The CLIs must not reach the network: every proxy variable points at a closed
//! loopback port and their non-essential traffic is switched off; `mcp add` only writes a file.
//!
//! Finds the CLIs under `$PORTCULLIS_NODE_DIR/node_modules/.bin` (default `tests/node`) and fails
//! with the setup command when they are missing.
//!
//! Where a CLI rejects a flag or a value (checked in `cli_rejections`):
//! - Codex has no `--callback-port` (`unexpected argument`), so its configs never pin a port;
//! - both CLIs reject server names outside letters, digits, `-`, `_` (Codex also allows
//!   `:@/.`), so configs use `connect::config_name`;
//! - Claude Code's `-H` takes several values and swallows NAME and URL when it comes before
//!   them (`missing required argument 'name'`), so it goes last.

// Tests may unwrap: a panic is the failure report (the workspace lints deny it elsewhere).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use portcullis::connect::{
    render, ConnectRequest, ConnectSettings, Ide, IdpCapabilities, LoginMethod, ServerEntry,
    StaticToken,
};
use serde_json::{json, Value};
use url::Url;

fn node_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("PORTCULLIS_NODE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/node"),
        PathBuf::from,
    );
    let bin = dir.join("node_modules/.bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: install the test CLIs with `npm ci --prefix tests/node` \
         (or set PORTCULLIS_NODE_DIR to a directory with node_modules/@anthropic-ai/claude-code \
         and node_modules/@openai/codex)",
        bin.display()
    );
    bin
}

/// A fresh HOME and project directory, outside any git work tree (Claude Code files a
/// project under its git root), removed afterwards.
struct Sandbox {
    root: PathBuf,
    home: PathBuf,
    project: PathBuf,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn sandbox(label: &str) -> Sandbox {
    let root = std::env::temp_dir()
        .join("portcullis-connect-cli")
        .join(format!("{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let home = root.join("home");
    let project = root.join("project");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    Sandbox {
        root,
        home: home.canonicalize().unwrap(),
        project: project.canonicalize().unwrap(),
    }
}

/// Runs argv (argv[0] replaced by the CLI's path) in the sandbox, offline, with a time limit.
fn run(sb: &Sandbox, bin: &Path, argv: &[String]) -> Output {
    let closed = "http://127.0.0.1:9";
    let mut cmd = Command::new(bin);
    cmd.args(&argv[1..])
        .current_dir(&sb.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &sb.home)
        .env("USERPROFILE", &sb.home)
        .env("TMPDIR", &sb.home)
        .env("NO_COLOR", "1")
        .env("CI", "1")
        // Claude Code: no updater, telemetry or error reports.
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        // Anything that still tries the network goes nowhere.
        .env("HTTP_PROXY", closed)
        .env("HTTPS_PROXY", closed)
        .env("ALL_PROXY", closed)
        .env("http_proxy", closed)
        .env("https_proxy", closed)
        .env("all_proxy", closed)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("{} {:?} did not finish in 90 s", bin.display(), &argv[1..]);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn run_ok(sb: &Sandbox, bin: &Path, argv: &[String]) {
    let out = run(sb, bin, argv);
    assert!(
        out.status.success(),
        "{} {:?} failed ({}):\nstdout: {}\nstderr: {}",
        bin.display(),
        &argv[1..],
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command line of a rendered shell config, split like a shell would (and checked against
/// the argv the renderer reports).
fn argv_of(c: &portcullis::connect::IdeConfig) -> Vec<String> {
    let line = c
        .text
        .lines()
        .rfind(|l| !l.starts_with('#') && !l.starts_with("export "))
        .unwrap();
    let argv = shlex::split(line).expect("a shell-splittable line");
    assert_eq!(Some(&argv), c.argv.as_ref());
    argv
}

struct Case {
    label: &'static str,
    server: ServerEntry,
    settings: ConnectSettings,
    idp: IdpCapabilities,
}

fn base_server() -> ServerEntry {
    ServerEntry {
        name: "my-server".into(),
        path: "/my-server".into(),
        proxy_pass_url: "http://upstream.internal:8000/".into(),
        ..Default::default()
    }
}

fn base_settings() -> ConnectSettings {
    ConnectSettings {
        public_url: "https://gateway.example.com".into(),
        ..Default::default()
    }
}

fn dcr() -> IdpCapabilities {
    IdpCapabilities {
        issuer: Some("https://idp.example.com".into()),
        registration_endpoint: Some(Url::parse("https://idp.example.com/register").unwrap()),
        ..Default::default()
    }
}

fn no_dcr() -> IdpCapabilities {
    IdpCapabilities {
        issuer: Some("https://idp.example.com".into()),
        ..Default::default()
    }
}

const ODD_ID: &str = "-odd 'client' \"id\" $HOME `x`";

fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "pre-registered-with-port",
            server: base_server(),
            settings: ConnectSettings {
                ide_oauth_client_id: Some("mcp-gateway-ide".into()),
                ide_oauth_callback_port: Some(33418),
                ..base_settings()
            },
            idp: no_dcr().with_strict_redirects(true),
        },
        Case {
            label: "pre-registered-per-server",
            server: ServerEntry {
                oauth_client_id: Some("per-server-client".into()),
                append_mcp_path: Some(false),
                ..base_server()
            },
            settings: ConnectSettings {
                ide_oauth_client_id: Some("global-client".into()),
                ..base_settings()
            },
            idp: no_dcr(),
        },
        Case {
            label: "dcr",
            server: base_server(),
            settings: base_settings(),
            idp: dcr(),
        },
        Case {
            label: "static-token",
            server: base_server(),
            settings: ConnectSettings {
                static_token: StaticToken::Visible("gw-token-123".into()),
                ..base_settings()
            },
            idp: no_dcr(),
        },
        Case {
            label: "odd-values",
            server: ServerEntry {
                name: "Team's \"odd\" server".into(),
                mcp_endpoint: Some("https://gateway.example.com/o'k/mcp?a=1&b=$HOME".into()),
                ..base_server()
            },
            settings: ConnectSettings {
                ide_oauth_client_id: Some(ODD_ID.into()),
                ide_oauth_callback_port: Some(40123),
                ..base_settings()
            },
            idp: no_dcr(),
        },
    ]
}

#[test]
fn claude_code_writes_what_we_emit() {
    let bin = node_bin("claude");
    for case in cases() {
        let c = render(ConnectRequest {
            server: &case.server,
            settings: &case.settings,
            idp: Some(&case.idp),
            ide: Some(Ide::ClaudeCode),
        })
        .unwrap();
        let r = &c.rendered[&Ide::ClaudeCode];
        let argv = argv_of(r);
        let sb = sandbox(&format!("claude-{}", case.label));
        run_ok(&sb, &bin, &argv);

        let written: Value = serde_json::from_str(
            &std::fs::read_to_string(sb.home.join(".claude.json")).expect("~/.claude.json"),
        )
        .unwrap();
        let project = sb.project.to_str().unwrap();
        let entry = &written["projects"][project]["mcpServers"][&c.name];
        let mut expected = json!({ "type": "http", "url": c.url });
        match r.login_method {
            LoginMethod::PreRegistered => {
                let mut oauth = json!({ "clientId": c.oauth_client_id.clone().unwrap() });
                if let Some(p) = c.callback_port {
                    oauth["callbackPort"] = json!(p);
                }
                expected["oauth"] = oauth;
            }
            LoginMethod::StaticToken => {
                expected["headers"] = json!({ "Authorization": "Bearer gw-token-123" });
            }
            _ => {}
        }
        assert_eq!(
            entry, &expected,
            "{}: {}\nwrote: {written:#}",
            case.label, r.text
        );
    }
}

#[test]
fn codex_writes_what_we_emit() {
    let bin = node_bin("codex");
    for case in cases() {
        let c = render(ConnectRequest {
            server: &case.server,
            settings: &case.settings,
            idp: Some(&case.idp),
            ide: Some(Ide::Codex),
        })
        .unwrap();
        let r = &c.rendered[&Ide::Codex];
        let argv = argv_of(r);
        let sb = sandbox(&format!("codex-{}", case.label));
        run_ok(&sb, &bin, &argv);

        let text = std::fs::read_to_string(sb.home.join(".codex/config.toml"))
            .expect("~/.codex/config.toml");
        let written: toml::Table = text.parse().unwrap();
        let entry = written["mcp_servers"][&c.name]
            .as_table()
            .unwrap_or_else(|| panic!("{}: no [mcp_servers.{}] in\n{text}", case.label, c.name));
        assert_eq!(
            entry["url"].as_str(),
            Some(c.url.as_str()),
            "{}",
            case.label
        );
        let client_id = entry
            .get("oauth")
            .and_then(|o| o.get("client_id"))
            .and_then(|v| v.as_str());
        match r.login_method {
            LoginMethod::PreRegistered => {
                assert_eq!(
                    client_id,
                    c.oauth_client_id.as_deref(),
                    "{}\n{text}",
                    case.label
                );
                // Codex picks its own callback URL (random port): nothing we emit pins it.
                let cb = entry["oauth"]["callback_url"].as_str().unwrap();
                assert!(cb.starts_with("http://127.0.0.1/callback/"), "{cb}");
            }
            LoginMethod::StaticToken => {
                assert_eq!(client_id, None);
                assert_eq!(
                    entry["bearer_token_env_var"].as_str(),
                    Some("MCP_AUTH_TOKEN")
                );
                assert_eq!(r.env["MCP_AUTH_TOKEN"], "gw-token-123");
            }
            _ => assert_eq!(client_id, None, "{}\n{text}", case.label),
        }
    }
}

/// What the CLIs refuse, and why the renderer avoids it.
#[test]
fn cli_rejections() {
    let claude = node_bin("claude");
    let codex = node_bin("codex");
    let url = "https://gateway.example.com/my-server/mcp";
    let args = |s: &[&str]| {
        s.iter()
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>()
    };
    let sb = sandbox("rejections");
    let expect_fail = |bin: &Path, argv: Vec<String>, needle: &str| {
        let out = run(&sb, bin, &argv);
        let err = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{argv:?} was accepted: {err}");
        assert!(err.contains(needle), "{argv:?}: {err}");
    };
    // Codex cannot pin its callback port.
    expect_fail(
        &codex,
        args(&[
            "codex",
            "mcp",
            "add",
            "s",
            "--url",
            url,
            "--callback-port",
            "33418",
        ]),
        "--callback-port",
    );
    // Names with spaces.
    expect_fail(
        &codex,
        args(&["codex", "mcp", "add", "My Server", "--url", url]),
        "invalid server name",
    );
    expect_fail(
        &claude,
        args(&[
            "claude",
            "mcp",
            "add",
            "--transport",
            "http",
            "My Server",
            url,
        ]),
        "Invalid name",
    );
    // `-H` before the positionals swallows them.
    expect_fail(
        &claude,
        args(&[
            "claude",
            "mcp",
            "add",
            "--transport",
            "http",
            "-H",
            "Authorization: Bearer x",
            "s",
            url,
        ]),
        "missing required argument",
    );
}
