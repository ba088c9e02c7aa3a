"""Edits after sync (issue 15): an invoice or payment the ledger holds that Odoo takes back
(reset to draft, posted again with another total, cancelled, deleted) follows the company's
policy on both ledgers: void or credit then replace, or hold for a person."""

from odoo.exceptions import UserError
from odoo.tests import Form, TransactionCase, tagged

from odoo.addons.billing_sync.services.ledger.base import PushItem

from .test_outbound import OutboundMixin

PROVIDERS = ("xero", "qbo")


@tagged("post_install", "-at_install")
class TestOutboundEdits(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    # ------------------------------------------------------------------ helpers
    def synced_invoice(self, provider, name, quantity=2):
        connection = self.connected(provider)
        self.env.company.billing_sync_edit_policy = "credit_replace"
        move = self.invoice(self.partner(name), quantity=quantity)
        self.run_worker()
        link = self.env["billing_sync.link"]._of(connection, move)
        self.assertTrue(link, self.jobs(move).mapped("last_error"))
        return connection, move, link.ledger_id

    def ledger_invoice(self, provider, ledger_id):
        if provider == "xero":
            return self.xero.ledger().invoices[ledger_id]
        return self.qbo.realms[self.qbo_realm()].get("Invoice", ledger_id)

    def is_void(self, provider, invoice):
        if provider == "xero":
            return invoice["Status"] == "VOIDED"
        return bool(invoice.get("_voided"))

    def total(self, invoice):
        return float(invoice.get("Total", invoice.get("TotalAmt")))

    def due(self, invoice):
        return float(invoice.get("AmountDue", invoice.get("Balance")))

    def number(self, invoice):
        return invoice.get("InvoiceNumber", invoice.get("DocNumber"))

    def open_invoices(self, provider):
        """Ledger invoices still open (not void, something due)."""
        return [i for i in self.ledger_invoices(provider)
                if not self.is_void(provider, i) and self.due(i) > 0.005]

    def live_payments(self, provider):
        if provider == "xero":
            return [p for p in self.xero.ledger().payments.values()
                    if p["Status"] != "DELETED"]
        return [p for p in self.qbo.realms[self.qbo_realm()].all("Payment")
                if not p.get("_voided") and float(p.get("TotalAmt") or 0) > 0]

    def pay(self, move, amount):
        register = self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=move.ids).create({
                "amount": amount, "journal_id": self.bank_journal.id})
        return register._create_payments()

    def set_quantity(self, move, quantity):
        with Form(move) as form, form.invoice_line_ids.edit(0) as line:
            line.quantity = quantity

    def void_job(self, move):
        return self.jobs(move).filtered(lambda j: j.kind == "void_invoice")

    # ------------------------------------------------------------------ credit_replace
    def test_reset_voids_then_the_new_total_goes_as_a_new_document(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, old_id = self.synced_invoice(provider, f"Reset {provider}")
                move.button_draft()
                job = self.void_job(move)
                self.assertEqual((job.state, job.ledger_id), ("pending", old_id))
                self.assertFalse(self.env["billing_sync.link"]._of(connection, move),
                                 "the old link is not reused for an update")
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
                self.assertTrue(self.is_void(provider, self.ledger_invoice(provider, old_id)))
                self.assertEqual(self.open_invoices(provider), [])
                # posted again with a higher total: a new ledger invoice, Odoo's number
                self.set_quantity(move, 5)
                move.action_post()
                self.run_worker()
                link = self.env["billing_sync.link"]._of(connection, move)
                self.assertTrue(link, self.jobs(move).mapped("last_error"))
                self.assertNotEqual(link.ledger_id, old_id)
                new = self.ledger_invoice(provider, link.ledger_id)
                self.assertAlmostEqual(self.total(new), move.amount_total, places=2)
                self.assertEqual(self.number(new), move.name)
                self.assertTrue(self.is_void(provider, self.ledger_invoice(provider, old_id)))
                self.assertEqual([self.number(i) for i in self.open_invoices(provider)],
                                 [move.name])
                history = self.env["billing_sync.link"].with_context(active_test=False).search(
                    [("connection_id", "=", connection.id), ("res_model", "=", move._name),
                     ("res_id", "=", move.id)])
                self.assertEqual(set(history.mapped("ledger_id")), {old_id, link.ledger_id})
                self.assertIn("voided", " ".join(move.message_ids.mapped("body")))

    def test_reset_of_a_paid_invoice_removes_the_payment_then_voids(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, old_id = self.synced_invoice(provider, f"Paid {provider}")
                payment = self.pay(move, 500)
                self.run_worker()
                self.assertEqual(self.jobs(payment).state, "done", self.jobs(payment).last_error)
                self.assertEqual(len(self.live_payments(provider)), 1)
                move.button_draft()
                job = self.void_job(move)
                self.assertTrue(job.ledger_payment_ids, "the unmatched payment goes with it")
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
                self.assertEqual(self.live_payments(provider), [], "payment removed first")
                self.assertTrue(self.is_void(provider, self.ledger_invoice(provider, old_id)),
                                "then voided, not credited")
                self.assertEqual(self.open_invoices(provider), [])
                self.assertFalse(self.env["billing_sync.link"]._of(connection, payment))

    def test_payment_reset_or_unmatched_in_odoo_is_removed_in_the_ledger(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, old_id = self.synced_invoice(provider, f"Undo {provider}")
                reset, unmatched = self.pay(move, 300), self.pay(move, 200)
                self.run_worker()
                self.assertEqual(len(self.live_payments(provider)), 2)
                reset.action_draft()
                receivable = move.line_ids.filtered(
                    lambda line: line.account_id.account_type == "asset_receivable")
                partial = receivable.matched_credit_ids.filtered(
                    lambda p, pay=unmatched: p.credit_move_id.move_id.origin_payment_id == pay)
                move.js_remove_outstanding_partial(partial.id)
                jobs = self.jobs(reset | unmatched).filtered(
                    lambda j: j.kind == "delete_payment")
                self.assertEqual(jobs.mapped("state"), ["pending", "pending"])
                self.run_worker()
                self.assertEqual(jobs.mapped("state"), ["done", "done"], jobs.mapped("last_error"))
                self.assertEqual(self.live_payments(provider), [])
                self.assertAlmostEqual(self.due(self.ledger_invoice(provider, old_id)),
                                       move.amount_total, places=2)
                self.assertFalse(self.env["billing_sync.link"]._of(connection, reset))
                self.assertEqual(move.payment_state, "not_paid")

    def test_unmatching_one_invoice_of_a_shared_payment_keeps_the_rest(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, first, _old_id = self.synced_invoice(provider, f"Shared {provider}")
                second = self.invoice(first.partner_id, quantity=1)
                payment = self.env["account.payment.register"].with_context(
                    active_model="account.move", active_ids=(first | second).ids).create(
                    {"journal_id": self.bank_journal.id, "group_payment": True}
                )._create_payments()
                self.run_worker()
                self.assertEqual(self.jobs(payment).state, "done", self.jobs(payment).last_error)
                receivable = second.line_ids.filtered(
                    lambda line: line.account_id.account_type == "asset_receivable")
                second.js_remove_outstanding_partial(receivable.matched_credit_ids.id)
                self.run_worker()
                link = self.env["billing_sync.link"]._of(connection, payment)
                self.assertTrue(link, "the payment still pays the first invoice")
                first_due = self.due(self.ledger_invoice(
                    provider, self.env["billing_sync.link"]._of(connection, first).ledger_id))
                self.assertAlmostEqual(first_due, first.amount_residual, places=2)
                job = self.jobs(payment).filtered(lambda j: j.kind == "delete_payment")
                if provider == "xero":
                    # one Xero payment per invoice: only the second's goes
                    self.assertEqual(job.state, "done", job.last_error)
                    self.assertEqual(list(link._parts()), [self.env["billing_sync.link"]._of(
                        connection, first).ledger_id])
                    self.assertEqual(link.ledger_id, link._parts()[
                        self.env["billing_sync.link"]._of(connection, first).ledger_id])
                    self.assertAlmostEqual(self.due(self.ledger_invoice(
                        provider, self.env["billing_sync.link"]._of(connection, second)
                        .ledger_id)), second.amount_residual, places=2)
                else:
                    # one QuickBooks payment for both: held for a person, nothing deleted
                    self.assertEqual(job.state, "blocked")
                    self.assertIn(first.name, job.last_error)
                    self.assertEqual(len(self.live_payments(provider)), 1)

    def test_a_payment_odoo_does_not_know_gets_the_invoice_credited(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                _connection, move, old_id = self.synced_invoice(provider, f"Credit {provider}")
                # a bookkeeper recorded a payment in the ledger: the ledger keeps it, so the
                # invoice cannot be voided (Xero refuses; QuickBooks would unapply it)
                getattr(self, provider).apply_payment(old_id, 300)
                move.button_draft()
                self.run_worker()
                job = self.void_job(move)
                self.assertEqual(job.state, "done", job.last_error)
                held = self.ledger_invoice(provider, old_id)
                self.assertFalse(self.is_void(provider, held))
                self.assertAlmostEqual(self.due(held), 0.0, places=2,
                                       msg="the credit note covers what was left due")
                if provider == "xero":
                    notes = list(self.xero.ledger().credit_notes.values())
                    self.assertEqual(len(notes), 1)
                    self.assertAlmostEqual(float(notes[0]["Total"]), self.total(held), 2)
                    self.assertNotEqual(self.number(held), move.name, "its number is freed")
                else:
                    memos = self.qbo.realms[self.qbo_realm()].all("CreditMemo")
                    self.assertEqual(len(memos), 1)
                    self.assertAlmostEqual(float(memos[0]["TotalAmt"]), self.total(held), 2)
                self.assertIn("credited", " ".join(move.message_ids.mapped("body")))
                self.assertEqual(self.open_invoices(provider), [])

    def test_cancel_voids(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                _connection, move, old_id = self.synced_invoice(provider, f"Cancel {provider}")
                move.button_cancel()
                self.assertEqual(move.state, "cancel")
                self.run_worker()
                self.assertEqual(self.void_job(move).state, "done", self.void_job(move).last_error)
                self.assertTrue(self.is_void(provider, self.ledger_invoice(provider, old_id)))

    def test_deleting_a_synced_invoice_voids_it_after_the_deletion(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection, move, old_id = self.synced_invoice(provider, f"Delete {provider}")
                # reset without our hook (as an import would): the deletion writes the job
                move.with_context(billing_sync_no_push=True).button_draft()
                self.assertFalse(self.void_job(move))
                move_id = move.id
                move.unlink()
                job = self.env["billing_sync.job"].search([
                    ("res_model", "=", "account.move"), ("res_id", "=", move_id),
                    ("kind", "=", "void_invoice")])
                self.assertEqual((job.state, job.ledger_id, job.connection_id),
                                 ("pending", old_id, connection))
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
                self.assertTrue(self.is_void(provider, self.ledger_invoice(provider, old_id)))

    def test_quickbooks_never_edits_a_paid_invoice_in_place(self):
        connection, move, old_id = self.synced_invoice("qbo", "Silent Ltd")
        self.qbo.apply_payment(old_id, 100)
        # an update of the invoice, as a re-push would send it, with a changed quantity
        values = self.env["billing_sync.push"]._values_invoice(connection, move)
        values["lines"][0]["quantity"] = 9
        item = PushItem(f"account.move,{move.id}", "invoice", values, ledger_id=old_id)
        [result] = connection._adapter().push(connection._access_token(), connection.org_id,
                                              "invoice", [item], "silent-edit")
        self.assertFalse(result.ok)
        self.assertIn("not changed in place", str(result.error))
        self.assertAlmostEqual(self.total(self.ledger_invoice("qbo", old_id)),
                               move.amount_total, places=2)

    # ------------------------------------------------------------------ hold
    def test_hold_sends_nothing_and_tells_a_person(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                _connection, move, old_id = self.synced_invoice(provider, f"Hold {provider}")
                self.env.company.billing_sync_edit_policy = "hold"
                before_total = move.amount_total
                move.button_draft()
                job = self.void_job(move)
                self.assertEqual(job.state, "blocked")
                self.assertIn("nothing was changed", job.last_error)
                self.assertIn(move.name, job.last_error)
                self.assertEqual(len(move.activity_ids), 1)
                requests = self.request_count(provider)
                self.run_worker()
                self.assertEqual(self.request_count(provider), requests, "nothing is sent")
                # posted again with a higher total: held too, and it says what differs
                self.set_quantity(move, 4)
                move.action_post()
                self.run_worker()
                self.assertEqual(self.request_count(provider), requests, "nothing is sent")
                invoice_job = self.jobs(move).filtered(lambda j: j.kind == "invoice"
                                                       and j.state == "blocked")
                self.assertTrue(invoice_job)
                self.assertIn(f"{move.amount_total:,.2f}", invoice_job.last_error)
                self.assertIn(f"{before_total:,.2f}", invoice_job.last_error)
                self.assertEqual(len(move.activity_ids), 1, "one activity")
                held = self.ledger_invoice(provider, old_id)
                self.assertFalse(self.is_void(provider, held))
                self.assertAlmostEqual(self.total(held), before_total, places=2)
                # the person lets Billing Sync do it: voided, then the new total goes
                job.action_retry()
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
                self.assertTrue(self.is_void(provider, self.ledger_invoice(provider, old_id)))
                self.assertEqual(invoice_job.state, "done", invoice_job.last_error)
                [new] = self.open_invoices(provider)
                self.assertAlmostEqual(self.total(new), move.amount_total, places=2)
                self.assertFalse(move.activity_ids)

    def test_hold_refuses_deleting_what_the_ledger_holds(self):
        _connection, move, old_id = self.synced_invoice("xero", "Keep Ltd")
        self.env.company.billing_sync_edit_policy = "hold"
        move.button_draft()
        with self.assertRaisesRegex(UserError, "cannot be deleted"):
            move.unlink()
        self.assertTrue(move.exists())
        self.assertEqual(self.ledger_invoice("xero", old_id)["Status"], "AUTHORISED")

    def test_hold_released_when_posted_again_unchanged(self):
        connection, move, old_id = self.synced_invoice("xero", "Same Ltd")
        self.env.company.billing_sync_edit_policy = "hold"
        move.button_draft()
        move.action_post()
        self.assertEqual(self.void_job(move).state, "cancelled")
        self.run_worker()
        self.assertEqual(self.env["billing_sync.link"]._of(connection, move).ledger_id, old_id)
        self.assertEqual(len(self.ledger_invoices("xero")), 1)
        self.assertFalse(move.activity_ids)

    def test_settings_show_the_policy(self):
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.billing_sync_edit_policy, "credit_replace")
        settings.billing_sync_edit_policy = "hold"
        settings.execute()
        self.assertEqual(self.env.company.billing_sync_edit_policy, "hold")
