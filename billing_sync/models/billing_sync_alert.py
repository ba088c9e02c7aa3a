import datetime

from markupsafe import Markup

from odoo import api, fields, models

from ..services.hints import hint_of
from ..services.ledger.errors import ERROR_CLASSES

# what an alert can be about: a class of ledger error, or changes waiting too long
ALERT_CLASSES = [*ERROR_CLASSES, ("backlog", "Backlog")]
# minutes the oldest change may wait before its connection alerts (setting's default)
BACKLOG_MINUTES = 60
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
    error_class = fields.Selection(ALERT_CLASSES, required=True, readonly=True)
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
    # the changes already told (at once for the first, then in a digest): a digest tells
    # only what came since
    told_count = fields.Integer(readonly=True)
    digested_at = fields.Datetime(string="Last digest", readonly=True)

    def init(self):
        # one open alert per connection and class
        self.env.cr.execute("""
            CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_alert_open_uniq
                ON billing_sync_alert (connection_id, error_class) WHERE state = 'open'
        """)

    @api.model
    def _raise(self, connection, error_class, message, hint=None, activity=None,
               count=True):
        """A change of ``connection`` was stopped by a problem of ``error_class``
        (``message`` says it, ``hint`` what to do: the class's own by default). The first
        one opens the alert and tells the connection's responsible at once (an activity:
        Odoo's notification and e-mail; ``activity``: the one already scheduled for it);
        the next ones only count (``count``: False for a standing condition, which only
        updates its message) and go into the digest (_cron_digest)."""
        now = fields.Datetime.now()
        alert = self.search([("connection_id", "=", connection.id),
                             ("error_class", "=", error_class), ("state", "=", "open")],
                            limit=1)
        if alert:
            alert.write({"count": alert.count + (1 if count else 0), "last_at": now,
                         "last_message": message})
            return alert
        labels = dict(ALERT_CLASSES)
        hint = hint or hint_of(error_class)
        alert = self.create({"connection_id": connection.id, "error_class": error_class,
                             "count": 1, "told_count": 1, "first_at": now, "last_at": now,
                             "last_message": message, "hint": hint})
        responsible = self._responsible(connection)
        if activity:
            alert.activity_id = activity
        elif responsible:
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
        # a reconnect clears its own (the jobs it held wait with its class until they go)
        cleared = open_alerts.filtered(
            lambda a: a.connection_id.state == "connected" if a.error_class == "authentication"
            else a.error_class != "backlog"
            and (a.connection_id.id, a.error_class) not in stuck)
        cleared._close()

    def _close(self):
        """These alerts' cause cleared: closed, their activity marked done."""
        self.write({"state": "closed", "closed_at": fields.Datetime.now()})
        for alert in self.filtered("activity_id"):
            alert.activity_id.action_feedback(feedback=self.env._("Cleared: nothing is "
                                                                  "stopped by it any more."))

    @api.model
    def _responsible(self, connection):
        """Who is told of ``connection``'s problems: the administrator who connected it,
        else its first administrator."""
        admins = connection._admin_users()
        return connection.connected_by_id if connection.connected_by_id in admins \
            else admins[:1]

    # ------------------------------------------------------------------ watching
    @api.model
    def _cron_watch(self):
        """Alert on what no failure reports: a connection whose oldest change has waited
        longer than the setting (minutes) to reach its ledger; close that alert once the
        queue moves, and those of connections connected again."""
        minutes = int(self.env["ir.config_parameter"].sudo().get_param(
            "billing_sync.backlog_alert_minutes", BACKLOG_MINUTES) or 0)
        connections = self.env["billing_sync.connection"].sudo().search(
            [("state", "in", ("connected", "needs_reconnect"))])
        if minutes > 0:
            since = fields.Datetime.now() - datetime.timedelta(minutes=minutes)
            late = {connection.id: oldest for connection, oldest in
                    self.env["billing_sync.job"].sudo()._read_group(
                        [("connection_id", "in", connections.ids),
                         ("state", "in", ("pending", "started")), ("create_date", "<", since)],
                        ["connection_id"], ["create_date:min"])}
            for connection in connections.filtered(lambda c: c.id in late):
                self._raise(connection, "backlog", self.env._(
                    "Changes have waited to reach %(ledger)s since %(since)s (more than "
                    "%(minutes)s minutes).", ledger=connection.name,
                    since=fields.Datetime.to_string(late[connection.id]), minutes=minutes),
                    count=False)
            self.search([("error_class", "=", "backlog"), ("state", "=", "open"),
                         ("connection_id", "not in", list(late))])._close()
        self._settle(connections)

    @api.model
    def _cron_digest(self):
        """One e-mail per responsible administrator with what their alerts stopped since
        they were last told (the first change of each was told at once): a hundred stopped
        invoices make one line, not a hundred mails."""
        since = fields.Datetime.now() - datetime.timedelta(days=1)
        alerts = self.search(["|", ("state", "=", "open"), ("closed_at", ">=", since)]) \
            .filtered(lambda a: a.count > a.told_count)
        by_user = {}
        for alert in alerts:
            user = self._responsible(alert.connection_id)
            if user and user.partner_id.email:
                by_user.setdefault(user, self.browse())
                by_user[user] |= alert
        labels = dict(ALERT_CLASSES)
        for user, told in by_user.items():
            states = dict(self._fields["state"]._description_selection(self.env))
            lines = Markup("").join(Markup("<li>%s</li>") % self.env._(
                "%(ledger)s: %(problem)s, %(new)s more since the last notice (%(total)s in "
                "all, %(state)s). %(message)s", ledger=alert.connection_id.name,
                problem=labels[alert.error_class], new=alert.count - alert.told_count,
                total=alert.count, state=states[alert.state],
                message=alert.last_message or "") for alert in told)
            self.env["mail.mail"].sudo().create({
                "subject": self.env._("Billing Sync: %s ledger problem(s) continue", len(told)),
                "recipient_ids": [fields.Command.link(user.partner_id.id)],
                "body_html": Markup("<p>%s</p><ul>%s</ul><p>%s</p>") % (
                    self.env._("What stopped changes to your ledgers since the last notice:"),
                    lines, self.env._("Billing Sync › Alerts lists them; Sync jobs, grouped "
                                      "by error class, lists every change they stop.")),
                "auto_delete": True,
            })
        now = fields.Datetime.now()
        for alert in alerts:
            alert.write({"told_count": alert.count, "digested_at": now})
        return len(by_user)
