//! Step 6, continued (with `--control-plane` and `--admin-token-env`): the token's groups against
//! the control plane's registry — which scopes they map to (`GET /api/group-mappings`), and
//! whether one of those grants the server (`GET /api/scopes`; the server is the one whose
//! `mcp_url` is the resource, `GET /api/servers`). The admin token is sent only to the control
//! plane, never over plain http off loopback, and never printed.

use std::collections::BTreeMap;

use serde_json::Value;
use url::Url;

use super::Doctor;
use crate::discovery;
use crate::findings::Code;
use crate::report::{Exchange, MappingSummary};

/// What the report says when the mappings were not read.
pub const HOW_TO_CHECK: &str = "pass --control-plane URL and --admin-token-env NAME, the environment variable holding an admin API token, to see which scopes the token's groups map to and whether one grants this server";

/// The token's groups next to the registry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Evaluation {
    /// The registry server whose `mcp_url` is the resource.
    pub(super) server: Option<String>,
    /// Each of the token's groups that has a mapping, with its scopes.
    pub(super) scopes_by_group: BTreeMap<String, Vec<String>>,
    /// Mapped scopes with a grant on the server or on `*`.
    pub(super) granting: Vec<String>,
    /// Mapped scope names the registry does not have (left out of the policy snapshot).
    pub(super) unknown_scopes: Vec<String>,
}

/// Pure: the token's `groups` against the answers of `/api/servers`, `/api/group-mappings` and
/// `/api/scopes`.
pub(super) fn evaluate(
    groups: &[String],
    resource: &str,
    servers: &Value,
    mappings: &Value,
    scopes: &Value,
) -> Evaluation {
    let list = |v: &Value, key: &str| v.get(key).and_then(Value::as_array).cloned();
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut e = Evaluation {
        server: list(servers, "servers").and_then(|a| {
            a.iter()
                .find(|s| {
                    s.get("mcp_url")
                        .and_then(Value::as_str)
                        .is_some_and(|u| u.trim_end_matches('/') == resource.trim_end_matches('/'))
                })
                .and_then(|s| s.get("name")?.as_str().map(String::from))
        }),
        ..Evaluation::default()
    };
    for m in list(mappings, "group_mappings").unwrap_or_default() {
        let Some(group) = m.get("group").and_then(Value::as_str) else {
            continue;
        };
        if !groups.iter().any(|g| g == group) {
            continue;
        }
        let entry = e.scopes_by_group.entry(group.to_string()).or_default();
        for s in strings(m.get("scopes")) {
            if !entry.contains(&s) {
                entry.push(s);
            }
        }
    }
    let registry = list(scopes, "scopes").unwrap_or_default();
    let mut mapped: Vec<&String> = e.scopes_by_group.values().flatten().collect();
    mapped.sort();
    mapped.dedup();
    for name in mapped {
        let Some(scope) = registry
            .iter()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(name.as_str()))
        else {
            e.unknown_scopes.push(name.clone());
            continue;
        };
        let grants_server = scope
            .get("grants")
            .and_then(Value::as_array)
            .is_some_and(|g| {
                g.iter().any(|g| {
                    let s = g.get("server").and_then(Value::as_str);
                    s == Some("*") || (s.is_some() && s == e.server.as_deref())
                })
            });
        if grants_server {
            e.granting.push(name.clone());
        }
    }
    e
}

impl Doctor {
    /// The token's groups against the control plane's mappings, when `--control-plane` and an
    /// admin token are given; otherwise the report says the mapping was not checked, and how.
    pub(super) async fn check_mappings(&mut self) {
        let Some(t) = self.token.as_ref().filter(|t| t.jwt) else {
            return;
        };
        let (groups, resource) = (t.groups.clone(), t.resource.clone().unwrap_or_default());
        let (Some(cp), Some(admin)) = (
            self.opts.control_plane.clone(),
            self.opts.admin_token.clone(),
        ) else {
            self.note(format!("group mappings not checked: {HOW_TO_CHECK}"));
            self.set_mapping(MappingSummary {
                not_checked: Some(HOW_TO_CHECK.into()),
                ..MappingSummary::default()
            });
            return;
        };
        if groups.is_empty() {
            self.not_checked(None, "the token has no groups");
            return;
        }
        let base = cp.trim().trim_end_matches('/').to_string();
        match Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if discovery::is_insecure(&u) {
                    let why = format!("the control plane URL {base} is plain http to a host that is not loopback: the admin token is not sent in the clear");
                    self.not_checked(Some(Code::MappingCheckFailed), &why);
                    return;
                }
            }
            _ => {
                let why = format!("--control-plane `{base}` is not an absolute http(s) URL");
                self.not_checked(Some(Code::MappingCheckFailed), &why);
                return;
            }
        }
        let mut answers = Vec::new();
        for path in ["/api/servers", "/api/group-mappings", "/api/scopes"] {
            match self.get_api(&format!("{base}{path}"), &admin).await {
                Ok(v) => answers.push(v),
                Err(why) => {
                    self.not_checked(Some(Code::MappingCheckFailed), &why);
                    return;
                }
            }
        }
        let e = evaluate(&groups, &resource, &answers[0], &answers[1], &answers[2]);
        self.report_mappings(&groups, &resource, &answers[1], &e);
        self.set_mapping(MappingSummary {
            checked: true,
            not_checked: None,
            server: e.server,
            scopes_by_group: e.scopes_by_group,
            granting: e.granting,
        });
    }

    fn report_mappings(
        &mut self,
        groups: &[String],
        resource: &str,
        mappings: &Value,
        e: &Evaluation,
    ) {
        for (g, s) in &e.scopes_by_group {
            self.note(format!("group `{g}` maps to the scopes {}", s.join(", ")));
        }
        if !e.unknown_scopes.is_empty() {
            self.note(format!(
                "mapped scopes the registry does not have (left out of the policy): {}",
                e.unknown_scopes.join(", ")
            ));
        }
        if e.scopes_by_group.is_empty() {
            let mut msg = format!("none of the token's groups ({}) has a group mapping: every request gets 403 no_mapped_scopes. Map one: PUT /api/group-mappings/<group> {{\"scopes\": [...]}}", groups.join(", "));
            let mapped_guids = mappings
                .get("group_mappings")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    a.iter()
                        .filter_map(|m| m.get("group")?.as_str())
                        .any(super::token::is_guid)
                });
            if groups.iter().any(|g| super::token::is_guid(g)) && !mapped_guids {
                msg.push_str(". The token's groups are GUIDs (Entra object ids) and no mapping names one: map the ids, not the groups' display names");
            }
            self.find(Code::TokenGroupsUnmapped, msg);
            return;
        }
        let Some(server) = e.server.clone() else {
            self.find(
                Code::MappingCheckFailed,
                format!("no server in the registry has mcp_url {resource}, so which scopes grant it cannot be told (is --control-plane this deployment's?)"),
            );
            return;
        };
        if e.granting.is_empty() {
            let mapped: Vec<&str> = e
                .scopes_by_group
                .values()
                .flatten()
                .map(String::as_str)
                .collect();
            self.find(
                Code::TokenNoServerAccess,
                format!("the token's groups map to {}, none of which has a grant on server `{server}`: every request gets 403 no_server_access. Add a grant to one (PUT /api/scopes/<scope>) or map the group to a scope that has one", mapped.join(", ")),
            );
        } else {
            self.note(format!(
                "scopes granting server `{server}`: {} (methods and tools as each grant says)",
                e.granting.join(", ")
            ));
        }
    }

    /// Records that the mapping was not checked, why (a finding when `code` is given).
    fn not_checked(&mut self, code: Option<Code>, why: &str) {
        match code {
            Some(c) => self.find(c, format!("group mappings not checked: {why}")),
            None => self.note(format!("group mappings not checked: {why}")),
        }
        self.set_mapping(MappingSummary {
            not_checked: Some(why.into()),
            ..MappingSummary::default()
        });
    }

    fn set_mapping(&mut self, m: MappingSummary) {
        if let Some(t) = self.token.as_mut() {
            t.mapping = Some(m);
        }
    }

    /// `GET url` with the admin token; the JSON answer, or why not. No redirect is followed (the
    /// admin token goes to the URL given only).
    async fn get_api(&mut self, url: &str, admin: &str) -> Result<Value, String> {
        let Some(http) = self.http.clone() else {
            return Err("no HTTP client".into());
        };
        let mut ex = Exchange {
            method: "GET".into(),
            url: url.to_string(),
            ..Exchange::default()
        };
        let req = http
            .get(url)
            .bearer_auth(admin)
            .header("accept", "application/json");
        let f = match self.send(req, true).await {
            Ok(f) => f,
            Err(e) => {
                ex.error = Some(e.clone());
                self.record(ex);
                return Err(format!("{url}: {e}"));
            }
        };
        ex.status = Some(f.status);
        ex.content_type = f.content_type.clone();
        ex.location = f.location.clone();
        let answer = match f.status {
            200 => f
                .json()
                .filter(Value::is_object)
                .ok_or_else(|| format!("{url} did not answer with a JSON object")),
            401 | 403 => Err(format!(
                "{url} answered {}: the admin token was refused (it must be an admin's API token)",
                f.status
            )),
            s => Err(format!("{url} answered {s}")),
        };
        ex.result = Some(
            if answer.is_ok() {
                "JSON document"
            } else {
                "no document"
            }
            .into(),
        );
        self.record(ex);
        answer
    }
}

#[cfg(test)]
mod tests;
