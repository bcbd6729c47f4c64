//! Revocation: one family (a replayed code, a reused refresh token, RFC 7009, an operator) or
//! everything a deleted client holds. Tested with the rest of [`super::Grants`] in
//! `grant/tests.rs`.

use super::{CodeState, Effect, FamilyId, Grants, RevokeReason, Timestamp};
use crate::authz::token::TokenHash;

impl Grants {
    /// Revoke a family (idempotent: `None` when it was already revoked or is unknown).
    pub fn revoke_family(
        &mut self,
        family: &FamilyId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Option<Effect> {
        let f = self.families.get_mut(family)?;
        if f.revoked.is_some() {
            return None;
        }
        f.revoked = Some(reason);
        f.current = None;
        Some(Effect::RevokeFamily {
            family: family.clone(),
            reason,
            access_tokens: f
                .access
                .iter()
                .filter(|a| a.expires_at > now)
                .map(|a| a.id.clone())
                .collect(),
        })
    }

    /// A client was deleted: revoke every family it holds and every code not yet used. The
    /// effects come sorted by family id.
    pub fn revoke_client(&mut self, client_id: &str, now: Timestamp) -> Vec<Effect> {
        for code in self.codes.values_mut() {
            if code.request.grant.client_id == client_id && code.state == CodeState::Unused {
                code.state = CodeState::Revoked;
            }
        }
        let mut ids: Vec<FamilyId> = self
            .families
            .iter()
            .filter(|(_, f)| f.grant.client_id == client_id)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids.iter()
            .filter_map(|id| self.revoke_family(id, RevokeReason::ClientRemoved, now))
            .collect()
    }

    /// RFC 7009 for a refresh token presented by `client_id`: its family is revoked. A token
    /// that is unknown, or another client's, changes nothing (the answer is the same).
    pub fn revoke_refresh_token(
        &mut self,
        token: &TokenHash,
        client_id: &str,
        now: Timestamp,
    ) -> Vec<Effect> {
        let Some(family) = self.refresh.get(token).map(|r| r.family.clone()) else {
            return Vec::new();
        };
        if self
            .families
            .get(&family)
            .is_none_or(|f| f.grant.client_id != client_id)
        {
            return Vec::new();
        }
        self.revoke_family(&family, RevokeReason::Requested, now)
            .into_iter()
            .collect()
    }

    /// Whether a family is still good (for the caller's views and tests).
    pub fn family_revoked(&self, family: &FamilyId) -> Option<RevokeReason> {
        self.families.get(family).and_then(|f| f.revoked)
    }

    /// The code hash a family came from.
    pub fn family_code(&self, family: &FamilyId) -> Option<TokenHash> {
        self.families.get(family).map(|f| f.code)
    }
}
