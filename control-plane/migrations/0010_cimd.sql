-- Client ID Metadata Documents (authz::cimd): a client known by the document at its
-- client_id URL is stored like any other, plus what its document said since.
-- Redirect URIs a newer copy of the document added: not used until an operator approves them
-- (PUT /api/oauth-clients/{client_id}/approve-redirects). JSON array of strings.
ALTER TABLE oauth_clients ADD COLUMN pending_redirect_uris_json TEXT NOT NULL DEFAULT '[]';
-- Unix seconds until which the stored copy is used without fetching the document again.
ALTER TABLE oauth_clients ADD COLUMN document_fresh_until BIGINT;
-- 1: an operator stored the document (POST /api/oauth-clients/cimd); it is never fetched.
ALTER TABLE oauth_clients ADD COLUMN pinned BIGINT NOT NULL DEFAULT 0;
