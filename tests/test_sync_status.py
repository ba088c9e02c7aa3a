"""Staff find invoices, payments and clients by ledger status (issue 19): the filters
find exactly what the badge says, in the companies being worked in."""

from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged

from .test_outbound import OutboundMixin


@tagged("post_install", "-at_install")
class TestSyncStatusSearch(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def status_of(self, records):
        records.invalidate_recordset(["billing_sync_status"])
        return {rec: rec.billing_sync_status for rec in records}

    def found(self, records, operator, value):
        return records.search([("id", "in", records.ids),
                               ("billing_sync_status", operator, value)])

    def test_each_filter_finds_what_the_badge_says(self):
        connection = self.connected("xero")
        synced = self.invoice(self.partner("Synced Ltd"))
        differs = self.invoice(self.partner("Differs Ltd"))
        unmapped = self.env["account.tax"].create({
            "name": "Unmapped levy 7", "amount": 7, "type_tax_use": "sale"})
        blocked = self.taxed_invoice(self.partner("Blocked Ltd"), unmapped)
        self.run_worker()
        waiting = self.invoice(self.partner("Waiting Ltd"))
        draft = self.invoice(self.partner("Draft Ltd"), post=False)
        # the engine's own check found a difference (test_outbound_totals makes one)
        self.env["billing_sync.link"]._of(connection, differs).sudo().write(
            {"sync_state": "mismatch", "mismatch": "Odoo 2300.00, ledger 2000.00"})
        moves = synced | differs | blocked | waiting | draft
        expected = {synced: "synced", differs: "mismatch", blocked: "error",
                    waiting: "pending", draft: "none"}
        self.assertEqual(self.status_of(moves), expected)
        for status in ("synced", "mismatch", "error", "pending", "none"):
            with self.subTest(status=status):
                wanted = moves.filtered(lambda m, s=status: expected[m] == s)
                self.assertEqual(self.found(moves, "=", status), wanted)
                self.assertEqual(self.found(moves, "!=", status), moves - wanted)
        self.assertEqual(self.found(moves, "in", ["error", "mismatch"]), blocked | differs)
        self.assertEqual(self.found(moves, "not in", ["none", "synced"]),
                         differs | blocked | waiting)
        with self.assertRaises(UserError):
            self.found(moves, "ilike", "err")
        # grouped and sorted by status, in the database, as the badge says
        groups = dict(self.env["account.move"]._read_group(
            [("id", "in", moves.ids)], ["billing_sync_status"], ["__count"]))
        self.assertEqual(groups, dict.fromkeys(expected.values(), 1))
        web = self.env["account.move"].web_read_group(
            [("id", "in", moves.ids)], ["billing_sync_status"], ["billing_sync_status"])
        self.assertEqual({g["billing_sync_status"]: g["billing_sync_status_count"]
                          for g in web["groups"]}, dict.fromkeys(expected.values(), 1))
        self.assertTrue(self.env["account.move"].fields_get(
            ["billing_sync_status"])["billing_sync_status"]["groupable"])
        ordered = moves.search([("id", "in", moves.ids)], order="billing_sync_status, id")
        self.assertEqual([expected[m] for m in ordered],
                         sorted(expected[m] for m in ordered))
        # the clients and the payments too
        partners = synced.partner_id | draft.partner_id
        self.assertEqual(self.found(partners, "=", "synced"), synced.partner_id)
        self.assertEqual(self.found(partners, "=", "none"), draft.partner_id)
        payment = self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=synced.ids).create(
            {"journal_id": self.bank_journal.id})._create_payments()
        self.assertEqual(self.found(payment, "=", "pending"), payment)
        self.run_worker()
        self.assertEqual(self.found(payment, "=", "synced"), payment)
        self.assertEqual(self.status_of(payment), {payment: "synced"})

    def test_another_companys_ledger_is_not_searched(self):
        self.connected("xero")
        move = self.invoice(self.partner("Elsewhere Ltd"))
        self.run_worker()
        other = self.env["res.company"].create({"name": "Other Firm"})
        self.env.user.company_ids |= other
        in_other = move.with_context(allowed_company_ids=other.ids)
        # the move's own company is not worked in: its ledger is not another's answer
        self.assertEqual(self.found(in_other.partner_id, "=", "synced"),
                         self.env["res.partner"])
        self.assertEqual(self.found(move.partner_id, "=", "synced"), move.partner_id)
