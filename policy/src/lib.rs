//! Portcullis policy core: snapshot types, token verification and authorization decisions.
//! No I/O: the same code decides in the Envoy filter, the control plane and the browser.

#![forbid(unsafe_code)]

pub mod audit;
mod claims;
mod compiled;
mod decision;
mod identity;
mod idset;
pub mod jsonrpc;
pub mod keys;
mod patterns;
pub mod reply;
pub mod request;
pub mod snapshot;
mod token;

pub use audit::AuditEvent;
pub use compiled::{Issuer, Policy, ScopeId, Server, ServerId, Settings, SnapshotError};
pub use decision::{
    is_authorization_server_path, Deny, DenyReason, PathError, Route, AUTHORIZATION_SERVER_PATH,
};
pub use identity::{header_safe, Identity, IdentityHeaders};
pub use idset::IdSet;
pub use jsonrpc::{parse_body, RpcError, RpcMessage};
pub use patterns::{Pattern, Patterns};
pub use reply::Reply;
pub use request::{
    bearer_token, Admission, BodyDecision, BodyRule, Credential, Head, HeadVerdict, HeaderPair,
    Pending,
};
pub use token::{looks_like_jwt, Segment, TokenError};

#[cfg(test)]
mod tests;
