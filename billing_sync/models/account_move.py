from odoo import fields, models


class AccountMove(models.Model):
    _inherit = "account.move"

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
