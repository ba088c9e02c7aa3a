from odoo import fields, models


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
        return posted

    def button_cancel(self):
        # a cancelled invoice the ledger knows is voided there
        linked = self.env["billing_sync.link"].sudo().search([
            ("res_model", "=", "account.move"), ("res_id", "in", self.ids)])
        to_void = self.browse(linked.mapped("res_id")).filtered(
            lambda m: m.move_type == "out_invoice")
        res = super().button_cancel()
        self.env["billing_sync.job"].sudo()._enqueue(
            to_void.filtered(lambda m: m.state == "cancel"), "void_invoice")
        return res
