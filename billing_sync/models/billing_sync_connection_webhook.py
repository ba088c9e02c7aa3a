from odoo import api, fields, models

WEBHOOK_PATH = "/billing_sync/webhook"


class BillingSyncConnectionWebhook(models.Model):
    """Where a ledger sends its webhooks, and the secret that signs them.

    The secret (Xero's webhook key, Intuit's verifier token) is kept like the client
    secret: entered by an Administrator, encrypted in the credentials row no group can
    read, never shown again. The URL names the database, so it works on a server that
    serves several (see the README, server-wide modules)."""

    _inherit = "billing_sync.connection"

    webhook_key = fields.Char(
        string="Webhook signing secret", compute="_compute_webhook_key",
        inverse="_inverse_webhook_key", copy=False,
        help="Xero: the webhook key of your app's webhook; QuickBooks: the verifier token of "
             "your app's webhooks. Stored encrypted; never shown again once saved.")
    has_webhook_key = fields.Boolean(string="Webhook secret saved",
                                     compute="_compute_webhook_key")
    webhook_url = fields.Char(
        string="Webhook URL", compute="_compute_webhook_url",
        help="Paste this address in your app's webhook settings in the provider's developer "
             "portal.")

    def _compute_webhook_key(self):
        tokens = self._token_map()
        for rec in self:
            rec.webhook_key = False
            rec.has_webhook_key = bool(tokens.get(rec.id) and tokens[rec.id].webhook_key)

    def _inverse_webhook_key(self):
        for rec in self:
            if rec.webhook_key:
                rec._token_sudo().webhook_key = self._cipher().encrypt(rec.webhook_key.strip())

    @api.depends("provider")
    def _compute_webhook_url(self):
        base = self.env["ir.config_parameter"].sudo().get_param("web.base.url") or ""
        for rec in self:
            rec.webhook_url = (f"{base.rstrip('/')}{WEBHOOK_PATH}/{rec.provider}/"
                               f"{self.env.cr.dbname}") if rec.provider else False

    @api.model
    def _webhook_keys(self, provider):
        """{signing secret: the active connections of ``provider`` that hold it}, for the
        webhook endpoint (as superuser: the controller runs before any login)."""
        connections = self.sudo().with_context(active_test=True).search(
            [("provider", "=", provider)])
        tokens = connections._token_map()
        cipher = self._cipher() if tokens else None
        keys = {}
        for connection in connections:
            token = tokens.get(connection.id)
            if token and token.webhook_key:
                key = cipher.decrypt(token.webhook_key)
                keys[key] = keys.get(key, self.sudo().browse()) | connection
        return keys
