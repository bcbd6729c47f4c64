//! The OAuth 2.1 authorization server of broker mode (issue #11): its rules, pure and
//! unit-tested. Not wired to HTTP yet.
pub mod error;
pub mod pkce;
pub mod redirect;
pub mod resource;
pub mod token;
pub mod grant;
