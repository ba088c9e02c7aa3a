from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..services.contacts import check_suffix
from ..services.ownership import CONTACT_GROUPS

OWNER_CHOICES = [("last", "Last change wins"), ("ledger", "The ledger"), ("odoo", "Odoo")]


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
    # Edits after sync (issue 15): what becomes of the ledger's copy of a document Odoo
    # takes back (reset to draft, posted again with another total, cancelled, deleted)
    # Inbound sync (issue 18): who owns each group of contact fields
    billing_sync_owner_name = fields.Selection(
        OWNER_CHOICES, string="Owner of client names", default="last", required=True)
    billing_sync_owner_email = fields.Selection(
        OWNER_CHOICES, string="Owner of billing emails", default="last", required=True)
    billing_sync_owner_phone = fields.Selection(
        OWNER_CHOICES, string="Owner of phone numbers", default="last", required=True)
    billing_sync_owner_tax_id = fields.Selection(
        OWNER_CHOICES, string="Owner of tax ids", default="last", required=True)
    billing_sync_owner_address = fields.Selection(
        OWNER_CHOICES, string="Owner of addresses", default="last", required=True)

    def _billing_sync_owners(self):
        """{group of contact fields: "last" | "ledger" | "odoo"} (services/ownership)."""
        self.ensure_one()
        return {group: self[f"billing_sync_owner_{group}"] for group in CONTACT_GROUPS}

    billing_sync_edit_policy = fields.Selection(
        [("credit_replace", "Void or credit it, then send a new document"),
         ("hold", "Hold it for a person")],
        string="Edits after sync",
        default="credit_replace",
        required=True,
        help="When an invoice the ledger holds is reset to draft, posted again with another "
        "total, cancelled or deleted in Odoo. Void or credit: the ledger's invoice is voided "
        "(credited when it has payments or is in a locked period) and the invoice, once "
        "posted again, goes to the ledger as a new document. Hold: nothing is sent; a "
        "person is told what differs and decides.",
    )
    billing_sync_duplicate_name_suffix = fields.Char(
        string="Suffix for clients of the same name",
        default=" (%(ref)s)",
        trim=False,  # the leading space separates the name from the suffix
        help="Ledger contact names are unique. A client whose name another, different, "
        "ledger contact already has is created under its name plus this suffix: "
        "%(ref)s is the partner's reference (its id when it has none), %(id)s its id. "
        "The partner's name in Odoo does not change.",
    )

    @api.constrains("billing_sync_duplicate_name_suffix")
    def _check_billing_sync_duplicate_name_suffix(self):
        for company in self:
            problem = check_suffix(company.billing_sync_duplicate_name_suffix)
            if problem:
                raise ValidationError(problem)
