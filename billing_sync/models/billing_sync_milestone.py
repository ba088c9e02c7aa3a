from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError


class BillingSyncMilestone(models.Model):
    _name = "billing_sync.milestone"
    _description = "Engagement milestone"
    _order = "order_id, sequence, id"

    order_id = fields.Many2one("sale.order", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="order_id.company_id", store=True, index=True)
    currency_id = fields.Many2one(related="order_id.currency_id")
    sequence = fields.Integer(default=10)
    name = fields.Char(required=True)
    amount_type = fields.Selection(
        [("fixed", "Amount"), ("percent", "Percent")],
        string="Billed as",
        required=True,
        default="percent",
    )
    percent = fields.Float(
        digits=(16, 2), help="Percent of the order total (taxes included)."
    )
    fixed_amount = fields.Monetary(
        string="Fixed amount", help="Amount billed, taxes included."
    )
    amount = fields.Monetary(
        compute="_compute_amount", help="What the milestone bills, taxes included."
    )
    expected_date = fields.Date()
    reached = fields.Boolean(readonly=True, copy=False)
    reached_on = fields.Date(readonly=True, copy=False)
    schedule_line_ids = fields.One2many("billing_sync.schedule.line", "milestone_id")
    invoice_id = fields.Many2one(
        "account.move", compute="_compute_invoice_id", string="Invoice"
    )

    _sql_constraints = [
        (
            "percent_range",
            "CHECK(amount_type != 'percent' OR (percent > 0 AND percent <= 100))",
            "A milestone's percent must be above 0 and at most 100.",
        ),
        (
            "fixed_amount_positive",
            "CHECK(amount_type != 'fixed' OR fixed_amount > 0)",
            "A milestone's amount must be positive.",
        ),
    ]

    # fields whose change re-plans an accepted engagement (see sale.order)
    _PLAN_FIELDS = {"name", "amount_type", "percent", "fixed_amount", "expected_date", "sequence"}

    @api.model_create_multi
    def create(self, vals_list):
        orders = self.env["sale.order"].browse({v.get("order_id") for v in vals_list} - {None})
        with orders._billing_sync_watch_terms():
            return super().create(vals_list)

    def write(self, vals):
        if not self._PLAN_FIELDS & set(vals):
            return super().write(vals)
        with self.order_id._billing_sync_watch_terms():
            return super().write(vals)

    def unlink(self):
        if self.schedule_line_ids.filtered(lambda ln: ln.state in ("invoiced", "paid")):
            raise UserError(self.env._("A milestone that was invoiced cannot be deleted."))
        with self.order_id._billing_sync_watch_terms():
            return super().unlink()

    @api.depends("amount_type", "percent", "fixed_amount", "order_id.amount_total")
    def _compute_amount(self):
        for milestone in self:
            if milestone.amount_type == "fixed":
                milestone.amount = milestone.fixed_amount
            else:
                milestone.amount = milestone.currency_id.round(
                    milestone.order_id.amount_total * milestone.percent / 100
                )

    @api.depends("schedule_line_ids.invoice_id")
    def _compute_invoice_id(self):
        for milestone in self:
            milestone.invoice_id = milestone.schedule_line_ids.invoice_id[:1]

    @api.constrains("order_id")
    def _check_order_engagement(self):
        for milestone in self:
            if milestone.order_id.billing_sync_engagement_type != "milestones":
                raise ValidationError(
                    self.env._(
                        "Milestones belong to proposals whose engagement type is Milestones."
                    )
                )

    def action_mark_reached(self):
        """Mark the milestone reached and bill it now."""
        for milestone in self:
            if milestone.reached:
                continue
            if milestone.order_id.state != "sale":
                raise UserError(
                    self.env._("Milestone %s: only a confirmed proposal bills its milestones.",
                      milestone.name)
                )
            line = milestone.schedule_line_ids.filtered(lambda ln: ln.state == "planned")[:1]
            today = fields.Date.context_today(milestone)
            milestone.write({"reached": True, "reached_on": today})
            milestone.order_id.message_post(
                body=self.env._("Milestone reached: %s", milestone.name)
            )
            if line:
                line.date = today
                line._billing_sync_bill_now()
        return True
