//! `portcullis doctor <mcp-url>`: does what an MCP client does before it can log in, and says,
//! step by step, what it found, what each coding assistant will do, and which known mistakes the
//! setup has (see [`findings::Code`] and `docs/doctor.md`).
//!
//! 1. POST an `initialize` request and GET the URL, both without a token; expect 401 with
//!    `WWW-Authenticate: Bearer resource_metadata="…", scope="…"`.
//! 2. Fetch protected-resource metadata (RFC 9728) at every location clients try.
//! 3. Fetch authorization-server metadata for each `authorization_servers` entry, in the
//!    specification's order.
//! 4. Work out how an IDE gets a client id (pre-registered, CIMD, DCR, by hand).
//! 5. With `--token`, read (without verifying, never printing) the token's claims and hold them
//!    against the server's policy: `iss`, `aud` (or `client_id`), `token_use`, groups; with
//!    `--control-plane` and `--admin-token-env`, the groups' mapped scopes too.
//!
//! Nothing is followed silently: redirects are reported (and metadata redirects followed, hop by
//! hop), every response is bounded in size and time.
//!
//! A client-side tool: it imports nothing from the control plane, which only puts
//! [`DoctorArgs`] and [`run`] behind its `portcullis doctor` subcommand.
//!
//! Modules:
//! - [`cli`]: the command line: [`DoctorArgs`], `--resolve` parsing, [`run`] (print, exit code).
//! - [`diagnosis`]: the checks themselves, step by step, over HTTP: [`Options`] in,
//!   [`diagnose`] / [`diagnose_blocking`] out.
//! - [`report`]: what a diagnosis returns ([`Report`]: steps, requests, findings, summary) and
//!   its text rendering; the JSON report is its serialisation.
//! - [`findings`]: the mistakes the doctor knows by name ([`findings::Code`]), with severities.
//! - [`challenge`]: `WWW-Authenticate` parsing (RFC 9110).
//! - [`discovery`]: where clients look for protected-resource and authorization-server
//!   metadata, in their order; which URLs are plain http off loopback.

#![forbid(unsafe_code)]

pub mod challenge;
pub mod cli;
pub mod diagnosis;
pub mod discovery;
pub mod findings;
pub mod report;

pub use cli::{parse_resolve, run, DoctorArgs};
pub use diagnosis::{diagnose, diagnose_blocking, Options, GROUP_CLAIMS, MAX_BODY_BYTES};
pub use report::{
    Audience, AuthorizationServer, ChallengeSummary, Exchange, IdeOutcome, MappingSummary,
    Registration, Report, Step, StepStatus, Summary, TokenSummary,
};
