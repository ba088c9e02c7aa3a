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

    # Engagement billing (stored on the company: each company bills its own way)
    billing_sync_post_deposit_on_confirm = fields.Boolean(
        related="company_id.billing_sync_post_deposit_on_confirm", readonly=False
    )
    billing_sync_require_signed_terms = fields.Boolean(
        related="company_id.billing_sync_require_signed_terms", readonly=False
    )
    billing_sync_deposit_reminder_days = fields.Integer(
        related="company_id.billing_sync_deposit_reminder_days", readonly=False
    )
    billing_sync_card_fee_product_id = fields.Many2one(
        related="company_id.billing_sync_card_fee_product_id", readonly=False
    )

    # Contacts (issue 15): the name a client gets when a different ledger contact has its own
    billing_sync_duplicate_name_suffix = fields.Char(
        related="company_id.billing_sync_duplicate_name_suffix", readonly=False, trim=False
    )

    # Edits after sync (issue 15)
    billing_sync_edit_policy = fields.Selection(
        related="company_id.billing_sync_edit_policy", readonly=False
    )

    # Sync engine (issue 17): finished jobs are deleted after this many days
    billing_sync_job_retention_days = fields.Integer(
        string="Keep finished sync jobs", config_parameter="billing_sync.job_retention_days",
        default=30, help="Done and cancelled sync jobs are deleted after this many days by a "
                         "daily scheduled action (0 keeps them).")

    # Audit trail (issue 19): entries older than this are archived, never deleted
    billing_sync_audit_retention_days = fields.Integer(
        string="Keep the audit trail active", config_parameter="billing_sync.audit_retention_days",
        default=365, help="Audit entries older than this many days are archived by a daily "
                          "scheduled action (0 keeps them all active). Nothing is deleted.")

    # Alerts (issue 19): changes waiting longer than this alert their connection
    billing_sync_backlog_alert_minutes = fields.Integer(
        string="Alert on changes waiting", config_parameter="billing_sync.backlog_alert_minutes",
        default=60, help="A connection whose oldest change has waited this many minutes to "
                         "reach its ledger opens an alert (0: never).")

    # Inbound sync (issue 18): who owns each group of contact fields
    billing_sync_owner_name = fields.Selection(
        related="company_id.billing_sync_owner_name", readonly=False)
    billing_sync_owner_email = fields.Selection(
        related="company_id.billing_sync_owner_email", readonly=False)
    billing_sync_owner_phone = fields.Selection(
        related="company_id.billing_sync_owner_phone", readonly=False)
    billing_sync_owner_tax_id = fields.Selection(
        related="company_id.billing_sync_owner_tax_id", readonly=False)
    billing_sync_owner_address = fields.Selection(
        related="company_id.billing_sync_owner_address", readonly=False)
