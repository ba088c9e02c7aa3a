from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    # Whether every internal user sees the ledger sync status of the records they
    # can already read. Off by default: the app only appears for people an admin
    # chose, and turning it on is one click here rather than a group edit per user.
    group_billing_sync_status_for_all = fields.Boolean(
        string="Sync status for all employees",
        implied_group="billing_sync.group_billing_sync_user",
        group="base.group_user",
    )
