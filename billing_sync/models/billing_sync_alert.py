from odoo import api, fields, models

from ..services.hints import hint_of
from ..services.ledger.errors import ERROR_CLASSES

# the job states in which a problem it met still stands (a retried job keeps its class
# until it is done)
UNSETTLED = ("pending", "started", "blocked", "dead")


class BillingSyncAlert(models.Model):
    """One kind of problem (an error class) stopping a connection's changes: raised by the
    first job it stops, counted for the next ones (one alert and one activity for a
    hundred invoices, not a hundred), closed by itself when no job of that class is stuck
    any more. Written by the engine only; Managers of the company read them."""

    _name = "billing_sync.alert"
    _description = "Ledger sync alert"
    _order = "state desc, last_at desc, id desc"
    _rec_name = "error_class"

    connection_id = fields.Many2one("billing_sync.connection", required=True, index=True,
                                    ondelete="cascade", readonly=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True, index=True)
    error_class = fields.Selection(ERROR_CLASSES, required=True, readonly=True)
    state = fields.Selection([("open", "Open"), ("closed", "Closed")], default="open",
                             required=True, readonly=True, index=True)
    count = fields.Integer(string="Stopped", readonly=True,
                           help="Changes this problem stopped while the alert was open.")
    first_at = fields.Datetime(string="First", readonly=True)
    last_at = fields.Datetime(string="Latest", readonly=True)
    closed_at = fields.Datetime(string="Cleared", readonly=True)
    last_message = fields.Text(string="Latest message", readonly=True)
    hint = fields.Text(readonly=True)
    activity_id = fields.Many2one("mail.activity", readonly=True, ondelete="set null")

    def init(self):
        # one open alert per connection and class
        self.env.cr.execute("""
            CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_alert_open_uniq
                ON billing_sync_alert (connection_id, error_class) WHERE state = 'open'
        """)

    @api.model
    def _raise(self, connection, error_class, message, hint=None):
        """A change of ``connection`` was stopped by a problem of ``error_class``
        (``message`` says it, ``hint`` what to do: the class's own by default). The first
        one opens the alert and tells the connection's responsible at once (an activity:
        Odoo's notification and e-mail); the next ones only count."""
        now = fields.Datetime.now()
        alert = self.search([("connection_id", "=", connection.id),
                             ("error_class", "=", error_class), ("state", "=", "open")],
                            limit=1)
        if alert:
            alert.write({"count": alert.count + 1, "last_at": now, "last_message": message})
            return alert
        labels = dict(ERROR_CLASSES)
        hint = hint or hint_of(error_class)
        alert = self.create({"connection_id": connection.id, "error_class": error_class,
                             "count": 1, "first_at": now, "last_at": now,
                             "last_message": message, "hint": hint})
        admins = connection._admin_users()
        responsible = (connection.connected_by_id if connection.connected_by_id in admins
                       else admins[:1])
        if responsible:
            alert.activity_id = connection.activity_schedule(
                "mail.mail_activity_data_warning", user_id=responsible.id,
                summary=self.env._("%(ledger)s: %(problem)s stops changes",
                                   ledger=connection.name, problem=labels[error_class]),
                note=self.env._("%(message)s %(hint)s (Billing Sync › Sync jobs, grouped by "
                                "error class, lists every change it stops.)",
                                message=message, hint=hint))
        return alert

    @api.model
    def _settle(self, connections):
        """Close the open alerts of ``connections`` whose class stops no job any more: the
        cause cleared (fixed and sent, or cancelled); their activity is marked done."""
        open_alerts = self.search([("connection_id", "in", connections.ids),
                                   ("state", "=", "open")])
        if not open_alerts:
            return
        stuck = {(group["connection_id"][0], group["error_class"])
                 for group in self.env["billing_sync.job"].read_group(
                     [("connection_id", "in", connections.ids), ("state", "in", UNSETTLED),
                      ("error_class", "!=", False)],
                     ["connection_id", "error_class"], ["connection_id", "error_class"],
                     lazy=False)}
        cleared = open_alerts.filtered(
            lambda a: (a.connection_id.id, a.error_class) not in stuck)
        cleared.write({"state": "closed", "closed_at": fields.Datetime.now()})
        for alert in cleared.filtered("activity_id"):
            alert.activity_id.action_feedback(feedback=self.env._("Cleared: nothing is "
                                                                  "stopped by it any more."))
