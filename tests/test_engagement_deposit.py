"""Deposit and milestones, the guards, the card fee, partners and access."""

from datetime import date, datetime

from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, tagged

from .common import (
    INVOICING,
    SALES_ALL,
    SALESMAN,
    USER,
    make_proposal,
    make_service,
    make_user,
    register_payment,
)


class EngagementCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.partner = cls.env["res.partner"].create(
            {"name": "Milestone Client", "email": "hello@client.example.com"})
        cls.design = make_service(cls.env, "Design", 6000.0)
        cls.build = make_service(cls.env, "Build", 4000.0)
        cls.retainer = make_service(cls.env, "Support retainer", 1000.0)
        cls.salesperson = make_user(cls.env, "eng_sales", f"{SALESMAN},{USER}")
        cls.Line = cls.env["billing_sync.schedule.line"]

    def _milestone_order(self, **terms):
        values = {
            "billing_sync_engagement_type": "milestones",
            "billing_sync_deposit_type": "percent",
            "billing_sync_deposit_percent": 20,
            "user_id": self.salesperson.id,
            "billing_sync_milestone_ids": [
                (0, 0, {"name": "Design approved", "amount_type": "percent", "percent": 30,
                        "expected_date": date(2028, 3, 1)}),
                (0, 0, {"name": "Go live", "amount_type": "fixed", "fixed_amount": 2500,
                        "expected_date": date(2028, 5, 1)}),
            ],
        }
        values.update(terms)
        return make_proposal(self.env, self.partner, [(self.design, 1), (self.build, 1)], **values)


@tagged("post_install", "-at_install")
class TestDepositAndMilestones(EngagementCase):
    def test_deposit_on_acceptance_then_milestones_then_final(self):
        with freeze_time("2028-01-10"):
            order = self._milestone_order()
            order.action_confirm()
        lines = order.billing_sync_schedule_line_ids.sorted(lambda ln: (ln.sequence, ln.id))
        self.assertEqual(lines.mapped("kind"), ["deposit", "milestone", "milestone", "final"])
        self.assertEqual(lines.mapped("amount"), [2000.0, 3000.0, 2500.0, 2500.0])
        deposit, design, go_live, final = lines
        # the deposit was invoiced and posted on acceptance, as Odoo's down payment
        self.assertEqual(deposit.state, "invoiced")
        self.assertEqual(deposit.invoice_id.state, "posted")
        self.assertEqual(deposit.invoice_id.amount_total, 2000.0)
        self.assertEqual(deposit.invoice_id.invoice_date, date(2028, 1, 10))
        self.assertTrue(deposit.invoice_id.invoice_line_ids.sale_line_ids.is_downpayment)
        self.assertEqual(deposit.invoice_id.billing_sync_schedule_line_id, deposit)
        self.assertEqual(order.invoice_ids, deposit.invoice_id)
        self.assertIn("Design approved", order.billing_sync_signed_terms)

        # the daily run bills no milestone before it is reached, nor the final before them
        with freeze_time("2028-06-01"):
            self.assertEqual(self.Line._cron_bill_due(), 0)
        self.assertEqual((design | go_live | final).mapped("state"), ["planned"] * 3)

        with freeze_time("2028-03-04"):
            design.milestone_id.with_user(self.salesperson).action_mark_reached()
        self.assertEqual(design.state, "invoiced")
        self.assertEqual(design.invoice_id.amount_total, 3000.0)
        self.assertEqual(design.invoice_id.invoice_date, date(2028, 3, 4))
        self.assertIn("Design approved", design.invoice_id.invoice_line_ids.name)
        with freeze_time("2028-05-02"):
            go_live.milestone_id.action_mark_reached()
            self.assertEqual(go_live.invoice_id.amount_total, 2500.0)
            self.assertEqual(self.Line._cron_bill_due(), 1)
        # the final invoice: all the lines, less the three down payments, as Odoo does
        self.assertEqual(final.state, "invoiced")
        self.assertEqual(final.invoice_id.amount_total, 2500.0)
        dp = final.invoice_id.invoice_line_ids.filtered("is_downpayment")
        self.assertEqual(sorted(dp.mapped("price_subtotal")), [-3000.0, -2500.0, -2000.0])
        self.assertEqual(order.invoice_status, "invoiced")
        self.assertEqual(len(order.invoice_ids), 4)
        self.assertEqual(sum(order.invoice_ids.mapped("amount_total")), 10000.0)

    def test_deposit_with_taxes_and_without_posting_on_acceptance(self):
        tax = self.env["account.tax"].create({"name": "VAT 15 test", "amount": 15})
        product = make_service(self.env, "Taxed work", 1000.0, taxes=tax)
        self.company.billing_sync_post_deposit_on_confirm = False
        with freeze_time("2028-01-10"):
            order = make_proposal(
                self.env, self.partner, [(product, 2)],
                billing_sync_engagement_type="one_off",
                billing_sync_deposit_type="fixed", billing_sync_deposit_amount=500,
                billing_sync_final_date=date(2028, 2, 1),
            )
            order.action_confirm()
            deposit = order.billing_sync_schedule_line_ids.filtered(lambda ln: ln.kind == "deposit")
            self.assertEqual(deposit.state, "planned")
            self.assertFalse(order.invoice_ids)
            self.assertEqual(self.Line._cron_bill_due(), 1)
        self.assertEqual(deposit.invoice_id.amount_total, 500.0)
        final = order.billing_sync_schedule_line_ids.filtered(lambda ln: ln.kind == "final")
        self.assertEqual(final.amount, 1800.0)  # 2300 taxes included, less 500
        with freeze_time("2028-02-01"):
            self.Line._cron_bill_due()
        self.assertEqual(final.invoice_id.amount_total, 1800.0)

    def test_card_fee_is_its_own_line(self):
        with freeze_time("2028-01-10"):
            order = make_proposal(
                self.env, self.partner, [(self.build, 1)],
                billing_sync_engagement_type="one_off",
                billing_sync_card_fee_percent=2.5,
            )
            order.action_confirm()
            self.Line._cron_bill_due()
        invoice = order.billing_sync_schedule_line_ids.invoice_id
        fee = invoice.invoice_line_ids.filtered(
            lambda ln: ln.product_id == self.env.ref("billing_sync.product_card_fee"))
        self.assertEqual(fee.price_subtotal, 100.0)
        self.assertFalse(fee.tax_ids)
        self.assertEqual(invoice.amount_total, 4100.0)


@tagged("post_install", "-at_install")
class TestGuards(EngagementCase):
    def test_signed_terms_required_by_the_company(self):
        self.company.billing_sync_require_signed_terms = True
        order = self._milestone_order()
        with self.assertRaisesRegex(UserError, "requires signed terms"):
            order.action_confirm()
        self.assertEqual(order.state, "draft")
        self.assertFalse(order.billing_sync_schedule_line_ids)
        # a proposal without engagement terms is not concerned
        plain = make_proposal(self.env, self.partner, [(self.build, 1)])
        plain.action_confirm()
        self.assertFalse(plain.billing_sync_schedule_line_ids)
        # who accepted and when, recorded on the form, is enough
        order.write({"signed_by": "Jane Client", "signed_on": datetime(2028, 1, 9, 15, 0)})
        order.action_confirm()
        self.assertEqual(order.state, "sale")
        self.assertIn("Jane Client", order.billing_sync_signed_terms)

    def test_incomplete_terms_are_refused_with_the_reason(self):
        order = make_proposal(
            self.env, self.partner, [(self.retainer, 1, {"billing_sync_recurring": True})],
            billing_sync_engagement_type="retainer", billing_sync_start_date=date(2028, 1, 1),
        )
        with self.assertRaisesRegex(UserError, "end date or a number of periods"):
            order.action_confirm()

    def test_work_before_deposit_activity_after_n_days_once(self):
        self.company.billing_sync_deposit_reminder_days = 7
        with freeze_time("2028-01-10"):
            order = self._milestone_order(billing_sync_work_before_deposit=False)
            order.action_confirm()
        self.assertTrue(order.billing_sync_work_on_hold)
        self.assertEqual(order.billing_sync_deposit_state, "invoiced")
        summary = "Deposit unpaid: work may not start"
        SaleOrder = self.env["sale.order"]

        def reminders():
            return order.activity_ids.filtered(lambda a: a.summary == summary)

        with freeze_time("2028-01-16"):
            SaleOrder._cron_billing_sync_deposit_reminders()
        self.assertFalse(reminders())
        with freeze_time("2028-01-17"):
            SaleOrder._cron_billing_sync_deposit_reminders()
        self.assertEqual(len(reminders()), 1)
        self.assertEqual(reminders().user_id, self.salesperson)
        with freeze_time("2028-01-18"):
            SaleOrder._cron_billing_sync_deposit_reminders()
            reminders().action_done()
            SaleOrder._cron_billing_sync_deposit_reminders()
        self.assertFalse(reminders(), "one reminder per order, not one a day")

        deposit = order.billing_sync_schedule_line_ids.filtered(lambda ln: ln.kind == "deposit")
        register_payment(self.env, deposit.invoice_id)
        self.assertEqual(deposit.state, "paid")
        self.assertFalse(order.billing_sync_work_on_hold)

    def test_paid_deposit_gives_no_reminder(self):
        with freeze_time("2028-01-10"):
            order = self._milestone_order(billing_sync_work_before_deposit=False)
            order.action_confirm()
            register_payment(self.env, order.invoice_ids)
        with freeze_time("2028-02-10"):
            self.env["sale.order"]._cron_billing_sync_deposit_reminders()
        self.assertFalse(order.activity_ids)

    def test_cancel_cancels_planned_lines_and_keeps_invoiced_ones(self):
        with freeze_time("2028-01-01"):
            order = make_proposal(
                self.env, self.partner, [(self.retainer, 1, {"billing_sync_recurring": True})],
                billing_sync_engagement_type="retainer",
                billing_sync_start_date=date(2028, 1, 1), billing_sync_period_count=6,
            )
            order.action_confirm()
        with freeze_time("2028-02-05"):
            self.Line._cron_bill_due()
        invoices = order.billing_sync_schedule_line_ids.invoice_id
        self.assertEqual(len(invoices), 2)
        order.with_context(disable_cancel_warning=True).action_cancel()
        lines = order.billing_sync_schedule_line_ids
        self.assertEqual(sorted(lines.mapped("state")), ["cancelled"] * 4 + ["invoiced"] * 2)
        self.assertEqual(set(invoices.mapped("state")), {"posted"})
        self.assertTrue(order.billing_sync_cancel_warning)
        warning = order.message_ids.filtered(lambda m: "already issued and stay" in (m.body or ""))
        self.assertEqual(len(warning), 1)
        for invoice in invoices:
            self.assertIn(invoice.name, warning.body)
        with freeze_time("2028-12-01"):
            self.assertEqual(self.Line._cron_bill_due(), 0)

    def test_a_failing_line_is_reported_and_does_not_stop_the_others(self):
        with freeze_time("2028-01-01"):
            broken, sound = (
                make_proposal(
                    self.env, self.partner,
                    [(self.retainer, 1, {"billing_sync_recurring": True})],
                    billing_sync_engagement_type="retainer", user_id=self.salesperson.id,
                    billing_sync_start_date=date(2028, 1, 1), billing_sync_period_count=3,
                )
                for _i in range(2)
            )
            (broken | sound).action_confirm()
        # a line no longer marked recurring leaves the retainer nothing to bill
        broken.order_line.billing_sync_recurring = False
        with freeze_time("2028-02-01"):
            self.Line._cron_bill_due()
            self.Line._cron_bill_due()
        self.assertEqual(len(sound.billing_sync_schedule_line_ids.invoice_id), 2)
        failed = broken.billing_sync_schedule_line_ids.filtered("last_error")
        self.assertEqual(len(failed), 2)
        self.assertEqual(set(failed.mapped("state")), {"planned"})
        self.assertFalse(broken.billing_sync_schedule_line_ids.invoice_id)
        self.assertTrue(broken.message_ids.filtered(
            lambda m: "could not be billed" in (m.body or "")))
        activities = broken.activity_ids.filtered(lambda a: a.summary.startswith("Billing failed"))
        self.assertEqual(len(activities), 2, "one per failed line, not one per run")
        self.assertEqual(activities.user_id, self.salesperson)
        # fixed, the next run bills what was missed
        broken.order_line.billing_sync_recurring = True
        with freeze_time("2028-02-02"):
            self.Line._cron_bill_due()
        self.assertEqual(len(broken.billing_sync_schedule_line_ids.invoice_id), 2)
        self.assertFalse(broken.billing_sync_schedule_line_ids.filtered("last_error"))


@tagged("post_install", "-at_install")
class TestPartnerBilling(TransactionCase):
    def test_billing_email_falls_back_to_the_partner_email(self):
        company = self.env["res.partner"].create(
            {"name": "Acme", "is_company": True, "email": "info@acme.example.com"})
        self.assertEqual(company.billing_sync_invoice_email, "info@acme.example.com")
        self.assertEqual(company.billing_sync_billing_contact_id, company)
        contact = self.env["res.partner"].create({
            "name": "Acme AP", "parent_id": company.id, "type": "invoice",
            "email": "ap@acme.example.com"})
        company.invalidate_recordset()
        self.assertEqual(company.billing_sync_billing_contact_id, contact)
        self.assertEqual(company.billing_sync_invoice_email, "ap@acme.example.com")
        company.billing_sync_billing_email = "invoices@acme.example.com"
        self.assertEqual(company.billing_sync_invoice_email, "invoices@acme.example.com")


@tagged("post_install", "-at_install")
class TestScheduleAccess(EngagementCase):
    def test_access_follows_the_proposal(self):
        with freeze_time("2028-01-10"):
            mine = self._milestone_order()
            other_user = make_user(self.env, "eng_sales_other", SALESMAN)
            theirs = self._milestone_order(user_id=other_user.id)
            (mine | theirs).action_confirm()
        my_line = mine.billing_sync_schedule_line_ids[0]
        their_line = theirs.billing_sync_schedule_line_ids[0]

        # a salesperson reads and edits the lines of their own proposals only
        self.assertEqual(my_line.with_user(self.salesperson).name, my_line.name)
        my_line.with_user(self.salesperson).name = "Deposit (renamed)"
        with self.assertRaises(AccessError):
            their_line.with_user(self.salesperson).read(["name"])
        with self.assertRaises(AccessError):
            theirs.billing_sync_milestone_ids[0].with_user(self.salesperson).read(["name"])
        manager = make_user(self.env, "eng_sales_all", SALES_ALL)
        self.assertTrue(their_line.with_user(manager).read(["name"]))

        # an invoicing user reads them, but does not change them
        billing = make_user(self.env, "eng_billing", INVOICING)
        self.assertTrue(their_line.with_user(billing).read(["name", "state"]))
        with self.assertRaises(AccessError):
            their_line.with_user(billing).write({"name": "x"})

        # no sales or invoicing rights: nothing, not even as a Billing Sync user
        outsider = make_user(self.env, "eng_outsider", USER)
        for record in (my_line, mine.billing_sync_milestone_ids[0]):
            with self.assertRaises(AccessError):
                record.with_user(outsider).read(["name"])
        with self.assertRaises(AccessError):
            self.Line.with_user(outsider).search([])
