"""Issue 19's proof in a browser: a tour in headless Chromium opens the sync dashboard,
filters invoices by "Needs a fix" and retries one (billing_sync_dashboard_tour.js)."""

from odoo.tests import HttpCase, tagged

from .common import INVOICING, MANAGER, make_user
from .test_outbound import OutboundMixin


@tagged("post_install", "-at_install")
class TestDashboardTour(OutboundMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # HttpCase has put the registry in test mode already (one cursor serves the
        # browser's requests and the code's own cursors): the sandboxes need no more
        cls.setup_outbound(test_mode=False)

    def test_a_manager_retries_an_invoice_from_the_dashboard(self):
        connection = self.connected("xero")
        manager = make_user(self.env, "tour_manager", f"{MANAGER},{INVOICING}")
        unmapped = self.env["account.tax"].create({
            "name": "Tour levy 7", "amount": 7, "type_tax_use": "sale"})
        stopped = self.taxed_invoice(self.partner("Tour Stopped Ltd"), unmapped)
        synced = self.invoice(self.partner("Tour Synced Ltd"))
        self.run_worker()
        job = self.jobs(stopped)
        self.assertEqual((job.state, job.block_reason), ("blocked", "mapping"), job.last_error)
        self.assertEqual(self.jobs(synced).state, "done", self.jobs(synced).last_error)
        self.assertEqual(stopped.with_user(manager).billing_sync_status, "error")

        self.start_tour("/odoo/action-billing_sync.action_billing_sync_dashboard",
                        "billing_sync_dashboard_tour", login=manager.login)

        job.invalidate_recordset()
        self.assertEqual((job.state, job.attempts), ("pending", 0),
                         "the tour retried the stopped invoice")
        self.assertEqual(self.jobs(synced).state, "done")
        # once its tax is mapped, the retried invoice reaches the ledger
        self.map_stopping_tax(connection, unmapped)
        self.run_worker()
        self.assertEqual(job.state, "done", job.last_error)
