"""No secret leaves (issue 16): a whole sync, both ledgers, with every logger at DEBUG
(the SDKs', requests-oauthlib's, urllib3's, Odoo's), then every place a person or a log
reader looks is searched for every secret the flow handled."""

import base64
import logging
import os

from odoo import fields
from odoo.tests import TransactionCase, tagged

from odoo.addons.billing_sync.services.webhooks import WebhookEvent

from .test_outbound import OutboundMixin

# libraries that log requests at DEBUG; set explicitly, whatever the log configuration
CHATTY = ("requests_oauthlib", "oauthlib", "urllib3", "xero_python", "intuitlib",
          "quickbooks", "requests")


@tagged("post_install", "-at_install")
class TestSecretsStayIn(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def _flow(self, provider):
        """Connect, refresh, import, push an invoice and a payment, void, test, disconnect;
        returns the connection."""
        connection = self.connected(provider)
        connection.webhook_key = self.webhook_key(provider)
        connection._refresh_tokens(force=True)
        partner = self.partner(f"Secretive {provider}")
        move = self.invoice(partner)
        self.run_worker()
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=move.ids).create({
                "amount": 100, "journal_id": self.bank_journal.id,
                "payment_date": fields.Date.today()})._create_payments()
        self.run_worker()
        # a refusal, so that an error text is written too
        getattr(self, provider).faults.next("http500", count=1)
        self.invoice(partner)
        self.run_worker()
        getattr(self, provider).faults.clear()
        # a ledger change read back and applied (the inbound flow)
        contact = self.env["billing_sync.link"]._of(connection, partner)
        self.env["billing_sync.inbox"]._receive(connection, [WebhookEvent(
            connection.org_id, "contact", contact.ledger_id, "update", f"secret-{provider}")])
        self.apply_inbox()
        connection.action_test_connection()
        return connection

    @staticmethod
    def webhook_key(provider):
        return f"webhook-signing-secret-of-{provider}-0123456789"

    def _issued_tokens(self, provider):
        if provider == "xero":
            identity = self.xero.identity
            return set(identity.access) | set(identity.refresh)
        oauth = self.qbo.oauth
        return set(oauth.access_tokens) | set(oauth.refresh_tokens)

    def test_no_secret_in_logs_chatter_errors_or_exports(self):
        from ledger_sandbox.qbo.seed import DEFAULT_CLIENT_ID as QBO_ID
        from ledger_sandbox.qbo.seed import DEFAULT_CLIENT_SECRET as QBO_SECRET
        from ledger_sandbox.xero.seed import DEFAULT_CLIENT_ID as XERO_ID
        from ledger_sandbox.xero.seed import DEFAULT_CLIENT_SECRET as XERO_SECRET

        levels = {name: logging.getLogger(name).level for name in CHATTY}
        for name in CHATTY:
            logging.getLogger(name).setLevel(logging.DEBUG)
        self.addCleanup(lambda: [logging.getLogger(n).setLevel(lv) for n, lv in levels.items()])
        secrets = {XERO_SECRET, QBO_SECRET,
                   base64.b64encode(f"{XERO_ID}:{XERO_SECRET}".encode()).decode(),
                   base64.b64encode(f"{QBO_ID}:{QBO_SECRET}".encode()).decode(),
                   self.webhook_key("xero"), self.webhook_key("qbo")}
        connections = self.env["billing_sync.connection"]
        # QuickBooks over plain http on loopback needs no process-wide oauthlib switch
        insecure = os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
        if insecure is not None:
            self.addCleanup(os.environ.__setitem__, "OAUTHLIB_INSECURE_TRANSPORT", insecure)
        with self.assertLogs(level="DEBUG") as logs:
            for provider in ("xero", "qbo"):
                connections |= self._flow(provider)
                secrets |= self._issued_tokens(provider)
                connections[-1:].action_disconnect()
        self.assertNotIn("OAUTHLIB_INSECURE_TRANSPORT", os.environ)
        secrets = {s for s in secrets if s and len(s) >= 12}
        self.assertGreater(len(secrets), 6, "the flow issued and used tokens")
        log_text = "\n".join(logs.output)
        self.assertTrue(any(r.name.startswith("urllib3") and r.levelno == logging.DEBUG
                            for r in logs.records), "the HTTP libraries' DEBUG lines are in")

        places = {"log": log_text}
        messages = self.env["mail.message"].search([("model", "like", "billing_sync.%")]) | \
            self.env["mail.message"].search([("model", "in", ("account.move", "res.partner",
                                                              "account.payment"))])
        places["chatter"] = "\n".join(str(m.body) for m in messages)
        tracked = self.env["mail.tracking.value"].search([("mail_message_id", "in", messages.ids)])
        places["tracking"] = "\n".join(
            f"{t.old_value_char} {t.new_value_char}" for t in tracked)
        jobs = self.env["billing_sync.job"].search([])
        places["jobs"] = "\n".join(f"{j.last_error} {j.hint}" for j in jobs)
        links = self.env["billing_sync.link"].search([])
        places["links"] = "\n".join(f"{lk.ledger_url} {lk.mismatch}" for lk in links)
        fnames = [f for f, field in connections._fields.items()
                  if field.type in ("char", "text") and field.store
                  or f in ("client_secret", "webhook_key")]
        places["connection export"] = repr(connections.export_data(fnames)["datas"])
        places["connection read"] = repr(connections.read(fnames))
        audit = self.env["billing_sync.audit.log"].with_context(active_test=False).search([])
        self.assertTrue(audit.filtered(lambda e: e.direction == "inbound"), "both ways ran")
        places["audit trail"] = repr(audit.read())
        export = self.env["billing_sync.audit.export"].create({"file_format": "csv"})
        export.action_export()
        places["audit export"] = base64.b64decode(export.data).decode("utf-8-sig")
        places["inbox"] = repr(self.env["billing_sync.inbox"].search([]).read())
        places["alerts"] = repr(self.env["billing_sync.alert"].search([]).read())
        places["activities"] = "\n".join(
            f"{a.summary} {a.note}" for a in self.env["mail.activity"].search([]))
        for where, text in places.items():
            for secret in secrets:
                with self.subTest(where=where):
                    self.assertNotIn(secret, text, f"a secret appears in the {where}")
