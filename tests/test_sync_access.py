"""Who may touch what issue 15 added: jobs (engine only, Retry/Cancel for Managers of the
job's company), the ledger check on links (engine only), the connection's rounding
account (its own reference data only), the company's sync settings (Settings
administrators) and the duplicate-name suffix (no format a worker could choke on)."""

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import TransactionCase, tagged

from .common import ADMIN, MANAGER, USER, LedgerSandboxMixin, make_user


@tagged("post_install", "-at_install")
class TestSyncAccess(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes()
        cls.other_company = cls.env["res.company"].create({"name": "Other Firm"})
        cls.connection = cls.env["billing_sync.connection"].create(
            cls.sandbox_values("xero"))
        cls.other_connection = cls.env["billing_sync.connection"].create({
            **cls.sandbox_values("xero"), "company_id": cls.other_company.id})
        partner = cls.env["res.partner"].create({"name": "Access Ltd"})
        cls.job = cls.env["billing_sync.job"].create({
            "connection_id": cls.connection.id, "res_model": "res.partner",
            "res_id": partner.id, "kind": "contact", "state": "blocked"})
        cls.other_job = cls.env["billing_sync.job"].create({
            "connection_id": cls.other_connection.id, "res_model": "res.partner",
            "res_id": partner.id, "kind": "contact", "state": "blocked"})
        cls.link = cls.env["billing_sync.link"].create({
            "connection_id": cls.connection.id, "res_model": "res.partner",
            "res_id": partner.id, "ledger_id": "C-1"})
        cls.user = make_user(cls.env, "bs_acc_user", USER)
        cls.manager = make_user(cls.env, "bs_acc_manager", MANAGER)
        cls.admin = make_user(cls.env, "bs_acc_admin", ADMIN)

    def test_nobody_rewrites_a_job_not_even_an_administrator(self):
        for user in (self.manager, self.admin):
            for vals in ({"ledger_id": "INV-OF-SOMEONE-ELSE"}, {"res_id": 1},
                         {"connection_id": self.other_connection.id}, {"state": "done"},
                         {"outcome_unknown": False}):
                with self.subTest(user=user.login, vals=vals), self.assertRaises(AccessError):
                    self.job.with_user(user).write(vals)
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.env["billing_sync.job"].with_user(user).create({
                    "connection_id": self.connection.id, "res_model": "res.partner",
                    "res_id": 1, "kind": "void_invoice", "ledger_id": "X"})

    def test_a_manager_retries_and_cancels_the_jobs_of_their_company_only(self):
        self.job.with_user(self.manager).action_retry()
        self.assertEqual((self.job.state, self.job.batch_key), ("pending", False))
        self.job.with_user(self.manager).action_cancel()
        self.assertEqual(self.job.state, "cancelled")
        with self.assertRaises(AccessError):
            self.other_job.with_user(self.manager).action_retry()
        self.assertEqual(self.other_job.state, "blocked")
        with self.assertRaises(AccessError):
            self.job.with_user(self.user).action_retry()

    def test_the_ledger_check_of_a_link_is_the_engines_alone(self):
        for vals in ({"sync_state": "synced"}, {"mismatch": False},
                     {"ledger_total": 115.0}, {"adjustment": 0.0}):
            with self.subTest(vals=vals), self.assertRaises(AccessError):
                self.link.with_user(self.admin).write(vals)
        with self.assertRaises(AccessError):
            self.link.with_user(self.user).write({"ledger_number": "X"})

    def test_connection_defaults_come_from_its_own_reference_data(self):
        foreign = self.env["billing_sync.ledger.ref"].create({
            "connection_id": self.other_connection.id, "kind": "revenue_account",
            "ledger_id": "acc-1", "code": "200", "name": "Sales"})
        own = self.env["billing_sync.ledger.ref"].create({
            "connection_id": self.connection.id, "kind": "revenue_account",
            "ledger_id": "acc-2", "code": "260", "name": "Rounding"})
        self.connection.with_user(self.admin).rounding_account_id = own
        with self.assertRaises(ValidationError):
            self.connection.with_user(self.admin).rounding_account_id = foreign
        with self.assertRaises(AccessError):
            self.connection.with_user(self.manager).rounding_account_id = own

    def test_company_sync_settings_are_for_settings_administrators(self):
        company = self.env.company
        for vals in ({"billing_sync_edit_policy": "hold"},
                     {"billing_sync_duplicate_name_suffix": " [%(id)s]"}):
            with self.subTest(vals=vals), self.assertRaises(AccessError):
                company.with_user(self.admin).write(vals)

    def test_the_suffix_takes_nothing_but_its_placeholders(self):
        company = self.env.company
        for suffix in (" (%(ref)999999999s)", " %(id)d", " (%(name)s)", " (none)"):
            with self.subTest(suffix=suffix), self.assertRaises(ValidationError):
                company.billing_sync_duplicate_name_suffix = suffix
        company.billing_sync_duplicate_name_suffix = " [%(id)s] 100%%"
