//! Broker-mode settings (`PORTCULLIS_SECRET_KEY`, `PORTCULLIS_ACCESS_TOKEN_SECONDS`,
//! `PORTCULLIS_DCR_PER_MINUTE`, `PORTCULLIS_LOGIN_FAILURES_PER_MINUTE`,
//! `PORTCULLIS_BROKER_CLIENT_ID` / `_SECRET`, `PORTCULLIS_CIMD*`), read by `authz`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::Secret;

#[derive(Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `PORTCULLIS_SECRET_KEY`: 32 bytes as unpadded base64url, shared by every replica (it
    /// seals the signing keys and derives the refresh-rotation and form keys). Unset with
    /// SQLite: a key is made once in the data directory (`secret.key`, mode 600); unset with
    /// PostgreSQL: broker mode refuses to start.
    pub secret_key: Option<Secret>,
    /// `PORTCULLIS_ACCESS_TOKEN_SECONDS` (default 600, 60 to 3600): access-token lifetime, and
    /// so how long a revoked client's last token keeps working at most.
    pub access_token_ttl: Duration,
    /// `PORTCULLIS_DCR_PER_MINUTE` (default 60): registrations per client IP per minute; `0`
    /// turns dynamic client registration off.
    pub dcr_per_minute: u32,
    /// `PORTCULLIS_DCR_CLIENT_DAYS` (default 0: never): a client registered by DCR and not used
    /// for this many days expires (`invalid_client`: it registers again) and is removed.
    pub dcr_client_days: u32,
    /// `PORTCULLIS_DCR_APPROVAL` (`off`, the default, or `on`): on, a client registered by DCR
    /// is `pending` until an administrator sets it `active`; until then `/authorize` shows a
    /// page that says so and `/token` answers `invalid_client`.
    pub dcr_approval: bool,
    /// `PORTCULLIS_LOGIN_FAILURES_PER_MINUTE` (default 10): failed built-in logins per client
    /// IP and per username per minute before further attempts get 429.
    pub login_failures_per_minute: u32,
    /// `PORTCULLIS_BROKER_CLIENT_ID` and `PORTCULLIS_BROKER_CLIENT_SECRET`: the broker's own
    /// confidential client at the upstream IdP (`PORTCULLIS_IDP_ISSUER`). Set: people log in
    /// there; unset: at the built-in user store.
    pub upstream_client: Option<(String, Secret)>,
    /// Client ID Metadata Documents (`authz::cimd`).
    pub cimd: CimdConfig,
    /// `PORTCULLIS_USERS_FILE`: built-in users (JSON, with argon2 password hashes) written to
    /// the user store at every start; a mistake in it stops the start.
    pub users_file: Option<PathBuf>,
}

/// When the broker advertises Client ID Metadata Documents (`PORTCULLIS_CIMD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CimdMode {
    /// Only while the documents of the assistants that use them (Claude Code's on claude.ai,
    /// Codex's on chatgpt.com) are at hand, pinned or fetched: both CLIs use CIMD whenever it is
    /// advertised and never fall back to DCR, so advertising it where their documents cannot
    /// be fetched would stop every login of theirs at an error page.
    Auto,
    /// Always (a fetch that fails is an error page naming the fix).
    On,
    /// Never: clients register by DCR.
    Off,
}

/// How the broker reads Client ID Metadata Documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CimdConfig {
    /// `PORTCULLIS_CIMD`: `auto` (the default), `on` or `off` ([`CimdMode`]). Documents an
    /// operator pinned are used in every mode.
    pub mode: CimdMode,
    /// `PORTCULLIS_CIMD_ALLOWED_ADDRESSES`: special-use addresses (loopback, private, ...)
    /// documents may still be fetched from, comma-separated; for internal hosts and tests.
    pub allowed_addresses: Vec<IpAddr>,
    /// `PORTCULLIS_CIMD_CA_FILE`: PEM certificates trusted for document fetches besides the
    /// system's (an internal CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for CimdConfig {
    fn default() -> Self {
        CimdConfig {
            mode: CimdMode::Auto,
            allowed_addresses: Vec::new(),
            ca_file: None,
        }
    }
}

/// Says whether the key and the client secret are set, never what they are.
impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |yes: bool| if yes { "<set>" } else { "<unset>" };
        f.debug_struct("BrokerConfig")
            .field("key", &set(self.secret_key.is_some()))
            .field("access_token_ttl", &self.access_token_ttl)
            .field("dcr_per_minute", &self.dcr_per_minute)
            .field("dcr_client_days", &self.dcr_client_days)
            .field("dcr_approval", &self.dcr_approval)
            .field("login_failures_per_minute", &self.login_failures_per_minute)
            .field(
                "upstream_client_id",
                &self.upstream_client.as_ref().map(|(id, _)| id),
            )
            .field("cimd", &self.cimd)
            .field("users_file", &self.users_file)
            .finish()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            secret_key: None,
            access_token_ttl: Duration::from_secs(600),
            dcr_per_minute: 60,
            dcr_client_days: 0,
            dcr_approval: false,
            login_failures_per_minute: 10,
            upstream_client: None,
            cimd: CimdConfig::default(),
            users_file: None,
        }
    }
}

impl BrokerConfig {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<BrokerConfig> {
        let mut c = BrokerConfig {
            secret_key: get("PORTCULLIS_SECRET_KEY").map(|k| Secret::new(k.trim())),
            ..BrokerConfig::default()
        };
        if let Some(ttl) = get("PORTCULLIS_ACCESS_TOKEN_SECONDS") {
            let secs: u64 = ttl
                .trim()
                .parse()
                .context("PORTCULLIS_ACCESS_TOKEN_SECONDS: not a number")?;
            if !(60..=3600).contains(&secs) {
                bail!("PORTCULLIS_ACCESS_TOKEN_SECONDS: {secs} is outside 60 to 3600");
            }
            c.access_token_ttl = Duration::from_secs(secs);
        }
        if let Some(n) = get("PORTCULLIS_DCR_PER_MINUTE") {
            c.dcr_per_minute = n
                .trim()
                .parse()
                .context("PORTCULLIS_DCR_PER_MINUTE: not a number")?;
        }
        if let Some(n) = get("PORTCULLIS_DCR_CLIENT_DAYS") {
            c.dcr_client_days = n
                .trim()
                .parse()
                .context("PORTCULLIS_DCR_CLIENT_DAYS: not a number of days")?;
        }
        if let Some(n) = get("PORTCULLIS_LOGIN_FAILURES_PER_MINUTE") {
            c.login_failures_per_minute = n
                .trim()
                .parse()
                .context("PORTCULLIS_LOGIN_FAILURES_PER_MINUTE: not a number")?;
            if c.login_failures_per_minute == 0 {
                bail!("PORTCULLIS_LOGIN_FAILURES_PER_MINUTE: 0 would refuse every login");
            }
        }
        if let Some(on) = get("PORTCULLIS_DCR_APPROVAL") {
            c.dcr_approval = match on.trim() {
                "on" => true,
                "off" => false,
                other => bail!("PORTCULLIS_DCR_APPROVAL: {other:?} is not on or off"),
            };
        }
        if let Some(mode) = get("PORTCULLIS_CIMD") {
            c.cimd.mode = match mode.trim() {
                "auto" => CimdMode::Auto,
                "on" => CimdMode::On,
                "off" => CimdMode::Off,
                other => bail!("PORTCULLIS_CIMD: {other:?} is not auto, on or off"),
            };
        }
        if let Some(list) = get("PORTCULLIS_CIMD_ALLOWED_ADDRESSES") {
            c.cimd.allowed_addresses = list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.parse::<IpAddr>().with_context(|| {
                        format!("PORTCULLIS_CIMD_ALLOWED_ADDRESSES: {a:?} is not an IP address")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        c.users_file = get("PORTCULLIS_USERS_FILE")
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);
        c.cimd.ca_file = get("PORTCULLIS_CIMD_CA_FILE")
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);
        c.upstream_client = match (
            get("PORTCULLIS_BROKER_CLIENT_ID"),
            get("PORTCULLIS_BROKER_CLIENT_SECRET"),
        ) {
            (Some(id), Some(secret)) => Some((id.trim().to_string(), Secret::new(secret.trim()))),
            (None, None) => None,
            _ => bail!(
                "PORTCULLIS_BROKER_CLIENT_ID and PORTCULLIS_BROKER_CLIENT_SECRET go together (the broker's confidential client at the IdP)"
            ),
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> anyhow::Result<BrokerConfig> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::from_lookup(&|name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_and_bounds() {
        let c = read(&[]).unwrap();
        assert_eq!(c, BrokerConfig::default());
        assert_eq!(c.access_token_ttl, Duration::from_secs(600));
        let c = read(&[
            ("PORTCULLIS_ACCESS_TOKEN_SECONDS", "120"),
            ("PORTCULLIS_DCR_PER_MINUTE", "0"),
            ("PORTCULLIS_SECRET_KEY", " abc "),
        ])
        .unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(120));
        assert_eq!(c.dcr_per_minute, 0);
        assert_eq!(c.secret_key.as_ref().map(Secret::expose), Some("abc"));
        assert!(!format!("{c:?}").contains("abc"), "{c:?}");
        let c = read(&[
            ("PORTCULLIS_BROKER_CLIENT_ID", "portcullis-broker"),
            ("PORTCULLIS_BROKER_CLIENT_SECRET", "s3cret"),
        ])
        .unwrap();
        let (id, secret) = c.upstream_client.as_ref().unwrap();
        assert_eq!(
            (id.as_str(), secret.expose()),
            ("portcullis-broker", "s3cret")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            c.cimd.mode,
            CimdMode::Auto,
            "CIMD follows the documents by default"
        );
        assert_eq!(
            read(&[("PORTCULLIS_CIMD", "on")]).unwrap().cimd.mode,
            CimdMode::On
        );
        let c = read(&[
            ("PORTCULLIS_CIMD", "off"),
            ("PORTCULLIS_CIMD_ALLOWED_ADDRESSES", "127.0.0.1, ::1,"),
            ("PORTCULLIS_CIMD_CA_FILE", "/etc/ca.pem"),
        ])
        .unwrap();
        assert_eq!(c.cimd.mode, CimdMode::Off);
        assert_eq!(
            c.cimd.allowed_addresses,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(c.cimd.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        for bad in [
            ("PORTCULLIS_CIMD", "yes"),
            ("PORTCULLIS_DCR_APPROVAL", "1"),
            ("PORTCULLIS_CIMD_ALLOWED_ADDRESSES", "10.0.0.0/8"),
            ("PORTCULLIS_ACCESS_TOKEN_SECONDS", "59"),
            ("PORTCULLIS_ACCESS_TOKEN_SECONDS", "3601"),
            ("PORTCULLIS_ACCESS_TOKEN_SECONDS", "ten"),
            ("PORTCULLIS_DCR_PER_MINUTE", "-1"),
            ("PORTCULLIS_DCR_CLIENT_DAYS", "a week"),
            ("PORTCULLIS_LOGIN_FAILURES_PER_MINUTE", "0"),
            ("PORTCULLIS_BROKER_CLIENT_ID", "only-the-id"),
            ("PORTCULLIS_BROKER_CLIENT_SECRET", "only-the-secret"),
        ] {
            let err = read(&[bad]).unwrap_err();
            assert!(format!("{err:#}").contains(bad.0), "{err:#}");
        }
    }
}
