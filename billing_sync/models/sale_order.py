from contextlib import contextmanager
from datetime import timedelta

from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import format_date, formatLang

from ..services import schedule as planning

ENGAGEMENT_TYPES = [
    ("one_off", "One-off"),
    ("retainer", "Recurring retainer"),
    ("milestones", "Milestones"),
]
# Order fields that make the engagement terms; a change to any of them after
# acceptance re-plans the lines not yet invoiced and is written to the chatter.
TERMS_FIELDS = (
    "billing_sync_engagement_type",
    "billing_sync_deposit_type",
    "billing_sync_deposit_percent",
    "billing_sync_deposit_amount",
    "billing_sync_work_before_deposit",
    "billing_sync_interval",
    "billing_sync_start_date",
    "billing_sync_end_date",
    "billing_sync_period_count",
    "billing_sync_invoice_rule",
    "billing_sync_invoice_day",
    "billing_sync_prorate_first",
    "billing_sync_final_date",
    "billing_sync_card_fee_percent",
)


class SaleOrder(models.Model):
    _inherit = "sale.order"

    billing_sync_engagement_type = fields.Selection(
        ENGAGEMENT_TYPES,
        string="Engagement type",
        help="Empty: no engagement terms, the proposal is invoiced by hand as usual.",
    )
    # deposit (Odoo's down payment), combinable with any engagement type
    billing_sync_deposit_type = fields.Selection(
        [("none", "No deposit"), ("percent", "Percent of the total"), ("fixed", "Fixed amount")],
        string="Deposit",
        default="none",
        required=True,
    )
    billing_sync_deposit_percent = fields.Float(string="Deposit (%)", digits=(16, 2))
    billing_sync_deposit_amount = fields.Monetary(string="Deposit amount")
    billing_sync_work_before_deposit = fields.Boolean(
        string="Work may start before the deposit is paid", default=True
    )
    # retainer
    billing_sync_interval = fields.Selection(
        [("monthly", "Monthly"), ("quarterly", "Quarterly"), ("yearly", "Yearly")],
        string="Interval",
        default="monthly",
    )
    billing_sync_start_date = fields.Date(string="Start date")
    billing_sync_end_date = fields.Date(string="End date")
    billing_sync_period_count = fields.Integer(
        string="Number of periods", help="Used when there is no end date."
    )
    billing_sync_invoice_rule = fields.Selection(
        [("period_start", "First day of the period"), ("day_of_month", "Given day of the month")],
        string="Invoice date",
        default="period_start",
    )
    billing_sync_invoice_day = fields.Integer(
        string="Day of the month",
        default=1,
        help="31 means the last day of each month (29 February in a leap year).",
    )
    billing_sync_prorate_first = fields.Boolean(
        string="Prorate a partial first period",
        help="Periods follow the calendar and a partial first period is billed for "
        "its share of days. Otherwise periods start on the start date's day of "
        "the month and are billed in full.",
    )
    billing_sync_final_date = fields.Date(
        string="Final invoice date",
        help="Date of the final invoice (what is left of the fixed fees, less the "
        "deposit and the milestones). Empty: the last period's invoice date for a "
        "retainer, the last milestone's expected date, or acceptance.",
    )
    billing_sync_milestone_ids = fields.One2many(
        "billing_sync.milestone", "order_id", string="Milestones", copy=True
    )
    billing_sync_card_fee_percent = fields.Float(
        string="Card fee (%)",
        digits=(16, 2),
        help="Card-processing fee passed on to the client, as its own line on each "
        "invoice of the schedule.",
    )
    billing_sync_scope = fields.Html(string="Scope summary")
    billing_sync_signed_terms = fields.Html(
        string="Terms as accepted",
        readonly=True,
        copy=False,
        sanitize_style=True,
        help="Scope, engagement terms and terms and conditions frozen when the client accepted.",
    )
    billing_sync_schedule_line_ids = fields.One2many(
        "billing_sync.schedule.line", "order_id", string="Billing schedule", copy=False
    )
    billing_sync_deposit_state = fields.Selection(
        [("none", "No deposit"), ("planned", "Planned"), ("invoiced", "Unpaid"),
         ("paid", "Paid"), ("cancelled", "Cancelled")],
        string="Deposit status",
        compute="_compute_billing_sync_deposit",
    )
    billing_sync_work_on_hold = fields.Boolean(
        string="Work on hold", compute="_compute_billing_sync_deposit"
    )
    billing_sync_deposit_reminded_on = fields.Date(readonly=True, copy=False)
    billing_sync_cancel_warning = fields.Boolean(compute="_compute_billing_sync_cancel_warning")

    _sql_constraints = [
        (
            "billing_sync_deposit_percent_range",
            "CHECK(billing_sync_deposit_percent >= 0 AND billing_sync_deposit_percent <= 100)",
            "The deposit percent must be between 0 and 100.",
        ),
        (
            "billing_sync_card_fee_percent_range",
            "CHECK(billing_sync_card_fee_percent >= 0 AND billing_sync_card_fee_percent < 100)",
            "The card fee percent must be between 0 and 100.",
        ),
    ]

    # ------------------------------------------------------------------
    # Computes
    # ------------------------------------------------------------------

    @api.depends(
        "state",
        "billing_sync_deposit_type",
        "billing_sync_work_before_deposit",
        "billing_sync_schedule_line_ids.state",
    )
    def _compute_billing_sync_deposit(self):
        for order in self:
            deposit = order.billing_sync_schedule_line_ids.filtered(
                lambda ln: ln.kind == "deposit" and ln.state != "cancelled"
            )[:1]
            if deposit:
                state = deposit.state
            elif order.billing_sync_deposit_type != "none" and order.billing_sync_engagement_type:
                state = "planned"
            else:
                state = "none"
            order.billing_sync_deposit_state = state
            order.billing_sync_work_on_hold = (
                order.state == "sale"
                and bool(order.billing_sync_engagement_type)
                and not order.billing_sync_work_before_deposit
                and state in ("planned", "invoiced")
            )

    @api.depends("state", "billing_sync_schedule_line_ids.state")
    def _compute_billing_sync_cancel_warning(self):
        for order in self:
            order.billing_sync_cancel_warning = order.state == "cancel" and any(
                line.state in ("invoiced", "paid") for line in order.billing_sync_schedule_line_ids
            )

    # ------------------------------------------------------------------
    # Confirmation, cancellation, term changes
    # ------------------------------------------------------------------

    def _confirmation_error_message(self):
        message = super()._confirmation_error_message()
        if message or not self.billing_sync_engagement_type:
            return message
        if self.company_id.billing_sync_require_signed_terms and not (
            self.signature or (self.signed_by and self.signed_on)
        ):
            return self.env._(
                "%s cannot be confirmed yet: your company requires signed terms. "
                "Send it to the client for online signature, or record who accepted "
                "the terms and when in its Engagement & billing tab.",
                self.name,
            )
        try:
            self._billing_sync_plan()
        except planning.PlanningError as error:
            return self.env._("The engagement terms of %(order)s are incomplete: %(reason)s.",
                     order=self.name, reason=error)
        return False

    def _action_confirm(self):
        res = super()._action_confirm()
        for order in self.filtered("billing_sync_engagement_type"):
            order._billing_sync_on_acceptance()
        return res

    def _billing_sync_on_acceptance(self):
        """Freeze the accepted terms, plan the schedule and bill the deposit."""
        self.ensure_one()
        order = self.with_context(billing_sync_terms_watched=True)
        order.billing_sync_signed_terms = order._billing_sync_terms_document()
        created, _updated, _removed = order._billing_sync_replan()
        if created:
            order.message_post(
                body=self.env._("Billing schedule planned: %(count)s invoices, %(total)s in all.",
                       count=len(created),
                       total=formatLang(self.env, sum(created.mapped("amount")),
                                        currency_obj=order.currency_id)),
            )
        deposit = order.billing_sync_schedule_line_ids.filtered(
            lambda ln: ln.kind == "deposit" and ln.state == "planned"
        )
        if deposit and order.company_id.billing_sync_post_deposit_on_confirm:
            deposit._billing_sync_bill_now()

    def _action_cancel(self):
        res = super()._action_cancel()
        for order in self:
            lines = order.billing_sync_schedule_line_ids
            planned = lines.filtered(lambda ln: ln.state == "planned")
            planned.sudo().write({"is_cancelled": True})
            billed = lines.filtered(lambda ln: ln.state in ("invoiced", "paid"))
            if billed:
                items = Markup("").join(
                    Markup("<li>%s: %s</li>") % (line.name, line.invoice_id.name) for line in billed
                )
                order.message_post(
                    body=Markup("%s<ul>%s</ul>") % (
                        self.env._(
                            "Proposal cancelled: %(count)s planned invoices cancelled. These "
                            "invoices were already issued and stay: issue credit notes if the "
                            "client must not pay them.",
                            count=len(planned),
                        ),
                        items,
                    ),
                    subtype_xmlid="mail.mt_note",
                )
            elif planned:
                order.message_post(
                    body=self.env._(
                        "Proposal cancelled: %s planned invoices cancelled.", len(planned)
                    )
                )
        return res

    def write(self, vals):
        with self._billing_sync_watch_terms():
            return super(SaleOrder, self.with_context(billing_sync_terms_watched=True)).write(vals)

    @contextmanager
    def _billing_sync_watch_terms(self):
        """Re-plan and log to the chatter whatever the enclosed code changes in
        the terms of accepted engagements (orders, their lines, milestones)."""
        if self.env.context.get("billing_sync_terms_watched"):
            yield
            return
        orders = self.filtered(lambda o: o.state == "sale" and o.billing_sync_engagement_type)
        before = {order.id: order._billing_sync_terms_snapshot() for order in orders}
        yield
        for order in orders.exists():
            order._billing_sync_after_terms_change(before[order.id])

    def _billing_sync_after_terms_change(self, before):
        self.ensure_one()
        if self.state != "sale":
            return
        after = self._billing_sync_terms_snapshot()
        changes = [(label, before.get(label, ""), value)
                   for label, value in after.items() if before.get(label, "") != value]
        if not changes:
            return
        order = self.with_context(billing_sync_terms_watched=True)
        try:
            created, updated, removed = order._billing_sync_replan()
        except planning.PlanningError as error:
            raise UserError(
                self.env._("These engagement terms cannot be billed: %s.", error)
            ) from error
        items = Markup("").join(
            Markup("<li>%s: %s → %s</li>") % (label, old or "—", new or "—")
            for label, old, new in changes
        )
        kept = self.billing_sync_schedule_line_ids.filtered(
            lambda ln: ln.state in ("invoiced", "paid")
        )
        summary = self.env._(
            "Billing schedule re-planned: %(created)s lines added, %(updated)s changed, "
            "%(removed)s removed; %(kept)s invoiced lines kept as they are.",
            created=len(created), updated=len(updated), removed=removed, kept=len(kept),
        )
        order.message_post(
            body=Markup("%s<ul>%s</ul>%s") % (
                self.env._("Engagement terms changed after acceptance:"), items, summary
            ),
        )

    def _billing_sync_terms_snapshot(self):
        """The engagement terms as ``{label: text}``, to show what changed."""
        self.ensure_one()
        snapshot = {}
        for name in TERMS_FIELDS:
            field = self._fields[name]
            snapshot[field.string] = self._billing_sync_format(field, self[name])
        money = self.currency_id
        recurring = self.order_line.filtered(lambda ln: ln._billing_sync_is_scheduled_recurring())
        fixed = self._billing_sync_fixed_fee_lines()
        snapshot[self.env._("Recurring lines")] = "; ".join(
            f"{line.name.splitlines()[0] if line.name else line.product_id.name} "
            f"{formatLang(self.env, line.price_total, currency_obj=money)}"
            for line in recurring
        )
        snapshot[self.env._("Fixed fees")] = formatLang(
            self.env, sum(fixed.mapped("price_total")), currency_obj=money
        )
        if self.billing_sync_engagement_type == "milestones":
            snapshot[self.env._("Milestones")] = "; ".join(
                f"{m.name} {formatLang(self.env, m.amount, currency_obj=money)}"
                + (f" {format_date(self.env, m.expected_date)}" if m.expected_date else "")
                for m in self.billing_sync_milestone_ids
            )
        return snapshot

    def _billing_sync_format(self, field, value):
        if field.type == "selection":
            return dict(field._description_selection(self.env)).get(value, "") if value else ""
        if field.type == "boolean":
            return self.env._("Yes") if value else self.env._("No")
        if field.type == "date":
            return format_date(self.env, value) if value else ""
        if field.type == "monetary":
            return formatLang(self.env, value, currency_obj=self.currency_id) if value else ""
        return str(value) if value else ""

    def _billing_sync_terms_document(self):
        """Scope, engagement terms and conditions, as accepted, in HTML."""
        self.ensure_one()
        terms = Markup("").join(
            Markup("<li>%s: %s</li>") % (label, value)
            for label, value in self._billing_sync_terms_snapshot().items()
            if value
        )
        accepted = self.env._("Accepted by %(who)s on %(when)s.",
                     who=self.signed_by or self.partner_id.name,
                     when=format_date(self.env, self._billing_sync_accepted_on()))
        return Markup(
            "<h4>%s</h4>%s<h4>%s</h4><ul>%s</ul><h4>%s</h4>%s<p>%s</p>"
        ) % (
            self.env._("Scope"), self.billing_sync_scope or "",
            self.env._("Engagement terms"), terms,
            self.env._("Terms and conditions"), self.note or "",
            accepted,
        )

    # ------------------------------------------------------------------
    # Planning
    # ------------------------------------------------------------------

    def _billing_sync_accepted_on(self):
        """Acceptance date: the signature's, else the confirmation's."""
        self.ensure_one()
        moment = self.signed_on or self.date_order or fields.Datetime.now()
        return fields.Date.context_today(self, moment)

    def _billing_sync_fixed_fee_lines(self):
        return self.order_line.filtered(
            lambda ln: not ln.display_type
            and not ln.is_downpayment
            and not ln._billing_sync_is_scheduled_recurring()
        )

    def _billing_sync_periods(self):
        self.ensure_one()
        return planning.plan_periods(
            self.billing_sync_start_date,
            self.billing_sync_interval or "monthly",
            end=self.billing_sync_end_date or None,
            count=None if self.billing_sync_end_date else (self.billing_sync_period_count or None),
            invoice_rule=self.billing_sync_invoice_rule or "period_start",
            invoice_day=self.billing_sync_invoice_day,
            prorate_first=self.billing_sync_prorate_first,
        )

    def _billing_sync_plan(self, billed=None):
        """The schedule the terms give, as a list of line values.

        ``billed`` are the lines already invoiced: their keys are not planned
        again, no period starting inside the days they cover is planned, and
        the final invoice deducts what they actually billed.

        :raises planning.PlanningError: the terms are incomplete
        """
        self.ensure_one()
        billed = billed if billed is not None else self.env["billing_sync.schedule.line"]
        kind = self.billing_sync_engagement_type
        if not kind:
            return []
        money = self.currency_id
        digits = money.decimal_places
        accepted = self._billing_sync_accepted_on()
        billed_by_key = {line.key: line for line in billed}
        plan = []

        deposit = 0.0
        if self.billing_sync_deposit_type == "percent":
            if not self.billing_sync_deposit_percent:
                raise planning.PlanningError(self.env._("the deposit percent is missing"))
            deposit = float(planning.percent_of(
                self.amount_total, self.billing_sync_deposit_percent, digits))
        elif self.billing_sync_deposit_type == "fixed":
            if money.compare_amounts(self.billing_sync_deposit_amount, 0) <= 0:
                raise planning.PlanningError(self.env._("the deposit amount is missing"))
            deposit = self.billing_sync_deposit_amount
        if "deposit" in billed_by_key:
            deposit = billed_by_key["deposit"].amount
        if deposit:
            plan.append({"key": "deposit", "kind": "deposit", "sequence": 1,
                         "name": self.env._("Deposit"), "date": accepted, "amount": deposit})

        last_period_date = None
        if kind == "retainer":
            recurring = self.order_line.filtered(
                lambda ln: ln._billing_sync_is_scheduled_recurring())
            if not recurring:
                raise planning.PlanningError(
                    self.env._("mark at least one order line as recurring")
                )
            periods = self._billing_sync_periods()
            last_period_date = periods[-1].invoice_date if periods else None
            covered = max(billed.filtered(lambda ln: ln.kind == "period").mapped("period_end"),
                          default=None)
            for period in planning.uncovered_periods(periods, covered):
                plan.append({
                    "key": period.key, "kind": "period", "sequence": 10,
                    "name": self.env._("Retainer %(start)s – %(end)s",
                              start=format_date(self.env, period.start),
                              end=format_date(self.env, period.end)),
                    "date": period.invoice_date,
                    "period_start": period.start, "period_end": period.end,
                    "period_days": period.days, "period_full_days": period.full_days,
                    "amount": self._billing_sync_period_amount(recurring, period),
                })

        milestone_amounts = []
        last_milestone_date = None
        if kind == "milestones":
            for milestone in self.billing_sync_milestone_ids:
                key = f"milestone:{milestone.id}"
                amount = billed_by_key[key].amount if key in billed_by_key else milestone.amount
                milestone_amounts.append(amount)
                when = milestone.reached_on or milestone.expected_date or accepted
                last_milestone_date = max(last_milestone_date or when, when)
                plan.append({"key": key, "kind": "milestone", "sequence": 20,
                             "name": self.env._("Milestone: %s", milestone.name),
                             "milestone_id": milestone.id, "date": when, "amount": amount})

        fixed_total = sum(self._billing_sync_fixed_fee_lines().mapped("price_total"))
        final = float(planning.final_amount(fixed_total, deposit, milestone_amounts, digits))
        if not money.is_zero(final):
            final_date = (self.billing_sync_final_date or last_period_date
                          or last_milestone_date or accepted)
            plan.append({"key": "final", "kind": "final", "sequence": 30,
                         "name": self.env._("Final invoice"), "date": final_date, "amount": final})
        return [vals for vals in plan if vals["key"] not in billed_by_key]

    def _billing_sync_period_amount(self, recurring, period):
        """What a period bills, taxes included, computed as the invoice will be."""
        total = 0.0
        for line in recurring:
            price = line.price_unit
            if period.is_partial:
                price = self.currency_id.round(price * period.days / period.full_days)
            price *= 1 - (line.discount or 0.0) / 100
            taxes = line.tax_id.compute_all(
                price, self.currency_id, line.product_uom_qty,
                product=line.product_id, partner=self.partner_shipping_id,
            )
            total += taxes["total_included"]
        return self.currency_id.round(total)

    def _billing_sync_replan(self):
        """Bring the planned lines in line with the terms; invoiced ones stay.

        :returns: (created lines, updated lines, number of removed lines)
        """
        self.ensure_one()
        Line = self.env["billing_sync.schedule.line"].sudo()
        live = self.billing_sync_schedule_line_ids.filtered(lambda ln: ln.state != "cancelled")
        billed = live.filtered(lambda ln: ln.state in ("invoiced", "paid"))
        planned = {line.key: line for line in live - billed}
        created = Line.browse()
        updated = Line.browse()
        for vals in self._billing_sync_plan(billed):
            line = planned.pop(vals["key"], None)
            if line is None:
                created |= Line.create({**vals, "order_id": self.id})
                continue
            changed = {name: value for name, value in vals.items()
                       if not line._billing_sync_same_value(name, value)}
            if changed:
                line.write(changed)
                updated |= line
        removed = len(planned)
        Line.browse([line.id for line in planned.values()]).unlink()
        return created, updated, removed

    # ------------------------------------------------------------------
    # Invoices
    # ------------------------------------------------------------------

    def _billing_sync_add_card_fee(self, invoice):
        """Add the card-processing fee line passed on to the client, if any."""
        self.ensure_one()
        percent = self.billing_sync_card_fee_percent
        if not percent or invoice.move_type != "out_invoice" or invoice.amount_total <= 0:
            return
        product = (self.company_id.billing_sync_card_fee_product_id
                   or self.env.ref("billing_sync.product_card_fee"))
        fee = self.currency_id.round(invoice.amount_total * percent / 100)
        invoice.write({"invoice_line_ids": [fields.Command.create({
            "product_id": product.id,
            "name": self.env._("Card processing fee (%s%%)", formatLang(self.env, percent)),
            "quantity": 1,
            "price_unit": fee,
            # the fee is what the card processor charges: passed on as is
            "tax_ids": [fields.Command.clear()],
        })]})

    # ------------------------------------------------------------------
    # Work-before-deposit guard
    # ------------------------------------------------------------------

    @api.model
    def _cron_billing_sync_deposit_reminders(self):
        """Ask the salesperson to chase a deposit still unpaid N days after acceptance."""
        today = fields.Date.context_today(self)
        orders = self.search([
            ("state", "=", "sale"),
            ("billing_sync_engagement_type", "!=", False),
            ("billing_sync_work_before_deposit", "=", False),
            ("billing_sync_deposit_reminded_on", "=", False),
            ("billing_sync_schedule_line_ids.kind", "=", "deposit"),
        ])
        summary = self.env._("Deposit unpaid: work may not start")
        reminded = self.browse()
        for order in orders:
            if order.billing_sync_deposit_state not in ("planned", "invoiced"):
                continue
            days = order.company_id.billing_sync_deposit_reminder_days
            if order._billing_sync_accepted_on() + timedelta(days=days) > today:
                continue
            if not order.activity_ids.filtered(lambda a, s=summary: a.summary == s):
                order.activity_schedule(
                    "mail.mail_activity_data_todo",
                    summary=summary,
                    note=self.env._("The deposit of %(order)s is still unpaid %(days)s days after "
                           "acceptance, and work may not start before it is paid.",
                           order=order.name, days=days),
                    user_id=order.user_id.id or self.env.ref("base.user_admin").id,
                )
            reminded |= order
        reminded.with_context(billing_sync_terms_watched=True).write(
            {"billing_sync_deposit_reminded_on": today})
        return reminded
