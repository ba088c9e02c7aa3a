"""Inbound sync of payments and voids (issue 18): what a bookkeeper records in the ledger
(a bank transfer, part of one, one payment for several invoices, an overpayment, a deletion,
a void) becomes the Odoo document, matched so that Odoo's amount due equals the ledger's,
through the webhook's hint or the pull alone, and nothing of it is sent back."""

import datetime

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import HttpCase, TransactionCase, tagged

from odoo.addons.billing_sync.services.webhooks import WebhookEvent

from .test_outbound import OutboundMixin
from .test_webhooks import KEY, _Capture

PROVIDERS = ("xero", "qbo")


class InboundPaymentsMixin(OutboundMixin):
    def sent_invoice(self, provider, name, quantity=2, connection=None, date=None):
        connection = connection or self.connected(provider)
        partner = self.partner(name)
        move = self.invoice(partner, quantity=quantity, post=not date)
        if date:
            move.invoice_date = date
            move.action_post()
        self.run_worker()
        link = self.env["billing_sync.link"]._of(connection, move)
        self.assertTrue(link, self.jobs(move).mapped("last_error"))
        if provider == "qbo":
            # QuickBooks puts a payment without a deposit account in Undeposited Funds
            connection.ledger_payment_journal_id = self.bank_journal
        return connection, move, link

    def ledger_pays(self, provider, link, amount=None):
        if provider == "xero":
            return self.xero.apply_payment(link.ledger_id, amount=amount)["PaymentID"]
        return self.qbo.apply_payment(link.ledger_id, amount=amount)["Id"]

    def ledger_deletes(self, provider, payment_id):
        if provider == "xero":
            self.xero.delete_payment(payment_id)
        else:
            self.qbo.delete_payment(payment_id)

    def announce(self, connection, kind, ledger_id, event_id, change="update"):
        """What the ledger's webhook says (the endpoint's own tests: test_webhooks)."""
        kept, _repeated, _unknown = self.env["billing_sync.inbox"]._receive(
            connection, [WebhookEvent(connection.org_id, kind, ledger_id, change, event_id)])
        self.assertEqual(kept, 1)

    def announce_payment(self, provider, connection, invoice_link, payment_id, event_id,
                         change="create"):
        """Xero tells of a payment through its invoice (it has no payment events);
        QuickBooks through the payment."""
        if provider == "xero":
            self.announce(connection, "invoice", invoice_link.ledger_id, event_id)
        else:
            self.announce(connection, "payment", payment_id, event_id, change)

    def apply(self):
        self.apply_inbox()

    def pull(self, connection):
        """A pull as the scheduled one runs, minutes after the calls made so far (a pull
        the shared budget holds back waits for the next run)."""
        self.env.cr.execute("DELETE FROM billing_sync_rate_call")
        self.env["billing_sync.inbox"]._pull(connection)

    def row(self, event_id):
        return self.env["billing_sync.inbox"].search([("event_id", "=", event_id)])

    def ledger_payments(self, connection, move):
        return move._get_reconciled_payments().filtered(
            lambda p: self.env["billing_sync.link"]._of(connection, p))

    def ledger_due(self, provider, link):
        if provider == "xero":
            return float(self.xero.ledger().invoices[link.ledger_id]["AmountDue"])
        return float(self.qbo.realms[self.qbo_realm()].get("Invoice", link.ledger_id)["Balance"])

    def assertSaid(self, record, text):
        bodies = record.message_ids.mapped("body")
        self.assertTrue(any(text in (body or "") for body in bodies), (text, bodies))

    def assertNothingSent(self, *records):
        for record in records:
            self.assertFalse(self.jobs(record).filtered(lambda j: j.state == "pending"),
                             f"{record.display_name}: nothing goes back to the ledger")



@tagged("post_install", "-at_install")
class TestInboundPayments(InboundPaymentsMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def test_a_bank_transfer_in_the_ledger_pays_the_odoo_invoice(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Payer {provider} Ltd")
                payment_id = self.ledger_pays(provider, link)
                self.announce_payment(provider, connection, link, payment_id, f"pay-{provider}")
                before = self.request_count(provider)
                self.apply()
                self.assertEqual(self.row(f"pay-{provider}").state, "done",
                                 self.row(f"pay-{provider}").last_error)
                # Xero: the invoice, then the payment it lists; QuickBooks: the payment
                self.assertEqual(self.request_count(provider) - before,
                                 2 if provider == "xero" else 1, "reads only")
                self.assertEqual(move.payment_state, "in_payment" if move._get_reconciled_payments()
                                 .state == "in_process" else "paid")
                payment = self.ledger_payments(connection, move)
                self.assertEqual(len(payment), 1)
                self.assertEqual(payment.journal_id, self.bank_journal)
                self.assertAlmostEqual(payment.amount, move.amount_total, places=2)
                self.assertEqual(payment.partner_id, move.partner_id)
                self.assertEqual(move.amount_residual, 0)
                self.assertEqual(payment.billing_sync_status, "synced")
                self.assertNothingSent(payment, move)
                self.assertSaid(move, "Paid in")
                # the same payment announced again (a repeat, a later invoice event) books
                # nothing twice
                self.announce_payment(provider, connection, link, payment_id,
                                      f"pay-{provider}-again", change="update")
                self.apply()
                self.assertEqual(self.ledger_payments(connection, move), payment)

    def test_part_payments_leave_the_same_amount_due_on_both_sides(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Partial {provider}")
                first = self.ledger_pays(provider, link, amount=300)
                self.announce_payment(provider, connection, link, first, f"part1-{provider}")
                self.apply()
                self.assertEqual(move.payment_state, "partial")
                self.assertAlmostEqual(move.amount_residual, move.amount_total - 300, places=2)
                second = self.ledger_pays(provider, link, amount=200.55)
                self.announce_payment(provider, connection, link, second, f"part2-{provider}")
                self.apply()
                self.assertEqual(len(self.ledger_payments(connection, move)), 2)
                self.assertAlmostEqual(move.amount_residual, self.ledger_due(provider, link),
                                       places=2)
                self.assertAlmostEqual(move.amount_residual, move.amount_total - 500.55,
                                       places=2)
                if provider == "xero":
                    # the invoice's link carries the ledger's amount due, equal to Odoo's
                    self.assertEqual(link.sync_state, "synced", link.mismatch)
                    self.assertAlmostEqual(link.ledger_amount_due, move.amount_residual, 2)

    def test_a_payment_deleted_in_the_ledger_is_cancelled_in_odoo(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Deleted {provider}")
                payment_id = self.ledger_pays(provider, link)
                self.announce_payment(provider, connection, link, payment_id, f"d1-{provider}")
                self.apply()
                payment = self.ledger_payments(connection, move)
                self.assertTrue(payment)
                self.ledger_deletes(provider, payment_id)
                self.announce_payment(provider, connection, link, payment_id, f"d2-{provider}",
                                      change="delete")
                self.apply()
                self.assertEqual(self.row(f"d2-{provider}").state, "done",
                                 self.row(f"d2-{provider}").last_error)
                self.assertEqual(payment.state, "canceled")
                self.assertEqual(move.payment_state, "not_paid")
                self.assertEqual(move.amount_residual, move.amount_total)
                self.assertFalse(self.env["billing_sync.link"]._of(connection, payment),
                                 "the link is history")
                self.assertFalse(self.jobs(payment).filtered(
                    lambda j: j.state in ("pending", "blocked")),
                    "nothing is removed from the ledger again")

    def test_odoo_payments_coming_back_from_the_ledger_change_nothing(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Echo {provider}")
                payment = self.env["account.payment.register"].with_context(
                    active_model="account.move", active_ids=move.ids).create({
                        "amount": 400, "journal_id": self.bank_journal.id})._create_payments()
                self.run_worker()
                paid = self.env["billing_sync.link"]._of(connection, payment)
                self.assertTrue(paid, self.jobs(payment).mapped("last_error"))
                self.announce_payment(provider, connection, link, paid.ledger_id,
                                      f"echo-{provider}")
                before = self.request_count(provider)
                self.apply()
                # one read (Xero: the invoice, whose payment Odoo holds; QuickBooks: the
                # payment), nothing written
                self.assertEqual(self.request_count(provider) - before, 1)
                self.assertEqual(self.row(f"echo-{provider}").state, "done")
                self.assertEqual(move._get_reconciled_payments(), payment, "nothing twice")
                self.assertEqual(payment.state, "in_process")
                self.assertAlmostEqual(move.amount_residual, move.amount_total - 400, places=2)

    def test_a_payment_into_an_unmapped_account_waits_with_what_to_do(self):
        connection, move, link = self.sent_invoice("qbo", "Unmapped deposit")
        connection.ledger_payment_journal_id = False
        payment_id = self.ledger_pays("qbo", link)
        self.announce(connection, "payment", payment_id, "unmapped")
        self.apply()
        row = self.row("unmapped")
        self.assertEqual(row.state, "pending", "retried later, not lost")
        self.assertIn("no Odoo payment journal is mapped", row.last_error)
        self.assertIn("Undeposited Funds", row.last_error)
        self.assertEqual(row.error_class, "mapping")
        self.assertSaid(connection, "no Odoo payment journal")
        self.assertEqual(move.payment_state, "not_paid")
        # the administrator sets the journal; the retry books it
        connection.ledger_payment_journal_id = self.bank_journal
        row.sudo().write({"next_attempt_at": fields.Datetime.now()})
        self.apply()
        self.assertEqual(row.state, "done", row.last_error)
        self.assertFalse(row.error_class)
        self.assertEqual(move.amount_residual, 0)

    def test_another_companys_journal_or_account_is_refused(self):
        """An Administrator cannot send the ledger's payments or write-offs of one company
        into another company's books."""
        connection = self.connected("xero")
        other = self.env["res.company"].create({"name": "Inbound Other Firm"})
        journal = self.env["account.journal"].create({
            "name": "Other bank", "code": "OBNK", "type": "bank", "company_id": other.id})
        account = self.env["account.account"].create({
            "name": "Other write-offs", "code": "699999", "account_type": "expense",
            "company_ids": [fields.Command.set(other.ids)]})
        with self.assertRaises(UserError):
            connection.ledger_payment_journal_id = journal
        with self.assertRaises(UserError):
            connection.ledger_other_account_id = account
        connection.ledger_payment_journal_id = self.bank_journal  # its own: taken

    def test_a_void_in_the_ledger_cancels_the_odoo_invoice(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Voided {provider}")
                if provider == "xero":
                    self.xero.void_invoice(link.ledger_id)
                else:
                    self.qbo.void_invoice(link.ledger_id)
                self.announce(connection, "invoice", link.ledger_id, f"void-{provider}",
                              change="void")
                self.apply()
                self.assertEqual(self.row(f"void-{provider}").state, "done",
                                 self.row(f"void-{provider}").last_error)
                self.assertEqual(move.state, "cancel")
                self.assertSaid(move, "Voided in")
                self.assertNothingSent(move)
                self.assertFalse(self.jobs(move).filtered(lambda j: j.kind == "void_invoice"),
                                 "the void is not sent back")

    def test_a_void_in_a_locked_period_reverses_the_invoice(self):
        today = fields.Date.today()
        connection, move, link = self.sent_invoice(
            "xero", "Locked void", date=today - datetime.timedelta(days=40))
        self.env.company.sudo().fiscalyear_lock_date = today - datetime.timedelta(days=10)
        self.xero.void_invoice(link.ledger_id)
        self.announce(connection, "invoice", link.ledger_id, "void-locked", change="void")
        self.apply()
        self.assertEqual(self.row("void-locked").state, "done", self.row("void-locked").last_error)
        self.assertEqual(move.state, "posted")
        self.assertEqual(move.payment_state, "reversed")
        self.assertSaid(move, "reversed by")
        credit = move.reversal_move_ids
        self.assertEqual(credit.state, "posted")
        self.assertGreater(credit.date, self.env.company.fiscalyear_lock_date)
        self.assertNothingSent(credit)

    def test_one_quickbooks_payment_for_two_invoices_and_an_overpayment(self):
        connection, first, link1 = self.sent_invoice("qbo", "Two invoices Ltd")
        second = self.invoice(first.partner_id, quantity=1)
        self.run_worker()
        link2 = self.env["billing_sync.link"]._of(connection, second)
        customer = self.env["billing_sync.link"]._of(connection, first.partner_id)
        answer = self.qbo.receive_payment(
            customer.ledger_id, lines={link1.ledger_id: first.amount_total,
                                       link2.ledger_id: second.amount_total},
            unapplied=50)
        self.announce(connection, "payment", answer["Id"], "two-invoices", change="create")
        self.apply()
        self.assertEqual(self.row("two-invoices").state, "done",
                         self.row("two-invoices").last_error)
        payment = first._get_reconciled_payments()
        self.assertEqual(payment, second._get_reconciled_payments(), "one Odoo payment")
        self.assertAlmostEqual(payment.amount, first.amount_total + second.amount_total + 50, 2)
        self.assertEqual((first.amount_residual, second.amount_residual), (0, 0))
        # the 50 left over is the client's credit, outstanding on its account
        credit = self.env["account.move.line"].search([
            ("move_id", "=", payment.move_id.id), ("reconciled", "=", False),
            ("account_id.account_type", "=", "asset_receivable")])
        self.assertAlmostEqual(-credit.amount_residual, 50, places=2)

    def test_a_xero_overpayment_pays_the_invoice_and_leaves_credit(self):
        """Xero keeps what a client paid over an invoice as an overpayment allocated to it:
        one Odoo payment of the whole, the rest the client's outstanding credit; one not
        allocated at all, found by the pull, is all credit."""
        connection, move, link = self.sent_invoice("xero", "Overpaid Ltd")
        connection.ledger_payment_journal_id = self.bank_journal
        customer = self.env["billing_sync.link"]._of(connection, move.partner_id)
        self.xero.receive_overpayment(customer.ledger_id, move.amount_total + 75,
                                      allocations={link.ledger_id: move.amount_total})
        self.announce(connection, "invoice", link.ledger_id, "overpaid")
        self.apply()
        self.assertEqual(self.row("overpaid").state, "done", self.row("overpaid").last_error)
        payment = move._get_reconciled_payments()
        self.assertAlmostEqual(payment.amount, move.amount_total + 75, places=2)
        self.assertEqual(move.amount_residual, 0)
        self.assertAlmostEqual(self.ledger_due("xero", link), 0, places=2)

        def credit_of(partner):
            return -sum(self.env["account.move.line"].search([
                ("partner_id", "=", partner.id), ("reconciled", "=", False),
                ("parent_state", "=", "posted"),
                ("account_id.account_type", "=", "asset_receivable")]).mapped(
                    "amount_residual"))

        self.assertAlmostEqual(credit_of(move.partner_id), 75, places=2)
        self.pull(connection)  # up to now: nothing booked twice
        self.xero.receive_overpayment(customer.ledger_id, 40)
        self.pull(connection)
        self.assertAlmostEqual(credit_of(move.partner_id), 115, places=2)
        self.assertEqual(len(self.env["account.payment"].search(
            [("partner_id", "=", move.partner_id.id)])), 2)

    def test_a_part_split_one_payment_cannot_match_is_refused_visibly(self):
        connection, first, link1 = self.sent_invoice("qbo", "Split Ltd")
        second = self.invoice(first.partner_id, quantity=1)
        self.run_worker()
        link2 = self.env["billing_sync.link"]._of(connection, second)
        customer = self.env["billing_sync.link"]._of(connection, first.partner_id)
        answer = self.qbo.receive_payment(
            customer.ledger_id, lines={link1.ledger_id: 100, link2.ledger_id: 100})
        self.announce(connection, "payment", answer["Id"], "split", change="create")
        self.apply()
        row = self.row("split")
        self.assertIn("pays part of several invoices", row.last_error)
        self.assertEqual(row.error_class, "validation")
        self.assertEqual((first.payment_state, second.payment_state), ("not_paid", "not_paid"),
                         "nothing half booked")
        self.assertFalse(self.env["account.payment"].search(
            [("partner_id", "=", first.partner_id.id)]))

    def test_a_lost_webhook_is_caught_by_the_pull(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Pulled {provider}")
                self.pull(connection)  # up to now
                payment_id = self.ledger_pays(provider, link, amount=250)
                other, voided_link = self.sent_invoice(provider, f"Pulled void {provider}",
                                                       connection=connection)[1:]
                if provider == "xero":
                    self.xero.void_invoice(voided_link.ledger_id)
                else:
                    self.qbo.void_invoice(voided_link.ledger_id)
                self.pull(connection)
                self.assertAlmostEqual(move.amount_residual, move.amount_total - 250, 2)
                self.assertEqual(other.state, "cancel")
                rows = self.env["billing_sync.inbox"].search(
                    [("connection_id", "=", connection.id), ("source", "=", "pull"),
                     ("kind", "=", "payment")])
                self.assertIn(payment_id, rows.mapped("ledger_id"))
                # deleted in the ledger, and the webhook lost too
                self.ledger_deletes(provider, payment_id)
                self.pull(connection)
                self.assertEqual(move.amount_residual, move.amount_total)
                # a pull again finds nothing new and books nothing twice
                self.pull(connection)
                self.assertFalse(move._get_reconciled_payments())
                # a credit note, its webhooks lost as well
                getattr(self, provider).issue_credit_note(link.ledger_id)
                self.pull(connection)
                credit = self.env["account.move"].search([
                    ("move_type", "=", "out_refund"), ("partner_id", "=", move.partner_id.id)])
                self.assertEqual(credit.state, "posted")
                self.assertAlmostEqual(credit.amount_total, move.amount_total, places=2)
                self.assertEqual(move.amount_residual, 0)
                self.assertAlmostEqual(self.ledger_due(provider, link), 0, places=2)

    def ledger_credits(self, provider, connection, link, write_off=False):
        """The bookkeeper credits the whole invoice (or writes it off), and the ledger
        tells: Xero a credit-note event; QuickBooks the memo's event, then the event of
        the payment of nothing that applies it."""
        app = getattr(self, provider)
        answer = app.write_off(link.ledger_id) if write_off else app.issue_credit_note(
            link.ledger_id)
        tag = f"{provider}-{link.ledger_id}-{write_off}"
        if provider == "xero":
            note = answer["credit_note"] if write_off else answer
            self.announce(connection, "credit_note", note["CreditNoteID"], f"cn-{tag}",
                          change="create")
            return note["CreditNoteID"]
        self.announce(connection, "credit_note", answer["CreditMemo"]["Id"], f"cn-{tag}",
                      change="create")
        self.announce(connection, "payment", answer["Payment"]["Id"], f"cn-pay-{tag}",
                      change="create")
        return answer["CreditMemo"]["Id"]

    def test_a_credit_note_made_in_the_ledger_credits_the_odoo_invoice(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Credited {provider}")
                credit_id = self.ledger_credits(provider, connection, link)
                before = self.request_count(provider)
                self.apply()
                rows = self.env["billing_sync.inbox"].search(
                    [("connection_id", "=", connection.id)])
                self.assertEqual(set(rows.mapped("state")), {"done"},
                                 rows.read(["kind", "state", "last_error"]))
                self.assertLessEqual(self.request_count(provider) - before, 2, "reads only")
                credit = self.env["account.move"].browse(self.env["billing_sync.link"].search(
                    [("connection_id", "=", connection.id), ("ledger_id", "=", credit_id),
                     ("ledger_type", "=", "credit_note")]).res_id)
                self.assertEqual((credit.move_type, credit.state), ("out_refund", "posted"))
                self.assertEqual(credit.partner_id, move.partner_id)
                self.assertAlmostEqual(credit.amount_total, move.amount_total, places=2)
                self.assertAlmostEqual(credit.amount_tax, move.amount_tax, places=2)
                self.assertEqual(credit.invoice_line_ids.tax_ids, self.tax,
                                 "the ledger's tax, mapped back")
                self.assertEqual(move.amount_residual, 0)
                self.assertIn(move.payment_state, ("paid", "reversed"))
                self.assertAlmostEqual(self.ledger_due(provider, link), 0, places=2)
                self.assertNothingSent(credit, move)
                # told again: nothing twice
                self.announce(connection, "credit_note", credit_id, f"cn-again-{provider}")
                self.apply()
                self.assertEqual(self.env["account.move"].search_count(
                    [("move_type", "=", "out_refund"), ("partner_id", "=", move.partner_id.id)]),
                    1)

    def test_a_write_off_in_the_ledger_needs_the_account_for_other_lines(self):
        other = self.env["account.account"].search([
            ("account_type", "=", "expense"), ("company_ids", "in", self.env.company.id)],
            limit=1)
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Bad debt {provider}")
                self.ledger_credits(provider, connection, link, write_off=True)
                self.apply()
                row = self.env["billing_sync.inbox"].search(
                    [("connection_id", "=", connection.id), ("kind", "=", "credit_note")])
                self.assertEqual(row.state, "pending", "retried, not lost")
                self.assertIn("account for other ledger lines", row.last_error)
                self.assertEqual(row.error_class, "mapping")
                self.assertSaid(connection, "account for other ledger lines")
                self.assertEqual(move.amount_residual, move.amount_total, "nothing half done")
                connection.ledger_other_account_id = other
                self.env["billing_sync.inbox"].search(
                    [("connection_id", "=", connection.id)]).sudo().write(
                        {"next_attempt_at": fields.Datetime.now()})
                self.apply()
                rows = self.env["billing_sync.inbox"].search(
                    [("connection_id", "=", connection.id)])
                self.assertEqual(set(rows.mapped("state")), {"done"},
                                 rows.read(["kind", "state", "last_error"]))
                credit = move.reversal_move_ids | self.env["account.move"].search(
                    [("move_type", "=", "out_refund"), ("partner_id", "=", move.partner_id.id)])
                self.assertEqual(credit.invoice_line_ids.account_id, other)
                self.assertEqual(move.amount_residual, 0)
                self.assertAlmostEqual(self.ledger_due(provider, link), 0, places=2)

    def test_a_credit_note_voided_in_the_ledger_is_cancelled_in_odoo(self):
        connection, move, link = self.sent_invoice("xero", "Void credit Ltd")
        answer = self.xero.issue_credit_note(link.ledger_id, allocate=False)
        self.announce(connection, "credit_note", answer["CreditNoteID"], "cn-open",
                      change="create")
        self.apply()
        credit = self.env["account.move"].search(
            [("move_type", "=", "out_refund"), ("partner_id", "=", move.partner_id.id)])
        self.assertEqual(credit.state, "posted")
        self.assertEqual(move.amount_residual, move.amount_total, "not allocated: open credit")
        self.xero.void_credit_note(answer["CreditNoteID"])
        self.announce(connection, "credit_note", answer["CreditNoteID"], "cn-void",
                      change="update")
        self.apply()
        self.assertEqual(self.row("cn-void").state, "done", self.row("cn-void").last_error)
        self.assertEqual(credit.state, "cancel")


@tagged("post_install", "-at_install")
class TestInboundPaymentsByWebhook(InboundPaymentsMixin, HttpCase):
    """The whole way, both ledgers: the bookkeeper's payment and its deletion, each told
    by the sandbox's own signed webhook (Xero: an invoice event; QuickBooks: a payment
    event), through the endpoint and the inbox to the Odoo invoice. The deliveries are
    caught on loopback and handed to Odoo's endpoint as they came (test_webhooks says
    why)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound(test_mode=False)

    def relay(self, provider, capture, connection):
        app = getattr(self, provider)
        self.assertTrue(app.webhook.flush(10))
        header = "x-xero-signature" if provider == "xero" else "intuit-signature"
        caught = [(body, headers) for body, headers in capture.take()
                  if header in {k.lower() for k in headers}]
        self.assertTrue(caught, "the ledger sent its webhook")
        url = (f"{self.base_url()}/billing_sync/webhook/{provider}/{self.env.cr.dbname}")
        for body, headers in caught:
            answer = self.opener.post(url, data=body, headers=headers, timeout=10)
            self.assertEqual((answer.status_code, answer.content), (200, b""))
        self.apply_inbox()
        rows = self.env["billing_sync.inbox"].search([("connection_id", "=", connection.id)])
        self.assertEqual(set(rows.mapped("state")), {"done"},
                         rows.read(["kind", "ledger_id", "state", "last_error"]))

    def test_a_payment_and_its_deletion_arrive_by_webhook(self):
        capture = _Capture()
        self.addCleanup(capture.stop)
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Hooked {provider}")
                connection.webhook_key = KEY
                options = {"webhook_url": capture.url, "webhook_retry_delays": []}
                options.update({"webhook_key": KEY} if provider == "xero" else
                               {"verifier_token": KEY, "webhook_batch_seconds": 0})
                getattr(self, provider).configure(**options)
                payment_id = self.ledger_pays(provider, link, amount=123.45)
                self.relay(provider, capture, connection)
                self.assertAlmostEqual(move.amount_residual, move.amount_total - 123.45, 2)
                self.assertAlmostEqual(move.amount_residual, self.ledger_due(provider, link), 2)
                payment = self.ledger_payments(connection, move)
                self.assertEqual(self.env["billing_sync.link"]._of(connection, payment).ledger_id,
                                 payment_id)
                self.ledger_deletes(provider, payment_id)
                self.relay(provider, capture, connection)
                self.assertEqual(payment.state, "canceled")
                self.assertEqual(move.amount_residual, move.amount_total)
                self.assertNothingSent(payment, move)
