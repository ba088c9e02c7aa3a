from odoo import api, fields, models


class SaleOrderLine(models.Model):
    _inherit = "sale.order.line"

    billing_sync_recurring = fields.Boolean(
        string="Recurring",
        help="Billed every period of the retainer (price and quantity are per "
        "period) by the billing schedule, rather than once.",
    )

    @api.depends("billing_sync_recurring", "order_id.billing_sync_engagement_type")
    def _compute_qty_to_invoice(self):
        res = super()._compute_qty_to_invoice()
        # The schedule bills recurring lines period by period; Odoo's own
        # invoicing (the final invoice included) must leave them alone, or it
        # would bill or refund the difference with the ordered quantity.
        for line in self:
            if line._billing_sync_is_scheduled_recurring():
                line.qty_to_invoice = 0
        return res

    def _billing_sync_is_scheduled_recurring(self):
        self.ensure_one()
        return (
            self.billing_sync_recurring
            and not self.display_type
            and not self.is_downpayment
            and self.order_id.billing_sync_engagement_type == "retainer"
        )
