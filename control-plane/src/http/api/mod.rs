//! The handlers, one module per part of the API.

pub mod access;
pub mod audit;
pub mod connect_config;
pub mod keys;
pub mod openapi;
pub mod ops;
pub mod servers;
pub mod sync;
pub mod users;
