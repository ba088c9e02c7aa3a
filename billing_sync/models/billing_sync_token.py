from odoo import fields, models


class BillingSyncToken(models.Model):
    """Credentials of one ledger connection, encrypted, out of every user's reach.

    No access right is granted on this model to any group (see
    ir.model.access.csv): neither the web client, nor an export, nor RPC can
    read it, whoever asks. Only the connection's own methods, under sudo(),
    touch it; and what they read is ciphertext until decrypted in memory with
    the key from Odoo's configuration file.
    """

    _name = "billing_sync.token"
    _description = "Ledger connection credentials (encrypted)"
    _log_access = False

    connection_id = fields.Many2one(
        "billing_sync.connection", required=True, ondelete="cascade", index=True
    )
    client_secret = fields.Char(copy=False, prefetch=False)
    access_token = fields.Char(copy=False, prefetch=False)
    refresh_token = fields.Char(copy=False, prefetch=False)
    # Xero's webhook key or Intuit's verifier token: what signs the ledger's webhooks
    webhook_key = fields.Char(copy=False, prefetch=False)
    expires_at = fields.Datetime(copy=False)
    refresh_expires_at = fields.Datetime(copy=False)
    refreshed_at = fields.Datetime(copy=False)
    # sha256 of the nonce of the one OAuth state currently outstanding
    oauth_nonce_hash = fields.Char(copy=False)

    _sql_constraints = [
        ("connection_uniq", "unique(connection_id)", "A connection has one set of credentials."),
    ]
