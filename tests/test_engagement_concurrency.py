"""Two workers run the daily billing at once, on two cursors, with committed data.

A TransactionCase cannot show this (its data is never committed, so another
cursor would not see it): this test commits its proposals through separate
registry cursors, runs the scheduled action's method in two threads (which
commit line by line, as a cron worker does), checks that every line was billed
exactly once, and deletes what it committed.
"""

import threading
from datetime import date

from dateutil.relativedelta import relativedelta

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, tagged
from odoo.tests.common import get_db_name

from .common import make_proposal, make_service

ORDERS = 4
PERIODS = 6


@tagged("post_install", "-at_install")
class TestConcurrentRuns(BaseCase):
    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        self.created = {}
        self.addCleanup(self._cleanup)

    def _env(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})

    def _commit_proposals(self):
        start = date.today().replace(day=1) - relativedelta(months=PERIODS - 1)
        with self.registry.cursor() as cr:
            env = self._env(cr)
            partner = env["res.partner"].create({"name": "Concurrent Client (test)"})
            product = make_service(env, "Concurrent retainer (test)", 700.0)
            orders = env["sale.order"]
            for _i in range(ORDERS):
                orders |= make_proposal(
                    env, partner, [(product, 1, {"billing_sync_recurring": True})],
                    billing_sync_engagement_type="retainer",
                    billing_sync_start_date=start,
                    billing_sync_period_count=PERIODS + 2,
                )
            orders.action_confirm()
            self.created = {"partner": partner.id, "product": product.id, "orders": orders.ids}
            cr.commit()
        return orders.ids

    def _worker(self, barrier, results, index):
        try:
            with self.registry.cursor() as cr:
                env = self._env(cr)
                barrier.wait(timeout=30)
                results[index] = env["billing_sync.schedule.line"]._cron_bill_due()
                cr.commit()
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            results[index] = error

    def _run_two_workers(self):
        barrier = threading.Barrier(2)
        results = [None, None]
        threads = [threading.Thread(target=self._worker, args=(barrier, results, i))
                   for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        for result in results:
            self.assertNotIsInstance(result, Exception, result)
        return results

    def test_two_workers_bill_each_due_line_once(self):
        order_ids = self._commit_proposals()
        first = self._run_two_workers()
        # a rerun (a crash, the next day) finds nothing left to bill
        second = self._run_two_workers()
        self.assertEqual(second, [0, 0])

        with self.registry.cursor() as cr:
            env = self._env(cr)
            lines = env["billing_sync.schedule.line"].search([("order_id", "in", order_ids)])
            due = lines.filtered(lambda ln: ln.date <= date.today())
            self.assertEqual(len(due), ORDERS * PERIODS)
            self.assertFalse(due.filtered("last_error"), due.mapped("last_error"))
            # every due line billed, by one worker or the other, never by both
            self.assertEqual(sum(first), len(due))
            self.assertEqual(set(due.mapped("state")), {"invoiced"})
            cr.execute(
                """SELECT billing_sync_schedule_line_id, count(*) FROM account_move
                    WHERE billing_sync_schedule_line_id = ANY(%s)
                 GROUP BY 1 HAVING count(*) > 1""",
                [due.ids],
            )
            self.assertEqual(cr.fetchall(), [])
            invoices = env["account.move"].search(
                [("billing_sync_schedule_line_id", "in", due.ids)])
            self.assertEqual(len(invoices), len(due))
            self.assertEqual((lines - due).mapped("state"), ["planned"] * (len(lines) - len(due)))

    def test_database_refuses_a_second_live_invoice_for_a_line(self):
        order_ids = self._commit_proposals()
        with self.registry.cursor() as cr:
            env = self._env(cr)
            env["billing_sync.schedule.line"]._cron_bill_due(limit=1)
            line = env["billing_sync.schedule.line"].search(
                [("order_id", "in", order_ids), ("invoice_id", "!=", False)])
            self.assertEqual(len(line), 1)
            copy = line.invoice_id.copy()
            with self.assertRaisesRegex(Exception, "account_move_billing_sync_one_live_invoice"), \
                    cr.savepoint():
                copy.billing_sync_schedule_line_id = line
                env.flush_all()
            cr.rollback()

    def _cleanup(self):
        if not self.created:
            return
        with self.registry.cursor() as cr:
            env = self._env(cr)
            orders = env["sale.order"].browse(self.created["orders"]).exists()
            moves = env["account.move"].search(
                [("billing_sync_schedule_line_id.order_id", "in", orders.ids)])
            moves = moves | orders.invoice_ids
            moves.filtered(lambda m: m.state == "posted").button_draft()
            moves.with_context(force_delete=True).unlink()
            orders.with_context(disable_cancel_warning=True).action_cancel()
            orders.unlink()
            env["product.product"].browse(self.created["product"]).product_tmpl_id.unlink()
            env["res.partner"].browse(self.created["partner"]).unlink()
            cr.commit()
