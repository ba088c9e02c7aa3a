"""Retainers: a 14-month walk, catch-up after downtime, term changes after acceptance."""

from datetime import date

from freezegun import freeze_time

from odoo.tests import TransactionCase, tagged

from .common import make_proposal, make_service


class RetainerCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partner = cls.env["res.partner"].create({"name": "Retainer Client Ltd"})
        cls.retainer = make_service(cls.env, "Advisory retainer", 3100.0)
        cls.setup_fee = make_service(cls.env, "Onboarding", 900.0)
        cls.Line = cls.env["billing_sync.schedule.line"]

    def _run_cron(self):
        return self.Line._cron_bill_due()

    def _invoices(self, order):
        return self.env["account.move"].search(
            [("billing_sync_schedule_line_id.order_id", "=", order.id)], order="invoice_date, id"
        )


@tagged("post_install", "-at_install")
class TestRetainerWalk(RetainerCase):
    def test_monthly_retainer_across_fourteen_months(self):
        with freeze_time("2027-12-17"):
            order = make_proposal(
                self.env, self.partner, [(self.retainer, 1, {"billing_sync_recurring": True})],
                billing_sync_engagement_type="retainer",
                billing_sync_interval="monthly",
                billing_sync_start_date=date(2027, 12, 17),
                billing_sync_period_count=14,
                billing_sync_invoice_rule="day_of_month",
                billing_sync_invoice_day=31,
                billing_sync_prorate_first=True,
            )
            order.action_confirm()
        lines = order.billing_sync_schedule_line_ids
        self.assertEqual(len(lines), 14)
        self.assertEqual(set(lines.mapped("kind")), {"period"})
        self.assertEqual(set(lines.mapped("state")), {"planned"})
        expected_dates = [
            date(2027, 12, 31), date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31),
            date(2028, 4, 30), date(2028, 5, 31), date(2028, 6, 30), date(2028, 7, 31),
            date(2028, 8, 31), date(2028, 9, 30), date(2028, 10, 31), date(2028, 11, 30),
            date(2028, 12, 31), date(2029, 1, 31),
        ]
        self.assertEqual(lines.sorted("date").mapped("date"), expected_dates)
        # 17 to 31 December: 15 of 31 days
        self.assertEqual(lines.sorted("date")[0].amount, 1500.0)
        self.assertEqual(set(lines.sorted("date")[1:].mapped("amount")), {3100.0})

        for month, due in enumerate(expected_dates, start=1):
            with freeze_time(date.fromordinal(due.toordinal() - 1)):
                self._run_cron()
                self.assertEqual(len(self._invoices(order)), month - 1, f"early on {due}")
            with freeze_time(due):
                self._run_cron()
                self._run_cron()  # a second run the same day bills nothing more
                invoices = self._invoices(order)
                self.assertEqual(len(invoices), month, f"on {due}")
                latest = invoices[-1]
                self.assertEqual(latest.invoice_date, due)
                self.assertEqual(latest.state, "posted")
                self.assertEqual(latest.amount_total, 1500.0 if month == 1 else 3100.0)
                self.assertEqual(latest.invoice_origin, order.name)
                self.assertEqual(latest.billing_sync_schedule_line_id.invoice_id, latest)

        invoices = self._invoices(order)
        self.assertEqual(order.invoice_ids, invoices)  # the Invoices smart button
        self.assertIn("prorated: 15 of 31 days", invoices[0].invoice_line_ids.name)
        self.assertEqual(invoices[2].invoice_date, date(2028, 2, 29))
        self.assertIn("Period 01 Feb 2028 to 29 Feb 2028", invoices[2].invoice_line_ids.name)
        self.assertEqual(set(lines.mapped("state")), {"invoiced"})
        self.assertEqual(sum(invoices.mapped("amount_total")), 1500.0 + 13 * 3100.0)
        # the schedule, not Odoo's own invoicing, bills recurring lines
        self.assertEqual(order.order_line.qty_to_invoice, 0)
        with freeze_time("2029-06-01"):
            self.assertEqual(self._run_cron(), 0)

    def test_paid_invoice_shows_on_its_schedule_line(self):
        with freeze_time("2028-03-01"):
            order = make_proposal(
                self.env, self.partner, [(self.retainer, 1, {"billing_sync_recurring": True})],
                billing_sync_engagement_type="retainer",
                billing_sync_start_date=date(2028, 3, 1),
                billing_sync_period_count=2,
            )
            order.action_confirm()
            self._run_cron()
            line = order.billing_sync_schedule_line_ids.filtered(lambda ln: ln.invoice_id)
            self.assertEqual(line.state, "invoiced")
            self.env["account.payment.register"].with_context(
                active_model="account.move", active_ids=line.invoice_id.ids
            ).create({})._create_payments()
            self.assertIn(line.invoice_id.payment_state, ("paid", "in_payment"))
            self.assertEqual(line.state, "paid")


@tagged("post_install", "-at_install")
class TestRetainerCatchUp(RetainerCase):
    def test_missed_periods_are_caught_up_once_each_with_its_own_date(self):
        with freeze_time("2028-01-01"):
            order = make_proposal(
                self.env, self.partner,
                [(self.retainer, 1, {"billing_sync_recurring": True}), (self.setup_fee, 1)],
                billing_sync_engagement_type="retainer",
                billing_sync_start_date=date(2028, 1, 1),
                billing_sync_period_count=12,
            )
            order.action_confirm()
        # the scheduler did not run from January to mid-May
        with freeze_time("2028-05-15"):
            self.assertEqual(self._run_cron(), 5)
            invoices = self._invoices(order)
            self.assertEqual(invoices.mapped("invoice_date"),
                             [date(2028, m, 1) for m in range(1, 6)])
            self.assertEqual(self._run_cron(), 0)
        # the one-off onboarding fee is the final invoice, after the last period
        final = order.billing_sync_schedule_line_ids.filtered(lambda ln: ln.kind == "final")
        self.assertEqual(final.amount, 900.0)
        self.assertEqual(final.date, date(2028, 12, 1))
        self.assertEqual(len(invoices), 5)
        self.assertEqual(
            order.billing_sync_schedule_line_ids.filtered(lambda ln: ln.state == "invoiced")
            .mapped("period_start"),
            [date(2028, m, 1) for m in range(1, 6)],
        )


@tagged("post_install", "-at_install")
class TestRetainerTermChanges(RetainerCase):
    def test_changes_after_acceptance_replan_only_lines_not_invoiced(self):
        with freeze_time("2028-01-01"):
            order = make_proposal(
                self.env, self.partner, [(self.retainer, 1, {"billing_sync_recurring": True})],
                billing_sync_engagement_type="retainer",
                billing_sync_start_date=date(2028, 1, 1),
                billing_sync_period_count=12,
            )
            order.action_confirm()
        with freeze_time("2028-02-10"):
            self._run_cron()
        invoiced = order.billing_sync_schedule_line_ids.filtered(lambda ln: ln.invoice_id)
        self.assertEqual(len(invoiced), 2)
        invoices_before = invoiced.invoice_id
        snapshot = [(line.id, line.date, line.amount, line.invoice_id.id) for line in invoiced]

        with freeze_time("2028-02-10"):
            order.write({
                "billing_sync_period_count": 6,
                "billing_sync_invoice_rule": "day_of_month",
                "billing_sync_invoice_day": 15,
            })
        lines = order.billing_sync_schedule_line_ids
        self.assertEqual(
            [(line.id, line.date, line.amount, line.invoice_id.id) for line in invoiced],
            snapshot, "invoiced lines are never re-planned")
        planned = lines.filtered(lambda ln: ln.state == "planned").sorted("date")
        self.assertEqual(planned.mapped("date"), [date(2028, m, 15) for m in range(3, 7)])
        self.assertEqual(len(lines), 6)
        message = order.message_ids.filtered(
            lambda m: "Engagement terms changed after acceptance" in (m.body or ""))
        self.assertEqual(len(message), 1)
        body = message.body
        self.assertIn("Number of periods: 12 → 6", body)
        self.assertIn("First day of the period → Given day of the month", body)
        self.assertIn("2 invoiced lines kept", body)

        # a new start date must not bill again days already invoiced
        with freeze_time("2028-02-10"):
            order.billing_sync_start_date = date(2028, 1, 20)
        starts = order.billing_sync_schedule_line_ids.filtered(
            lambda ln: ln.state == "planned").mapped("period_start")
        self.assertTrue(all(start > date(2028, 2, 29) for start in starts), starts)
        self.assertEqual(
            order.billing_sync_schedule_line_ids.filtered(lambda ln: ln.invoice_id).invoice_id,
            invoices_before)
        # writing the same values again logs nothing
        count = len(order.message_ids)
        order.billing_sync_period_count = 6
        self.assertEqual(len(order.message_ids), count)
