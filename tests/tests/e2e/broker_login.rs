//! Broker mode with people logging in, end to end: `portcullis serve` in broker mode is the
//! authorization server (built-in user store), Envoy from the shipped bootstrap with the
//! filter passes `/oauth/…` to it and checks every MCP request against the tokens it issues,
//! and a real `mcp-server-everything` answers. Offline: the CLIs run in a sandbox that lets
//! nothing out (an HTTPS proxy that refuses and records what they tried), and this machine
//! has no DNS, so neither they nor the broker can reach claude.ai or chatgpt.com (with a
//! network, the broker would fetch the CLIs' real documents and the "nothing pinned" cells
//! below would change).
//!
//! Every client is run exactly as the broker-mode connect config emits it (`assistants`), logs
//! in through the login page with `tests/node/browser.mjs` as its browser, and calls `echo`
//! through Envoy; `get-env`, which alice's group lacks, is refused with 403. What each one
//! does depends on whether the broker advertises Client ID Metadata Documents
//! (`client_id_metadata_document_supported`; `PORTCULLIS_CIMD`: `auto`, the default, advertises
//! it only while both CLIs' documents are at hand, so offline with nothing pinned it is not
//! advertised and they register by DCR; `on` always; `off` never):
//!
//! | client | not advertised (`auto` offline, or `off`) | `on`, nothing pinned | its document pinned (`on`, or `auto` with both pinned) |
//! |---|---|---|---|
//! | Claude Code | DCR, works | sends `client_id=https://claude.ai/oauth/claude-code-client-metadata`, redirect `http://localhost:<port>/callback`; the browser gets our 502 page; no DCR fallback (it prints the URL and waits for a callback) | CIMD, works |
//! | Codex | DCR, works | sends `client_id=https://chatgpt.com/oauth/codex/client.json`, redirect `http://127.0.0.1:<port>/callback`; the same 502 page; no fallback (it waits), for `mcp add` and `mcp login` alike | CIMD, works |
//! | mcp-remote | | DCR, works: its config passes no `--client-metadata-url` | |
//! | TS SDK | DCR, works | with a `clientMetadataUrl` on an https host the broker may fetch from: CIMD, works, refreshes | |
//!
//! The CLIs with CIMD on: the login stops at our "metadata could not be read" page (it names
//! `POST /api/oauth-clients/cimd` and `PORTCULLIS_CIMD=off`), nothing is stored, registered or
//! issued; the operator then pins the CLI's document (its `client_id` URL, a loopback
//! `/callback` redirect, any port) and the next login works as a `cimd` client, `pinned`.
//! The TS SDK's document is served by `DocumentHost` on loopback (allowlisted by
//! `PORTCULLIS_CIMD_ALLOWED_ADDRESSES`, its CA in `PORTCULLIS_CIMD_CA_FILE`); a document whose
//! `client_id` is not its URL gets our 400 page and nothing else. Bob, in no group, logs in
//! and gets 403.
//!
//! Also: a grant revoked by RFC 7009 is refused by Envoy within a snapshot push, and
//! simultaneous code exchanges all get tokens.

use std::time::Duration;

use portcullis_e2e::documents::DocumentHost;
use portcullis_e2e::http::{form_urlencoded, percent, query_param};
use portcullis_e2e::oidc::{ALICE, BOB};
use portcullis_e2e::util::{b64url, now, wait_until};
use portcullis_e2e::{ClientPlan, Request, TestDir};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::assistants::{claim_summary, serve_everything, Clients, Expect, Login, Stack, NAME};

/// A tool of the server that alice's group does not grant.
const DENIED_TOOL: &str = "get-env";
/// Hosts of the CLIs' Client ID Metadata Documents, which the sandbox cannot reach.
const CIMD_HOSTS: [&str; 2] = ["claude.ai", "chatgpt.com"];
/// The `client_id` Claude Code sends where CIMD is advertised (its metadata document's URL).
const CLAUDE_CODE_DOCUMENT: &str = "https://claude.ai/oauth/claude-code-client-metadata";
/// The `client_id` Codex sends where CIMD is advertised.
const CODEX_DOCUMENT: &str = "https://chatgpt.com/oauth/codex/client.json";

/// The stack: control plane (broker), MCP server, Envoy.
struct Broker {
    stack: Stack,
    /// `PORTCULLIS_CIMD` is on (what the metadata and the connect configs then say).
    cimd: bool,
    /// Holds the files until the processes above are gone (fields drop in order).
    dir: TestDir,
}

impl Broker {
    /// With `PORTCULLIS_CIMD=on`: advertised whatever can be fetched.
    fn start(name: &str) -> Broker {
        Broker::start_with(name, &[("PORTCULLIS_CIMD", "on")])
    }

    /// With the default, `PORTCULLIS_CIMD=auto`: offline, with nothing pinned, the assistants'
    /// documents cannot be had, so CIMD is not advertised.
    fn by_default(name: &str) -> Broker {
        Broker::start_with(name, &[])
    }

    /// With `PORTCULLIS_CIMD=off`.
    fn cimd_off(name: &str) -> Broker {
        Broker::start_with(name, &[("PORTCULLIS_CIMD", "off")])
    }

    fn start_with(name: &str, env: &[(&str, &str)]) -> Broker {
        let dir = TestDir::new(&format!("broker-login-{name}"));
        let mut vars = vec![
            ("PORTCULLIS_AUTH_MODE", "broker"),
            ("MCP_ADVERTISED_SCOPES", "openid profile"),
        ];
        vars.extend_from_slice(env);
        let cimd = env.contains(&("PORTCULLIS_CIMD", "on"));
        let stack = serve_everything(
            &dir,
            &vars,
            &[
                (
                    "/api/scopes/everything-safe".to_string(),
                    json!({"grants": [{"server": NAME, "methods": ["tools/list", "tools/call"], "tools": ["echo"]}]}),
                ),
                (
                    "/api/group-mappings/engineering".to_string(),
                    json!({"scopes": ["everything-safe"]}),
                ),
                (
                    format!("/api/users/{}", ALICE.0),
                    json!({"password": ALICE.1, "groups": ["engineering"]}),
                ),
                (
                    format!("/api/users/{}", BOB.0),
                    json!({"password": BOB.1, "groups": []}),
                ),
            ],
        );
        Broker { stack, cimd, dir }
    }

    /// Alice's clients, run from the broker-mode connect config; each is also refused the
    /// tool her group lacks, and what the CLIs try to reach is recorded.
    fn clients(&self) -> Clients<'_> {
        self.clients_in(&self.dir)
    }

    /// [`Broker::clients`] with their homes and logs in `dir` (a person starting afresh).
    fn clients_in<'a>(&'a self, dir: &'a TestDir) -> Clients<'a> {
        Clients {
            denied_tool: Some(DENIED_TOOL),
            record_outbound: true,
            ..self
                .stack
                .clients(dir, "broker", "broker-login", "hello from broker mode")
        }
    }

    /// The connect config sends `ide` (`None`: the TS SDK client) the broker's way: the URL,
    /// no client id; CIMD for the assistants that use it when the broker advertises it, DCR
    /// otherwise. (Each client's runner asserts it carries no workaround warning.)
    fn check_connect_config(&self, ide: Option<&str>) {
        let codes = self.clients().codes(ide);
        eprintln!("[broker-login] connect config for {ide:?}: warnings {codes:?}");
        assert_eq!(
            self.stack.connect["url"],
            self.stack.url.as_str(),
            "{:#}",
            self.stack.connect
        );
        assert!(
            self.stack.connect["oauth_client_id"].is_null(),
            "broker mode pre-registers no client: {:#}",
            self.stack.connect
        );
        if let Some(ide) = ide {
            let uses_cimd = matches!(ide, "claude-code" | "codex");
            let method = if self.cimd && uses_cimd {
                "cimd"
            } else {
                "dcr"
            };
            assert_eq!(
                self.stack.connect["rendered"][ide]["login_method"], method,
                "{ide}: {:#}",
                self.stack.connect["rendered"][ide]
            );
        }
    }

    /// Discovery through Envoy: the metadata (CIMD advertised or not), the JWKS, all without
    /// credentials.
    fn check_metadata(&self) {
        let meta = self.stack.authorization_server_metadata();
        assert_eq!(
            meta["token_endpoint"],
            format!("{}/oauth/token", self.stack.public_url)
        );
        // What makes Claude Code and Codex send their document's URL rather than register.
        assert_eq!(
            meta["client_id_metadata_document_supported"], self.cimd,
            "{meta:#}"
        );
        // Codex uses CIMD only where public clients (`none`) are accepted.
        assert!(
            meta["token_endpoint_auth_methods_supported"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m == "none")),
            "{meta:#}"
        );
        let jwks = self.stack.gateway.send(Request::get("/oauth/jwks"));
        assert_eq!(jwks.status, 200, "{}", jwks.describe());
    }

    /// The claims of `who`'s token: the broker as issuer, the MCP URL as audience, alice and
    /// her group.
    fn check_claims<'l>(&self, who: &str, login: &'l Option<Login>) -> &'l Value {
        self.stack
            .check_broker_claims(who, login, ALICE.0, &json!(["engineering"]))
    }

    /// What `who`'s login must have done: registered by DCR as `client_name` (not CIMD:
    /// nothing asked of claude.ai or chatgpt.com; every client of this stack is such a one),
    /// and obtained a token for that client.
    fn check_login(&self, who: &str, login: Option<Login>, client_name: &str) {
        let claims = self.check_claims(who, &login);
        let login = login.as_ref().expect("checked above");

        let clients = self.stack.oauth_clients();
        for c in &clients {
            assert_eq!(c["registration_type"], "dcr", "{who}: {c}");
            assert_eq!(c["client_name"], client_name, "{who}: {c}");
        }
        let client = self.stack.dcr_client(who, claims, client_name);
        self.stack.check_only_registered_clients_authorized(who);

        // The sandbox lets nothing out; a CLI that honours HTTPS_PROXY (Claude Code) has what it
        // tried recorded by the proxy, the others (Codex, mcp-remote) find no DNS here.
        let tried = cimd_hosts_tried(login);
        assert!(
            tried.is_empty(),
            "{who} tried to reach a CIMD host: {tried:?}"
        );
        let signs: Vec<&str> = CIMD_HOSTS
            .iter()
            .copied()
            .filter(|h| login.observed.contains(h))
            .collect();
        eprintln!(
            "[broker-login] {who}: DCR client {:?} ({client_name}), claims {}, outbound attempts {:?}, CIMD hosts in its output {signs:?}",
            client["client_id"],
            claim_summary(claims),
            login.outbound
        );
    }

    /// What `who`'s login, offline with CIMD advertised and nothing pinned, must have done: sent
    /// `document` (its metadata document's URL) as `client_id` and printed it; the browser got
    /// our 502 page, which tells the operator what to do; nothing was registered, stored or
    /// issued. `attempts`: how many `/oauth/authorize` requests the stack has had by now (Envoy
    /// writes its access log a moment later). Returns the redirect URIs sent.
    fn check_stopped(
        &self,
        who: &str,
        stopped: Option<Login>,
        document: &str,
        attempts: usize,
    ) -> Vec<String> {
        let stopped = stopped.unwrap_or_else(|| panic!("{who}: no outcome"));
        assert!(stopped.claims.is_null(), "{who}: {}", stopped.claims);
        assert!(
            stopped.observed.contains(&percent(document)),
            "{who}: it should have printed the authorization URL with client_id {document}:\n{}",
            stopped.observed
        );
        let requests = wait_until(Duration::from_secs(5), || {
            let r = self.stack.authorize_requests();
            (r.len() >= attempts).then_some(r)
        })
        .unwrap_or_else(|| {
            panic!(
                "{who}: fewer than {attempts} /oauth/authorize in Envoy's access log: {:?}",
                self.stack.authorize_requests()
            )
        });
        let mut redirects = Vec::new();
        for (query, status) in &requests {
            assert_eq!(
                query_param(query, "client_id").as_deref(),
                Some(document),
                "{who}: {query}"
            );
            assert_eq!(*status, 502, "{who}: /oauth/authorize?{query}");
            redirects.extend(query_param(query, "redirect_uri"));
        }
        // The page the person sees, and what it tells the operator.
        let host = url_host(document);
        for sign in [
            "-> 502",
            "The application's metadata could not be read",
            // Why: the sandbox has no DNS (a machine with a network would fetch the real one).
            &format!("the client's metadata document could not be fetched: {host}"),
            "POST /api/oauth-clients/cimd",
            "PORTCULLIS_CIMD=off",
        ] {
            assert!(
                stopped.observed.contains(sign),
                "{who}: the browser should have shown {sign:?}:\n{}",
                stopped.observed
            );
        }
        // Failures are never kept, nothing was registered instead, nothing issued.
        let clients = self.stack.oauth_clients();
        assert!(clients.is_empty(), "{who}: {clients:#?}");
        assert_eq!(
            self.stack.requests_to("/oauth/register"),
            0,
            "{who}: registered"
        );
        assert_eq!(
            self.stack.requests_to("/oauth/token"),
            0,
            "{who}: a token request"
        );
        eprintln!(
            "[broker-login] {who}: CIMD client_id {document} refused with 502 ({} /authorize requests, redirect URIs {redirects:?}); no DCR fallback; outbound attempts {:?}",
            requests.len(),
            stopped.outbound
        );
        redirects
    }

    /// The operator pins `document` (`POST /api/oauth-clients/cimd`): a new `cimd` client.
    fn pin(&self, document: &Value) {
        let r = self
            .stack
            .cp
            .admin("POST", "/api/oauth-clients/cimd", Some(document));
        assert_eq!(r.status, 201, "{}", r.describe());
        let client = r.json();
        assert_eq!(client["client_id"], document["client_id"], "{client}");
        assert_eq!(client["registration_type"], "cimd", "{client}");
        assert_eq!(client["pinned"], true, "{client}");
    }

    /// What `who`'s login through its pinned metadata document must have done: its token's
    /// client is `document`, the only client, listed as a pinned `cimd` one; the broker was
    /// asked to authorize nothing else, and nothing registered by DCR.
    fn check_cimd_login(&self, who: &str, login: Option<Login>, document: &str) {
        let claims = self.check_claims(who, &login);
        assert_eq!(claims["client_id"], document, "{who}: {claims}");
        let clients = self.stack.oauth_clients();
        assert_eq!(clients.len(), 1, "{who}: {clients:#?}");
        let client = &clients[0];
        assert_eq!(client["client_id"], document, "{who}: {client}");
        assert_eq!(client["registration_type"], "cimd", "{who}: {client}");
        assert_eq!(client["pinned"], true, "{who}: {client}");
        assert!(client["last_used_at"].is_i64(), "{who}: {client}");
        for id in self.stack.authorize_client_ids(who) {
            assert_eq!(id, document, "{who}");
        }
        assert_eq!(
            self.stack.requests_to("/oauth/register"),
            0,
            "{who}: registered"
        );
        let login = login.as_ref().expect("checked above");
        eprintln!(
            "[broker-login] {who}: CIMD client {document} (pinned), claims {}, outbound attempts {:?}, CIMD hosts tried {:?}",
            claim_summary(claims),
            login.outbound,
            cimd_hosts_tried(login)
        );
    }
}

/// Request lines the CLI sent toward a CIMD host (through the recording proxy).
fn cimd_hosts_tried(login: &Login) -> Vec<&String> {
    login
        .outbound
        .iter()
        .filter(|l| CIMD_HOSTS.iter().any(|h| l.contains(h)))
        .collect()
}

/// The host of an https URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', ':']).next().unwrap_or(rest)
}

/// A metadata document as an operator would pin it for a CLI (or a host serve it): a public
/// client with one loopback `/callback` redirect URI, any port.
fn document(client_id: &str, client_name: &str, redirect_uri: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": client_name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// `uri` is `http://<host>:<some port>/callback`.
fn assert_loopback_callback(who: &str, uri: &str, host: &str) {
    let port = uri
        .strip_prefix(&format!("http://{host}:"))
        .and_then(|rest| rest.strip_suffix("/callback"))
        .and_then(|p| p.parse::<u16>().ok());
    assert!(
        port.is_some(),
        "{who}: redirect_uri {uri:?} is not http://{host}:<port>/callback"
    );
}

#[test]
fn ts_sdk_client_registers_by_dcr_with_cimd_off() {
    let b = Broker::cimd_off("ts-sdk");
    b.check_connect_config(None);
    b.check_metadata();

    let clients = b.clients();
    let login = clients.ts_sdk(Expect::Works);
    b.check_login("TS SDK", login, "portcullis-e2e");

    // A person without a mapped group logs in, and is refused with a clear 403.
    let challenge = clients.ts_sdk_refused(BOB);
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("engineering"),
        "bob's refusal should name the group that would allow it: {challenge}"
    );
}

/// mcp-remote, as Claude Desktop's config runs it, never uses CIMD (the config passes no
/// `--client-metadata-url`): it registers by DCR even where CIMD is advertised.
#[test]
fn mcp_remote_registers_by_dcr_with_cimd_advertised() {
    let b = Broker::start("mcp-remote");
    b.check_connect_config(Some("claude-desktop"));
    b.check_metadata();
    let login = b.clients().mcp_remote(Expect::Works);
    b.check_login("mcp-remote", login, "MCP CLI Proxy");
}

/// The default (`auto`) offline: CIMD is not advertised, so Claude Code registers by DCR and
/// logs in.
#[test]
fn claude_code_registers_by_dcr_offline_by_default() {
    let b = Broker::by_default("claude-code");
    b.check_metadata();
    b.check_connect_config(Some("claude-code"));
    let login = b.clients().claude_code(Expect::Works);
    b.check_login("Claude Code", login, &format!("Claude Code ({NAME})"));
}

/// The same for Codex.
#[test]
fn codex_registers_by_dcr_offline_by_default() {
    let b = Broker::by_default("codex");
    b.check_connect_config(Some("codex"));
    let [added, logged_in] = b.clients().codex(Expect::Works);
    b.check_login("Codex (mcp add)", added, "Codex");
    b.check_login("Codex (mcp login)", logged_in, "Codex");
}

/// CIMD advertised (`PORTCULLIS_CIMD=on`), offline: Claude Code sends its document's URL and stops at
/// our page; once the operator pins the document, the next login works through it.
#[test]
fn claude_code_with_cimd_stops_offline_until_its_document_is_pinned() {
    let b = Broker::start("claude-code-cimd");
    b.check_connect_config(Some("claude-code"));
    b.check_metadata();

    let stopped = b.clients().claude_code(Expect::Stops);
    for uri in b.check_stopped("Claude Code", stopped, CLAUDE_CODE_DOCUMENT, 1) {
        assert_loopback_callback("Claude Code", &uri, "localhost");
    }

    b.pin(&document(
        CLAUDE_CODE_DOCUMENT,
        "Claude Code",
        "http://localhost/callback",
    ));
    let again = TestDir::new("broker-login-claude-code-cimd-pinned");
    let login = b.clients_in(&again).claude_code(Expect::Works);
    b.check_cimd_login("Claude Code", login, CLAUDE_CODE_DOCUMENT);
}

/// The same for Codex: `codex mcp add` (which logs in at once) and `codex mcp login` both stop
/// at our page offline; with the document pinned, both log in through it.
#[test]
fn codex_with_cimd_stops_offline_until_its_document_is_pinned() {
    let b = Broker::start("codex-cimd");
    b.check_connect_config(Some("codex"));
    b.check_metadata();

    let [added, logged_in] = b.clients().codex(Expect::Stops);
    b.check_stopped("Codex (mcp add)", added, CODEX_DOCUMENT, 1);
    for uri in b.check_stopped("Codex (mcp login)", logged_in, CODEX_DOCUMENT, 2) {
        assert_loopback_callback("Codex", &uri, "127.0.0.1");
    }

    b.pin(&document(
        CODEX_DOCUMENT,
        "Codex",
        "http://127.0.0.1/callback",
    ));
    let again = TestDir::new("broker-login-codex-cimd-pinned");
    let [added, logged_in] = b.clients_in(&again).codex(Expect::Works);
    b.check_cimd_login("Codex (mcp add)", added, CODEX_DOCUMENT);
    b.check_cimd_login("Codex (mcp login)", logged_in, CODEX_DOCUMENT);
}

/// The default (`auto`) offline, once an operator pinned both assistants' documents: CIMD is
/// advertised, and Codex logs in through its document without ever reaching chatgpt.com.
#[test]
fn codex_uses_its_pinned_document_by_default() {
    let b = Broker::by_default("codex-auto");
    b.check_metadata();
    b.pin(&document(
        CLAUDE_CODE_DOCUMENT,
        "Claude Code",
        "http://localhost/callback",
    ));
    b.pin(&document(
        CODEX_DOCUMENT,
        "Codex",
        "http://127.0.0.1/callback",
    ));
    // The check at start may still be waiting on DNS for claude.ai and chatgpt.com (5 s at most).
    let advertised = wait_until(Duration::from_secs(30), || {
        let meta = b
            .stack
            .gateway
            .send(Request::get("/.well-known/oauth-authorization-server"))
            .json();
        (meta["client_id_metadata_document_supported"] == true).then_some(())
    });
    assert!(
        advertised.is_some(),
        "CIMD not advertised with both documents pinned"
    );
    let [added, logged_in] = b.clients().codex(Expect::Works);
    for (who, login) in [("Codex (mcp add)", added), ("Codex (mcp login)", logged_in)] {
        let claims = b.check_claims(who, &login);
        assert_eq!(claims["client_id"], CODEX_DOCUMENT, "{who}: {claims}");
        let tried = cimd_hosts_tried(login.as_ref().expect("checked above"));
        assert!(tried.is_empty(), "{who} tried {tried:?}");
    }
    let clients = b.stack.oauth_clients();
    assert_eq!(clients.len(), 2, "{clients:#?}");
    assert!(clients
        .iter()
        .all(|c| c["registration_type"] == "cimd" && c["pinned"] == true));
    assert_eq!(b.stack.requests_to("/oauth/register"), 0, "registered");
}

/// The TS SDK client with a `clientMetadataUrl` on an https host the broker may fetch from
/// (loopback, allowlisted, its CA trusted): 401, discovery, the document's URL as `client_id`,
/// the broker fetches the document, login, token, `echo` through Envoy, and a refresh. Before
/// that, a document whose `client_id` is not its own URL: our 400 page, nothing issued.
#[test]
fn ts_sdk_client_logs_in_with_a_fetched_metadata_document_and_refreshes() {
    let documents = TestDir::new("broker-login-document-host");
    let host = DocumentHost::start(documents.path());
    let [(ca_key, ca), (allow_key, allow)] = host.broker_env();
    let b = Broker::start_with(
        "ts-sdk-cimd",
        &[
            ("PORTCULLIS_CIMD", "on"),
            (ca_key, &ca),
            (allow_key, &allow),
        ],
    );
    b.check_metadata();
    let url = host.url("/clients/portcullis-e2e.json");
    host.put(
        "/clients/portcullis-e2e.json",
        &document(
            &url,
            "portcullis-e2e (metadata document)",
            "http://127.0.0.1/callback",
        ),
    );
    let oauth = |document_url: &str| json!({"user": ALICE.0, "password": ALICE.1, "clientMetadataUrl": document_url});

    // A document that says it is another client: refused before anyone signs in.
    let impostor = host.url("/clients/impostor.json");
    host.put(
        "/clients/impostor.json",
        &document(&url, "impostor", "http://127.0.0.1/callback"),
    );
    let run = ClientPlan::new()
        .oauth(oauth(&impostor))
        .connect()
        .run(&b.dir, &b.stack.url);
    run.err(0);
    let report = &run.summary["oauth"];
    assert_eq!(
        report["authorization"]["clientId"],
        impostor.as_str(),
        "{report:#}"
    );
    assert_eq!(report["browser"]["status"], 400, "{report:#}");
    let page = report["browser"]["text"].as_str().unwrap_or_default();
    assert!(
        page.contains("Application refused")
            && page.contains("its client_id is not the URL it was fetched from"),
        "{page}"
    );
    assert_eq!(report["tokenSaves"], 0, "{report:#}");
    assert!(
        b.stack.oauth_clients().is_empty(),
        "{:#?}",
        b.stack.oauth_clients()
    );
    assert_eq!(b.stack.requests_to("/oauth/token"), 0);
    assert_eq!(host.requests(), ["GET /clients/impostor.json 200"]);

    // The client's own document: the login, a tool call, a refresh, another call.
    let before = i64::try_from(now()).expect("now");
    let run = ClientPlan::new()
        .oauth(oauth(&url))
        .connect()
        .call_tool("echo", json!({"message": "known by its document"}))
        .expire_access_token()
        .call_tool("echo", json!({"message": "after a refresh"}))
        .run(&b.dir, &b.stack.url);
    assert_eq!(
        run.ok(1)["content"][0]["text"],
        "Echo: known by its document",
        "{}",
        run.describe()
    );
    assert_eq!(run.ok(3)["content"][0]["text"], "Echo: after a refresh");
    let report = &run.summary["oauth"];
    assert_eq!(
        report["registered"]["client_id"],
        url.as_str(),
        "{report:#}"
    );
    assert_eq!(
        report["authorization"]["clientId"],
        url.as_str(),
        "{report:#}"
    );
    assert_eq!(report["tokenSaves"], 2, "a login and a refresh: {report:#}");
    assert_eq!(report["refreshTokenRotated"], true, "{report:#}");
    let login = Some(Login {
        claims: report["accessTokenClaims"].clone(),
        outbound: Vec::new(),
        observed: run.describe(),
        browser: String::new(),
    });
    let claims = b.check_claims("TS SDK (CIMD)", &login);
    assert_eq!(claims["client_id"], url.as_str(), "{claims}");
    let exchanges = run.http();
    let grants: Vec<&Value> = exchanges
        .iter()
        .filter(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/oauth/token"))
        })
        .map(|e| &e["requestForm"])
        .collect();
    assert_eq!(grants.len(), 2, "{}", run.describe());
    assert_eq!(grants[0]["grant_type"], "authorization_code", "{grants:?}");
    assert_eq!(grants[1]["grant_type"], "refresh_token", "{grants:?}");
    for g in &grants {
        assert_eq!(g["client_id"], url.as_str(), "{g}");
        assert_eq!(g["resource"], b.stack.url.as_str(), "{g}");
    }
    assert!(
        !exchanges.iter().any(|e| e["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/oauth/register"))),
        "no DCR: {}",
        run.describe()
    );

    // As operators see it: a cimd client, not pinned, its copy fresh for the document's
    // max-age (300 s), used at the token endpoint; fetched once for the login and the refresh.
    let clients = b.stack.oauth_clients();
    assert_eq!(clients.len(), 1, "{clients:#?}");
    let client = &clients[0];
    assert_eq!(client["client_id"], url.as_str(), "{client}");
    assert_eq!(client["registration_type"], "cimd", "{client}");
    assert_eq!(client["client_name"], "portcullis-e2e (metadata document)");
    assert_eq!(
        client["redirect_uris"],
        json!(["http://127.0.0.1/callback"])
    );
    assert!(client.get("pinned").is_none_or(|p| p == false), "{client}");
    let fresh_until = client["document_fresh_until"].as_i64().unwrap_or_default();
    assert!(
        (before + 290..=i64::try_from(now()).expect("now") + 300).contains(&fresh_until),
        "document_fresh_until {fresh_until} should be about 300 s after {before}: {client}"
    );
    assert!(client["last_used_at"].is_i64(), "{client}");
    assert_eq!(
        host.requests(),
        [
            "GET /clients/impostor.json 200",
            "GET /clients/portcullis-e2e.json 200"
        ]
    );
    eprintln!(
        "[broker-login] TS SDK: CIMD client {url} (fetched), claims {}",
        claim_summary(claims)
    );
}

/// Where the form-driven logins below say they go back to (nothing listens: the code is read
/// from the redirect).
const LOGIN_REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A public client registered by DCR directly at the control plane.
fn register_public_client(port: u16) -> String {
    let r = Request::post("/oauth/register")
        .json(&json!({
            "client_name": "form-driven", "redirect_uris": [LOGIN_REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "token_endpoint_auth_method": "none",
        }))
        .send(port);
    assert_eq!(r.status, 201, "{}", r.describe());
    r.json()["client_id"]
        .as_str()
        .expect("client_id")
        .to_string()
}

/// Alice's login through the login page as a browser submits it (its binding cookie
/// included): a code and its PKCE verifier.
fn log_in_at_the_form(b: &Broker, port: u16, client_id: &str, i: usize) -> (String, String) {
    let verifier = format!("verifier-{i}-{}", "v".repeat(43));
    let challenge = b64url(&Sha256::digest(verifier.as_bytes()));
    let query = form_urlencoded(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", LOGIN_REDIRECT),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", "s"),
        ("scope", "openid"),
        ("resource", &b.stack.url),
    ]);
    let page = Request::get(&format!("/oauth/authorize?{query}")).send(port);
    assert_eq!(page.status, 200, "{}", page.describe());
    let html = page.text();
    let request = html
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login form's request field");
    let cookie = page
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("the page's binding cookie")
        .to_string();
    let signed_in = Request::post("/oauth/authorize")
        .header("cookie", &cookie)
        .form(&[
            ("request", request),
            ("username", ALICE.0),
            ("password", ALICE.1),
            ("decision", "approve"),
        ])
        .send(port);
    assert_eq!(signed_in.status, 303, "{}", signed_in.describe());
    let location = signed_in.header("location").expect("location");
    let code = location
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .expect("code")
        .to_string();
    (code, verifier)
}

/// Revoking a grant (RFC 7009 on its refresh token) reaches Envoy with the next snapshot: the
/// access token it had, still unexpired, is refused from then on.
#[test]
fn a_revoked_grant_stops_working_in_envoy_at_once() {
    let b = Broker::start("revocation");
    let port = b.stack.cp.port();
    let client_id = register_public_client(port);
    let (code, verifier) = log_in_at_the_form(&b, port, &client_id, 0);
    let tokens = Request::post("/oauth/token")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", LOGIN_REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &b.stack.url),
        ])
        .send(port);
    assert_eq!(tokens.status, 200, "{}", tokens.describe());
    let tokens = tokens.json();
    let access = tokens["access_token"].as_str().expect("access token");
    let path = url_path(&b.stack.url);
    let list = || {
        Request::post(&path)
            .bearer(access)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send(b.stack.gateway.port())
    };
    let before = list();
    assert_ne!(before.status, 401, "{}", before.describe());

    let revoked = Request::post("/oauth/revoke")
        .form(&[
            (
                "token",
                tokens["refresh_token"].as_str().expect("refresh token"),
            ),
            ("client_id", &client_id),
        ])
        .send(port);
    assert_eq!(revoked.status, 200, "{}", revoked.describe());
    let refused = wait_until(Duration::from_secs(5), || {
        let r = list();
        (r.status == 401).then_some(r)
    })
    .expect("Envoy refuses the revoked grant's access token within seconds");
    let challenge = refused.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .find('/')
        .map_or_else(|| "/".to_string(), |i| after_scheme[i..].to_string())
}

/// Two people finishing their logins at the same moment (or one login while Envoy ships
/// audit events) must both get tokens. This failed now and then (`/oauth/token` answered 500,
/// SQLite's "database is locked" while a `POST /v1/audit` was written: a transaction that read
/// and then wrote) until grant records took the write lock first (`Db::begin_write`).
#[test]
fn concurrent_code_exchanges_all_get_tokens() {
    const LOGINS: usize = 8;
    let b = Broker::start("concurrent-exchanges");
    let port = b.stack.cp.port();
    let (client_id, redirect) = (register_public_client(port), LOGIN_REDIRECT);
    let codes: Vec<(String, String)> = (0..LOGINS)
        .map(|i| log_in_at_the_form(&b, port, &client_id, i))
        .collect();
    let start = std::sync::Barrier::new(LOGINS);
    let statuses: Vec<(u16, String)> = std::thread::scope(|s| {
        let threads: Vec<_> = codes
            .iter()
            .map(|(code, verifier)| {
                let (start, client_id, url) = (&start, &client_id, &b.stack.url);
                let redirect = &redirect;
                s.spawn(move || {
                    start.wait();
                    let r = Request::post("/oauth/token")
                        .form(&[
                            ("grant_type", "authorization_code"),
                            ("code", code),
                            ("redirect_uri", redirect),
                            ("client_id", client_id),
                            ("code_verifier", verifier),
                            ("resource", url),
                        ])
                        .send(port);
                    let error = if r.status == 200 {
                        String::new()
                    } else {
                        r.text()
                    };
                    (r.status, error)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("exchange"))
            .collect()
    });
    let failed: Vec<&(u16, String)> = statuses.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {LOGINS} simultaneous code exchanges failed: {failed:?}",
        failed.len()
    );
}
