from odoo import api, fields, models


class AccountMove(models.Model):
    _name = "account.move"
    _inherit = ["account.move", "billing_sync.status.mixin"]

    billing_sync_schedule_line_id = fields.Many2one(
        "billing_sync.schedule.line",
        string="Billing schedule line",
        copy=False,
        readonly=True,
        index="btree_not_null",
        ondelete="restrict",
        help="The planned invoice of an engagement that this invoice bills.",
    )

    def init(self):
        res = super().init()
        # The database itself refuses a second live invoice for one schedule
        # line, whatever happens above it (two workers, a rerun after a crash):
        # a cancelled invoice does not count, so a line can be billed again by
        # a person after its invoice was cancelled.
        self.env.cr.execute(
            """
            CREATE UNIQUE INDEX IF NOT EXISTS account_move_billing_sync_one_live_invoice
                ON account_move (billing_sync_schedule_line_id)
             WHERE billing_sync_schedule_line_id IS NOT NULL AND state != 'cancel'
            """
        )
        return res

    def _post(self, soft=True):
        posted = super()._post(soft=soft)
        Job = self.env["billing_sync.job"].sudo()
        Job._enqueue(posted.filtered(lambda m: m.move_type == "out_invoice"), "invoice")
        Job._enqueue(posted.filtered(lambda m: m.move_type == "out_refund"), "credit_note")
        # posted again while the ledger still holds its earlier copy (edits after sync)
        self.env["billing_sync.edit"].sudo()._reposted(posted)
        return posted

    # Edits after sync (billing_sync.edit): an invoice the ledger holds that Odoo takes
    # back is voided or credited there, or held for a person, per the company's policy.
    def button_draft(self):
        taken = self.filtered(lambda m: m.move_type == "out_invoice" and m.state == "posted")
        # the payments the reset unmatches: read before it does
        payments = {move.id: move._get_reconciled_payments() for move in taken}
        res = super().button_draft()
        self.env["billing_sync.edit"].sudo()._taken_back(taken, "reset", payments)
        return res

    def button_cancel(self):
        res = super().button_cancel()
        self.env["billing_sync.edit"].sudo()._taken_back(
            self.filtered(lambda m: m.state == "cancel"), "cancel")
        return res

    @api.ondelete(at_uninstall=False)
    def _unlink_except_held_in_ledger(self):
        self.env["billing_sync.edit"].sudo()._check_unlink(self)

    def unlink(self):
        # the job is written before the invoice goes, and carries what it needs
        self.env["billing_sync.edit"].sudo()._taken_back(self, "delete")
        return super().unlink()

    def js_remove_outstanding_partial(self, partial_id):
        partial = self.env["account.partial.reconcile"].browse(partial_id)
        payments = (partial.debit_move_id | partial.credit_move_id).move_id.origin_payment_id
        res = super().js_remove_outstanding_partial(partial_id)
        if self.move_type == "out_invoice":
            self.env["billing_sync.edit"].sudo()._payments_taken_back(
                payments, "unmatch", invoice=self)
        return res
