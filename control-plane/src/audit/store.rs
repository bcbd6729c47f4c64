//! The `audit_events` table.

use std::borrow::Cow;

use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::audit::{AuditEvent, AuditRecord, Decision};
use crate::storage::{json_list, Db};

const COLUMNS: &str = "id, time_ms, received_ms, request_id, policy_version, decision, status, \
    reason, sub, username, issuer, client_id, groups_json, scopes_json, server, method, tool, \
    http_method, path";

/// `AuditRecord`s (as serialised: `id`, `received_ms` and the event's fields) from a JSON array.
const INSERT_FROM_JSON_SQLITE: &str = "INSERT INTO audit_events (id, time_ms, received_ms, \
    request_id, policy_version, decision, status, reason, sub, username, issuer, client_id, \
    groups_json, scopes_json, server, method, tool, http_method, path) \
    SELECT json_extract(value, '$.id'), json_extract(value, '$.time_ms'), \
    json_extract(value, '$.received_ms'), json_extract(value, '$.request_id'), \
    json_extract(value, '$.policy_version'), json_extract(value, '$.decision'), \
    json_extract(value, '$.status'), json_extract(value, '$.reason'), json_extract(value, '$.sub'), \
    json_extract(value, '$.username'), json_extract(value, '$.issuer'), \
    json_extract(value, '$.client_id'), json(json_extract(value, '$.groups')), \
    json(json_extract(value, '$.scopes')), json_extract(value, '$.server'), \
    json_extract(value, '$.method'), json_extract(value, '$.tool'), \
    json_extract(value, '$.http_method'), json_extract(value, '$.path') FROM json_each($1)";
const INSERT_FROM_JSON_POSTGRES: &str = "INSERT INTO audit_events (id, time_ms, received_ms, \
    request_id, policy_version, decision, status, reason, sub, username, issuer, client_id, \
    groups_json, scopes_json, server, method, tool, http_method, path) \
    SELECT e->>'id', (e->>'time_ms')::bigint, (e->>'received_ms')::bigint, e->>'request_id', \
    (e->>'policy_version')::bigint, e->>'decision', (e->>'status')::bigint, e->>'reason', \
    e->>'sub', e->>'username', e->>'issuer', e->>'client_id', (e->'groups')::text, \
    (e->'scopes')::text, e->>'server', e->>'method', e->>'tool', e->>'http_method', e->>'path' \
    FROM jsonb_array_elements($1::text::jsonb) AS e";

/// Filters of `GET /api/audit`; every one optional.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Matches `sub` or `username` exactly.
    pub user: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<Decision>,
    /// Inclusive lower bound, unix milliseconds.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, unix milliseconds.
    pub until_ms: Option<i64>,
    pub limit: usize,
    /// Continue after this (time_ms, id), newest first.
    pub after: Option<(i64, String)>,
}

/// One page, newest first.
#[derive(Debug)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<(i64, String)>,
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord, sqlx::Error> {
    let decision: String = row.try_get("decision")?;
    let decision = Decision::parse(&decision)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown decision {decision:?}").into()))?;
    let number = |column: &str| -> Result<u64, sqlx::Error> {
        let n: i64 = row.try_get(column)?;
        Ok(n.max(0) as u64)
    };
    let text = |column: &str| -> Result<Cow<'static, str>, sqlx::Error> {
        Ok(Cow::Owned(row.try_get(column)?))
    };
    let optional = |column: &str| -> Result<Option<Cow<'static, str>>, sqlx::Error> {
        Ok(row.try_get::<Option<String>, _>(column)?.map(Cow::Owned))
    };
    Ok(AuditRecord {
        id: row.try_get("id")?,
        received_ms: number("received_ms")?,
        event: AuditEvent {
            time_ms: number("time_ms")?,
            request_id: optional("request_id")?,
            policy_version: number("policy_version")?,
            decision,
            status: number("status")? as u16,
            reason: text("reason")?,
            sub: optional("sub")?,
            username: optional("username")?,
            issuer: optional("issuer")?,
            client_id: optional("client_id")?,
            groups: json_list(row, "groups_json")?,
            scopes: json_list(row, "scopes_json")?,
            server: optional("server")?,
            method: optional("method")?,
            tool: optional("tool")?,
            http_method: text("http_method")?,
            path: text("path")?,
        },
    })
}

impl Db {
    /// Stores a batch in one statement (so all of it or none): the records go in as one JSON
    /// array the database unpacks itself. Measured: a statement per record costs ~50 µs each
    /// through sqlx (mostly its per-statement overhead), one multi-row statement ~95 µs a row.
    pub async fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), sqlx::Error> {
        if records.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_string(records).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let sql = match self.kind() {
            crate::storage::DbKind::Sqlite => INSERT_FROM_JSON_SQLITE,
            crate::storage::DbKind::Postgres => INSERT_FROM_JSON_POSTGRES,
        };
        sqlx::query(sql).bind(json).execute(self.pool()).await?;
        Ok(())
    }

    /// One page of records matching `q`, newest first.
    pub async fn query_audit(&self, q: &AuditQuery) -> Result<AuditPage, sqlx::Error> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let next = |binds: &mut Vec<Bind>, value: Bind| {
            binds.push(value);
            format!("${}", binds.len())
        };
        if let Some(user) = &q.user {
            let a = next(&mut binds, Bind::Text(user.clone()));
            let b = next(&mut binds, Bind::Text(user.clone()));
            clauses.push(format!("(sub = {a} OR username = {b})"));
        }
        for (column, value) in [("server", &q.server), ("tool", &q.tool)] {
            if let Some(value) = value {
                let p = next(&mut binds, Bind::Text(value.clone()));
                clauses.push(format!("{column} = {p}"));
            }
        }
        if let Some(decision) = q.decision {
            let p = next(&mut binds, Bind::Text(decision.as_str().into()));
            clauses.push(format!("decision = {p}"));
        }
        if let Some(since) = q.since_ms {
            let p = next(&mut binds, Bind::Int(since));
            clauses.push(format!("time_ms >= {p}"));
        }
        if let Some(until) = q.until_ms {
            let p = next(&mut binds, Bind::Int(until));
            clauses.push(format!("time_ms < {p}"));
        }
        if let Some((time, id)) = &q.after {
            let a = next(&mut binds, Bind::Int(*time));
            let b = next(&mut binds, Bind::Int(*time));
            let c = next(&mut binds, Bind::Text(id.clone()));
            clauses.push(format!("(time_ms < {a} OR (time_ms = {b} AND id < {c}))"));
        }
        let limit = next(&mut binds, Bind::Int(q.limit as i64 + 1));
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events {filter} ORDER BY time_ms DESC, id DESC LIMIT {limit}"
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Text(t) => query.bind(t),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if records.len() > q.limit {
            records.truncate(q.limit);
            records
                .last()
                .map(|r| (r.event.time_ms as i64, r.id.clone()))
        } else {
            None
        };
        Ok(AuditPage { records, next })
    }

    /// Deletes records older than `cutoff_ms` and the oldest beyond `max_rows`; how many went.
    pub async fn prune_audit(&self, cutoff_ms: i64, max_rows: u64) -> Result<u64, sqlx::Error> {
        let old = sqlx::query("DELETE FROM audit_events WHERE time_ms < $1")
            .bind(cutoff_ms)
            .execute(self.pool())
            .await?
            .rows_affected();
        // The time of the newest record that falls outside the bound, if any.
        let boundary = sqlx::query(
            "SELECT time_ms, id FROM audit_events ORDER BY time_ms DESC, id DESC LIMIT 1 OFFSET $1",
        )
        .bind(max_rows as i64)
        .fetch_optional(self.pool())
        .await?;
        let excess = match boundary {
            Some(row) => {
                let time: i64 = row.try_get("time_ms")?;
                let id: String = row.try_get("id")?;
                sqlx::query(
                    "DELETE FROM audit_events WHERE time_ms < $1 OR (time_ms = $2 AND id <= $3)",
                )
                .bind(time)
                .bind(time)
                .bind(id)
                .execute(self.pool())
                .await?
                .rows_affected()
            }
            None => 0,
        };
        Ok(old + excess)
    }

    pub async fn count_audit(&self) -> Result<u64, sqlx::Error> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_events")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n.max(0) as u64)
    }
}

enum Bind {
    Text(String),
    Int(i64),
}
