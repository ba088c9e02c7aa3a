import json

from odoo import api, fields, models

from ..services.webhooks import CHANGES, EVENT_KINDS

KIND_LABELS = {"contact": "Contact", "invoice": "Invoice", "credit_note": "Credit note",
               "payment": "Payment"}


class BillingSyncInbox(models.Model):
    """One change a ledger announced (a webhook event, or what a pull found): a hint of
    what to read back from the ledger, never the new state itself.

    A row is written the moment a signed delivery arrives, before the provider gets its
    answer, and only then: the answer never waits for anything else. The event's id is
    unique per connection, so a delivery received twice (a provider's retry, a replayed
    request) adds nothing. Rows are written by the engine only (no group may create,
    change or delete them); Managers read them."""

    _name = "billing_sync.inbox"
    _description = "Ledger change received"
    _order = "id desc"
    _rec_name = "ledger_id"

    connection_id = fields.Many2one("billing_sync.connection", required=True, index=True,
                                    ondelete="cascade", readonly=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True, index=True)
    provider = fields.Selection(related="connection_id.provider")
    kind = fields.Selection([(k, KIND_LABELS[k]) for k in EVENT_KINDS], required=True,
                            readonly=True)
    ledger_id = fields.Char(string="Ledger ID", required=True, readonly=True)
    change = fields.Selection([(c, c.capitalize()) for c in CHANGES], required=True,
                              readonly=True)
    event_id = fields.Char(string="Event ID", required=True, readonly=True,
                           help="The provider's id of the event (or a digest of it where the "
                                "provider sends none): the same event is kept once.")
    occurred_at = fields.Char(string="Changed at (ledger)", readonly=True,
                              help="When the ledger says the change happened, as it wrote it.")
    received_at = fields.Datetime(required=True, readonly=True, default=fields.Datetime.now)
    source = fields.Selection([("webhook", "Webhook"), ("pull", "Pull")], required=True,
                              default="webhook", readonly=True)
    state = fields.Selection([("pending", "To read"), ("done", "Applied"),
                              ("failed", "Failed")], default="pending", required=True,
                             readonly=True, index=True)

    _sql_constraints = [
        ("event_uniq", "unique(connection_id, event_id)",
         "A ledger event is kept once per connection."),
    ]

    @api.model
    def _receive(self, connections, events, source="webhook"):
        """Keep ``events`` (WebhookEvents) of the organisations of ``connections`` (the
        ones the delivery's signature was checked for), each once. Returns (kept,
        repeated, unknown): rows written, events already kept, events of an organisation
        none of ``connections`` is connected to (left out)."""
        by_org = {c.org_id: c for c in connections if c.org_id}
        rows = [(by_org[e.org_id].id, e) for e in events if e.org_id in by_org]
        unknown = len(events) - len(rows)
        if not rows:
            return 0, 0, unknown
        self.env.cr.execute("""
            INSERT INTO billing_sync_inbox (connection_id, company_id, kind, ledger_id, change,
                                            event_id, occurred_at, received_at, source, state,
                                            create_uid, write_uid, create_date, write_date)
            SELECT v.connection_id, c.company_id, v.kind, v.ledger_id, v.change, v.event_id,
                   v.occurred_at, now() AT TIME ZONE 'UTC', %s, 'pending', %s, %s,
                   now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
              FROM jsonb_to_recordset(%s::jsonb) AS v(connection_id int, kind varchar,
                   ledger_id varchar, change varchar, event_id varchar, occurred_at varchar)
              JOIN billing_sync_connection c ON c.id = v.connection_id
            ON CONFLICT (connection_id, event_id) DO NOTHING
            RETURNING id
        """, [source, self.env.uid, self.env.uid, json.dumps([{
            "connection_id": cid, "kind": e.kind, "ledger_id": e.ledger_id,
            "change": e.change, "event_id": e.event_id, "occurred_at": e.occurred_at}
            for cid, e in rows])])
        kept = len(self.env.cr.fetchall())
        return kept, len(rows) - kept, unknown

