//! Portcullis control plane.
//!
//! For now only [`devtools`]: demo/test signing keys and tokens (not the authorization server).

pub mod cli;
pub mod devtools;
