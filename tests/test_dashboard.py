"""The sync dashboard (issue 19): one row per connection, read by every Billing Sync
user for the companies they work in, with figures that follow what the engine does."""

from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, tagged

from odoo.addons.billing_sync.models.billing_sync_job import _pacer

from .common import USER, make_user
from .test_outbound import OutboundMixin


@tagged("post_install", "-at_install")
class TestDashboard(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def row(self, connection, user=None):
        self.env.flush_all()  # a database view: it reads the tables, anew each time
        Dashboard = self.env["billing_sync.dashboard"]
        Dashboard.invalidate_model()
        if user:
            Dashboard = Dashboard.with_user(user)
        return Dashboard.search([("id", "=", connection.id)])

    def test_the_figures_follow_the_engine(self):
        connection = self.connected("xero")
        user = make_user(self.env, "dash_user", USER)  # no Sales, no Accounting rights
        with self.assertRaises(AccessError):
            connection.with_user(user).read(["name"])  # the connection is for admins
        row = self.row(connection, user)
        self.assertEqual((row.connection_name, row.state), (connection.name, "connected"))
        self.assertEqual((row.backlog, row.to_fix, row.open_alerts, row.mismatches),
                         (0, 0, 0, 0))
        unmapped = self.env["account.tax"].create({
            "name": "Dashboard levy 7", "amount": 7, "type_tax_use": "sale"})
        stopped = self.taxed_invoice(self.partner("Stopped Ltd"), unmapped)
        waiting = self.invoice(self.partner("Waiting Ltd"))
        row = self.row(connection, user)
        self.assertEqual(row.backlog, 2)
        self.assertTrue(row.oldest_pending_at)
        self.run_worker()
        row = self.row(connection, user)
        self.assertEqual((row.backlog, row.to_fix, row.open_alerts), (0, 1, 1))
        self.assertGreaterEqual(row.failures_24h, 1)
        self.assertEqual(row.failures_by_class, "Mapping 1")
        self.assertTrue(row.last_push_at, "the waiting invoice went")
        self.assertEqual(self.jobs(waiting).state, "done")
        self.env["billing_sync.link"]._of(connection, waiting).sudo().sync_state = "mismatch"
        self.assertEqual(self.row(connection, user).mismatches, 1)
        self.jobs(stopped).filtered(lambda j: j.state == "blocked").action_cancel()
        row = self.row(connection, user)
        self.assertEqual((row.to_fix, row.open_alerts), (0, 0))

    def test_another_companys_connection_is_not_shown(self):
        connection = self.connected("qbo")
        other = self.env["res.company"].create({"name": "Dashboard Other Firm"})
        user = make_user(self.env, "dash_other", USER)
        user.write({"company_ids": [(6, 0, other.ids)], "company_id": other.id})
        self.assertFalse(self.row(connection, user))
        self.assertEqual(len(self.row(connection)), 1)

    def test_the_rate_limit_headroom_is_the_shared_budgets(self):
        xero = self.connected("xero")
        self.env.cr.execute("DELETE FROM billing_sync_rate_call")
        user = make_user(self.env, "dash_headroom", USER)
        row = self.row(xero, user)
        self.assertEqual((row.calls_left_minute, row.calls_left_day), (60, 5000))
        self.invoice(self.partner("Headroom Ltd"))
        self.run_worker()
        self.env.cr.execute("SELECT count(*) FROM billing_sync_rate_call")
        spent = self.env.cr.fetchone()[0]
        self.assertGreater(spent, 0)
        row = self.row(xero, user)
        self.assertEqual(row.calls_left_minute, 60 - spent)
        self.assertEqual(row.calls_left_day, 5000 - spent)
        self.assertIn(f"{60 - spent} of 60 calls left this minute", row.rate_headroom)
        self.assertIn(f"{5000 - spent} of 5000 today", row.rate_headroom)
        # a 429 pauses every worker: the dashboard says so
        _pacer(xero).block(30)
        self.assertIn("paused by the ledger for", self.row(xero, user).rate_headroom)
        # QuickBooks counts its batches apart
        qbo = self.connected("qbo")
        self.assertIn("of 40 batches", self.row(qbo, user).rate_headroom)
