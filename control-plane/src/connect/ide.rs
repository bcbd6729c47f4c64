//! The assistants and what each one's config can express.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A coding assistant (or `curl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ide {
    Cursor,
    ClaudeCode,
    Codex,
    #[serde(rename = "vscode")]
    VsCode,
    ClaudeDesktop,
    Windsurf,
    RooCode,
    Kiro,
    Goose,
    Curl,
}

/// What an assistant's config (or CLI) can express, which decides its login method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdeSupport {
    /// The config can carry a pre-registered client id.
    pub client_id: bool,
    /// The assistant asks the person for a client id when the IdP offers no registration
    /// (VS Code): a pre-registered client still works, typed in by hand.
    pub client_id_prompt: bool,
    /// The assistant registers itself with RFC 7591 DCR.
    pub dcr: bool,
    /// The assistant uses a Client ID Metadata Document of its own when the IdP supports them.
    pub cimd: bool,
    /// The config can pin the loopback callback port (`http://localhost:<port>/callback`).
    pub callback_port: bool,
    /// The assistant can run an OAuth login at all.
    pub oauth: bool,
}

impl Ide {
    pub const ALL: [Ide; 10] = [
        Ide::Cursor,
        Ide::ClaudeCode,
        Ide::Codex,
        Ide::VsCode,
        Ide::ClaudeDesktop,
        Ide::Windsurf,
        Ide::RooCode,
        Ide::Kiro,
        Ide::Goose,
        Ide::Curl,
    ];

    /// The identifier used in the API (`?ide=`) and as JSON keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Ide::Cursor => "cursor",
            Ide::ClaudeCode => "claude-code",
            Ide::Codex => "codex",
            Ide::VsCode => "vscode",
            Ide::ClaudeDesktop => "claude-desktop",
            Ide::Windsurf => "windsurf",
            Ide::RooCode => "roo-code",
            Ide::Kiro => "kiro",
            Ide::Goose => "goose",
            Ide::Curl => "curl",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Ide::Cursor => "Cursor",
            Ide::ClaudeCode => "Claude Code",
            Ide::Codex => "Codex",
            Ide::VsCode => "VS Code",
            Ide::ClaudeDesktop => "Claude Desktop",
            Ide::Windsurf => "Windsurf",
            Ide::RooCode => "Roo Code",
            Ide::Kiro => "Kiro",
            Ide::Goose => "Goose",
            Ide::Curl => "curl",
        }
    }

    /// The capability table (docs/connect.md explains each row and where it comes from).
    pub fn support(self) -> IdeSupport {
        let s = |client_id, client_id_prompt, dcr, cimd, callback_port, oauth| IdeSupport {
            client_id,
            client_id_prompt,
            dcr,
            cimd,
            callback_port,
            oauth,
        };
        match self {
            // mcp.json `auth.CLIENT_ID`; DCR; redirect port not configurable.
            Ide::Cursor => s(true, false, true, false, false, true),
            // --client-id, --callback-port; DCR and CIMD.
            Ide::ClaudeCode => s(true, false, true, true, true, true),
            // --oauth-client-id; DCR and CIMD (prefers CIMD); random callback port.
            Ide::Codex => s(true, false, true, true, false, true),
            // No client id field, prompts for one without DCR; DCR and CIMD.
            Ide::VsCode => s(false, true, true, true, false, true),
            // mcp-remote: --static-oauth-client-info, explicit port + --callback-path; DCR.
            Ide::ClaudeDesktop => s(true, false, true, false, true, true),
            // OAuth through its own discovery + DCR; no client id or port fields.
            Ide::Windsurf => s(false, false, true, false, false, true),
            // No OAuth for remote servers: headers only.
            Ide::RooCode => s(false, false, false, false, false, false),
            // `oauth.clientId` and `oauth.redirectUri` (full loopback URL); DCR otherwise.
            Ide::Kiro => s(true, false, true, false, true, true),
            // OAuth with DCR for streamable_http extensions; no client id field.
            Ide::Goose => s(false, false, true, false, false, true),
            // A bearer token or nothing.
            Ide::Curl => s(false, false, false, false, false, false),
        }
    }
}

impl fmt::Display for Ide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown assistant {0:?} (one of: cursor, claude-code, codex, vscode, claude-desktop, windsurf, roo-code, kiro, goose, curl)")]
pub struct ParseIdeError(pub String);

impl FromStr for Ide {
    type Err = ParseIdeError;
    /// Accepts the API identifiers and common spellings (`claude_code`, `ClaudeCode`, `vs-code`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
            .flat_map(char::to_lowercase)
            .collect();
        Ok(match key.as_str() {
            "cursor" => Ide::Cursor,
            "claudecode" | "claude" => Ide::ClaudeCode,
            "codex" | "codexcli" => Ide::Codex,
            "vscode" | "code" => Ide::VsCode,
            "claudedesktop" => Ide::ClaudeDesktop,
            "windsurf" => Ide::Windsurf,
            "roocode" | "roo" => Ide::RooCode,
            "kiro" => Ide::Kiro,
            "goose" => Ide::Goose,
            "curl" => Ide::Curl,
            _ => return Err(ParseIdeError(s.to_string())),
        })
    }
}
