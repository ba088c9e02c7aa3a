from odoo import api, fields, models

from .billing_sync_push import CONTACT_FIELDS


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "billing_sync.status.mixin"]

    # Odoo already has the billing contact (a child contact of type 'invoice',
    # found by address_get), the payment terms (property_payment_term_id) and
    # the tax id (vat): only the billing email is missing.
    billing_sync_billing_email = fields.Char(
        string="Billing email",
        help="Where invoices go. Empty: the billing contact's email, then the "
        "partner's own email.",
    )
    billing_sync_billing_contact_id = fields.Many2one(
        "res.partner",
        string="Billing contact",
        compute="_compute_billing_sync_billing",
        help="The contact of type 'Invoice' of this company, or the partner itself.",
    )
    billing_sync_invoice_email = fields.Char(
        string="Invoices go to",
        compute="_compute_billing_sync_billing",
    )

    @api.depends("billing_sync_billing_email", "email", "child_ids.type", "child_ids.email")
    def _compute_billing_sync_billing(self):
        for partner in self:
            contact = partner.browse(partner.address_get(["invoice"])["invoice"])
            partner.billing_sync_billing_contact_id = contact
            partner.billing_sync_invoice_email = (
                partner.billing_sync_billing_email
                or contact.billing_sync_billing_email
                or contact.email
                or partner.email
            )

    def write(self, vals):
        res = super().write(vals)
        if set(vals) & set(CONTACT_FIELDS):
            # only partners the ledger already knows: a new client reaches the
            # ledger with its first invoice
            linked = self.env["billing_sync.link"].sudo().search([
                ("res_model", "=", "res.partner"),
                ("res_id", "in", self.commercial_partner_id.ids)])
            if linked:
                partners = self.browse(linked.mapped("res_id"))
                self.env["billing_sync.job"].sudo()._enqueue(partners, "contact")
        return res
