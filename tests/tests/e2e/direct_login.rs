//! Direct mode with people logging in, end to end: `portcullis serve` in direct mode (the IdP is
//! the authorization server), Envoy from the shipped bootstrap with the filter, a real
//! `mcp-server-everything`, and an IdP dressed in turn as Keycloak, Okta, Cognito and Entra ID.
//!
//! The IdP is a fake in one sense only: the cloud IdPs cannot run here, so `tests/node/oidc-idp.mjs`
//! (the certified `oidc-provider`) reproduces each one's documented quirks (`--profile`: which
//! clients exist, redirect matching, `resource` ignored or refused, the access token's claims).
//! Everything else is real: the MCP clients log in through the IdP's HTML forms with
//! `tests/node/browser.mjs` as their browser, and call a tool through Envoy.
//!
//! For each profile, the connect config the control plane emits is used as it is: its URL,
//! client id and callback port for the TypeScript SDK client; Claude Desktop's `npx mcp-remote …`
//! entry for mcp-remote; the `claude mcp add …` and `codex mcp add …` lines for the CLIs, then
//! their own login commands. A cell that can work in direct mode must return the tool's result; a
//! cell that cannot must carry the warning that names why, and fail for that reason:
//!
//! | client        | Keycloak (DCR, audience mapper) | Okta (pre-registered, exact redirects) | Cognito (no `aud`) | Entra |
//! |---------------|----------|----------|----------|----------|
//! | TS SDK        | works | works | works | `idp_refuses_resource` |
//! | mcp-remote    | works | works | works | `idp_refuses_resource` |
//! | Claude Code   | works | works | works | `idp_refuses_resource` |
//! | Codex         | works | `callback_path_unmatchable` | `callback_path_unmatchable` | `idp_refuses_resource` |
//!
//! Also: Keycloak without an Audience mapper works with `PORTCULLIS_IDP_AUDIENCE=account` but is
//! warned `weak_audience`, and without any audience is warned `idp_audience_mismatch` and refused
//! by the filter for its audience; a person in no group logs in and gets a 403 that names the
//! group that would allow the call, with no step-up scope (Okta).

use std::time::Duration;

use portcullis_e2e::control_plane::ControlPlane;
use portcullis_e2e::gateway::Gateway;
use portcullis_e2e::login::{jwt_claims, CliEnv, CliRun};
use portcullis_e2e::oidc::{
    OidcIdp, ALICE, BOB, COGNITO_CLIENT_ID, ENTRA_APP_ID, ENTRA_ENGINEERING, OKTA_AUDIENCE,
    OKTA_CLIENT_ID,
};
use portcullis_e2e::util::{free_port, wait_until};
use portcullis_e2e::{ClientPlan, McpServer, Request, TestDir};
use serde_json::{json, Value};

/// The server's name in the registry and in every assistant's config.
const NAME: &str = "everything";
const MESSAGE: &str = "hello from direct mode";
/// Keycloak's Audience mapper value (the safe set-up `docs/idp-profiles.md` describes).
const KEYCLOAK_AUDIENCE: &str = "mcp-gateway";
/// How long one login plus a tool call may take (CLIs start slowly on two cores).
const CELL_LIMIT: Duration = Duration::from_secs(90);

/// What a cell must do: work, or fail for the reason its warning names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Works,
    /// Works, and the connect config says why it is not a safe set-up (`weak_audience`).
    WorksWarned(&'static str),
    /// The connect config carries this warning code, and the login fails for it.
    Warned(&'static str),
}

impl Expect {
    fn fails(self) -> bool {
        matches!(self, Expect::Warned(_))
    }
}

/// One profile's stack: the IdP, the control plane, the MCP server, Envoy.
struct Direct {
    profile: &'static str,
    url: String,
    connect: Value,
    gateway: Gateway,
    #[allow(dead_code)]
    cp: ControlPlane,
    #[allow(dead_code)]
    server: McpServer,
    #[allow(dead_code)]
    idp: OidcIdp,
    /// Holds the files until the processes above are gone (fields drop in order).
    dir: TestDir,
}

impl Direct {
    /// Starts everything for `profile`: the fixture with `idp_args`, the control plane with the
    /// profile and `env`, the server registered with every method and tool for `group`.
    fn start(
        profile: &'static str,
        idp_args: &[&str],
        env: &[(&str, &str)],
        group: &str,
    ) -> Direct {
        let dir = TestDir::new(&format!("direct-login-{profile}"));
        let mut args = vec!["--profile", profile];
        args.extend_from_slice(idp_args);
        let idp = OidcIdp::start_as(dir.path(), &args);
        let issuer = idp.issuer();
        // Envoy's URL goes into the metadata and the connect configs before Envoy starts.
        let envoy_port = free_port();
        let public_url = format!("http://127.0.0.1:{envoy_port}");
        let mut vars = vec![
            ("PORTCULLIS_PUBLIC_URL", public_url.as_str()),
            ("PORTCULLIS_IDP_ISSUER", issuer.as_str()),
            ("PORTCULLIS_IDP_PROFILE", profile),
            ("PORTCULLIS_API_AUDIENCE", "portcullis-api"),
        ];
        vars.extend_from_slice(env);
        let cp = ControlPlane::start(dir.path(), &vars);
        let server = McpServer::start(&dir);
        let registered = cp.register(&json!({
            "name": NAME,
            "path": "/everything",
            "proxy_pass_url": format!("http://127.0.0.1:{}/", server.port()),
            "append_mcp_path": true,
        }));
        let url = registered["mcp_url"].as_str().expect("mcp_url").to_string();
        for (method, path, body) in [
            (
                "PUT",
                "/api/scopes/everything-all".to_string(),
                json!({"grants": [{"server": NAME, "methods": ["*"], "tools": ["*"]}]}),
            ),
            (
                "PUT",
                format!("/api/group-mappings/{group}"),
                json!({"scopes": ["everything-all"]}),
            ),
        ] {
            let r = cp.admin(method, &path, Some(&body));
            assert!(r.status < 300, "{method} {path}: {}", r.describe());
        }
        let gateway = Gateway::start_on(dir.path(), &cp, envoy_port);
        // The policy (with the IdP's keys) has arrived once an anonymous call gets the challenge.
        let challenged = wait_until(Duration::from_secs(20), || {
            let r = gateway.send(Request::get("/everything/mcp"));
            (r.status == 401).then_some(())
        });
        assert!(
            challenged.is_some(),
            "Envoy never challenged: {}\n{}",
            gateway.send(Request::get("/everything/mcp")).describe(),
            gateway.log_tail(30)
        );
        let r = cp.admin("GET", &format!("/api/servers/{NAME}/connect-config"), None);
        assert_eq!(r.status, 200, "connect-config: {}", r.describe());
        let connect = r.json();
        Direct {
            profile,
            url,
            connect,
            gateway,
            cp,
            server,
            idp,
            dir,
        }
    }

    /// Warning codes of the connect config for `ide` (general ones included; `None`: only those).
    fn codes(&self, ide: Option<&str>) -> Vec<String> {
        self.connect["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| w["ide"].is_null() || ide.is_some_and(|i| w["ide"] == i))
            .filter_map(|w| w["code"].as_str().map(str::to_string))
            .collect()
    }

    fn rendered(&self, ide: &str) -> &Value {
        let r = &self.connect["rendered"][ide];
        assert!(r.is_object(), "no {ide} config: {:#}", self.connect);
        r
    }

    /// Asserts the connect config's warnings for `ide` match what the cell does.
    fn check_warning(&self, ide: Option<&str>, expect: Expect) {
        let ide_name = ide.unwrap_or("TS SDK");
        let codes = self.codes(ide);
        const REASONS: [&str; 5] = [
            "idp_refuses_resource",
            "idp_audience_mismatch",
            "weak_audience",
            "callback_path_unmatchable",
            "callback_port_unpinnable",
        ];
        match expect {
            Expect::Works => assert!(
                !codes.iter().any(|c| REASONS.contains(&c.as_str())),
                "{} / {ide_name}: works, yet the connect config warns {codes:?}",
                self.profile
            ),
            Expect::Warned(code) | Expect::WorksWarned(code) => assert!(
                codes.iter().any(|c| c == code),
                "{} / {ide_name}: expected warning {code}, got {codes:?}",
                self.profile
            ),
        }
    }

    /// The TypeScript SDK client: the connect config's URL, client id and callback port.
    fn ts_sdk(&self, expect: Expect) {
        // Not an assistant of the connect dialog: the general warnings are its.
        self.check_warning(None, expect);
        let mut oauth = json!({"user": ALICE.0, "password": ALICE.1});
        if let Some(id) = self.connect["oauth_client_id"].as_str() {
            oauth["clientId"] = json!(id);
        }
        if let Some(port) = self.connect["callback_port"].as_u64() {
            oauth["callbackPort"] = json!(port);
        }
        let run = ClientPlan::new()
            .oauth(oauth)
            .connect()
            .call_tool("echo", json!({"message": MESSAGE}))
            .run(&self.dir, &self.url);
        let report = &run.summary["oauth"];
        match expect {
            Expect::Works | Expect::WorksWarned(_) => {
                let result = run.ok(1);
                assert_echo(result, &format!("{} / TS SDK", self.profile));
                eprintln!(
                    "[direct-login] {} / TS SDK: works (token claims {})",
                    self.profile,
                    claim_summary(&report["accessTokenClaims"])
                );
            }
            Expect::Warned(code) => {
                let err = run.err(0);
                let observed = format!("{err} {report}\n{}", run.describe());
                assert_failure_is(self.profile, "TS SDK", code, &observed);
            }
        }
    }

    /// `user`, in no group, logs in with the TS SDK client and is refused by the filter from
    /// `initialize` on (no access to the server at all): access comes from groups, and the
    /// refusal names the group that would allow it, never a scope the IdP cannot issue.
    fn ts_sdk_refused(&self, user: (&str, &str), group: &str) {
        let mut oauth = json!({"user": user.0, "password": user.1});
        if let Some(id) = self.connect["oauth_client_id"].as_str() {
            oauth["clientId"] = json!(id);
        }
        if let Some(port) = self.connect["callback_port"].as_u64() {
            oauth["callbackPort"] = json!(port);
        }
        let run = ClientPlan::new()
            .oauth(oauth)
            .connect()
            .run(&self.dir, &self.url);
        assert_eq!(run.err(0)["httpStatus"], 403, "{}", run.describe());
        let refused = run
            .http_for_method("initialize")
            .into_iter()
            .find(|e| e["status"] == 403)
            .unwrap_or_else(|| panic!("no 403 for initialize:\n{}", run.describe()));
        let challenge = refused["responseHeaders"]["www-authenticate"]
            .as_str()
            .unwrap_or_default();
        assert!(
            challenge.contains("insufficient_scope") && challenge.contains(group),
            "{} / {}: the refusal should name group {group}: {challenge}",
            self.profile,
            user.0
        );
        assert!(
            !challenge.contains("scope=\""),
            "direct mode must not invite a step-up to a scope the IdP cannot issue: {challenge}"
        );
        eprintln!(
            "[direct-login] {} / TS SDK as {}: refused (403 naming {group}, no step-up scope)",
            self.profile, user.0
        );
    }

    /// A tool call through Envoy with a token a CLI obtained (the CLIs cannot call tools
    /// without a model): the TS SDK client with the token as its bearer.
    fn call_with(&self, token: &str, who: &str) {
        let run = ClientPlan::new()
            .bearer(token)
            .connect()
            .call_tool("echo", json!({"message": MESSAGE}))
            .run(&self.dir, &self.url);
        assert_echo(run.ok(1), &format!("{} / {who}", self.profile));
    }

    /// mcp-remote, as Claude Desktop's config runs it (`npx mcp-remote URL …`), over stdio.
    fn mcp_remote(&self, expect: Expect) {
        self.check_warning(Some("claude-desktop"), expect);
        let doc: Value = serde_json::from_str(
            self.rendered("claude-desktop")["text"]
                .as_str()
                .expect("text"),
        )
        .expect("Claude Desktop's config is JSON");
        let entry = &doc["mcpServers"][NAME];
        let command = entry["command"].as_str().expect("command");
        let args: Vec<String> = entry["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_string())
            .collect();
        let env = CliEnv::new(self.dir.path(), "mcp-remote", ALICE);
        let mut proxy = env.stdio(command, &args, "mcp-remote");
        // A failed login leaves mcp-remote waiting for its callback (30 s): stop at the failure.
        let init = proxy.initialize(CELL_LIMIT, || expect.fails() && env.login_failed());
        match expect {
            Expect::Works | Expect::WorksWarned(_) => {
                let init = init.unwrap_or_else(|e| panic!("{} / mcp-remote: {e}", self.profile));
                assert!(init["result"]["serverInfo"].is_object(), "{init}");
                let call = proxy
                    .request(
                        "tools/call",
                        json!({"name": "echo", "arguments": {"message": MESSAGE}}),
                        CELL_LIMIT,
                    )
                    .unwrap_or_else(|e| panic!("{} / mcp-remote: {e}", self.profile));
                assert_echo(&call["result"], &format!("{} / mcp-remote", self.profile));
                eprintln!("[direct-login] {} / mcp-remote: works", self.profile);
            }
            Expect::Warned(code) => {
                let observed = match init {
                    Ok(v) if v["error"].is_null() => panic!(
                        "{} / mcp-remote: expected the login to fail ({code}), it connected: {v}",
                        self.profile
                    ),
                    Ok(v) => format!("{v} {}", proxy.stderr(200)),
                    Err(e) => e,
                };
                let observed = format!("{observed}\n{}", env.browser_log());
                assert_failure_is(self.profile, "mcp-remote", code, &observed);
            }
        }
    }

    /// Claude Code: the emitted `claude mcp add …`, then `claude mcp login NAME`.
    fn claude_code(&self, expect: Expect) {
        self.check_warning(Some("claude-code"), expect);
        let env = CliEnv::new(self.dir.path(), "claude", ALICE);
        let add = env.run(&argv(self.rendered("claude-code")), CELL_LIMIT);
        assert!(add.ok(), "claude mcp add: {}", add.describe());
        let config: Value = serde_json::from_str(
            &std::fs::read_to_string(env.home.join(".claude.json")).expect("~/.claude.json"),
        )
        .expect("~/.claude.json is JSON");
        assert!(
            config.to_string().contains(&self.url),
            "claude mcp add did not store the server: {config:#}"
        );
        // It refuses to log in without a terminal ("this isn't an interactive terminal").
        let login =
            env.run_in_terminal(&strs(&["claude", "mcp", "login", NAME]), CELL_LIMIT, || {
                expect.fails() && env.login_failed()
            });
        self.cli_outcome("Claude Code", expect, &env, &login, || {
            claude_token(&env.home)
        });
    }

    /// Codex: the emitted `codex mcp add …` (which finds the OAuth support and logs in at
    /// once), then `codex mcp login NAME`.
    fn codex(&self, expect: Expect) {
        self.check_warning(Some("codex"), expect);
        let env = CliEnv::new(self.dir.path(), "codex", ALICE);
        let failed = || expect.fails() && env.login_failed();
        let add = env.run_until(&argv(self.rendered("codex")), CELL_LIMIT, failed);
        let config = std::fs::read_to_string(env.home.join(".codex/config.toml"))
            .unwrap_or_else(|_| panic!("no ~/.codex/config.toml: {}", add.describe()));
        assert!(
            config.contains(&format!("[mcp_servers.{NAME}]")) && config.contains(&self.url),
            "codex mcp add did not store the server:\n{config}"
        );
        self.cli_outcome("Codex (mcp add)", expect, &env, &add, || {
            codex_token(&env.home)
        });
        env.reset_browser_log();
        let _ = std::fs::remove_file(env.home.join(".codex/.credentials.json"));
        // Tokens in a file, not the desktop keyring this machine does not have.
        let login = env.run_until(
            &strs(&[
                "codex",
                "mcp",
                "login",
                NAME,
                "-c",
                "mcp_oauth_credentials_store=\"file\"",
            ]),
            CELL_LIMIT,
            failed,
        );
        self.cli_outcome("Codex", expect, &env, &login, || codex_token(&env.home));
    }

    fn cli_outcome(
        &self,
        who: &str,
        expect: Expect,
        env: &CliEnv,
        login: &CliRun,
        token: impl Fn() -> Option<String>,
    ) {
        match expect {
            Expect::Works | Expect::WorksWarned(_) => {
                assert!(
                    login.ok(),
                    "{} / {who} login: {}",
                    self.profile,
                    login.describe()
                );
                let token = token().unwrap_or_else(|| {
                    panic!(
                        "{} / {who}: logged in but no token stored: {}",
                        self.profile,
                        login.describe()
                    )
                });
                self.call_with(&token, who);
                eprintln!(
                    "[direct-login] {} / {who}: works (token claims {})",
                    self.profile,
                    claim_summary(&jwt_claims(&token).unwrap_or_default())
                );
            }
            Expect::Warned(code) => {
                assert!(
                    !login.ok() || token().is_none(),
                    "{} / {who}: expected the login to fail ({code}): {}",
                    self.profile,
                    login.describe()
                );
                assert_failure_is(
                    self.profile,
                    who,
                    code,
                    &format!("{}\n{}", login.output(), env.browser_log()),
                );
            }
        }
    }
}

fn strs(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The argv a shell config line splits into (the connect config carries it).
fn argv(rendered: &Value) -> Vec<String> {
    rendered["argv"]
        .as_array()
        .unwrap_or_else(|| panic!("no argv: {rendered}"))
        .iter()
        .map(|a| a.as_str().expect("string").to_string())
        .collect()
}

/// The access token Claude Code stored for the server (`~/.claude/.credentials.json`).
fn claude_token(home: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(home.join(".claude/.credentials.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    find_access_token(&v)
}

/// The access token Codex stored for the server (`~/.codex/.credentials.json`).
fn codex_token(home: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(home.join(".codex/.credentials.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    find_access_token(&v)
}

/// The first JWT-looking `access_token`/`accessToken` anywhere in a credentials document.
fn find_access_token(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if matches!(k.as_str(), "access_token" | "accessToken") {
                    if let Some(t) = x.as_str().filter(|t| t.split('.').count() == 3) {
                        return Some(t.to_string());
                    }
                }
            }
            m.values().find_map(find_access_token)
        }
        Value::Array(a) => a.iter().find_map(find_access_token),
        Value::String(s) => serde_json::from_str::<Value>(s)
            .ok()
            .filter(|x| x.is_object())
            .and_then(|x| find_access_token(&x)),
        _ => None,
    }
}

/// The echo tool's answer is in the result.
fn assert_echo(result: &Value, cell: &str) {
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(MESSAGE),
        "{cell}: the tool's result should echo {MESSAGE:?}: {result}"
    );
}

/// The claims that decide acceptance, for the log (never the token).
fn claim_summary(claims: &Value) -> String {
    let pick = |k: &str| claims.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "aud": pick("aud"), "client_id": pick("client_id"), "token_use": pick("token_use"),
        "groups": pick("groups"), "cognito:groups": pick("cognito:groups"),
    })
    .to_string()
}

/// What a failure for each warning's reason looks like from the client's side.
fn assert_failure_is(profile: &str, who: &str, code: &str, observed: &str) {
    let signs: &[&str] = match code {
        // Entra's answer to `resource` (the fixture returns Entra's error code).
        "idp_refuses_resource" => &["AADSTS9010010"],
        // The IdP refused the redirect URI the client made up.
        "callback_path_unmatchable" | "callback_port_unpinnable" => {
            &["invalid_redirect_uri", "redirect_uri"]
        }
        // The filter refused the token for whom it was issued.
        "idp_audience_mismatch" => &["401", "audience"],
        other => panic!("no known failure for {other}"),
    };
    assert!(
        signs.iter().any(|s| observed.contains(s)),
        "{profile} / {who}: the failure should show {code}'s reason ({signs:?}); observed:\n{observed}"
    );
    eprintln!("[direct-login] {profile} / {who}: fails as warned ({code})");
}

#[test]
fn keycloak_with_an_audience_mapper_every_client_logs_in_and_calls_a_tool() {
    let d = Direct::start(
        "keycloak",
        &["--audience-mapper", KEYCLOAK_AUDIENCE],
        &[("PORTCULLIS_IDP_AUDIENCE", KEYCLOAK_AUDIENCE)],
        "engineering",
    );
    d.ts_sdk(Expect::Works);
    d.mcp_remote(Expect::Works);
    d.claude_code(Expect::Works);
    d.codex(Expect::Works);
}

/// Keycloak without an Audience mapper: its tokens say `aud: account`. Accepting `account` works
/// but is weak (every token of the realm has it); accepting nothing but the MCP URL refuses
/// every token. Both are warned, and the second fails at the filter for its audience.
#[test]
fn keycloak_without_an_audience_mapper_is_weak_or_refused_as_warned() {
    let weak = Direct::start(
        "keycloak",
        &[],
        &[("PORTCULLIS_IDP_AUDIENCE", "account")],
        "engineering",
    );
    weak.ts_sdk(Expect::WorksWarned("weak_audience"));
    let none = Direct::start("keycloak", &[], &[], "engineering");
    none.ts_sdk(Expect::Warned("idp_audience_mismatch"));
}

#[test]
fn okta_pre_registered_client_with_exact_redirects() {
    let port = free_port().to_string();
    let d = Direct::start(
        "okta",
        &["--callback-port", &port],
        &[
            ("PORTCULLIS_IDP_AUDIENCE", OKTA_AUDIENCE),
            ("IDE_OAUTH_CLIENT_ID", OKTA_CLIENT_ID),
            ("IDE_OAUTH_CALLBACK_PORT", &port),
        ],
        "engineering",
    );
    d.ts_sdk(Expect::Works);
    d.ts_sdk_refused(BOB, "engineering");
    d.claude_code(Expect::Works);
    d.mcp_remote(Expect::Works);
    d.codex(Expect::Warned("callback_path_unmatchable"));
}

#[test]
fn cognito_tokens_without_aud_are_accepted_by_client_id() {
    let port = free_port().to_string();
    let d = Direct::start(
        "cognito",
        &["--callback-port", &port],
        &[
            ("PORTCULLIS_IDP_CLIENT_IDS", COGNITO_CLIENT_ID),
            ("IDE_OAUTH_CLIENT_ID", COGNITO_CLIENT_ID),
            ("IDE_OAUTH_CALLBACK_PORT", &port),
        ],
        "engineering",
    );
    // Cognito has no offline_access: the advertised scopes leave it out.
    let prm = d.gateway.send(Request::get(
        "/.well-known/oauth-protected-resource/everything/mcp",
    ));
    assert_eq!(prm.status, 200, "{}", prm.describe());
    assert!(
        !prm.text().contains("offline_access"),
        "Cognito's resource metadata must not ask for offline_access: {}",
        prm.text()
    );
    d.ts_sdk(Expect::Works);
    d.claude_code(Expect::Works);
    d.mcp_remote(Expect::Works);
    d.codex(Expect::Warned("callback_path_unmatchable"));
}

#[test]
fn entra_refuses_resource_so_every_client_is_warned_and_fails_for_that() {
    let audience = format!("api://{ENTRA_APP_ID}");
    let d = Direct::start(
        "entra",
        &[],
        &[
            ("PORTCULLIS_IDP_AUDIENCE", audience.as_str()),
            ("IDE_OAUTH_CLIENT_ID", ENTRA_APP_ID),
        ],
        ENTRA_ENGINEERING,
    );
    d.ts_sdk(Expect::Warned("idp_refuses_resource"));
    d.mcp_remote(Expect::Warned("idp_refuses_resource"));
    d.claude_code(Expect::Warned("idp_refuses_resource"));
    d.codex(Expect::Warned("idp_refuses_resource"));
}
