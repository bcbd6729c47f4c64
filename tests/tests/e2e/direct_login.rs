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

use portcullis_e2e::oidc::{
    OidcIdp, BOB, COGNITO_CLIENT_ID, ENTRA_APP_ID, ENTRA_ENGINEERING, OKTA_AUDIENCE, OKTA_CLIENT_ID,
};
use portcullis_e2e::util::free_port;
use portcullis_e2e::{Request, TestDir};
use serde_json::json;

use crate::assistants::{serve_everything, Clients, Expect, Stack, NAME};

const MESSAGE: &str = "hello from direct mode";
/// Keycloak's Audience mapper value (the safe set-up `docs/idp-profiles.md` describes).
const KEYCLOAK_AUDIENCE: &str = "mcp-gateway";

/// One profile's stack: the IdP, then the control plane, the MCP server and Envoy.
struct Direct {
    profile: &'static str,
    stack: Stack,
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
        let mut vars = vec![
            ("PORTCULLIS_IDP_ISSUER", issuer.as_str()),
            ("PORTCULLIS_IDP_PROFILE", profile),
            ("PORTCULLIS_API_AUDIENCE", "portcullis-api"),
        ];
        vars.extend_from_slice(env);
        let stack = serve_everything(
            &dir,
            &vars,
            &[
                (
                    "/api/scopes/everything-all".to_string(),
                    json!({"grants": [{"server": NAME, "methods": ["*"], "tools": ["*"]}]}),
                ),
                (
                    format!("/api/group-mappings/{group}"),
                    json!({"scopes": ["everything-all"]}),
                ),
            ],
        );
        Direct {
            profile,
            stack,
            idp,
            dir,
        }
    }

    /// Alice's clients, run from this profile's connect config.
    fn clients(&self) -> Clients<'_> {
        self.stack
            .clients(&self.dir, self.profile, "direct-login", MESSAGE)
    }

    /// `user`, in no group, logs in with the TS SDK client and is refused by the filter from
    /// `initialize` on (no access to the server at all): access comes from groups, and the
    /// refusal names the group that would allow it, never a scope the IdP cannot issue.
    fn ts_sdk_refused(&self, user: (&str, &str), group: &str) {
        let challenge = self.clients().ts_sdk_refused(user);
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
}

#[test]
fn keycloak_with_an_audience_mapper_every_client_logs_in_and_calls_a_tool() {
    let d = Direct::start(
        "keycloak",
        &["--audience-mapper", KEYCLOAK_AUDIENCE],
        &[("PORTCULLIS_IDP_AUDIENCE", KEYCLOAK_AUDIENCE)],
        "engineering",
    );
    d.clients().ts_sdk(Expect::Works);
    d.clients().mcp_remote(Expect::Works);
    d.clients().claude_code(Expect::Works);
    d.clients().codex(Expect::Works);
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
    weak.clients().ts_sdk(Expect::WorksWarned("weak_audience"));
    let none = Direct::start("keycloak", &[], &[], "engineering");
    none.clients()
        .ts_sdk(Expect::Warned("idp_audience_mismatch"));
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
    d.clients().ts_sdk(Expect::Works);
    d.ts_sdk_refused(BOB, "engineering");
    d.clients().claude_code(Expect::Works);
    d.clients().mcp_remote(Expect::Works);
    d.clients()
        .codex(Expect::Warned("callback_path_unmatchable"));
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
    let prm = d.stack.gateway.send(Request::get(
        "/.well-known/oauth-protected-resource/everything/mcp",
    ));
    assert_eq!(prm.status, 200, "{}", prm.describe());
    assert!(
        !prm.text().contains("offline_access"),
        "Cognito's resource metadata must not ask for offline_access: {}",
        prm.text()
    );
    d.clients().ts_sdk(Expect::Works);
    d.clients().claude_code(Expect::Works);
    d.clients().mcp_remote(Expect::Works);
    d.clients()
        .codex(Expect::Warned("callback_path_unmatchable"));
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
    d.clients().ts_sdk(Expect::Warned("idp_refuses_resource"));
    d.clients()
        .mcp_remote(Expect::Warned("idp_refuses_resource"));
    d.clients()
        .claude_code(Expect::Warned("idp_refuses_resource"));
    d.clients().codex(Expect::Warned("idp_refuses_resource"));
}
