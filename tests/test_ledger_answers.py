"""Answers the ledger gives that cannot be believed, and token endpoint answers told apart,
through Odoo: the push cron, the jobs, the links, the connection (issue 16).

The sandboxes spoil the answer of a request they did handle (faults ``bad_json``,
``no_ids``, ``one_fewer``, ``no_access_token``), so the ledger holds the document while the
answer says otherwise: the job must stay pending with its key, unlinked, and the retry must
leave exactly one ledger document, linked.
"""

import datetime
import logging
from urllib.parse import parse_qs

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged

from .test_outbound import OutboundMixin

SPOILED = ("bad_json", "no_ids", "one_fewer")
# one invoice alone: Xero's batch endpoint, QuickBooks' invoice endpoint (a lone document
# does not spend one of its 40 batches a minute)
WRITE_PATH = {"xero": r"/Invoices$", "qbo": r"/invoice$"}
TOKEN_PATH = {"xero": r"^/connect/token$", "qbo": r"^/oauth2/v1/tokens/bearer$"}
JOB_LOGGER = "odoo.addons.billing_sync.models.billing_sync_job"


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        if record.name.startswith("ledger_sandbox"):
            return  # the emulator's own log is not the addon's
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@tagged("post_install", "-at_install")
class TestLedgerAnswers(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    # ------------------------------------------------------------------ helpers
    def connected(self, provider):
        # OutboundMixin makes a tax named after the ledger's rate: one per call here
        for tax in self.env["account.tax"].search([("name", "=like", "Services tax %")]):
            tax.name = f"{tax.name} (#{tax.id})"
        return super().connected(provider)

    def _customer_in_ledger(self, provider, name):
        """A connected, mapped ledger, and a partner already in it (its first invoice sent)."""
        connection = self.connected(provider)
        partner = self.partner(name)
        first = self.invoice(partner)
        self.run_worker()
        self.assertEqual(self.jobs(first).state, "done", self.jobs(first).last_error)
        return connection, partner

    def _ledger_numbered(self, provider, number):
        return [inv for inv in self.ledger_invoices(provider)
                if (inv.get("InvoiceNumber") or inv.get("DocNumber")) == number]

    def _fresh_connection(self, provider):
        """A connection of ``provider`` past the consent page, its code not yet exchanged."""
        getattr(self, provider).reset()
        self.env["billing_sync.connection"].search([]).write({"active": False})
        connection = self.env["billing_sync.connection"].create(self.sandbox_values(provider))
        query = {k: v[0] for k, v in parse_qs(self.consent(connection)).items()}
        return connection, query

    @staticmethod
    def _complete(connection, query):
        """What completing the authorisation said (None when it worked)."""
        try:
            connection._oauth_complete(query["code"], callback=query)
        except UserError as exc:
            return str(exc)
        return None

    @staticmethod
    def _refresh(connection):
        """What a refresh said (None when it worked). Not assertRaises: its rollback would
        undo what the refresh's own cursor wrote (one transaction in test mode)."""
        connection._token_sudo().expires_at = datetime.datetime(2000, 1, 1)
        try:
            connection._access_token()
        except UserError as exc:
            return str(exc)
        return None

    # ------------------------------------------------------------------ push answers
    def test_bad_answers_leave_the_job_pending_then_one_linked_document(self):
        Link = self.env["billing_sync.link"]
        for provider in ("xero", "qbo"):
            for fault in SPOILED:
                with self.subTest(provider=provider, fault=fault):
                    connection, partner = self._customer_in_ledger(
                        provider, f"Answers {provider} {fault} Ltd")
                    move = self.invoice(partner)
                    getattr(self, provider).faults.next(fault, 1, path=WRITE_PATH[provider])
                    self.run_worker()  # returns: no crash of the cron
                    job = self.jobs(move)
                    self.assertEqual(job.state, "pending", job.last_error)
                    self.assertTrue(job.outcome_unknown)
                    self.assertTrue(job.batch_key, "the key is kept for the retry")
                    self.assertIn("unknown", job.last_error)
                    self.assertIn("same", job.last_error)
                    self.assertNotIn("<html", job.last_error.lower())
                    self.assertFalse(Link._of(connection, move), "nothing believed, no link")
                    self.assertNotEqual(move.billing_sync_status, "synced")
                    # the ledger did create it: the answer was what went wrong
                    self.assertEqual(len(self._ledger_numbered(provider, move.name)), 1)
                    key = job.batch_key
                    job.next_attempt_at = fields.Datetime.now()
                    self.run_worker()
                    self.assertEqual(job.state, "done", job.last_error)
                    self.assertEqual(job.batch_key, key)
                    [document] = self._ledger_numbered(provider, move.name)
                    link = Link._of(connection, move)
                    self.assertEqual(link.ledger_id, str(document.get("InvoiceID")
                                                         or document.get("Id")))
                    move.invalidate_recordset(["billing_sync_status"])  # computed, cached
                    self.assertEqual(move.billing_sync_status, "synced")

    def test_an_sdk_surprise_never_wedges_the_batch(self):
        from xero_python.accounting import AccountingApi

        connection, partner = self._customer_in_ledger("xero", "Surprise Ltd")
        move = self.invoice(partner)
        token = connection._access_token()
        original = AccountingApi.update_or_create_invoices

        def surprise(*args, **kwargs):  # an SDK bug: nothing here can make the real one raise
            raise RuntimeError("the SDK fell over")

        AccountingApi.update_or_create_invoices = surprise
        try:
            with self.assertLogs(JOB_LOGGER, "ERROR") as logs:
                self.run_worker()
        finally:
            AccountingApi.update_or_create_invoices = original
        job = self.jobs(move)
        self.assertEqual((job.state, job.outcome_unknown), ("pending", True))
        self.assertIn("unexpected error", job.last_error)
        self.assertTrue(job.batch_key)
        self.assertIn("the SDK fell over", "\n".join(logs.output), "the traceback is logged")
        self.assertNotIn(token, "\n".join(logs.output))
        self.assertFalse(self.env["billing_sync.link"]._of(connection, move))
        job.next_attempt_at = fields.Datetime.now()
        self.run_worker()
        self.assertEqual(job.state, "done", job.last_error)
        self.assertEqual(len(self._ledger_numbered("xero", move.name)), 1)

    # ------------------------------------------------------------------ token endpoint
    def test_code_exchange_answers_are_told_apart(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                said = {}
                for fault in ("bad_json", "no_access_token", "reset"):
                    connection, query = self._fresh_connection(provider)
                    getattr(self, provider).faults.next(fault, 1, path=TOKEN_PATH[provider])
                    said[fault] = self._complete(connection, query)
                    self.assertEqual(connection.state, "draft")
                    self.assertEqual(connection.last_error, said[fault])
                connection, query = self._fresh_connection(provider)
                connection.client_secret = "not-the-secret"
                said["invalid_client"] = self._complete(connection, query)
                connection, query = self._fresh_connection(provider)
                self.assertIsNone(self._complete(connection, query))
                self.assertEqual(connection.state, "connected")
                said["invalid_grant"] = self._complete(connection, query)  # the code again
                self.assertIn("not JSON", said["bad_json"])
                self.assertIn("without an access token", said["no_access_token"])
                self.assertIn("could not be reached", said["reset"])
                self.assertIn("client id or client secret is wrong", said["invalid_client"])
                self.assertIn("developer portal", said["invalid_client"])
                self.assertNotIn("not-the-secret", said["invalid_client"])
                self.assertIn("expired or was already used", said["invalid_grant"])
                self.assertEqual(len(set(said.values())), 5, said)
                for fault, text in said.items():
                    self.assertNotIn("Traceback", text, fault)

    def test_a_wrong_secret_never_leaves_a_connection_connected(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider, step="reconnect"):
                connection, query = self._fresh_connection(provider)
                self._complete(connection, query)
                self.assertEqual(connection.state, "connected")
                connection.client_secret = "not-the-secret"
                query = {k: v[0] for k, v in parse_qs(self.consent(connection)).items()}
                said = self._complete(connection, query)
                self.assertIn("client id or client secret is wrong", said)
                self.assertEqual(connection.state, "needs_reconnect")
                self.assertIn("client id or client secret is wrong", connection.last_error)
            with self.subTest(provider=provider, step="refresh"):
                connection, query = self._fresh_connection(provider)
                self._complete(connection, query)
                connection.client_secret = "not-the-secret"
                said = self._refresh(connection)
                self.assertIn("must be reconnected", said)
                self.assertIn("client id or client secret is wrong", said)
                connection.invalidate_recordset()
                self.assertEqual(connection.state, "needs_reconnect")
                self.assertIn("Copy them again", connection.last_error)

    def test_refresh_answers_are_told_apart(self):
        for provider in ("xero", "qbo"):
            for fault, words in (("bad_json", "not JSON"),
                                 ("no_access_token", "without an access token"),
                                 ("reset", "could not be reached"),
                                 ("http503", "answered 503")):
                with self.subTest(provider=provider, fault=fault):
                    connection, query = self._fresh_connection(provider)
                    self._complete(connection, query)
                    getattr(self, provider).faults.next(fault, 1, path=TOKEN_PATH[provider])
                    said = self._refresh(connection)
                    self.assertIn(words, said or "")
                    connection.invalidate_recordset()
                    # not a refusal: the connection stays as it was, a later try may work
                    self.assertEqual(connection.state, "connected")
            with self.subTest(provider=provider, fault="invalid_grant"):
                connection, query = self._fresh_connection(provider)
                self._complete(connection, query)
                token = connection._token_sudo()
                connection._adapter().revoke(connection._cipher().decrypt(token.refresh_token))
                said = self._refresh(connection)
                self.assertIn("no longer accepts the refresh token", said)
                connection.invalidate_recordset()
                self.assertEqual(connection.state, "needs_reconnect")

    def test_a_long_error_description_is_capped(self):
        connection, _query = self._fresh_connection("xero")
        connection._oauth_denied("access_denied", "Denied " + "y" * 20000)
        self.assertLess(len(connection.last_error), 400)
        self.assertIn("Denied", connection.last_error)
        self.assertLess(len(connection.message_ids[0].body), 600)
