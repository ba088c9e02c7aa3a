"""Webhook endpoints (issue 18): a delivery is checked (size, database, signature over the
raw body, JSON) before anything is kept, each event is kept once, and the answer goes
right after. Signatures and payloads are made by the ledger sandbox, as the providers
make them."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from odoo.tests import HttpCase, tagged

from odoo.addons.billing_sync.services.webhooks import MAX_BODY

from .common import LedgerSandboxMixin

KEY = "sandbox-webhook-key-0123456789abcdef"


@tagged("post_install", "-at_install")
class TestWebhooks(LedgerSandboxMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes()
        cls.env["billing_sync.connection"].search([]).write({"active": False})
        cls.connections = {}
        for provider in ("xero", "qbo"):
            connection = cls.connect(cls.env["billing_sync.connection"].create(
                cls.sandbox_values(provider)))
            connection.webhook_key = KEY
            cls.connections[provider] = connection

    def url(self, provider, db=None):
        return f"{self.base_url()}/billing_sync/webhook/{provider}/{db or self.env.cr.dbname}"

    def post(self, provider, body, signature=None, key=KEY, db=None, headers=None):
        from ledger_sandbox.qbo.webhooks import sign as qbo_sign
        from ledger_sandbox.xero.webhooks import sign as xero_sign

        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        header = "x-xero-signature" if provider == "xero" else "intuit-signature"
        if signature is None:
            signature = xero_sign(key, body) if provider == "xero" else qbo_sign(body, key)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if signature:
            sent[header] = signature
        return self.opener.post(self.url(provider, db), data=body, headers=sent, timeout=10)

    def inbox(self):
        return self.env["billing_sync.inbox"].search([])

    def xero_delivery(self, *changes, tenant=None):
        tenant = tenant or self.connections["xero"].org_id
        return self.xero.webhooks.build(tenant, list(changes))

    def cloud_event(self, event_id, entity, change, entity_id, realm=None):
        return {"specversion": "1.0", "id": event_id, "source": "intuit.accounting",
                "type": f"qbo.{entity}.{change}.v1", "time": "2026-12-02T10:00:00Z",
                "datacontenttype": "application/json", "intuitentityid": entity_id,
                "intuitaccountid": realm or self.connections["qbo"].org_id}

    def test_the_secret_is_kept_encrypted_and_the_url_names_the_database(self):
        connection = self.connections["xero"]
        self.assertFalse(connection.webhook_key, "never shown again")
        self.assertTrue(connection.has_webhook_key)
        stored = connection._token_sudo().webhook_key
        self.assertTrue(stored and KEY not in stored, "encrypted at rest")
        self.assertTrue(connection.webhook_url.endswith(
            f"/billing_sync/webhook/xero/{self.env.cr.dbname}"))

    def test_xero_intent_to_receive_passes(self):
        report = self.xero.webhooks.intent_to_receive(url=self.url("xero"), key=KEY)
        self.assertTrue(report["ok"], report)
        answer = self.post("xero", {"events": [], "firstEventSequence": 0,
                                    "lastEventSequence": 0, "entropy": "ABCDEFGHIJ"})
        self.assertEqual((answer.status_code, answer.content), (200, b""))
        self.assertNotIn("Set-Cookie", answer.headers, "a webhook answer sets no cookie")
        self.assertFalse(self.inbox())

    def test_a_signed_delivery_keeps_each_event_once(self):
        payload = self.xero_delivery(("CONTACT", "UPDATE", "c-1"), ("INVOICE", "UPDATE", "i-1"),
                                     ("CREDITNOTE", "CREATE", "n-1"))
        answer = self.post("xero", payload)
        self.assertEqual((answer.status_code, answer.content), (200, b""))
        self.assertNotIn("Set-Cookie", answer.headers)
        rows = self.inbox()
        self.assertEqual(sorted(rows.mapped(lambda r: (r.kind, r.ledger_id, r.change))),
                         [("contact", "c-1", "update"), ("credit_note", "n-1", "create"),
                          ("invoice", "i-1", "update")])
        self.assertEqual(set(rows.connection_id.ids), {self.connections["xero"].id})
        self.assertEqual(set(rows.mapped("state")), {"pending"})
        # Xero sends it again (no answer in time, say), or someone replays it: nothing new
        again = self.post("xero", payload)
        self.assertEqual(again.status_code, 200)
        self.assertEqual(self.inbox(), rows)

    def test_refused_deliveries_change_nothing(self):
        good = self.xero_delivery(("CONTACT", "UPDATE", "c-2"))
        body = json.dumps(good).encode()
        cases = {
            "forged": (self.post("xero", body, key="another-key"), 401),
            "unsigned": (self.post("xero", body, signature=""), 401),
            "signed for the other provider": (self.post("qbo", body, key=KEY,
                                                         signature="bm90IGl0"), 401),
            "malformed": (self.post("xero", b"{not json"), 400),
            "wrong shape": (self.post("xero", {"events": "all"}), 400),
            "oversized": (self.post("xero", b" " * (MAX_BODY + 1)), 413),
            "unknown tenant": (self.post("xero", self.xero_delivery(
                ("CONTACT", "UPDATE", "c-3"), tenant="no-such-tenant")), 404),
            "unknown database": (self.post("xero", body, db="no_such_db_here"), 404),
            "unknown provider": (self.post("sage", body), 404),
        }
        for case, (answer, status) in cases.items():
            with self.subTest(case=case):
                self.assertEqual(answer.status_code, status)
                self.assertEqual(answer.content, b"")
        self.assertFalse(self.inbox())

    def test_quickbooks_cloudevents_of_several_realms_go_to_their_connections(self):
        first = self.connections["qbo"]
        # a second company's QuickBooks, the same app (so the same verifier token)
        company = self.env["res.company"].create({"name": "Second Ltd"})
        second = self.env["billing_sync.connection"].create({
            **self.sandbox_values("qbo"), "company_id": company.id})
        second.sudo().write({"state": "connected", "org_id": "9130350000000042"})
        second.webhook_key = KEY
        events = [self.cloud_event("ev-1", "invoice", "updated", "41"),
                  self.cloud_event("ev-2", "customer", "created", "7", realm=second.org_id),
                  self.cloud_event("ev-3", "payment", "deleted", "12"),
                  self.cloud_event("ev-4", "account", "updated", "3"),  # not read back
                  self.cloud_event("ev-5", "invoice", "updated", "5", realm="unknown-realm")]
        answer = self.post("qbo", events)
        self.assertEqual((answer.status_code, answer.content), (200, b""))
        rows = self.inbox()
        self.assertEqual(sorted(rows.mapped(lambda r: (r.connection_id.id, r.event_id, r.kind,
                                                       r.ledger_id, r.change))),
                         sorted([(first.id, "ev-1", "invoice", "41", "update"),
                                 (second.id, "ev-2", "contact", "7", "create"),
                                 (first.id, "ev-3", "payment", "12", "delete")]))
        self.assertEqual(rows.filtered(lambda r: r.connection_id == second).company_id, company)
        # the same events again, one new: only the new one is kept
        answer = self.post("qbo", [*events, self.cloud_event("ev-6", "invoice", "voided", "41")])
        self.assertEqual(answer.status_code, 200)
        self.assertEqual(len(self.inbox()), 4)

    def test_quickbooks_legacy_notifications_are_accepted(self):
        from ledger_sandbox.qbo.webhooks import build

        realm = self.connections["qbo"].org_id
        body = build(realm, [("Invoice", "41", "Update", 1764669600.0),
                             ("Customer", "7", "Create", 1764669600.0)])
        answer = self.post("qbo", body)
        self.assertEqual(answer.status_code, 200)
        self.assertEqual(sorted(self.inbox().mapped(lambda r: (r.kind, r.ledger_id))),
                         [("contact", "7"), ("invoice", "41")])
        self.assertEqual(self.post("qbo", body).status_code, 200)
        self.assertEqual(len(self.inbox()), 2, "a legacy event's digest keeps it once")

    def test_a_bookkeeper_change_arrives_by_webhook_and_reaches_the_client(self):
        """The whole way: the sandbox's own signed delivery, the endpoint, the inbox, the
        worker reading the contact back, the partner. The sandbox delivers from a thread
        of its own, whenever the ledger changes; the test's one transaction serves the
        endpoint and must not be used by two threads at once: the deliveries are caught
        on loopback, then handed to Odoo's endpoint as they came, headers included."""
        capture = _Capture()
        self.addCleanup(capture.stop)
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connections[provider]
                app = getattr(self, provider)
                partner = self.env["res.partner"].create({
                    "name": f"Webhook {provider} Ltd", "is_company": True,
                    "email": f"ap@{provider}.example", "company_id": connection.company_id.id})
                self.env["billing_sync.job"]._enqueue(partner, "contact")
                self.env["billing_sync.job"]._cron_push()
                link = self.env["billing_sync.link"]._of(connection, partner)
                self.assertTrue(link, "the client is in the ledger")
                options = {"webhook_url": capture.url, "webhook_retry_delays": []}
                options.update({"webhook_key": KEY} if provider == "xero" else
                               {"verifier_token": KEY, "webhook_batch_seconds": 0})
                app.configure(**options)
                if provider == "xero":
                    app.edit_contact(link.ledger_id, fields={"EmailAddress": "new@ap.example"})
                else:
                    app.edit_contact(link.ledger_id, email="new@ap.example")
                self.assertTrue(app.webhook.flush(10))
                header = "x-xero-signature" if provider == "xero" else "intuit-signature"
                caught = [(body, headers) for body, headers in capture.take()
                          if header in {k.lower() for k in headers}]
                self.assertTrue(caught, "the ledger sent its webhook")
                for body, headers in caught:
                    answer = self.opener.post(self.url(provider), data=body, timeout=10,
                                              headers=headers)
                    self.assertEqual((answer.status_code, answer.content), (200, b""))
                rows = self.inbox().filtered(lambda r, c=connection: r.connection_id == c)
                self.assertEqual(set(rows.mapped("ledger_id")), {link.ledger_id})
                self.apply_inbox()
                self.assertEqual(set(rows.mapped("state")), {"done"},
                                 rows.read(["state", "last_error", "next_attempt_at"]))
                self.assertEqual(partner.billing_sync_invoice_email, "new@ap.example")
                self.assertFalse(self.env["billing_sync.job"].search([
                    ("res_model", "=", "res.partner"), ("res_id", "=", partner.id),
                    ("state", "=", "pending")]), "nothing sent back")


class _Capture:
    """A loopback endpoint that keeps each webhook the sandbox delivers (body and the
    headers that matter) and answers 200 at once."""

    def __init__(self):
        self.caught, lock = [], threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in (
                    "content-type", "x-xero-signature", "intuit-signature")}
                with lock:
                    outer.caught.append((body, headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        caught, self.caught = self.caught, []
        return caught

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

