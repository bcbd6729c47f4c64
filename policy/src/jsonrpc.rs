//! The part of a JSON-RPC body an authorization decision needs: each message's method and, for
//! `tools/call`, the tool name. Borrowed from the body; nothing else is copied.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// One message of a (possibly batched) JSON-RPC body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcMessage<'a> {
    /// A request or notification.
    Call {
        method: Cow<'a, str>,
        /// `params.name` of a `tools/call`.
        tool: Option<Cow<'a, str>>,
        /// What MCP 2026-07-28's `Mcp-Name` header mirrors for the other addressed methods:
        /// `params.name` of a `prompts/get`, `params.uri` of a `resources/read` (when a string).
        target: Option<Cow<'a, str>>,
    },
    /// A response to a request the server sent (sampling, elicitation, roots).
    Response,
}

/// Why a body is not acceptable JSON-RPC (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is neither a JSON-RPC object nor a batch array")]
    NotObjectOrArray,
    #[error("empty batch")]
    EmptyBatch,
    #[error("message {0}: jsonrpc must be \"2.0\"")]
    BadVersion(usize),
    #[error("message {0}: neither a request (method) nor a response (result/error)")]
    NotAMessage(usize),
    #[error("message {0}: tools/call needs params.name as a string")]
    MissingToolName(usize),
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// `params` of a `tools/call` or `prompts/get`.
#[derive(Deserialize)]
struct ToolCallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// `params` of a `resources/read`.
#[derive(Deserialize)]
struct UriParams<'a> {
    #[serde(borrow)]
    uri: Cow<'a, str>,
}

/// The `Mcp-Name` target of `prompts/get` and `resources/read`. Only read to compare with that
/// header, so a missing or non-string value is simply absent (the MCP server refuses the call).
fn target<'a>(method: &str, params: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    let params = params?.get();
    match method {
        "prompts/get" => serde_json::from_str::<ToolCallParams<'a>>(params)
            .ok()
            .map(|p| p.name),
        "resources/read" => serde_json::from_str::<UriParams<'a>>(params)
            .ok()
            .map(|p| p.uri),
        _ => None,
    }
}

/// Parses a single message or a batch.
pub fn parse_body(body: &[u8]) -> Result<Vec<RpcMessage<'_>>, RpcError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let wire: Vec<WireMessage<'_>> = match first {
        Some(b'{') => {
            vec![serde_json::from_slice(body).map_err(|e| RpcError::NotJson(e.to_string()))?]
        }
        Some(b'[') => serde_json::from_slice(body).map_err(|e| RpcError::NotJson(e.to_string()))?,
        Some(_) => {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => RpcError::NotObjectOrArray,
                    Err(e) => RpcError::NotJson(e.to_string()),
                },
            )
        }
        None => return Err(RpcError::NotJson("empty body".into())),
    };
    if wire.is_empty() {
        return Err(RpcError::EmptyBatch);
    }
    wire.into_iter()
        .enumerate()
        .map(|(i, message)| {
            if message.jsonrpc.as_deref() != Some("2.0") {
                return Err(RpcError::BadVersion(i));
            }
            match message.method {
                Some(method) => {
                    let (tool, target) = match method.as_ref() {
                        "tools/call" => {
                            let params = message.params.ok_or(RpcError::MissingToolName(i))?;
                            let params: ToolCallParams<'_> = serde_json::from_str(params.get())
                                .map_err(|_| RpcError::MissingToolName(i))?;
                            (Some(params.name), None)
                        }
                        "prompts/get" | "resources/read" => (None, target(&method, message.params)),
                        _ => (None, None),
                    };
                    Ok(RpcMessage::Call {
                        method,
                        tool,
                        target,
                    })
                }
                None if message.result.is_some() || message.error.is_some() => {
                    Ok(RpcMessage::Response)
                }
                None => Err(RpcError::NotAMessage(i)),
            }
        })
        .collect()
}
