//! `/api/servers…`: the registry, compatible with the reference registry's API.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::http::error::{echo, AppError, AppResult};
use crate::http::extract::{
    double_option, echo_name, form_pairs, media_type, ApiJson, ApiPath, ApiQuery,
};
use crate::http::state::AppState;
use crate::registry::{self, validate};
use crate::registry::{Server, ServerFields};

/// Form fields `POST /api/servers/register` accepts.
pub const FORM_FIELDS: &[&str] = &[
    "name",
    "description",
    "path",
    "proxy_pass_url",
    "tags",
    "oauth_client_id",
    "append_mcp_path",
    "mcp_endpoint",
    "license",
    "num_tools",
];

/// At most this many multipart parts are read.
const MAX_FORM_PARTS: usize = 64;

/// Tags as a JSON list, or as one comma-separated string (like the form field).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    List(Vec<String>),
    Csv(String),
}

impl Tags {
    fn into_vec(self) -> Vec<String> {
        match self {
            Tags::List(v) => validate::normalize_tags(v),
            Tags::Csv(s) => split_tags(&s),
        }
    }
}

fn split_tags(s: &str) -> Vec<String> {
    validate::normalize_tags(s.split(',').map(String::from))
}

/// Empty optional strings mean unset.
fn opt(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A whole server (register as JSON, and PUT). The read-only fields of a GET answer are
/// accepted and ignored so a GET → edit → PUT round trip works.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    path: Option<String>,
    proxy_pass_url: String,
    #[serde(default)]
    tags: Option<Tags>,
    #[serde(default)]
    oauth_client_id: Option<String>,
    #[serde(default)]
    append_mcp_path: Option<bool>,
    #[serde(default)]
    mcp_endpoint: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    num_tools: Option<i64>,
    #[serde(default, rename = "mcp_url")]
    _mcp_url: Option<IgnoredAny>,
    #[serde(default, rename = "resource_metadata_url")]
    _resource_metadata_url: Option<IgnoredAny>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
}

impl ServerBody {
    fn into_fields(self, path: String) -> ServerFields {
        ServerFields {
            name: self.name.trim().to_string(),
            description: self.description.unwrap_or_default(),
            path,
            proxy_pass_url: self.proxy_pass_url.trim().to_string(),
            tags: self.tags.map(Tags::into_vec).unwrap_or_default(),
            oauth_client_id: opt(self.oauth_client_id),
            append_mcp_path: self.append_mcp_path,
            mcp_endpoint: opt(self.mcp_endpoint),
            license: opt(self.license),
            num_tools: self.num_tools,
        }
    }
}

/// PATCH: only the fields present change; `null` clears an optional field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    #[serde(default, deserialize_with = "double_option")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    path: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    proxy_pass_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    tags: Option<Option<Tags>>,
    #[serde(default, deserialize_with = "double_option")]
    oauth_client_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    append_mcp_path: Option<Option<bool>>,
    #[serde(default, deserialize_with = "double_option")]
    mcp_endpoint: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    license: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    num_tools: Option<Option<i64>>,
}

/// `{path}` or `{prefix}/{name}` from the route, as a server path.
pub struct ServerPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ServerPath {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> AppResult<Self> {
        let ApiPath(segments) =
            ApiPath::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        let joined: Vec<String> = segments.into_iter().map(|(_, v)| v).collect();
        let path = format!("/{}", joined.join("/"));
        // Nothing can be registered at an invalid path; don't hand odd bytes to the database.
        if validate::path(&path).is_err() {
            return Err(AppError::NotFound(
                "no server registered at that path".into(),
            ));
        }
        Ok(ServerPath(path))
    }
}

fn not_found(path: &str) -> AppError {
    AppError::NotFound(format!("no server registered at {path}"))
}

fn server_response(state: &AppState, status: StatusCode, server: &Server) -> Response {
    let mut response = (status, Json(server.to_api_json(state.public_url()))).into_response();
    if status == StatusCode::CREATED {
        if let Ok(v) = HeaderValue::from_str(&format!("/api/servers{}", server.path)) {
            response.headers_mut().insert(header::LOCATION, v);
        }
    }
    response
}

/// 409 when another server already has this name.
async fn check_name_free(state: &AppState, fields: &ServerFields) -> AppResult<()> {
    if let Some(other) = state.db.server_path_by_name(&fields.name).await? {
        if other != fields.path {
            return Err(AppError::Conflict(format!(
                "name: a server named {:?} is already registered at {other}",
                fields.name
            )));
        }
    }
    Ok(())
}

/// 409 when the server would share an exact gateway path with another one: its path,
/// `<path>/mcp` or its custom endpoint's path is already another server's path, `<path>/mcp` or
/// endpoint ([`registry::path_claim_conflict`]). Two servers at `/t` and `/t/mcp` would split
/// `/t/mcp` (the first one's MCP URL, the second one's path) and its discovery documents.
async fn check_paths_free(state: &AppState, fields: &ServerFields) -> AppResult<()> {
    let candidate = Server::from_fields(fields.clone(), 0, 0);
    let servers = state.db.list_servers().await?;
    match registry::path_claim_conflict(&candidate, &servers, state.public_url()) {
        Some(conflict) => Err(AppError::Conflict(conflict.message())),
        None => Ok(()),
    }
}

/// The text fields of a urlencoded or multipart form (UTF-8 only: a field that is not is a
/// 400 naming it, never stored with U+FFFD in it).
async fn read_form(state: &AppState, request: Request) -> AppResult<Vec<(String, String)>> {
    let unsupported = || {
        AppError::UnsupportedMediaType(
            "content-type: send multipart/form-data, application/x-www-form-urlencoded or \
             application/json (UTF-8)"
                .into(),
        )
    };
    match media_type(request.headers(), &["boundary"]) {
        Some((m, true)) if m == "multipart/form-data" => read_multipart(state, request).await,
        Some((m, true)) if m == "application/x-www-form-urlencoded" => {
            let bytes = Bytes::from_request(request, state)
                .await
                .map_err(|r| AppError::from_rejection(r.status(), r.body_text()))?;
            form_pairs(&bytes, "form field")
        }
        _ => Err(unsupported()),
    }
}

async fn read_multipart(state: &AppState, request: Request) -> AppResult<Vec<(String, String)>> {
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|r| AppError::from_rejection(r.status(), r.body_text()))?;
    let mut fields = Vec::new();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| AppError::from_rejection(e.status(), e.body_text()))?;
        let Some(field) = field else { break };
        if fields.len() >= MAX_FORM_PARTS {
            return Err(AppError::BadRequest(format!(
                "more than {MAX_FORM_PARTS} form fields"
            )));
        }
        let name = field.name().unwrap_or("").to_string();
        if field.file_name().is_some() {
            return Err(AppError::BadRequest(format!(
                "{}: file uploads are not accepted",
                echo_name(&name)
            )));
        }
        // A part may name its charset; only UTF-8 is read.
        if let Some(ct) = field.content_type() {
            let charset_ok = ct.split(';').skip(1).all(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                !k.trim().eq_ignore_ascii_case("charset")
                    || v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            });
            if !charset_ok {
                return Err(AppError::BadRequest(format!(
                    "{}: only UTF-8 text is accepted",
                    echo_name(&name)
                )));
            }
        }
        let bytes = field
            .bytes()
            .await
            .map_err(|e| AppError::from_rejection(e.status(), e.body_text()))?;
        let value = String::from_utf8(bytes.to_vec())
            .map_err(|_| AppError::BadRequest(format!("{}: invalid UTF-8", echo_name(&name))))?;
        fields.push((name, value));
    }
    Ok(fields)
}

/// Form fields → server fields; unknown or repeated fields are 400, bad values 422.
pub fn fields_from_form(pairs: Vec<(String, String)>) -> AppResult<ServerFields> {
    let mut seen: Vec<String> = Vec::new();
    let mut f = ServerFields::default();
    for (key, value) in pairs {
        if !FORM_FIELDS.contains(&key.as_str()) {
            return Err(AppError::BadRequest(format!(
                "unknown field `{}`, expected one of: {}",
                echo_name(&key),
                FORM_FIELDS.join(", ")
            )));
        }
        if seen.contains(&key) {
            return Err(AppError::BadRequest(format!(
                "field `{key}` given more than once"
            )));
        }
        seen.push(key.clone());
        match key.as_str() {
            "name" => f.name = value.trim().to_string(),
            "description" => f.description = value,
            "path" => f.path = value.trim().to_string(),
            "proxy_pass_url" => f.proxy_pass_url = value.trim().to_string(),
            "tags" => f.tags = split_tags(&value),
            "oauth_client_id" => f.oauth_client_id = opt(Some(value)),
            "append_mcp_path" => {
                f.append_mcp_path = match value.trim().to_ascii_lowercase().as_str() {
                    "" => None,
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => {
                        return Err(AppError::invalid(
                            "append_mcp_path",
                            format!("expected true, false or empty, got {}", echo(&value)),
                        ))
                    }
                }
            }
            "mcp_endpoint" => f.mcp_endpoint = opt(Some(value)),
            "license" => f.license = opt(Some(value)),
            "num_tools" => {
                f.num_tools = match value.trim() {
                    "" => None,
                    n => Some(n.parse().map_err(|_| {
                        AppError::invalid(
                            "num_tools",
                            format!("expected a number, got {}", echo(&value)),
                        )
                    })?),
                }
            }
            _ => unreachable!("checked against FORM_FIELDS"),
        }
    }
    for required in ["name", "path", "proxy_pass_url"] {
        if !seen.iter().any(|s| s == required) {
            return Err(AppError::invalid(required, "required"));
        }
    }
    Ok(f)
}

/// `POST /api/servers/register`: form fields (multipart or urlencoded), or a JSON body.
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> AppResult<Response> {
    caller.require_admin()?;
    // application/json with any parameter goes to the JSON reader, which names what it takes.
    let is_json = media_type(request.headers(), &[]).is_some_and(|(m, _)| m == "application/json");
    let fields = if is_json {
        let ApiJson(body) = ApiJson::<ServerBody>::from_request(request, &state).await?;
        let path = body
            .path
            .clone()
            .ok_or_else(|| AppError::invalid("path", "required"))?;
        body.into_fields(path.trim().to_string())
    } else {
        fields_from_form(read_form(&state, request).await?)?
    };
    validate::server(&fields)?;
    if state.db.get_server(&fields.path).await?.is_some() {
        return Err(AppError::Conflict(format!(
            "path: a server is already registered at {}",
            fields.path
        )));
    }
    check_name_free(&state, &fields).await?;
    check_paths_free(&state, &fields).await?;
    let server = state
        .db
        .insert_server(&fields)
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict(_) => AppError::Conflict("path or name: already registered".into()),
            other => other,
        })?;
    tracing::info!(path = %server.path, name = %server.name, by = %caller.subject, "server registered");
    Ok(server_response(&state, StatusCode::CREATED, &server))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Case-insensitive substring of the name.
    q: Option<String>,
    /// Exact tag.
    tag: Option<String>,
}

/// `GET /api/servers`: the servers the caller may access (all for an admin).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> AppResult<Json<serde_json::Value>> {
    let servers = state.db.list_servers().await?;
    let scopes = if caller.admin {
        Vec::new()
    } else {
        state.db.list_scopes().await?
    };
    let q = query.q.map(|q| q.to_lowercase()).filter(|q| !q.is_empty());
    let tag = query.tag.filter(|t| !t.is_empty());
    let public_url = state.public_url();
    let visible: Vec<serde_json::Value> = servers
        .iter()
        .filter(|s| caller.may_access(&s.name, &scopes))
        .filter(|s| q.as_ref().is_none_or(|q| s.name.to_lowercase().contains(q)))
        .filter(|s| tag.as_ref().is_none_or(|t| s.tags.contains(t)))
        .map(|s| s.to_api_json(public_url))
        .collect();
    Ok(Json(
        json!({"total_count": visible.len(), "servers": visible}),
    ))
}

/// Loads a server the caller may see; a server they may not see is reported as absent.
pub(crate) async fn visible_server(
    state: &AppState,
    caller: &Caller,
    path: &str,
) -> AppResult<Server> {
    let server = state
        .db
        .get_server(path)
        .await?
        .ok_or_else(|| not_found(path))?;
    if !caller.admin {
        let scopes = state.db.list_scopes().await?;
        if !caller.may_access(&server.name, &scopes) {
            return Err(not_found(path));
        }
    }
    Ok(server)
}

/// `GET /api/servers/{path}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ServerPath(path): ServerPath,
) -> AppResult<Response> {
    let server = visible_server(&state, &caller, &path).await?;
    Ok(server_response(&state, StatusCode::OK, &server))
}

fn check_same_path(body_path: Option<&str>, path: &str) -> AppResult<()> {
    match body_path.map(str::trim) {
        Some(p) if p != path => Err(AppError::invalid(
            "path",
            format!(
                "cannot be changed ({} in the body, {path:?} in the URL); delete and register again",
                echo(p)
            ),
        )),
        _ => Ok(()),
    }
}

/// `PUT /api/servers/{path}`: replaces the server; an omitted field is cleared to unset.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ServerPath(path): ServerPath,
    ApiJson(body): ApiJson<ServerBody>,
) -> AppResult<Response> {
    caller.require_admin()?;
    check_same_path(body.path.as_deref(), &path)?;
    let current = state
        .db
        .get_server(&path)
        .await?
        .ok_or_else(|| not_found(&path))?;
    let fields = body.into_fields(path.clone());
    validate::server(&fields)?;
    check_name_free(&state, &fields).await?;
    check_paths_free(&state, &fields).await?;
    let server = state
        .db
        .update_server(&fields)
        .await?
        .ok_or_else(|| not_found(&path))?;
    follow_rename(&state, &current, &server).await?;
    tracing::info!(path = %server.path, by = %caller.subject, "server replaced");
    Ok(server_response(&state, StatusCode::OK, &server))
}

/// Grants follow a renamed server (they refer to servers by name).
async fn follow_rename(state: &AppState, before: &Server, after: &Server) -> AppResult<()> {
    if before.name != after.name {
        state
            .db
            .rename_server_in_grants(&before.name, &after.name)
            .await?;
        tracing::info!(from = %before.name, to = %after.name, "server renamed; grants follow");
    }
    Ok(())
}

fn required<T>(field: &str, value: Option<T>) -> AppResult<T> {
    value.ok_or_else(|| AppError::invalid(field, "cannot be cleared (it is required)"))
}

/// `PATCH /api/servers/{path}`: merges; `null` clears an optional field.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ServerPath(path): ServerPath,
    ApiJson(body): ApiJson<ServerPatch>,
) -> AppResult<Response> {
    caller.require_admin()?;
    if let Some(p) = &body.path {
        check_same_path(Some(p.as_deref().unwrap_or("")), &path)?;
    }
    let current = state
        .db
        .get_server(&path)
        .await?
        .ok_or_else(|| not_found(&path))?;
    let mut f = current.fields();
    if let Some(v) = body.name {
        f.name = required("name", v)?.trim().to_string();
    }
    if let Some(v) = body.description {
        f.description = v.unwrap_or_default();
    }
    if let Some(v) = body.proxy_pass_url {
        f.proxy_pass_url = required("proxy_pass_url", v)?.trim().to_string();
    }
    if let Some(v) = body.tags {
        f.tags = v.map(Tags::into_vec).unwrap_or_default();
    }
    if let Some(v) = body.oauth_client_id {
        f.oauth_client_id = opt(v);
    }
    if let Some(v) = body.append_mcp_path {
        f.append_mcp_path = v;
    }
    if let Some(v) = body.mcp_endpoint {
        f.mcp_endpoint = opt(v);
    }
    if let Some(v) = body.license {
        f.license = opt(v);
    }
    if let Some(v) = body.num_tools {
        f.num_tools = v;
    }
    validate::server(&f)?;
    check_name_free(&state, &f).await?;
    check_paths_free(&state, &f).await?;
    let server = state
        .db
        .update_server(&f)
        .await?
        .ok_or_else(|| not_found(&path))?;
    follow_rename(&state, &current, &server).await?;
    tracing::info!(path = %server.path, by = %caller.subject, "server updated");
    Ok(server_response(&state, StatusCode::OK, &server))
}

/// `DELETE /api/servers/{path}`: 204. Grants naming the server stay in their scopes (and out
/// of the policy snapshot) until the scope is edited or a server with that name comes back.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ServerPath(path): ServerPath,
) -> AppResult<StatusCode> {
    caller.require_admin()?;
    if state.db.delete_server(&path).await? {
        tracing::info!(%path, by = %caller.subject, "server deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&path))
    }
}
