//! The `portcullis doctor` command line: its arguments and the run that prints the report and
//! returns the exit code.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;

use crate::diagnosis::{diagnose_blocking, Options};

/// `portcullis doctor` arguments.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// The MCP server URL, exactly as clients are given it.
    pub url: String,
    /// Print a machine-readable JSON report instead of text.
    #[arg(long)]
    pub json: bool,
    /// Pre-registered OAuth client id the IDEs will be handed [default: $IDE_OAUTH_CLIENT_ID].
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// An access token whose claims to inspect (decoded, NOT verified, never printed or sent);
    /// `-` reads it from stdin.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Seconds allowed for each request.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub strict: bool,
    /// Connect to ADDR (an IP, or IP:PORT used when a URL has no port) whenever a URL names
    /// HOST, like curl's --resolve; repeatable. Checks a deployment before DNS points at it.
    #[arg(long, value_name = "HOST=ADDR", value_parser = parse_resolve)]
    pub resolve: Vec<(String, SocketAddr)>,
    /// The control plane's URL: with --token and --admin-token-env, list the scopes the token's
    /// groups map to and whether one grants the server.
    #[arg(long, value_name = "URL", requires = "admin_token_env")]
    pub control_plane: Option<String>,
    /// Name of the environment variable holding an admin API token for --control-plane (the
    /// token itself is never a flag value, never printed).
    #[arg(long, value_name = "NAME", requires = "control_plane")]
    pub admin_token_env: Option<String>,
}

/// `HOST=IP` or `HOST=IP:PORT` (IPv6 as `[::1]:PORT` or bare).
pub fn parse_resolve(s: &str) -> Result<(String, SocketAddr), String> {
    let (host, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected HOST=ADDR, got `{s}`"))?;
    let host = host.trim().to_ascii_lowercase();
    if host.is_empty() {
        return Err("empty HOST in --resolve".into());
    }
    let addr = addr.trim();
    let sa = addr
        .parse::<SocketAddr>()
        .or_else(|_| addr.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
        .map_err(|_| format!("`{addr}` is neither an IP address nor IP:PORT"))?;
    Ok((host, sa))
}

/// Runs the doctor for the command line: prints the report, returns the exit code
/// (0 = no error, 1 = an error finding (or a warning with `--strict`), 2 = unreachable).
pub fn run(args: &DoctorArgs) -> i32 {
    let token = match args.token.as_deref() {
        Some("-") => {
            let mut t = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut t) {
                eprintln!("portcullis doctor: reading the token from stdin: {e}");
                return 2;
            }
            Some(t.trim().to_string())
        }
        other => other.map(|t| t.trim().to_string()),
    };
    let admin_token = match args.admin_token_env.as_deref() {
        Some(name) => match std::env::var(name) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            _ => {
                eprintln!("portcullis doctor: --admin-token-env {name}: the environment variable {name} is not set (or empty)");
                return 2;
            }
        },
        None => None,
    };
    let opts = Options {
        url: args.url.clone(),
        client_id: args
            .client_id
            .clone()
            .or_else(|| std::env::var("IDE_OAUTH_CLIENT_ID").ok())
            .filter(|c| !c.trim().is_empty()),
        token,
        timeout: Duration::from_secs(args.timeout.max(1)),
        strict: args.strict,
        resolve: args.resolve.clone(),
        control_plane: args.control_plane.clone(),
        admin_token,
    };
    let report = diagnose_blocking(&opts);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_text());
    }
    report.summary.exit_code
}

#[cfg(test)]
mod tests;
