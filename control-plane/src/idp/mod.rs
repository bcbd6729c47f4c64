//! What the control plane knows of the IdP in direct mode: its discovery document
//! ([`metadata`], republished as our authorization-server metadata) and its signing keys
//! ([`keys`], fetched, rotated and put in every snapshot).

pub mod keys;
pub mod metadata;
