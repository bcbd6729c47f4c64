//! Portcullis control plane.
//!
//! `portcullis serve` ([`server`]): the registry API ([`api`], [`registry`], [`db`]), OAuth
//! discovery metadata ([`metadata`]), health and metrics. [`devtools`]: demo/test signing keys and
//! tokens (not the authorization server).

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connect;
pub mod db;
pub mod devtools;
pub mod error;
pub mod idp_keys;
pub mod metadata;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod snapshots;
pub mod state;
pub mod xds;
