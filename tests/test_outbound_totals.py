"""Ledger-grade totals: what says "In the ledger" equals the ledger to the cent.

Every case goes through the real worker, the real SDKs and the sandboxes' own tax
arithmetic (Xero: tax per line, rounded half up; QuickBooks: tax per rate on the summed
lines), and compares the ledger's stored figures with Odoo's.
"""

import datetime
from decimal import ROUND_HALF_UP, Decimal

from odoo import Command, fields
from odoo.tests import TransactionCase, tagged

from .test_outbound import OutboundMixin

PROVIDERS = ("xero", "qbo")


def _cents(value):
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _per_line_cent(rate, lines):
    """A price whose tax, rounded on each of ``lines`` lines, differs from the tax of their
    sum rounded once (Odoo's per-line rounding against a ledger rounding per rate)."""
    rate = Decimal(str(rate)) / 100
    for cents in range(1, 1000):
        price = Decimal(cents) / 100
        if lines * _cents(price * rate) != _cents(lines * price * rate):
            return float(price)
    raise AssertionError("no such price")


@tagged("post_install", "-at_install")
class TestOutboundTotals(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()
        # prices with four decimals, as a firm billing hourly rates may use
        cls.env.ref("product.decimal_price").digits = 4

    # ------------------------------------------------------------------ helpers
    def document(self, partner, lines, move_type="out_invoice", post=True):
        """A move with ``lines`` = [(price_unit, quantity, discount, taxes)]."""
        move = self.env["account.move"].create({
            "move_type": move_type, "partner_id": partner.id,
            "invoice_date": fields.Date.today(),
            "invoice_line_ids": [Command.create({
                "product_id": self.product.id, "name": f"Line {n}", "price_unit": price,
                "quantity": qty, "discount": discount,
                "tax_ids": [Command.set(taxes.ids)]})
                for n, (price, qty, discount, taxes) in enumerate(lines, 1)],
        })
        if post:
            move.action_post()
        return move

    def make_tax(self, rate, included=False, name=None):
        return self.env["account.tax"].create({
            "name": name or f"Tax {rate:g}{' incl' if included else ''}",
            "amount": rate, "type_tax_use": "sale",
            "price_include_override": "tax_included" if included else "tax_excluded"})

    def map_tax(self, connection, tax, ref=None):
        ref = ref or self.env["billing_sync.mapping"].search(
            [("connection_id", "=", connection.id), ("tax_id", "=", self.tax.id)]).tax_ref_id
        self.env["billing_sync.mapping"].create({
            "connection_id": connection.id, "kind": "tax", "tax_id": tax.id,
            "tax_ref_id": ref.id})

    def ledger_figures(self, provider, link):
        """(total, tax, amount due) as the sandbox holds the document."""
        if provider == "xero":
            ledger = self.xero.ledger()
            doc = ledger.invoices.get(link.ledger_id) or ledger.credit_notes[link.ledger_id]
            due = doc.get("AmountDue", doc.get("RemainingCredit"))
            return float(doc["Total"]), float(doc["TotalTax"]), float(due)
        realm = self.qbo.realms[self.qbo_realm()]
        doc = realm.get("Invoice", link.ledger_id) or realm.get("CreditMemo", link.ledger_id)
        due = doc.get("Balance", doc.get("RemainingCredit"))
        return (float(doc["TotalAmt"]), float(doc["TxnTaxDetail"]["TotalTax"]),
                float(due or 0.0))

    def assert_equal_in_ledger(self, provider, connection, move):
        job = self.jobs(move)
        self.assertEqual(job.state, "done", job.last_error)
        link = self.env["billing_sync.link"]._of(connection, move)
        total, tax, due = self.ledger_figures(provider, link)
        self.assertEqual((round(total, 2), round(tax, 2)),
                         (round(move.amount_total, 2), round(move.amount_tax, 2)),
                         f"{provider}: ledger and Odoo totals differ")
        if move.move_type == "out_invoice":
            self.assertEqual(round(due, 2), round(move.amount_residual, 2))
        self.assertEqual(link.sync_state, "synced", link.mismatch)
        self.assertEqual(move.billing_sync_status, "synced")
        return link

    def rounding_globally(self):
        self.env.company.tax_calculation_rounding_method = "round_globally"

    # ------------------------------------------------------------------ cases
    def test_tax_excluded_and_included_prices_equal_to_the_cent(self):
        for provider in PROVIDERS:
            connection = self.connected(provider)
            rate = self.tax.amount
            included = self.make_tax(rate, included=True)
            self.map_tax(connection, included)
            for rounding in ("round_per_line", "round_globally"):
                with self.subTest(provider=provider, rounding=rounding):
                    self.env.company.tax_calculation_rounding_method = rounding
                    partner = self.partner(f"Gross {provider} {rounding}")
                    excluded_doc = self.document(partner, [
                        (21.53, 1, 0, self.tax), (21.53, 1, 0, self.tax),
                        (10.0049, 3, 7.5, self.tax)])
                    included_doc = self.document(partner, [
                        (21.53, 1, 0, included), (21.53, 1, 0, included),
                        (19.99, 7, 12.5, included)])
                    self.run_worker()
                    self.assert_equal_in_ledger(provider, connection, excluded_doc)
                    link = self.assert_equal_in_ledger(provider, connection, included_doc)
                    if provider == "xero":
                        # the client's gross prices, not gross prices taxed again
                        held = self.xero.ledger().invoices[link.ledger_id]
                        self.assertEqual(held["LineAmountTypes"], "Inclusive")

    def test_untaxed_line_carries_no_tax(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                move = self.document(self.partner(f"Mixed {provider}"), [
                    (100.0, 2, 0, self.tax), (45.5, 1, 0, self.env["account.tax"])])
                self.run_worker()
                link = self.assert_equal_in_ledger(provider, connection, move)
                if provider == "xero":
                    line = self.xero.ledger().invoices[link.ledger_id]["LineItems"][1]
                    self.assertEqual((line["TaxType"], line["TaxAmount"]), ("NONE", 0))
                else:
                    doc = self.qbo.realms[self.qbo_realm()].get("Invoice", link.ledger_id)
                    code = doc["Line"][1]["SalesItemLineDetail"]["TaxCodeRef"]["value"]
                    self.assertEqual(code, "NON")

    def test_two_taxes_on_one_line_map_to_one_combined_rate(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.rounding_globally()
                connection = self.connected(provider)
                half = self.tax.amount / 2
                first = self.make_tax(half, name=f"Federal part {provider}")
                second = self.make_tax(half, name=f"State part {provider}")
                self.map_tax(connection, first)
                self.map_tax(connection, second)
                move = self.document(self.partner(f"Two taxes {provider}"), [
                    (333.33, 1, 0, first | second), (0.07, 3, 0, first | second)])
                self.run_worker()
                self.assert_equal_in_ledger(provider, connection, move)

    def test_two_taxes_mapped_apart_are_held_with_the_reason(self):
        connection = self.connected("xero")
        other_ref = connection.reference_ids.filtered(
            lambda r: r.kind == "tax" and r.rate == 0)[:1]
        zero = self.make_tax(0, name="Zero part")
        self.map_tax(connection, zero, other_ref)
        move = self.document(self.partner("Split taxes"), [(100, 1, 0, self.tax | zero)])
        before = self.request_count("xero")
        self.run_worker()
        job = self.jobs(move)
        self.assertEqual(job.state, "blocked")
        self.assertIn("one combined rate", job.last_error)
        self.assertIn("Zero part", job.last_error)
        self.assertEqual(move.billing_sync_status, "error")
        # the customer was created first; the invoice itself never went
        self.assertEqual(len(self.ledger_invoices("xero")), 0)
        self.assertLessEqual(self.request_count("xero") - before, 2)

    def test_credit_note_totals_equal(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.rounding_globally()
                connection = self.connected(provider)
                note = self.document(self.partner(f"Refund {provider}"), [
                    (12.3456, 3, 5, self.tax), (0.05, 3, 0, self.tax)], move_type="out_refund")
                self.run_worker()
                self.assert_equal_in_ledger(provider, connection, note)

    def test_xero_rounding_line_books_the_cent_it_cannot_reproduce(self):
        # Odoo rounding globally: three lines of 10.0049 have an untaxed amount of 30.01
        # (the cent goes onto one line's balance), while Xero computes 3 x 10.00
        self.rounding_globally()
        connection = self.connected("xero")
        move = self.document(self.partner("Cent Ltd"), [(10.0049, 1, 0, self.tax)] * 3)
        self.assertEqual(round(move.amount_untaxed, 2), 30.01, "the case needs Odoo's cent")
        before = self.request_count("xero")
        self.run_worker()
        # without a rounding account the document waits, and says what to set
        job = self.jobs(move)
        self.assertEqual(job.state, "blocked")
        self.assertIn("rounding account", job.last_error)
        self.assertEqual(len(self.ledger_invoices("xero")), 0)
        self.assertLessEqual(self.request_count("xero") - before, 2, "the customer only")
        connection.rounding_account_id = connection.reference_ids.filtered(
            lambda r: r.kind == "revenue_account")[-1:]
        job.action_retry()
        self.run_worker()
        link = self.assert_equal_in_ledger("xero", connection, move)
        self.assertAlmostEqual(link.adjustment, 0.01, places=2)
        lines = self.xero.ledger().invoices[link.ledger_id]["LineItems"]
        self.assertEqual(lines[-1]["Description"], "Rounding adjustment")
        self.assertIn("rounding line", move.message_ids[0].body)

    def test_a_ledger_that_computes_other_figures_is_a_visible_mismatch(self):
        # A QuickBooks company with sales tax turned off ignores the tax a transaction
        # carries (Preferences.TaxPrefs.UsingSalesTax): Odoo's taxed invoice lands untaxed.
        connection = self.connected("qbo")
        self.qbo.realms[self.qbo_realm()].using_sales_tax = False
        move = self.document(self.partner("Cents & Co"), [(100.0, 1, 0, self.tax)])
        self.run_worker()
        link = self.env["billing_sync.link"]._of(connection, move)
        total, _tax, _due = self.ledger_figures("qbo", link)
        self.assertNotEqual(round(total, 2), round(move.amount_total, 2),
                            "the case must make QuickBooks hold another total")
        self.assertEqual(link.sync_state, "mismatch")
        self.assertEqual(move.billing_sync_status, "mismatch")
        self.assertIn(f"Odoo {move.amount_total:.2f}", move.billing_sync_error)
        self.assertIn(f"{total:.2f}", move.billing_sync_error)
        job = self.jobs(move)
        self.assertEqual(job.state, "blocked", "a difference is never done")
        self.assertEqual(job.error_class, "mismatch")
        # a difference alerts the connection's administrator at once
        alert = self.env["billing_sync.alert"].search([("connection_id", "=", connection.id),
                                                       ("state", "=", "open")])
        self.assertEqual(alert.error_class, "mismatch")
        self.assertTrue(alert.activity_id)

    def test_a_refusal_retires_its_key_and_the_fixed_retry_is_accepted(self):
        connection = self.connected("xero")
        account = self.xero.ledger().account_by_code(connection.default_account_id.code)
        account["Status"] = "ARCHIVED"
        move = self.document(self.partner("Retired key Ltd"), [(250, 1, 0, self.tax)])
        self.run_worker()
        job = self.jobs(move)
        self.assertEqual(job.state, "blocked")
        self.assertFalse(job.batch_key, "a known refusal retires the key")
        refused = self.xero.idempotency
        self.assertGreater(len(refused), 0)
        account["Status"] = "ACTIVE"  # the bookkeeper restores the account
        job.action_retry()
        self.run_worker()
        self.assert_equal_in_ledger("xero", connection, move)
        self.assertEqual(len(self.ledger_invoices("xero")), 1)

    def test_an_unknown_outcome_is_looked_up_before_a_new_key_creates_it_again(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                partner = self.partner(f"Lost answer {provider}")
                self.invoice(partner)
                self.run_worker()
                move = self.invoice(partner)
                Job = self.env["billing_sync.job"]
                jobs = self.claim()
                # the worker sent the batch and died before recording the answer
                adapter = connection._adapter()
                items, _skipped = self.env["billing_sync.push"]._items(connection, adapter,
                                                                       jobs)
                adapter.push(connection._access_token(), connection.org_id, "invoice", items,
                             jobs.batch_key)
                # its sender lives: the batch is its own, however long it takes
                jobs.started_at = fields.Datetime.now() - datetime.timedelta(hours=1)
                self.assertFalse(Job._requeue_stuck())
                # the worker dies: its session ends, and its lease with it
                jobs._release_lease()
                Job._requeue_stuck()
                self.assertTrue(jobs.outcome_unknown)
                # a manager cancels the stuck job and retries it later: a new key
                old_key = jobs.batch_key
                jobs.action_cancel()
                jobs.action_retry()
                self.run_worker()
                self.assertEqual(jobs.state, "done", jobs.last_error)
                self.assertNotEqual(jobs.batch_key, old_key)
                self.assertEqual(len(self.ledger_invoices(provider)), 2, "no duplicate")
                self.assert_equal_in_ledger(provider, connection, move)

    def test_a_job_held_on_the_way_leaves_its_batch_its_key(self):
        # the first job of a batch is held while building (its key retired): the others
        # still go under the batch's own key, never under none
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.connected(provider)
                partner = self.partner(f"Half held {provider}")
                unmapped = self.make_tax(self.tax.amount, name=f"Unmapped {provider}")
                held = self.document(partner, [(100, 1, 0, unmapped)])
                sent = self.document(partner, [(100, 1, 0, self.tax)])
                self.run_worker()
                self.assertEqual(self.jobs(held).state, "blocked")
                self.assertEqual(self.jobs(sent).state, "done", self.jobs(sent).last_error)
                self.assertEqual(len(self.ledger_invoices(provider)), 1)

    def test_a_rounding_method_changed_after_posting_keeps_the_posted_figures(self):
        # a backfill: documents posted under one rounding method, synced under the other
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.env.company.tax_calculation_rounding_method = "round_per_line"
                connection = self.connected(provider)
                price = _per_line_cent(self.tax.amount, 4)
                move = self.document(self.partner(f"Backfill {provider}"),
                                     [(price, 1, 0, self.tax)] * 4 + [(572.9725, 3, 5, self.tax)])
                self.env.company.tax_calculation_rounding_method = "round_globally"
                self.run_worker()
                self.assert_equal_in_ledger(provider, connection, move)
