"""Connecting safely (issue 16): a reconnect that reaches another organisation never
switches the connection silently; an administrator without an email address can connect;
a signed state that does not parse is refused, not a crash; creating a connection tells
nothing to whoever may not create one."""

import base64

from odoo.exceptions import AccessDenied, AccessError, UserError
from odoo.tests import TransactionCase, tagged
from odoo.tools.misc import hmac as odoo_hmac

from odoo.addons.billing_sync.models.billing_sync_connection import STATE_SCOPE

from .common import ADMIN, MANAGER, USER, LedgerSandboxMixin, make_user


@tagged("post_install", "-at_install")
class TestReconnectElsewhere(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes()
        cls.admin = make_user(cls.env, "bs_move_admin", ADMIN)

    def setUp(self):
        super().setUp()
        from ledger_sandbox.qbo.seed import default_realm

        self.qbo.reset()
        self.other_realm = "9130355678901234"
        self.qbo.add_realm(default_realm(self.other_realm, "Other Books Ltd"))
        self.connection = self.connect(
            self.env["billing_sync.connection"].with_user(self.admin).create(
                self.sandbox_values("qbo")))
        self.first_realm = self.connection.org_id
        self.connection.action_import_reference_data()
        self.tax = self.env["account.tax"].create(
            {"name": "Move VAT", "amount": 20, "type_tax_use": "sale"})
        tax_ref = self.connection.reference_ids.filtered(lambda r: r.kind == "tax")[:1]
        self.mapping = self.env["billing_sync.mapping"].with_user(self.admin).create({
            "connection_id": self.connection.id, "kind": "tax", "tax_id": self.tax.id,
            "tax_ref_id": tax_ref.id})
        self.connection.default_account_id = self.connection.reference_ids.filtered(
            lambda r: r.kind == "revenue_account")[:1]
        partner = self.env["res.partner"].create({"name": "Moved Client Ltd"})
        Link, Job = self.env["billing_sync.link"], self.env["billing_sync.job"]
        self.link = Link.create({"connection_id": self.connection.id,
                                 "res_model": "res.partner", "res_id": partner.id,
                                 "ledger_id": "58"})
        self.pending = Job.create({"connection_id": self.connection.id,
                                   "res_model": "res.partner", "res_id": partner.id,
                                   "kind": "contact", "outcome_unknown": True,
                                   "batch_key": "old-org-key"})
        self.void = Job.create({"connection_id": self.connection.id,
                                "res_model": "res.partner", "res_id": partner.id,
                                "kind": "void_invoice", "ledger_id": "130",
                                "state": "blocked"})

    def _reconnect(self, realm):
        return self.connect(self.connection, realm_id=realm)

    def test_a_grant_for_another_company_does_not_switch_the_connection(self):
        self._reconnect(self.other_realm)
        conn = self.connection
        self.assertEqual(conn.state, "choose_org")
        self.assertEqual(conn.org_id, self.first_realm, "still the organisation it syncs with")
        self.assertIn("Other Books Ltd", conn.last_error)
        self.assertIn("Move to this organisation", conn.last_error)
        self.assertTrue(self.link.active)
        self.assertTrue(self.mapping.active)
        # nothing is sent meanwhile: the grant does not reach the links' organisation
        with self.assertRaisesRegex(UserError, "not connected"):
            conn._access_token()
        conn.chosen_org_id = conn.candidate_org_ids
        with self.assertRaisesRegex(UserError, "Move to this organisation"):
            conn.with_user(self.admin).action_choose_org()
        self.assertEqual(conn.org_id, self.first_realm)

    def test_changes_made_while_choosing_wait_for_the_connection(self):
        self._reconnect(self.other_realm)
        partner = self.env["res.partner"].create({"name": "Waiting Client"})
        self.env["billing_sync.job"]._enqueue(partner, "contact")
        job = self.env["billing_sync.job"].search([("res_id", "=", partner.id),
                                                   ("res_model", "=", "res.partner")])
        self.assertEqual(job.state, "pending", "queued, not lost")
        self.env["billing_sync.job"]._cron_push()
        self.assertEqual((job.state, job.attempts), ("pending", 0),
                         "no attempt spent on a connection that is not connected")

    def test_reconnecting_the_same_company_keeps_everything(self):
        self._reconnect(self.first_realm)
        self.assertEqual((self.connection.state, self.connection.org_id),
                         ("connected", self.first_realm))
        self.assertTrue(self.link.active)
        self.assertTrue(self.mapping.active)

    def test_moving_explicitly_archives_what_named_the_old_organisation(self):
        refs = self.connection.reference_ids
        self._reconnect(self.other_realm)
        conn = self.connection.with_user(self.admin)
        conn.chosen_org_id = conn.candidate_org_ids
        conn.action_move_org()
        self.assertEqual((conn.state, conn.org_id, conn.org_name),
                         ("connected", self.other_realm, "Other Books Ltd"))
        self.assertFalse(self.link.active)
        self.assertFalse(self.mapping.active)
        self.assertFalse(refs.filtered("active"))
        self.assertFalse(conn.default_account_id)
        # a document of the old organisation is not voided in the new one
        self.assertEqual(self.void.state, "cancelled")
        # the record goes to the new organisation, as a new document
        self.assertEqual(self.pending.state, "pending")
        self.assertFalse(self.pending.outcome_unknown)
        self.assertFalse(self.pending.batch_key)
        body = conn.message_ids[:1].body
        self.assertIn("Moved from", body)
        # its own codes are imported beside the old ones (QuickBooks ids repeat across
        # companies), which stay archived, and can be mapped again
        conn.action_import_reference_data()
        Ref = self.env["billing_sync.ledger.ref"].with_context(active_test=False)
        old_refs = Ref.search([("id", "in", refs.ids)])
        self.assertFalse(old_refs.filtered("active"), "the old organisation's codes stay")
        self.assertEqual(set(old_refs.mapped("ledger_org_id")), {self.first_realm})
        new_refs = conn.reference_ids.filtered("active")
        self.assertTrue(new_refs)
        self.assertEqual(set(new_refs.mapped("ledger_org_id")), {self.other_realm})
        self.assertTrue(set(new_refs.mapped("ledger_id")) & set(old_refs.mapped("ledger_id")))
        tax_ref = new_refs.filtered(lambda r: r.kind == "tax")[:1]
        self.env["billing_sync.mapping"].with_user(self.admin).create({
            "connection_id": conn.id, "kind": "tax", "tax_id": self.tax.id,
            "tax_ref_id": tax_ref.id})
        # a ledger object of the new organisation may bear an archived link's id
        self.env["billing_sync.link"]._record(conn, self.env["res.partner"].create(
            {"name": "New Books Client"}), self.link.ledger_id)

    def test_a_move_queues_what_the_old_organisation_held(self):
        invoice = self.env["account.move"].create({
            "move_type": "out_invoice", "partner_id": self.env["res.partner"].create(
                {"name": "Held Client"}).id,
            "invoice_line_ids": [(0, 0, {"name": "Advice", "quantity": 1,
                                         "price_unit": 100, "tax_ids": []})]})
        invoice.with_context(billing_sync_no_push=True).action_post()
        self.env["billing_sync.link"]._record(self.connection, invoice, "77",
                                              ledger_type="invoice")
        self._reconnect(self.other_realm)
        self.connection.chosen_org_id = self.connection.candidate_org_ids
        self.connection.with_user(self.admin).action_move_org()
        job = self.env["billing_sync.job"].search([
            ("connection_id", "=", self.connection.id), ("res_model", "=", "account.move"),
            ("res_id", "=", invoice.id), ("state", "=", "pending")])
        self.assertEqual(job.kind, "invoice")
        # a job of the old organisation, retried by hand, is not sent to the new one
        with self.assertRaisesRegex(AccessError, "another organisation"):
            self.void.with_user(self.admin).action_retry()

    def test_nobody_sets_what_connecting_decides(self):
        for vals in ({"state": "connected"}, {"org_id": "elsewhere"},
                     {"org_name": "Forged"}, {"connected_by_id": self.admin.id}):
            with self.subTest(vals=vals), self.assertRaises(AccessError):
                self.connection.with_user(self.admin).write(vals)
            with self.subTest(create=vals), self.assertRaises(AccessError):
                self.env["billing_sync.connection"].with_user(self.admin).create(
                    {**self.sandbox_values("xero"), **vals})
        self._reconnect(self.other_realm)
        foreign = self.env["billing_sync.connection.org"].create(
            {"connection_id": self.env["billing_sync.connection"].create(
                {**self.sandbox_values("xero")}).id, "org_id": "forged", "name": "Forged"})
        with self.assertRaises(AccessError):
            self.env["billing_sync.connection.org"].with_user(self.admin).create(
                {"connection_id": self.connection.id, "org_id": "x", "name": "X"})
        self.connection.chosen_org_id = foreign
        with self.assertRaises(AccessError):
            self.connection.with_user(self.admin).action_move_org()
        self.assertEqual(self.connection.org_id, self.first_realm)

    def test_a_job_outlives_its_deleted_record_in_sight(self):
        partner = self.env["res.partner"].create({"name": "Deleted Later"})
        job = self.env["billing_sync.job"].create({
            "connection_id": self.connection.id, "res_model": "res.partner",
            "res_id": partner.id, "kind": "contact", "state": "blocked"})
        manager = make_user(self.env, "bs_gone_manager", MANAGER)
        partner.unlink()
        self.assertTrue(job.record_gone)
        self.assertIn(job, self.env["billing_sync.job"].with_user(manager).search([]))

    def test_what_names_an_organisation_is_kept(self):
        ref = self.connection.reference_ids[:1]
        for vals in ({"ledger_org_id": self.other_realm}, {"ledger_id": "999"},
                     {"kind": "item"}):
            with self.subTest(vals=vals), self.assertRaises(AccessError):
                ref.with_user(self.admin).write(vals)
        for vals in ({"ledger_org_id": self.other_realm}, {"record_gone": True}):
            with self.subTest(job=vals), self.assertRaises(AccessError):
                self.void.with_user(self.admin).write(vals)
        with self.assertRaises(AccessError):
            self.link.with_user(self.admin).write({"ledger_org_id": self.other_realm})
        # an administrator archives a mapping of their own connection
        self.mapping.with_user(self.admin).active = False
        self.assertFalse(self.mapping.active)

    def test_a_synced_connection_is_archived_not_deleted(self):
        with self.assertRaisesRegex(UserError, "archive it"):
            self.connection.with_user(self.admin).unlink()

    def test_only_an_administrator_moves_a_connection(self):
        self._reconnect(self.other_realm)
        self.connection.chosen_org_id = self.connection.candidate_org_ids
        manager = make_user(self.env, "bs_move_manager", MANAGER)
        with self.assertRaises(AccessError):
            self.connection.with_user(manager).action_move_org()
        self.assertEqual(self.connection.org_id, self.first_realm)


@tagged("post_install", "-at_install")
class TestConnectingSafely(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes()
        cls.other_company = cls.env["res.company"].create({"name": "Elsewhere Partners"})

    def test_an_administrator_without_email_connects(self):
        admin = make_user(self.env, "bs_noemail_admin", ADMIN)
        admin.partner_id.email = False
        self.xero.reset()
        connection = self.env["billing_sync.connection"].with_user(admin).create(
            self.sandbox_values("xero"))
        self.connect(connection)
        self.assertEqual(connection.state, "connected")
        self.assertEqual(connection.message_ids[:1].author_id, admin.partner_id)

    def test_a_signed_state_that_does_not_parse_is_refused_not_a_crash(self):
        Connection = self.env["billing_sync.connection"]
        for payload in ("abc:2:3:nonce", "1:two:3:nonce", "1:2:later:nonce", "1:2:3"):
            encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
            state = f"{encoded}.{odoo_hmac(self.env(su=True), STATE_SCOPE, payload)}"
            with self.subTest(payload=payload), self.assertRaises(AccessDenied):
                Connection._from_state(state)

    def test_creating_a_connection_reveals_nothing_to_who_may_not(self):
        # the company has a Xero connection; who may not create one learns nothing of it
        self.env["billing_sync.connection"].create(self.sandbox_values("xero"))
        portal = make_user(self.env, "bs_create_portal", "base.group_portal")
        for login, groups in (("bs_create_user", USER), ("bs_create_manager", MANAGER)):
            user = make_user(self.env, login, groups)
            with self.subTest(user=login), self.assertRaises(AccessError) as caught:
                self.env["billing_sync.connection"].with_user(user).create(
                    {"provider": "xero"})
            self.assertNotIn("already has", str(caught.exception))
        with self.assertRaises(AccessError) as caught:
            self.env["billing_sync.connection"].with_user(portal).create({"provider": "xero"})
        self.assertNotIn("already has", str(caught.exception))
        # an administrator, but not of the other company
        admin = make_user(self.env, "bs_create_admin", ADMIN)
        self.env["billing_sync.connection"].create(
            {**self.sandbox_values("qbo"), "company_id": self.other_company.id})
        with self.assertRaisesRegex(AccessError, "your own companies"):
            self.env["billing_sync.connection"].with_user(admin).create(
                {"provider": "qbo", "company_id": self.other_company.id})
