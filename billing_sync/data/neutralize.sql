-- A neutralized copy (staging, a restored backup) must never talk to the
-- firm's real ledger: forget every token and mark the connections broken.
UPDATE billing_sync_token
   SET access_token = NULL, refresh_token = NULL, expires_at = NULL, oauth_nonce_hash = NULL;
UPDATE billing_sync_connection
   SET state = 'needs_reconnect'
 WHERE state IN ('connected', 'choose_org');
