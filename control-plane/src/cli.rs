//! The `portcullis` command line.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::devtools::{parse_claim, DevAlg, DevKey, TokenSpec};

/// Portcullis: OAuth for MCP servers behind Envoy.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Demo/test tools: throwaway keys and hand-made tokens. NOT the authorization server.
    #[command(subcommand)]
    Dev(DevCommand),
    /// Run the control plane: registry API, OAuth discovery metadata, health and metrics.
    /// Configured through the environment (see docs/control-plane.md).
    Serve(ServeArgs),
    /// Check an MCP server's OAuth discovery the way MCP clients do, step by step. Exit code 0:
    /// no error; 1: an error finding; 2: the URL cannot be reached.
    Doctor(portcullis_doctor::DoctorArgs),
    /// Print a new broker secret key (PORTCULLIS_SECRET_KEY): 32 random bytes, base64url.
    SecretKey,
    /// Read a password from standard input (one line) and print its argon2id hash, for
    /// PORTCULLIS_USERS_FILE. The password is never an argument (it would be in `ps` and the
    /// shell history).
    HashPassword,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Generate a demo signing key: writes DIR/signing-key.pem (0600) and DIR/jwks.json.
    Keygen(KeygenArgs),
    /// Print a demo JWT signed with a key from `dev keygen`.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// RS256, ES256 or EdDSA.
    #[arg(long, default_value = "RS256")]
    pub alg: DevAlg,
    /// Key id (`kid`) put in the JWKS and in token headers.
    #[arg(long)]
    pub kid: String,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing DIR/signing-key.pem.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// PKCS#8 PEM private key (DIR/signing-key.pem from `dev keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// RS256, ES256 or EdDSA; worked out from the key when omitted.
    #[arg(long)]
    pub alg: Option<DevAlg>,
    /// Key id for the token header; must match the JWKS the verifier has.
    #[arg(long)]
    pub kid: String,
    /// `iss` claim.
    #[arg(long)]
    pub iss: String,
    /// `aud` claim; repeat for several audiences.
    #[arg(long, required = true)]
    pub aud: Vec<String>,
    /// `sub` claim.
    #[arg(long, default_value = "alice")]
    pub sub: String,
    /// `preferred_username` claim (default: the `sub`).
    #[arg(long)]
    pub name: Option<String>,
    /// `groups` claim, comma-separated (omitted when not given; `--groups ''` gives `[]`).
    #[arg(long)]
    pub groups: Option<String>,
    /// Lifetime in seconds (`exp - iat`); negative for an already expired token.
    #[arg(long, default_value_t = 3600, allow_hyphen_values = true)]
    pub ttl: i64,
    /// Extra claim KEY=VALUE (VALUE is parsed as JSON when it is JSON, else kept as a string);
    /// repeatable; overrides the standard claims.
    #[arg(long = "claim", value_name = "KEY=VALUE", value_parser = parse_claim)]
    pub claims: Vec<(String, Value)>,
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Dev(DevCommand::Keygen(args)) => {
                let written = keygen(&args)?;
                for p in written {
                    eprintln!("wrote {}", p.display());
                }
                Ok(())
            }
            Command::Dev(DevCommand::Token(args)) => {
                println!("{}", token(&args)?);
                Ok(())
            }
            Command::Serve(args) => {
                let config = crate::config::Config::from_env()?;
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
                    .block_on(crate::serve::serve(config, args.listen))
            }
            Command::SecretKey => {
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
                println!("{}", crate::authz::sealed::SecretKey::new(bytes).to_text());
                Ok(())
            }
            Command::HashPassword => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                let password = line.trim_end_matches(['\r', '\n']);
                if password.chars().count() < 8 {
                    bail!("the password must be at least 8 characters");
                }
                let hash = crate::authz::users::hash_password(password)
                    .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
                println!("{hash}");
                Ok(())
            }
            Command::Doctor(args) => {
                let code = portcullis_doctor::run(&args);
                if code != 0 {
                    let _ = std::io::stdout().flush();
                    std::process::exit(code);
                }
                Ok(())
            }
        }
    }
}

/// `portcullis dev keygen`; returns the files written.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let pem_path = args.out.join("signing-key.pem");
    let jwks_path = args.out.join("jwks.json");
    if pem_path.exists() && !args.force {
        bail!(
            "{} already exists (pass --force to replace it)",
            pem_path.display()
        );
    }
    let key = DevKey::generate(args.alg, &args.kid);
    write_private(&pem_path, key.to_pem().as_bytes())?;
    let mut jwks = serde_json::to_string_pretty(&key.jwks())?;
    jwks.push('\n');
    fs::write(&jwks_path, jwks).with_context(|| format!("writing {}", jwks_path.display()))?;
    Ok(vec![pem_path, jwks_path])
}

/// `portcullis dev token`; returns the compact JWT.
pub fn token(args: &TokenArgs) -> anyhow::Result<String> {
    let pem =
        fs::read_to_string(&args.key).with_context(|| format!("reading {}", args.key.display()))?;
    let key = match args.alg {
        Some(alg) => DevKey::from_pem(alg, &args.kid, &pem)?,
        None => DevKey::from_pem_any(&args.kid, &pem)?,
    };
    let mut spec = TokenSpec::new(&args.iss, "", &args.sub);
    spec.aud = args.aud.clone();
    spec.name = args.name.clone();
    spec.groups = args.groups.as_deref().map(|g| {
        g.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    });
    spec.ttl_seconds = args.ttl;
    spec.extra = args.claims.iter().cloned().collect();
    Ok(key.sign(&spec.claims()))
}

/// Writes a secret file readable by its owner only (mode 0600 on Unix, also when replacing).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        opts.mode(0o600);
        if path.exists() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                .with_context(|| format!("chmod 600 {}", path.display()))?;
        }
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
