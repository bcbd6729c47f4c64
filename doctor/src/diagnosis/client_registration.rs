//! Step 5: how each IDE will get a client id (pre-registered, CIMD, DCR, or typed in by hand),
//! and what Claude Code, Codex and other MCP clients will do with this setup.

use super::Doctor;
use crate::discovery::PrmSource;
use crate::findings::Code;
use crate::report::{IdeOutcome, Registration};

impl Doctor {
    /// Step 5: how each IDE will get a client id.
    pub(super) fn client_registration(&mut self) {
        self.begin("client_registration", "How an IDE gets a client id");
        let dcr = self
            .servers
            .first()
            .is_some_and(|s| s.registration_endpoint);
        let cimd = self
            .servers
            .first()
            .is_some_and(|s| s.client_id_metadata_document_supported);
        let client_id = self.opts.client_id.clone();
        self.note(format!(
            "dynamic client registration (registration_endpoint): {}",
            yes_no(dcr)
        ));
        self.note(format!(
            "client ID metadata documents (client_id_metadata_document_supported): {}",
            yes_no(cimd)
        ));
        match &client_id {
            Some(id) => self.note(format!("pre-registered client id: {id}")),
            None => self.note("pre-registered client id: none (--client-id / IDE_OAUTH_CLIENT_ID)"),
        }
        self.registration = if client_id.is_some() {
            Registration::Prereg
        } else if cimd {
            Registration::Cimd
        } else if dcr {
            Registration::Dcr
        } else {
            Registration::Manual
        };
        if self.registration == Registration::Manual {
            self.find(
                Code::NoClientRegistration,
                "the authorization server offers neither DCR (registration_endpoint) nor client ID metadata documents, and no client id is known: every user would have to type a client id by hand (set IDE_OAUTH_CLIENT_ID or the server's oauth_client_id, or pass --client-id to check with one)",
            );
        }
        let prm_claude = self
            .prm_found_at
            .iter()
            .any(|s| matches!(s, PrmSource::PathSuffixed | PrmSource::Root));
        let prm_codex =
            self.get_has_challenge || self.prm_found_at.iter().any(|s| *s != PrmSource::Challenge);
        let issuer_ok = !self
            .findings
            .iter()
            .any(|f| f.code == Code::AsIssuerMismatch);
        let how = |prefer_cimd: bool, cimd_id: &str, dcr_name: &str, flag: &str| -> String {
            if let Some(id) = &client_id {
                format!("uses the pre-registered client id {id} ({flag})")
            } else if cimd && prefer_cimd {
                format!("uses a client ID metadata document ({cimd_id})")
            } else if dcr {
                format!("registers itself with DCR ({dcr_name})")
            } else if cimd {
                format!("uses a client ID metadata document ({cimd_id})")
            } else {
                format!("cannot log in until it is given a client id ({flag})")
            }
        };
        let mut codex = how(
            true,
            "https://chatgpt.com/oauth/codex/…/client.json",
            "client_name \"Codex\"",
            "codex mcp add --oauth-client-id",
        );
        if !prm_codex {
            codex = format!("will not find the protected-resource metadata; {codex}");
        }
        if !issuer_ok {
            codex = format!(
                "refuses the authorization-server metadata (issuer mismatch); otherwise {codex}"
            );
        }
        let mut claude = how(
            true,
            "https://claude.ai/oauth/claude-code-client-metadata",
            "client_name \"Claude Code (<name>)\"",
            "claude mcp add --client-id",
        );
        if !prm_claude {
            claude = format!("will not find the protected-resource metadata (it does not read WWW-Authenticate); {claude}");
        }
        let spec = how(
            true,
            "an https URL of its own",
            "its own client_name",
            "typed in by the user",
        );
        self.ide = vec![
            IdeOutcome {
                client: "Claude Code",
                outcome: claude,
            },
            IdeOutcome {
                client: "Codex",
                outcome: codex,
            },
            IdeOutcome {
                client: "other MCP clients (pre-registered > CIMD > DCR > ask)",
                outcome: spec,
            },
        ];
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
