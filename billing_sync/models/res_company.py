from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    billing_sync_post_deposit_on_confirm = fields.Boolean(
        string="Invoice the deposit on acceptance",
        default=True,
        help="When a proposal with a deposit is confirmed, its deposit invoice is "
        "created and posted at once rather than by the next daily run.",
    )
    billing_sync_require_signed_terms = fields.Boolean(
        string="Require signed terms",
        help="A proposal with engagement terms can only be confirmed once the client "
        "accepted them: online signature on the portal, or who and when recorded "
        "on the proposal.",
    )
    billing_sync_deposit_reminder_days = fields.Integer(
        string="Unpaid deposit reminder (days)",
        default=7,
        help="When work may not start before the deposit is paid, the salesperson "
        "gets an activity if the deposit is still unpaid this many days after "
        "acceptance.",
    )
    billing_sync_card_fee_product_id = fields.Many2one(
        "product.product",
        string="Card fee product",
        domain="[('type', '=', 'service')]",
        help="Service used for the card-processing fee line passed on to clients. "
        "Empty: the 'Card processing fee' service shipped with Billing Sync.",
    )
