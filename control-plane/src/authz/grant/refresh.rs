//! `grant_type=refresh_token`: rotation on every use, a grace window for retries, and reuse
//! detection that revokes the family.
//!
//! In order: client standing (`invalid_client`); token known (`invalid_grant`); issued to this
//! client (else `invalid_grant` and the family is revoked: the token leaked); family not
//! revoked; then
//! - a current token that has not expired rotates: it is marked used, its successor
//!   (`RotationKey::successor`) becomes current, the new access token is recorded;
//! - a used token presented again within the grace window, while its successor is still
//!   current, gets the same pair back (`Issued::repeated`); the access grant passed in is
//!   ignored;
//! - any other reuse (after the window, or once the successor itself was used) is
//!   `invalid_grant` and revokes the family.

use super::{
    AccessGrant, ClientStanding, Effect, FamilyId, Grants, Issued, RefreshRecord, Refusal,
    RevokeReason, Rotation, Timestamp,
};
use crate::authz::error::OAuthError;
use crate::authz::resource;
use crate::authz::token::{RotationKey, SecretToken};

/// A `/token` request with `grant_type=refresh_token`.
#[derive(Debug, Clone)]
pub struct RefreshRequest<'a> {
    pub token: &'a SecretToken,
    pub client_id: &'a str,
    pub client: ClientStanding,
    pub resource: &'a [&'a str],
}

impl Grants {
    /// Rotate a refresh token (see the module documentation). `access` is the access token
    /// the caller will mint if a new pair is issued.
    pub fn refresh(
        &mut self,
        req: &RefreshRequest<'_>,
        key: &RotationKey,
        access: AccessGrant,
        now: Timestamp,
    ) -> Result<Issued, Refusal> {
        req.client.check()?;
        let hash = req.token.hash();
        let record = self
            .refresh
            .get(&hash)
            .cloned()
            .ok_or_else(|| OAuthError::invalid_grant("refresh token is not valid"))?;
        let family_id = record.family.clone();
        let Some(family) = self.families.get(&family_id) else {
            return Err(OAuthError::invalid_grant("refresh token is not valid").into());
        };
        let grant = family.grant.clone();
        let current = family.current;
        if grant.client_id != req.client_id {
            return Err(self.refuse_and_revoke(
                &family_id,
                RevokeReason::WrongClient,
                "refresh token was issued to another client; its grant is revoked",
                now,
            ));
        }
        if family.revoked.is_some() {
            return Err(OAuthError::invalid_grant("refresh token was revoked").into());
        }
        resource::check_token_resource(req.resource, &grant.audience)?;
        let successor = key.successor(req.token);
        match record.rotated {
            None => {
                if now >= record.expires_at {
                    return Err(OAuthError::invalid_grant("refresh token expired").into());
                }
                let next = successor.hash();
                if self.refresh.contains_key(&next) {
                    return Err(OAuthError::server_error("refresh token collision").into());
                }
                self.refresh.insert(
                    hash,
                    RefreshRecord {
                        rotated: Some(Rotation {
                            at: now,
                            successor: next,
                            access: access.clone(),
                        }),
                        ..record
                    },
                );
                self.refresh.insert(
                    next,
                    RefreshRecord {
                        family: family_id.clone(),
                        expires_at: now.plus(self.policy.refresh_ttl),
                        rotated: None,
                    },
                );
                if let Some(f) = self.families.get_mut(&family_id) {
                    f.current = Some(next);
                    f.access.push(access.clone());
                }
                Ok(Issued {
                    family: family_id,
                    grant,
                    refresh: Some(successor),
                    access,
                    repeated: false,
                })
            }
            Some(rotation) => {
                let in_grace = now <= rotation.at.plus(self.policy.refresh_grace);
                let successor_unused = current == Some(rotation.successor);
                if !(in_grace && successor_unused) {
                    return Err(self.refuse_and_revoke(
                        &family_id,
                        RevokeReason::RefreshReused,
                        "refresh token was already used; its grant is revoked",
                        now,
                    ));
                }
                if !successor.hash().ct_eq(&rotation.successor) {
                    // The rotation key changed within the window: we cannot give the same
                    // token back, and issuing another would fork the family.
                    return Err(OAuthError::server_error(
                        "refresh token rotation key changed; retry shortly",
                    )
                    .into());
                }
                Ok(Issued {
                    family: family_id,
                    grant,
                    refresh: Some(successor),
                    access: rotation.access,
                    repeated: true,
                })
            }
        }
    }

    fn refuse_and_revoke(
        &mut self,
        family: &FamilyId,
        reason: RevokeReason,
        description: &'static str,
        now: Timestamp,
    ) -> Refusal {
        let effects: Vec<Effect> = self
            .revoke_family(family, reason, now)
            .into_iter()
            .collect();
        Refusal {
            error: OAuthError::invalid_grant(description),
            effects,
        }
    }
}

#[cfg(test)]
mod tests;
