"""Payments, credit-note allocations and currencies book the same amounts on both sides
(issue 15): whatever Odoo applied, the ledger applies, and its amount due equals Odoo's."""

from odoo import fields
from odoo.tests import Form, TransactionCase, tagged

from .test_outbound import OutboundMixin

PROVIDERS = ("xero", "qbo")


@tagged("post_install", "-at_install")
class TestOutboundPayments(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()
        cls.usd = cls.env.company.currency_id
        cls.eur = cls.env.ref("base.EUR")

    # ------------------------------------------------------------------ helpers
    def pay(self, moves, amount=None, currency=None):
        """One Odoo payment for ``moves`` (one payment for all, as a bookkeeper does)."""
        values = {"journal_id": self.bank_journal.id, "group_payment": True,
                  "payment_difference_handling": "open"}
        if amount is not None:
            values["amount"] = amount
        if currency is not None:
            values["currency_id"] = currency.id
        return self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=moves.ids).create(values)._create_payments()

    def ledger_invoice(self, provider, connection, move):
        link = self.env["billing_sync.link"]._of(connection, move)
        self.assertTrue(link, f"{move.name} is not linked")
        if provider == "xero":
            return self.xero.ledger().invoices[link.ledger_id]
        return self.qbo.realms[self.qbo_realm()].get("Invoice", link.ledger_id)

    def ledger_due(self, provider, connection, move):
        invoice = self.ledger_invoice(provider, connection, move)
        return float(invoice["AmountDue"] if provider == "xero" else invoice["Balance"])

    def assertSameDue(self, provider, connection, *moves):
        for move in moves:
            self.assertAlmostEqual(self.ledger_due(provider, connection, move),
                                   move.amount_residual, places=2,
                                   msg=f"{provider}: {move.name} amount due")

    def assertDone(self, record):
        job = self.jobs(record)
        self.assertEqual(set(job.mapped("state")), {"done"}, job.mapped("last_error"))

    def credit_note(self, move):
        reversal = self.env["account.move.reversal"].with_context(
            active_model="account.move", active_ids=move.ids).create({
                "journal_id": move.journal_id.id, "reason": "scope cut"})
        credit = self.env["account.move"].browse(reversal.refund_moves()["res_id"])
        credit.action_post()
        # Odoo applies the credit note to its invoice (what is left open on it)
        lines = (move.line_ids | credit.line_ids).filtered(
            lambda ln: ln.account_id.account_type == "asset_receivable" and not ln.reconciled)
        lines.reconcile()
        return credit

    def enable_euro(self, rate=0.8):
        """EUR in Odoo at ``rate`` EUR per USD (1 EUR = 1.25 USD)."""
        self.eur.active = True
        self.env["res.currency.rate"].create({
            "currency_id": self.eur.id, "rate": rate, "company_id": self.env.company.id,
            "name": fields.Date.today().replace(month=1, day=1)})

    def euro_invoice(self, partner, quantity=2):
        form = Form(self.env["account.move"].with_context(default_move_type="out_invoice"))
        form.partner_id = partner
        form.currency_id = self.eur
        form.invoice_date = fields.Date.today()
        with form.invoice_line_ids.new() as line:
            line.product_id = self.product
            line.quantity = quantity
            line.price_unit = 1000
        move = form.save()
        move.action_post()
        return move

    # ------------------------------------------------------------------ payments
    def test_payments_one_payment_for_two_invoices(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                partner = self.partner(f"Twofold {provider}")
                first, second = self.invoice(partner), self.invoice(partner, quantity=1)
                self.run_worker()
                payment = self.pay(first | second)
                self.run_worker()
                self.assertDone(payment)
                self.assertEqual((first.amount_residual, second.amount_residual), (0, 0))
                self.assertSameDue(provider, connection, first, second)
                link = self.env["billing_sync.link"]._of(connection, payment)
                if provider == "xero":
                    # one Xero payment per invoice, all kept on the link
                    parts = link._parts()
                    self.assertEqual(len(parts), 2)
                    self.assertEqual(link.ledger_id, list(parts.values())[0])
                    self.assertEqual(len(self.xero.ledger().payments), 2)
                else:
                    [stored] = self.qbo.realms[self.qbo_realm()].all("Payment")
                    self.assertEqual(len(stored["Line"]), 2)
                    self.assertAlmostEqual(stored["TotalAmt"], payment.amount, places=2)

    def test_payments_partial_across_two_invoices(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                partner = self.partner(f"Halfway {provider}")
                first, second = self.invoice(partner), self.invoice(partner)
                self.run_worker()
                payment = self.pay(first | second, amount=first.amount_total + 100)
                self.run_worker()
                self.assertDone(payment)
                self.assertTrue(second.amount_residual > 0)
                self.assertSameDue(provider, connection, first, second)

    def test_payments_overpayment_sends_what_is_applied_and_says_so(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                move = self.invoice(self.partner(f"Generous {provider}"))
                self.run_worker()
                payment = self.pay(move, amount=move.amount_total + 250)
                self.run_worker()
                self.assertDone(payment)
                self.assertSameDue(provider, connection, move)
                self.assertIn("250.00", payment.message_ids[0].body)
                self.assertIn("outstanding credit", payment.message_ids[0].body)

    # ------------------------------------------------------------------ credit notes
    def test_payments_credit_note_larger_than_the_residual_is_capped(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                move = self.invoice(self.partner(f"Refunded {provider}"))
                self.run_worker()
                self.pay(move, amount=500)
                self.run_worker()
                credit = self.credit_note(move)
                self.assertEqual(move.amount_residual, 0)
                self.assertTrue(credit.amount_residual > 0, "more credit than was open")
                self.run_worker()
                self.assertDone(credit)
                self.assertSameDue(provider, connection, move)

    def test_payments_refused_allocation_blocks_until_fixed(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                move = self.invoice(self.partner(f"Contested {provider}"))
                self.run_worker()
                # a bookkeeper records a payment in the ledger that Odoo does not know
                invoice_id = self.env["billing_sync.link"]._of(connection, move).ledger_id
                paid = getattr(self, provider).apply_payment(invoice_id)
                credit = self.credit_note(move)
                self.run_worker()
                job = self.jobs(credit)
                self.assertEqual(job.state, "blocked")
                self.assertIn("0.00", job.last_error)
                self.assertIn(f"{move.amount_total:.2f}", job.last_error)
                link = self.env["billing_sync.link"]._of(connection, credit)
                self.assertTrue(link.ledger_id, "the credit note is in the ledger, linked")
                self.assertEqual(credit.billing_sync_status, "error")
                # the cause is fixed in the ledger, then Retry sends only the allocation
                getattr(self, provider).delete_payment(
                    paid["PaymentID"] if provider == "xero" else paid["Id"])
                job.action_retry()
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
                self.assertEqual(self.env["billing_sync.link"]._of(connection, credit).ledger_id,
                                 link.ledger_id)
                self.assertSameDue(provider, connection, move)
                notes = (self.xero.ledger().credit_notes if provider == "xero" else
                         self.qbo.realms[self.qbo_realm()].entities["CreditMemo"])
                self.assertEqual(len(notes), 1, "the credit note was not sent twice")

    # ------------------------------------------------------------------ currencies
    def test_payments_euro_invoice_and_payments_with_company_in_usd(self):
        self.assertEqual(self.usd.name, "USD")
        self.enable_euro(rate=0.8)
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                if provider == "xero":
                    self.xero.configure(currencies=["EUR"])
                else:
                    self.qbo.configure(multicurrency=True, currencies=["EUR"])
                connection.action_import_reference_data()
                move = self.euro_invoice(self.partner(f"Eurozone {provider}"))
                self.run_worker()
                self.assertDone(move)
                invoice = self.ledger_invoice(provider, connection, move)
                self.assertEqual(invoice.get("CurrencyCode") or invoice["CurrencyRef"]["value"],
                                 "EUR")
                if provider == "xero":
                    self.assertAlmostEqual(invoice["CurrencyRate"], 0.8, places=6)
                else:
                    self.assertAlmostEqual(float(invoice["ExchangeRate"]), 1.25, places=6)
                    self.assertAlmostEqual(invoice["HomeTotalAmt"],
                                           abs(move.amount_total_signed), places=2)
                # a payment in EUR, then one in USD: Odoo applies EUR to the invoice
                in_euro = self.pay(move, amount=1000)
                in_dollars = self.pay(move, amount=500, currency=self.usd)
                self.run_worker()
                self.assertDone(in_euro | in_dollars)
                self.assertAlmostEqual(move.amount_residual, move.amount_total - 1000 - 400,
                                       places=2)
                self.assertSameDue(provider, connection, move)

    def test_payments_currency_not_enabled_in_the_ledger_is_held_before_sending(self):
        self.enable_euro()
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                partner = self.partner(f"Continental {provider}")
                self.invoice(partner)
                self.run_worker()  # the customer exists in the ledger now
                move = self.euro_invoice(partner)
                before = getattr(self, provider).counters.snapshot()["by_endpoint"]
                self.run_worker()
                after = getattr(self, provider).counters.snapshot()["by_endpoint"]
                job = self.jobs(move)
                self.assertEqual(job.state, "blocked")
                for text in ("EUR", connection.org_name, "USD"):
                    self.assertIn(text, job.last_error)
                self.assertIn("EUR", move.billing_sync_error)
                writes = {label: n for label, n in _diff(before, after).items()
                          if label.split(" ", 1)[0] in ("PUT", "POST")}
                self.assertEqual(writes, {}, "nothing was sent to the ledger")


def _diff(before, after):
    """{endpoint label: requests} made between two counter snapshots."""
    out = {}
    for label, by_status in after.items():
        n = sum(by_status.values()) - sum((before.get(label) or {}).values())
        if n:
            out[label] = n
    return out
