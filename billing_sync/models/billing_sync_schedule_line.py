import logging
import threading

from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Command
from odoo.tools import html2plaintext

_logger = logging.getLogger(__name__)

KINDS = [
    ("deposit", "Deposit"),
    ("period", "Retainer period"),
    ("milestone", "Milestone"),
    ("final", "Final invoice"),
]
STATES = [
    ("planned", "Planned"),
    ("invoiced", "Invoiced"),
    ("paid", "Paid"),
    ("cancelled", "Cancelled"),
]
PAID_STATES = ("paid", "in_payment")
# SQL of the lines the daily run may bill today. A milestone waits until it is
# reached; the final invoice waits until the deposit and the milestones it
# deducts are invoiced (or cancelled), because Odoo deducts only the down
# payments that exist when it is created.
_DUE_SQL = """
    SELECT line.id
      FROM billing_sync_schedule_line line
      JOIN sale_order so ON so.id = line.order_id
     WHERE line.state = 'planned'
       AND line.invoice_id IS NULL
       AND line.date <= %(today)s
       AND so.state = 'sale'
       AND NOT (line.id = ANY(%(skip)s))
       AND (line.kind != 'milestone' OR EXISTS (
                SELECT 1 FROM billing_sync_milestone m
                 WHERE m.id = line.milestone_id AND m.reached))
       AND (line.kind != 'final' OR NOT EXISTS (
                SELECT 1 FROM billing_sync_schedule_line other
                 WHERE other.order_id = line.order_id
                   AND other.kind IN ('deposit', 'milestone')
                   AND other.state = 'planned'))
  ORDER BY line.date, line.id
"""


class BillingSyncScheduleLine(models.Model):
    _name = "billing_sync.schedule.line"
    _description = "Billing schedule line"
    _order = "order_id, date, sequence, id"
    _rec_names_search = ["name", "order_id"]

    order_id = fields.Many2one(
        "sale.order", string="Proposal", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(related="order_id.company_id", store=True, index=True)
    currency_id = fields.Many2one(related="order_id.currency_id")
    partner_id = fields.Many2one(related="order_id.partner_id", string="Client")
    user_id = fields.Many2one(related="order_id.user_id", string="Salesperson")
    sequence = fields.Integer(default=10)
    kind = fields.Selection(KINDS, required=True, readonly=True)
    # identity of the line inside its schedule ("deposit", "period:2028-02-01",
    # "milestone:7", "final"), so that re-planning updates rather than duplicates
    key = fields.Char(required=True, readonly=True)
    name = fields.Char(string="Description", required=True)
    date = fields.Date(string="Invoice date", required=True, index=True)
    period_start = fields.Date(readonly=True)
    period_end = fields.Date(readonly=True)
    period_days = fields.Integer(readonly=True)
    period_full_days = fields.Integer(readonly=True)
    milestone_id = fields.Many2one("billing_sync.milestone", ondelete="set null", readonly=True)
    amount = fields.Monetary(
        string="Planned amount",
        help="Planned amount, taxes included, before any card-processing fee.",
    )
    is_cancelled = fields.Boolean(readonly=True, copy=False)
    invoice_id = fields.Many2one(
        "account.move", string="Invoice", readonly=True, copy=False, index="btree_not_null"
    )
    invoice_amount_total = fields.Monetary(
        related="invoice_id.amount_total", string="Invoiced amount"
    )
    invoice_payment_state = fields.Selection(
        related="invoice_id.payment_state", string="Payment"
    )
    state = fields.Selection(
        STATES, compute="_compute_state", store=True, index=True, readonly=True
    )
    last_error = fields.Text(readonly=True, copy=False)

    _sql_constraints = [
        ("invoice_unique", "UNIQUE(invoice_id)", "An invoice bills one schedule line only."),
    ]

    def init(self):
        # one live line per key and order: re-planning replaces, never adds
        self.env.cr.execute(
            """
            CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_schedule_line_live_key
                ON billing_sync_schedule_line (order_id, key)
             WHERE state != 'cancelled'
            """
        )

    @api.depends("is_cancelled", "invoice_id", "invoice_id.state", "invoice_id.payment_state")
    def _compute_state(self):
        for line in self:
            invoice = line.invoice_id
            if line.is_cancelled or (invoice and invoice.state == "cancel"):
                line.state = "cancelled"
            elif not invoice:
                line.state = "planned"
            elif invoice.payment_state in PAID_STATES:
                line.state = "paid"
            else:
                line.state = "invoiced"

    def _billing_sync_same_value(self, name, value):
        current = self[name]
        if self._fields[name].type == "many2one":
            return current.id == (value or False)
        if self._fields[name].type == "monetary":
            return self.currency_id.compare_amounts(current, value) == 0
        return current == value

    @api.depends("name", "order_id.name")
    def _compute_display_name(self):
        for line in self:
            line.display_name = f"{line.order_id.name} · {line.name}"

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------

    def action_bill_now(self):
        """Bill a due line at once rather than waiting for the daily run."""
        self.check_access("write")  # billing writes the line (as superuser): not read-only roles
        for line in self:
            if line.kind == "milestone" and not line.milestone_id.reached:
                raise UserError(self.env._("Mark the milestone reached: that bills it."))
            line._billing_sync_bill_now()
        return True

    def action_plan_again(self):
        """Put back in the plan a line cancelled by hand or whose invoice was cancelled."""
        for line in self:
            if line.state != "cancelled" or line.order_id.state != "sale":
                raise UserError(
                    self.env._(
                        "Only a cancelled line of a confirmed proposal can be planned again."
                    )
                )
            line.write({"is_cancelled": False, "invoice_id": False, "last_error": False})
        return True

    def action_open_invoice(self):
        self.ensure_one()
        return self.order_id.action_view_invoice(invoices=self.invoice_id)

    # ------------------------------------------------------------------
    # Billing
    # ------------------------------------------------------------------

    def _billing_sync_bill_now(self):
        """Bill this planned line in the current transaction, after locking it.

        Used on acceptance (deposit) and when a milestone is reached; the daily
        run claims lines itself (see :meth:`_cron_bill_due`).
        """
        self.ensure_one()
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT id FROM billing_sync_schedule_line WHERE id = %s FOR UPDATE SKIP LOCKED",
            [self.id],
        )
        if not self.env.cr.fetchone():
            raise UserError(
                self.env._("%s is being billed by another process right now.", self.display_name)
            )
        self.invalidate_recordset()
        if self.state != "planned" or self.invoice_id:
            return self.invoice_id
        return self._billing_sync_create_invoice()

    def _billing_sync_create_invoice(self):
        """Create and post the invoice of this line (which the caller has locked)."""
        self.ensure_one()
        order = self.order_id.with_company(self.company_id)
        if self.kind in ("deposit", "milestone"):
            invoice = self._billing_sync_down_payment_invoice(order)
        elif self.kind == "period":
            invoice = self._billing_sync_period_invoice(order)
        else:
            invoice = self._billing_sync_final_invoice(order)
        invoice = invoice.sudo()
        invoice.write({
            "billing_sync_schedule_line_id": self.id,
            "invoice_date": self.date,
        })
        order._billing_sync_add_card_fee(invoice)
        self.sudo().write({"invoice_id": invoice.id, "last_error": False})
        # the regular posting, so that every hook on account.move (the ledger
        # sync included) sees these invoices as any other
        invoice.action_post()
        return invoice

    def _billing_sync_down_payment_invoice(self, order):
        # Odoo's own down payment: a down-payment line on the order, deducted
        # by the final invoice as Odoo always does
        wizard = self.env["sale.advance.payment.inv"].sudo().with_context(
            active_model="sale.order", active_ids=order.ids
        ).create({
            "advance_payment_method": "fixed",
            "fixed_amount": self.amount,
            "sale_order_ids": [Command.set(order.ids)],
        })
        invoice = wizard._create_invoices(order.sudo())
        label = self._billing_sync_invoice_label()
        dp_lines = invoice.invoice_line_ids.filtered(lambda ln: ln.display_type == "product")
        dp_lines.write({"name": label})
        dp_lines.sale_line_ids.write({"name": label})
        return invoice

    def _billing_sync_period_invoice(self, order):
        lines = order.order_line.filtered(
            lambda ln: ln.billing_sync_recurring and not ln.display_type and not ln.is_downpayment
        )
        if not lines:
            raise UserError(self.env._("The retainer has no order line marked recurring."))
        vals = order._prepare_invoice()
        label = self._billing_sync_invoice_label()
        for line in lines:
            price_unit = line.price_unit
            if self.period_days != self.period_full_days:
                price_unit = order.currency_id.round(
                    price_unit * self.period_days / self.period_full_days
                )
            vals["invoice_line_ids"].append(Command.create(line._prepare_invoice_line(
                name=f"{line.name}\n{label}",
                quantity=line.product_uom_qty,
                price_unit=price_unit,
            )))
        return self.env["account.move"].sudo().with_context(
            default_move_type="out_invoice"
        ).create(vals)

    def _billing_sync_final_invoice(self, order):
        invoice = order.sudo().with_context(raise_if_nothing_to_invoice=False)._create_invoices(
            final=True
        )
        if not invoice:
            raise UserError(self.env._("Nothing is left to invoice on %s.", order.name))
        return invoice

    def _billing_sync_invoice_label(self):
        self.ensure_one()
        if self.kind == "period":
            start = self.period_start.strftime("%d %b %Y")
            end = self.period_end.strftime("%d %b %Y")
            text = self.env._("Period %(start)s to %(end)s", start=start, end=end)
            if self.period_days != self.period_full_days:
                text += self.env._(" (prorated: %(days)s of %(full)s days)",
                          days=self.period_days, full=self.period_full_days)
            return text
        return self.name

    # ------------------------------------------------------------------
    # The daily run
    # ------------------------------------------------------------------

    @api.model
    def _cron_bill_due(self, limit=None):
        """Create and post the invoices of every planned line that is due.

        Lines are claimed one at a time with ``FOR UPDATE SKIP LOCKED``, so
        that two workers never bill the same line, and each line is committed
        on its own, so that a crash loses at most the line in progress (and the
        unique index on account_move refuses a second live invoice in any
        case). Everything due on or before today is billed: periods missed
        while the scheduler did not run are caught up, each with its own date.
        A line that fails is reported on its proposal and retried next run.
        """
        auto_commit = not getattr(threading.current_thread(), "testing", False)
        today = fields.Date.context_today(self)
        cr = self.env.cr
        skip = []
        done = 0
        while limit is None or done < limit:
            # the claim is plain SQL: pending ORM writes must reach the table first
            self.env.flush_all()
            try:
                cr.execute(_DUE_SQL + " LIMIT 1 FOR UPDATE OF line SKIP LOCKED",
                           {"today": today, "skip": skip})
                row = cr.fetchone()
            except pg_errors.SerializationFailure:
                # another worker billed a line after this transaction's
                # snapshot was taken: start afresh and look again
                if not auto_commit:
                    raise
                cr.rollback()
                continue
            if not row:
                break
            line = self.browse(row[0])
            line.invalidate_recordset()
            skip.append(line.id)
            try:
                with cr.savepoint():
                    line._billing_sync_create_invoice()
            except Exception as error:  # noqa: BLE001 - one bad line must not stop the run
                self.env.invalidate_all()
                _logger.warning("billing_sync: could not bill %s: %s", line.display_name, error)
                line._billing_sync_report_failure(error)
            done += 1
            if auto_commit:
                self.env["ir.cron"]._notify_progress(done=done, remaining=self._due_count(today))
                # one line, one transaction: what is billed stays billed if the
                # worker dies on the next line (Odoo's own crons do the same)
                cr.commit()  # pylint: disable=invalid-commit
        if limit is not None and done >= limit and self._due_count(today, skip):
            self.env["ir.cron"]._notify_progress(done=done, remaining=self._due_count(today, skip))
        return done

    def _due_count(self, today, skip=()):
        self.env.flush_all()
        self.env.cr.execute(
            f"SELECT count(*) FROM ({_DUE_SQL}) due",  # noqa: S608 - constant SQL
            {"today": today, "skip": list(skip)},
        )
        return self.env.cr.fetchone()[0]

    def _billing_sync_report_failure(self, error):
        """Say on the proposal why this line was not billed, and ask its salesperson."""
        self.ensure_one()
        message = str(error.args[0]) if getattr(error, "args", None) else str(error)
        message = html2plaintext(message) if "<" in message else message
        first_failure = not self.last_error
        self.sudo().last_error = message
        order = self.order_id.sudo()
        order.message_post(
            body=self.env._(
                "%(line)s could not be billed: %(error)s. It will be tried again on the next run.",
                line=self.name,
                error=message,
            ),
        )
        summary = self.env._("Billing failed: %s", self.name)
        if first_failure and not order.activity_ids.filtered(lambda a: a.summary == summary):
            order.activity_schedule(
                "mail.mail_activity_data_warning",
                summary=summary,
                note=message,
                user_id=order.user_id.id or self.env.ref("base.user_admin").id,
            )
