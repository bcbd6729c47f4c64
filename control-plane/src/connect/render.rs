//! Login-method choice and per-assistant rendering.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Value};
use url::Url;

use super::{
    config_name, resolve_client_id, resolve_url, shell_quote, ConnectConfig, ConnectError,
    ConnectRequest, Format, Ide, IdeConfig, IdpCapabilities, LoginMethod, StaticToken, Warning,
    WarningCode, TOKEN_ENV_VAR,
};

/// Placeholder where a token the caller may not see would go.
const TOKEN_PLACEHOLDER: &str = "<gateway token: ask your Portcullis administrator>";
/// The callback path strict IdPs have registered (`http://localhost:<port>/callback`).
const CALLBACK_PATH: &str = "/callback";
/// VS Code input id for a hidden token.
const VSCODE_TOKEN_INPUT: &str = "mcp-auth-token";

/// The token that goes into a static-token config.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Visible(String),
    Hidden,
}

/// What one assistant's config will carry.
#[derive(Debug)]
struct Plan<'a> {
    method: LoginMethod,
    /// Client id written into the config.
    client_id: Option<&'a str>,
    /// Loopback callback port written into the config.
    port: Option<u16>,
    token: Option<Token>,
    warnings: Vec<(WarningCode, String)>,
}

struct Ctx<'a> {
    name: String,
    url: String,
    client_id: Option<String>,
    port: Option<u16>,
    caps: IdpCapabilities,
    caps_known: bool,
    static_token: &'a StaticToken,
}

pub(super) fn render(req: ConnectRequest<'_>) -> Result<ConnectConfig, ConnectError> {
    let resolved = resolve_url(req.server, req.settings)?;
    let client_id = resolve_client_id(req.server, req.settings);
    let port = req.settings.ide_oauth_callback_port.filter(|p| *p != 0);
    let name = config_name(req.server);

    let mut warnings = Vec::new();
    let general = |code, message: String| Warning {
        code,
        ide: None,
        message,
    };
    if name != req.server.name.trim() {
        warnings.push(general(
            WarningCode::NameAdjusted,
            format!(
                "The server name {:?} is registered as {name:?} in the assistants' configs: \
                 Claude Code and Codex accept only letters, digits, '-' and '_'.",
                req.server.name
            ),
        ));
    }
    if is_insecure(&resolved.url) {
        warnings.push(general(
            WarningCode::InsecureUrl,
            format!(
                "{} is plain http on a non-loopback host: assistants refuse OAuth (and tokens \
                 would travel in clear) except on localhost. Set the registry's public URL to https.",
                resolved.url
            ),
        ));
    }
    let quirks = &req.settings.idp_quirks;
    if quirks.refuses_resource {
        warnings.push(general(
            WarningCode::IdpRefusesResource,
            format!(
                "{} refuses the RFC 8707 resource parameter that every MCP client sends with its \
                 login (Entra: AADSTS9010010), so no assistant can log in with it directly. What \
                 would work: broker mode (PORTCULLIS_AUTH_MODE=broker), where Portcullis is the \
                 authorization server and logs people in at {} without resource (the broker \
                 comes in a later release), or a static token (PORTCULLIS_STATIC_TOKEN_FALLBACK).",
                quirks.label, quirks.label
            ),
        ));
    }
    if let Some(problem) = &quirks.audience_problem {
        warnings.push(general(
            WarningCode::IdpAudienceMismatch,
            format!("Logins work, but the gateway will refuse the tokens: {problem}."),
        ));
    }
    if let Some(weak) = &quirks.weak_audience {
        warnings.push(general(
            WarningCode::WeakAudience,
            format!(
                "The MCP servers accept aud {weak:?}, which {} puts in every access token of the \
                 realm: a token issued to any client there is accepted. Add an Audience mapper to \
                 the public client with an audience of its own and set PORTCULLIS_IDP_AUDIENCE \
                 to only that.",
                quirks.label
            ),
        ));
    }
    match req.idp {
        None => warnings.push(general(
            WarningCode::IdpMetadataUnavailable,
            "The IdP's metadata could not be fetched, so neither DCR nor CIMD is assumed: \
             assistants without a pre-registered client id get no OAuth login."
                .to_string(),
        )),
        Some(caps) if req.settings.expect_dcr && !caps.dcr_supported() => warnings.push(general(
            WarningCode::DcrExpectedButAbsent,
            format!(
                "The IdP is configured as offering dynamic client registration, but its \
                     metadata{} has no registration_endpoint: DCR is off there, so assistants \
                     cannot register themselves. Enable anonymous DCR at the IdP, or set \
                     IDE_OAUTH_CLIENT_ID (or the server's oauth_client_id) to a pre-registered \
                     public client.",
                caps.issuer
                    .as_deref()
                    .map(|i| format!(" ({i})"))
                    .unwrap_or_default()
            ),
        )),
        Some(_) => {}
    }

    let ctx = Ctx {
        name: name.clone(),
        url: resolved.url.clone(),
        client_id: client_id.clone(),
        port,
        caps: req.idp.cloned().unwrap_or_default(),
        caps_known: req.idp.is_some(),
        static_token: &req.settings.static_token,
    };

    let ides: Vec<Ide> = match req.ide {
        Some(i) => vec![i],
        None => Ide::ALL.to_vec(),
    };
    let mut rendered = BTreeMap::new();
    for ide in &ides {
        let cfg = render_ide(*ide, &ctx);
        warnings.extend(cfg.warnings.iter().cloned());
        rendered.insert(*ide, cfg);
    }
    let login_method = match req.ide {
        Some(i) => rendered.get(&i).map(|c| c.login_method),
        None => None,
    };

    let scopes = req
        .settings
        .advertised_scopes
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();

    Ok(ConnectConfig {
        name,
        url: resolved.url,
        oauth_client_id: client_id,
        append_mcp_path: resolved.append_mcp_path,
        append_mcp_path_source: resolved.source,
        mcp_endpoint: req
            .server
            .mcp_endpoint
            .clone()
            .filter(|s| !s.trim().is_empty()),
        callback_port: port,
        scopes,
        idp: req.idp.cloned(),
        login_method,
        rendered,
        warnings,
    })
}

fn is_insecure(url: &str) -> bool {
    let Ok(u) = Url::parse(url) else {
        return false;
    };
    if u.scheme() != "http" {
        return false;
    }
    match u.host() {
        Some(url::Host::Domain(d)) => !(d == "localhost" || d.ends_with(".localhost")),
        Some(url::Host::Ipv4(ip)) => !IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => !IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Chooses the login method for `ide` and collects its warnings.
fn plan<'a>(ide: Ide, ctx: &'a Ctx<'_>) -> Plan<'a> {
    let sup = ide.support();
    let label = ide.label();
    let caps = &ctx.caps;
    let mut warnings = Vec::new();
    let mk = |method, client_id, warnings| Plan {
        method,
        client_id,
        port: None,
        token: None,
        warnings,
    };
    let idp_offers = if !ctx.caps_known {
        "the IdP's metadata could not be fetched".to_string()
    } else if caps.cimd_supported && !sup.cimd && !(caps.dcr_supported() && sup.dcr) {
        format!(
            "the IdP offers Client ID Metadata Documents, which {label} does not use, and no DCR \
             (registration_endpoint)"
        )
    } else if caps.dcr_supported() && !sup.dcr {
        format!("{label} does not register itself with DCR")
    } else {
        "the IdP's metadata advertises neither DCR (registration_endpoint) nor CIMD".to_string()
    };

    let mut p = if let Some(id) = ctx.client_id.as_deref() {
        if sup.client_id {
            mk(LoginMethod::PreRegistered, Some(id), warnings)
        } else if sup.cimd && caps.cimd_supported {
            warnings.push((
                WarningCode::ClientIdUnsupported,
                format!(
                    "{label}'s config has no place for a client id: it logs in with its own \
                     Client ID Metadata Document instead of the pre-registered client {id:?}."
                ),
            ));
            mk(LoginMethod::Cimd, None, warnings)
        } else if sup.dcr && caps.dcr_supported() {
            warnings.push((
                WarningCode::ClientIdUnsupported,
                format!(
                    "{label}'s config has no place for a client id: it registers itself with DCR \
                     instead of using the pre-registered client {id:?}."
                ),
            ));
            mk(LoginMethod::Dcr, None, warnings)
        } else if sup.client_id_prompt {
            warnings.push((
                WarningCode::ClientIdManualEntry,
                format!(
                    "{label} has no client id field and {idp_offers}: when it asks for a client \
                     id at the first login, enter {id:?} (and leave the secret empty)."
                ),
            ));
            mk(LoginMethod::PreRegistered, None, warnings)
        } else {
            warnings.push((
                WarningCode::ClientIdUnsupported,
                if sup.oauth {
                    format!(
                        "{label}'s config has no place for the pre-registered client id {id:?} \
                         and {idp_offers}, so it cannot log in with OAuth."
                    )
                } else {
                    format!(
                        "{label} cannot run an OAuth login, so the pre-registered client id \
                         {id:?} does not help it."
                    )
                },
            ));
            fallback(ide, ctx, warnings, &idp_offers)
        }
    } else if sup.cimd && caps.cimd_supported {
        mk(LoginMethod::Cimd, None, warnings)
    } else if sup.dcr && caps.dcr_supported() {
        mk(LoginMethod::Dcr, None, warnings)
    } else {
        fallback(ide, ctx, warnings, &idp_offers)
    };

    // The callback port matters for a pre-registered client: the IdP checks the redirect URI
    // against what the operator registered. DCR and CIMD clients bring their own redirect URIs.
    if p.method == LoginMethod::PreRegistered {
        let strict = caps.strict_redirects;
        if sup.callback_port {
            p.port = ctx.port;
            if strict && ctx.port.is_none() {
                p.warnings.push((
                    WarningCode::CallbackPortRequired,
                    format!(
                        "The IdP matches redirect URIs literally, port included, but \
                         IDE_OAUTH_CALLBACK_PORT is not set: {label} would use a random port \
                         and the login would fail. Set IDE_OAUTH_CALLBACK_PORT and register \
                         http://localhost:<port>/callback on the public client."
                    ),
                ));
            }
        } else if strict && ide == Ide::Codex {
            p.warnings.push((
                WarningCode::CallbackPathUnmatchable,
                format!(
                    "The IdP matches redirect URIs literally, port included. {label} logs in \
                     on a random loopback port unless mcp_oauth_callback_port (or \
                     mcp_oauth_callback_url) is set in ~/.codex/config.toml, for every server, \
                     and its path is /callback only when the IdP advertises \
                     authorization_response_iss_parameter_supported (RFC 9207), else \
                     /callback/<id> with an id of its own; as this line runs it (codex mcp add \
                     logs in at once), its redirect does not match \
                     http://localhost:<port>/callback and its login with the pre-registered \
                     client fails. What works: DCR or CIMD at the IdP (Codex prefers them), an \
                     IdP that accepts any loopback redirect (RFC 8252), or broker mode."
                ),
            ));
        } else if strict {
            p.warnings.push((
                WarningCode::CallbackPortUnpinnable,
                format!(
                    "The IdP matches redirect URIs literally, port included, and {label} cannot \
                     pin its callback port (it picks a random one), so its login with the \
                     pre-registered client will fail. What works: Claude Code (--callback-port), \
                     Claude Desktop through mcp-remote, or Kiro with the port pinned; or an IdP \
                     that allows any loopback port (RFC 8252) or offers DCR."
                ),
            ));
        } else if let (Some(port), Ide::Codex) = (ctx.port, ide) {
            p.warnings.push((
                WarningCode::CallbackPortIgnored,
                format!(
                    "IDE_OAUTH_CALLBACK_PORT={port} is set, but {label}'s port is a setting of \
                     its own for every server (mcp_oauth_callback_port in ~/.codex/config.toml) \
                     and it appends /callback/<id> to the path: this works only if the IdP \
                     accepts any loopback redirect for the public client."
                ),
            ));
        } else if let Some(port) = ctx.port {
            p.warnings.push((
                WarningCode::CallbackPortIgnored,
                format!(
                    "IDE_OAUTH_CALLBACK_PORT={port} is set but {label} cannot pin its callback \
                     port: it uses a random one. This works only if the IdP accepts any loopback \
                     port for the public client."
                ),
            ));
        }
    } else if matches!(p.method, LoginMethod::Dcr | LoginMethod::Cimd) && ide == Ide::ClaudeCode {
        // Harmless with DCR/CIMD and keeps the redirect stable where the operator asked for it.
        p.port = ctx.port;
    }
    p
}

/// No OAuth login for this assistant: the static token when the operator allows it, else none.
fn fallback<'a>(
    ide: Ide,
    ctx: &Ctx<'_>,
    mut warnings: Vec<(WarningCode, String)>,
    idp_offers: &str,
) -> Plan<'a> {
    let label = ide.label();
    let sup = ide.support();
    let (method, token) = match ctx.static_token {
        StaticToken::Visible(t) => {
            warnings.push((
                WarningCode::StaticTokenFallback,
                format!(
                    "{label} gets the shared static gateway token: every request is made with \
                     the same long-lived credential, not as the person. Prefer a per-user login \
                     (set IDE_OAUTH_CLIENT_ID, or enable DCR at the IdP)."
                ),
            ));
            (LoginMethod::StaticToken, Some(Token::Visible(t.clone())))
        }
        StaticToken::Hidden => {
            warnings.push((
                WarningCode::StaticTokenHidden,
                format!(
                    "{label} would use the static gateway token, which you are not allowed to \
                     see: the config carries a placeholder ({TOKEN_ENV_VAR}). Ask an \
                     administrator for the token."
                ),
            ));
            (LoginMethod::StaticToken, Some(Token::Hidden))
        }
        StaticToken::Disabled => {
            let why = if !sup.oauth {
                format!("{label} cannot run an OAuth login")
            } else if ctx.client_id.is_some() {
                format!("{label} cannot use the pre-registered client id and {idp_offers}")
            } else {
                format!("no client id is configured and {idp_offers}")
            };
            let fix = if sup.oauth {
                "Set IDE_OAUTH_CLIENT_ID (or the server's oauth_client_id) to a pre-registered \
                 public client, or enable DCR at the IdP."
            } else {
                "Use an assistant that can log in, or pass a token obtained elsewhere \
                 (the operator can also allow the static-token fallback)."
            };
            warnings.push((
                WarningCode::NoLoginMethod,
                format!(
                    "{why}, and the static-token fallback is off: this config has no auth and \
                     the server will answer 401. {fix}"
                ),
            ));
            (LoginMethod::None, None)
        }
    };
    Plan {
        method,
        client_id: None,
        port: None,
        token,
        warnings,
    }
}

fn render_ide(ide: Ide, ctx: &Ctx<'_>) -> IdeConfig {
    let p = plan(ide, ctx);
    let mut env = BTreeMap::new();
    let (format, target, text, argv) = match ide {
        Ide::Cursor => json_doc(
            ".cursor/mcp.json (project) or ~/.cursor/mcp.json",
            cursor(ctx, &p),
        ),
        Ide::ClaudeCode => {
            let (argv, line) = claude_code(ctx, &p);
            (Format::Shell, "terminal", line, Some(argv))
        }
        Ide::Codex => {
            let (argv, text) = codex(ctx, &p, &mut env);
            (Format::Shell, "terminal", text, Some(argv))
        }
        Ide::VsCode => json_doc(".vscode/mcp.json", vscode(ctx, &p)),
        Ide::ClaudeDesktop => json_doc("claude_desktop_config.json", claude_desktop(ctx, &p)),
        Ide::Windsurf => json_doc("~/.codeium/windsurf/mcp_config.json", windsurf(ctx, &p)),
        Ide::RooCode => json_doc(".roo/mcp.json", roo_code(ctx, &p)),
        Ide::Kiro => json_doc(
            ".kiro/settings/mcp.json (workspace) or ~/.kiro/settings/mcp.json",
            kiro(ctx, &p),
        ),
        Ide::Goose => (
            Format::Yaml,
            "~/.config/goose/config.yaml",
            goose(ctx, &p),
            None,
        ),
        Ide::Curl => {
            let (argv, line) = curl(ctx, &p);
            (Format::Shell, "terminal", line, Some(argv))
        }
    };
    IdeConfig {
        ide,
        label: ide.label(),
        login_method: p.method,
        format,
        target,
        text,
        argv,
        env,
        warnings: p
            .warnings
            .into_iter()
            .map(|(code, message)| Warning {
                code,
                ide: Some(ide),
                message,
            })
            .collect(),
    }
}

fn json_doc(target: &'static str, v: Value) -> (Format, &'static str, String, Option<Vec<String>>) {
    let text = serde_json::to_string_pretty(&v).expect("JSON values serialise");
    (Format::Json, target, text, None)
}

/// `Authorization` header value for a static-token config; `hidden` stands in for a token the
/// caller may not see (the assistant's env-var interpolation, or a placeholder).
fn bearer(token: &Token, hidden: &str) -> String {
    match token {
        Token::Visible(t) => format!("Bearer {t}"),
        Token::Hidden => format!("Bearer {hidden}"),
    }
}

fn headers(p: &Plan<'_>, hidden: &str) -> Option<Value> {
    p.token
        .as_ref()
        .map(|t| json!({ "Authorization": bearer(t, hidden) }))
}

fn servers_doc(key: &str, name: &str, entry: Value) -> Value {
    let mut servers = serde_json::Map::new();
    servers.insert(name.to_string(), entry);
    let mut doc = serde_json::Map::new();
    doc.insert(key.to_string(), Value::Object(servers));
    Value::Object(doc)
}

fn cursor(ctx: &Ctx<'_>, p: &Plan<'_>) -> Value {
    let mut e = json!({ "url": ctx.url });
    if let Some(id) = p.client_id {
        e["auth"] = json!({ "CLIENT_ID": id });
    }
    if let Some(h) = headers(p, &format!("${{env:{TOKEN_ENV_VAR}}}")) {
        e["headers"] = h;
    }
    servers_doc("mcpServers", &ctx.name, e)
}

fn vscode(ctx: &Ctx<'_>, p: &Plan<'_>) -> Value {
    let mut e = json!({ "type": "http", "url": ctx.url });
    if let Some(h) = headers(p, &format!("${{input:{VSCODE_TOKEN_INPUT}}}")) {
        e["headers"] = h;
    }
    let mut doc = servers_doc("servers", &ctx.name, e);
    if p.token == Some(Token::Hidden) {
        doc["inputs"] = json!([{
            "type": "promptString",
            "id": VSCODE_TOKEN_INPUT,
            "description": format!("Gateway token for {}", ctx.name),
            "password": true,
        }]);
    }
    doc
}

fn claude_desktop(ctx: &Ctx<'_>, p: &Plan<'_>) -> Value {
    let mut args = vec![json!("mcp-remote"), json!(ctx.url)];
    if let Some(port) = p.port {
        // An explicit port right after the URL is used as is (no walking to a free one).
        args.push(json!(port.to_string()));
    }
    if let Some(id) = p.client_id {
        args.push(json!("--static-oauth-client-info"));
        args.push(json!(json!({ "client_id": id }).to_string()));
        // Strict IdPs have http://localhost:<port>/callback registered; mcp-remote's default
        // path is /oauth/callback (0.15 has `--callback-path`; 0.1.x ignores it).
        args.push(json!("--callback-path"));
        args.push(json!(CALLBACK_PATH));
    }
    let mut e = json!({ "command": "npx", "args": args });
    if let Some(t) = &p.token {
        // No spaces in args: some launchers split them (mcp-remote's README).
        let a = e["args"].as_array_mut().expect("array");
        a.push(json!("--header"));
        a.push(json!("Authorization:${AUTH_HEADER}"));
        e["env"] = json!({ "AUTH_HEADER": bearer(t, TOKEN_PLACEHOLDER) });
    }
    servers_doc("mcpServers", &ctx.name, e)
}

fn windsurf(ctx: &Ctx<'_>, p: &Plan<'_>) -> Value {
    let mut e = json!({ "serverUrl": ctx.url });
    if let Some(h) = headers(p, &format!("${{env:{TOKEN_ENV_VAR}}}")) {
        e["headers"] = h;
    }
    servers_doc("mcpServers", &ctx.name, e)
}

fn roo_code(ctx: &Ctx<'_>, p: &Plan<'_>) -> Value {
    let mut e = json!({ "type": "streamable-http", "url": ctx.url });
    if let Some(h) = headers(p, &format!("${{env:{TOKEN_ENV_VAR}}}")) {
        e["headers"] = h;
    }
    servers_doc("mcpServers", &ctx.name, e)
}

fn kiro(ctx: &Ctx<'_>, p: &Plan<'_>) -> Value {
    let mut e = json!({ "url": ctx.url });
    if let Some(id) = p.client_id {
        let mut oauth = json!({ "clientId": id });
        if let Some(port) = p.port {
            oauth["redirectUri"] = json!(format!("http://localhost:{port}{CALLBACK_PATH}"));
        }
        e["oauth"] = oauth;
    }
    if let Some(h) = headers(p, &format!("${{{TOKEN_ENV_VAR}}}")) {
        e["headers"] = h;
    }
    servers_doc("mcpServers", &ctx.name, e)
}

fn yaml_str(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).expect("strings serialise")
}

fn goose(ctx: &Ctx<'_>, p: &Plan<'_>) -> String {
    let mut y = String::from("extensions:\n");
    y.push_str(&format!("  {}:\n", yaml_str(&ctx.name)));
    y.push_str("    enabled: true\n");
    y.push_str(&format!("    name: {}\n", yaml_str(&ctx.name)));
    y.push_str("    type: streamable_http\n");
    y.push_str(&format!("    uri: {}\n", yaml_str(&ctx.url)));
    y.push_str("    timeout: 300\n");
    if let Some(t) = &p.token {
        y.push_str("    headers:\n");
        y.push_str(&format!(
            "      Authorization: {}\n",
            yaml_str(&bearer(t, TOKEN_PLACEHOLDER))
        ));
    }
    y
}

/// One argument of an emitted command line.
enum Arg {
    /// Quoted so the shell passes it through unchanged.
    Lit(String),
    /// Double-quoted so the shell expands `${VAR}` in it (content has no `"`, `\` or backquote).
    Expand(String),
}

fn command(args: Vec<Arg>) -> (Vec<String>, String) {
    let mut argv = Vec::with_capacity(args.len());
    let mut words = Vec::with_capacity(args.len());
    for a in args {
        match a {
            Arg::Lit(s) => {
                words.push(shell_quote(&s));
                argv.push(s);
            }
            Arg::Expand(s) => {
                debug_assert!(!s.contains(['"', '\\', '`']));
                words.push(format!("\"{s}\""));
                argv.push(s);
            }
        }
    }
    (argv, words.join(" "))
}

fn lit(s: impl Into<String>) -> Arg {
    Arg::Lit(s.into())
}

/// `--flag VALUE`, or `--flag=VALUE` when the value starts with `-` (so no CLI parser mistakes
/// it for a flag).
fn flag(args: &mut Vec<Arg>, name: &str, value: &str) {
    if value.starts_with('-') {
        args.push(lit(format!("{name}={value}")));
    } else {
        args.push(lit(name));
        args.push(lit(value));
    }
}

fn claude_code(ctx: &Ctx<'_>, p: &Plan<'_>) -> (Vec<String>, String) {
    let mut args = vec![
        lit("claude"),
        lit("mcp"),
        lit("add"),
        lit("--transport"),
        lit("http"),
    ];
    if let Some(id) = p.client_id {
        flag(&mut args, "--client-id", id);
    }
    if let Some(port) = p.port {
        flag(&mut args, "--callback-port", &port.to_string());
    }
    args.push(lit(&ctx.name));
    args.push(lit(&ctx.url));
    // `-H` takes several values: it goes after the positionals so it cannot swallow them.
    push_authorization_header(&mut args, p.token.as_ref());
    command(args)
}

/// `-H "Authorization: Bearer …"` for a static token: the token itself when the caller may see
/// it, else a reference to the environment variable that holds it.
fn push_authorization_header(args: &mut Vec<Arg>, token: Option<&Token>) {
    let value = match token {
        Some(Token::Visible(t)) => lit(format!("Authorization: Bearer {t}")),
        Some(Token::Hidden) => Arg::Expand(format!("Authorization: Bearer ${{{TOKEN_ENV_VAR}}}")),
        None => return,
    };
    args.push(lit("-H"));
    args.push(value);
}

fn codex(ctx: &Ctx<'_>, p: &Plan<'_>, env: &mut BTreeMap<String, String>) -> (Vec<String>, String) {
    let mut args = vec![lit("codex"), lit("mcp"), lit("add"), lit(&ctx.name)];
    flag(&mut args, "--url", &ctx.url);
    if let Some(id) = p.client_id {
        flag(&mut args, "--oauth-client-id", id);
    }
    let mut prefix = String::new();
    if let Some(t) = &p.token {
        flag(&mut args, "--bearer-token-env-var", TOKEN_ENV_VAR);
        if let Token::Visible(t) = t {
            env.insert(TOKEN_ENV_VAR.to_string(), t.clone());
            prefix = format!(
                "# Codex reads the token from {TOKEN_ENV_VAR} when it starts: set it in your shell profile.\nexport {TOKEN_ENV_VAR}={}\n",
                shell_quote(t)
            );
        } else {
            prefix = format!(
                "# Codex reads the token from {TOKEN_ENV_VAR} when it starts: ask an administrator for it.\n"
            );
        }
    }
    let (argv, line) = command(args);
    (argv, format!("{prefix}{line}"))
}

fn curl(ctx: &Ctx<'_>, p: &Plan<'_>) -> (Vec<String>, String) {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "curl", "version": "1" }
        }
    })
    .to_string();
    let mut args = vec![
        lit("curl"),
        lit("-sS"),
        lit("-i"),
        lit("-X"),
        lit("POST"),
        lit(&ctx.url),
        lit("-H"),
        lit("Content-Type: application/json"),
        lit("-H"),
        lit("Accept: application/json, text/event-stream"),
    ];
    push_authorization_header(&mut args, p.token.as_ref());
    args.push(lit("--data"));
    args.push(lit(body));
    command(args)
}
