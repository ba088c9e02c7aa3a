import datetime

from odoo import fields, models, tools
from odoo.exceptions import AccessError

from ..services.ledger import PROVIDERS
from ..services.ledger.errors import ERROR_CLASSES
from .billing_sync_connection import STATES
from .billing_sync_job import _pacer


class BillingSyncDashboard(models.Model):
    """How each ledger connection is doing, one row per active connection: a database
    view every Billing Sync user reads for the companies they work in (a connection's own
    form is for Administrators). Nothing here is written."""

    _name = "billing_sync.dashboard"
    _description = "Ledger sync dashboard"
    _auto = False
    _order = "company_id, id"
    _rec_name = "connection_name"

    connection_name = fields.Char(string="Ledger", readonly=True)
    provider = fields.Selection(PROVIDERS, readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    state = fields.Selection(STATES, readonly=True)
    last_push_at = fields.Datetime(string="Last successful push", readonly=True)
    last_pull_at = fields.Datetime(string="Last pull", readonly=True)
    backlog = fields.Integer(string="Changes to send", readonly=True)
    oldest_pending_at = fields.Datetime(string="Oldest waiting since", readonly=True)
    inbox_backlog = fields.Integer(string="Ledger changes to apply", readonly=True)
    to_fix = fields.Integer(string="Needs a fix", readonly=True,
                            help="Changes stopped for a person (blocked or given up).")
    failures_24h = fields.Integer(string="Failures (24 h)", readonly=True,
                                  help="Changes that met a problem in the last 24 hours.")
    open_alerts = fields.Integer(string="Open alerts", readonly=True)
    mismatches = fields.Integer(string="Ledger differs", readonly=True,
                                help="Documents whose ledger figures differ from Odoo's.")
    failures_by_class = fields.Char(
        string="Failures by class (24 h)", compute="_compute_failures_by_class",
        help="The failures of the last 24 hours (sync jobs and changes from the ledger), "
             "by error class.")
    # what is left of the ledger's rate limits now (the budget every worker shares)
    calls_left_minute = fields.Integer(
        string="Calls left this minute", compute="_compute_headroom",
        help="Of the ledger's per-minute limit for this organisation, as every Odoo worker "
             "and the ledger's own headers count it.")
    calls_left_day = fields.Integer(string="Calls left today", compute="_compute_headroom")
    rate_headroom = fields.Char(string="Rate-limit headroom", compute="_compute_headroom")

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute("""
            CREATE VIEW billing_sync_dashboard AS
            SELECT c.id, c.name AS connection_name, c.provider, c.company_id, c.state,
                   c.pulled_at AS last_pull_at,
                   (SELECT max(j.done_at) FROM billing_sync_job j
                     WHERE j.connection_id = c.id AND j.state = 'done') AS last_push_at,
                   (SELECT count(*) FROM billing_sync_job j
                     WHERE j.connection_id = c.id AND j.state IN ('pending', 'started'))
                       AS backlog,
                   (SELECT min(j.create_date) FROM billing_sync_job j
                     WHERE j.connection_id = c.id AND j.state IN ('pending', 'started'))
                       AS oldest_pending_at,
                   (SELECT count(*) FROM billing_sync_inbox i
                     WHERE i.connection_id = c.id AND i.state = 'pending') AS inbox_backlog,
                   (SELECT count(*) FROM billing_sync_job j
                     WHERE j.connection_id = c.id AND j.state IN ('blocked', 'dead'))
                       AS to_fix,
                   (SELECT count(*) FROM billing_sync_job j
                     WHERE j.connection_id = c.id AND j.error_class IS NOT NULL
                       AND j.state != 'cancelled'
                       AND j.write_date > (now() AT TIME ZONE 'UTC') - interval '24 hours')
                       + (SELECT count(*) FROM billing_sync_inbox i
                           WHERE i.connection_id = c.id AND i.error_class IS NOT NULL
                             AND i.write_date > (now() AT TIME ZONE 'UTC')
                                                - interval '24 hours') AS failures_24h,
                   (SELECT count(*) FROM billing_sync_alert a
                     WHERE a.connection_id = c.id AND a.state = 'open') AS open_alerts,
                   (SELECT count(*) FROM billing_sync_link l
                     WHERE l.connection_id = c.id AND l.active AND l.sync_state = 'mismatch')
                       AS mismatches
              FROM billing_sync_connection c
             WHERE c.active
        """)

    def _compute_failures_by_class(self):
        """As failures_24h counts them, by error class ("Mapping 3, Network 1")."""
        since = fields.Datetime.now() - datetime.timedelta(hours=24)
        counts = {}
        for model, extra in (("billing_sync.job", [("state", "!=", "cancelled")]),
                             ("billing_sync.inbox", [])):
            for connection, error_class, count in self.env[model].sudo()._read_group(
                    [("connection_id", "in", self.ids), ("error_class", "!=", False),
                     ("write_date", ">", since), *extra],
                    ["connection_id", "error_class"], ["__count"]):
                key = (connection.id, error_class)
                counts[key] = counts.get(key, 0) + count
        labels = dict(ERROR_CLASSES)
        for row in self:
            mine = sorted(((count, labels.get(cls, cls)) for (cid, cls), count in counts.items()
                           if cid == row.id), reverse=True)
            row.failures_by_class = ", ".join(f"{label} {count}" for count, label in mine)

    def _compute_headroom(self):
        """Read from the shared rate-limit budget, for the connections the user sees."""
        connections = self.env["billing_sync.connection"].sudo().browse(self.ids)
        for row, connection in zip(self, connections, strict=True):
            limits = connection._adapter_class().LIMITS
            left = _pacer(connection).headroom() if connection.org_id else {
                "minute": limits.get("per_minute"), "day": limits.get("per_day"),
                "batch": limits.get("batch_per_minute"), "blocked": 0.0}
            row.calls_left_minute = left["minute"] or 0
            row.calls_left_day = left["day"] or 0
            parts = [self.env._("%(left)s of %(limit)s calls left this minute",
                                left=left["minute"], limit=limits["per_minute"])]
            if limits.get("per_day"):
                parts.append(self.env._("%(left)s of %(limit)s today", left=left["day"],
                                        limit=limits["per_day"]))
            if limits.get("batch_per_minute"):
                parts.append(self.env._("%(left)s of %(limit)s batches", left=left["batch"],
                                        limit=limits["batch_per_minute"]))
            if left["blocked"]:
                parts.insert(0, self.env._("paused by the ledger for %s s",
                                           round(left["blocked"])))
            row.rate_headroom = ", ".join(parts)

    def action_open_to_fix(self):
        """This ledger's customer invoices and credit notes that need a fix, in the
        invoices' own list with its "Needs a fix" filter set (a person may widen the
        search from there, and retry from the list or the invoice). The card offers it
        to those who read invoices; anyone else is told why, not shown an error page."""
        self.ensure_one()
        if not self.env["account.move"].has_access("read"):
            raise AccessError(self.env._(
                "Opening the invoices that need a fix takes rights on invoices "
                "(Invoicing)."))
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "account.action_move_out_invoice_type")
        action.update({
            "name": self.env._("Invoices that need a fix"),
            "domain": [("move_type", "in", ("out_invoice", "out_refund")),
                       ("company_id", "=", self.company_id.id)],
            "context": {"default_move_type": "out_invoice",
                        "search_default_billing_sync_error": 1},
        })
        return action
