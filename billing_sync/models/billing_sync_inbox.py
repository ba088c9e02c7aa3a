import datetime
import functools
import json
import logging
import time

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..services import backoff
from ..services.ledger.errors import AuthorizationRevoked, LedgerError, RateLimited
from ..services.ratelimit import BudgetExhausted, paced
from ..services.webhooks import CHANGES, EVENT_KINDS, WebhookEvent, digest_id
from .billing_sync_job import _notify_cron_threads_at, _pacer

_logger = logging.getLogger(__name__)

# the kinds the worker applies so far; the others wait in the inbox
APPLIED_KINDS = ("contact", "invoice", "credit_note", "payment")
# how each kind is read back from the ledger (LedgerAdapter)
READERS = {"contact": "read_contacts", "invoice": "read_invoices",
           "credit_note": "read_credit_notes", "payment": "read_payments"}

# objects read back in one go (one request for Xero, QuickBooks, up to 50 ids)
READ_MAX = 50
# seconds of one cron call; Odoo calls it again at once while work is due
CHUNK_SECONDS = 10.0
# a change put off for at most this long (a rate-limit wait) wakes the cron threads when
# due; a longer wait (a retry's backoff) is found at their next look
NUDGE_SECONDS = 300

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

    attempts = fields.Integer(readonly=True)
    next_attempt_at = fields.Datetime(string="Next attempt", readonly=True, index=True,
                                      default=fields.Datetime.now)
    last_error = fields.Text(readonly=True)
    applied_at = fields.Datetime(readonly=True)

    _sql_constraints = [
        ("event_uniq", "unique(connection_id, event_id)",
         "A ledger event is kept once per connection."),
    ]

    @api.model
    def _receive(self, connections, events, source="webhook", state="pending"):
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
                                            attempts, next_attempt_at, create_uid, write_uid,
                                            create_date, write_date)
            SELECT v.connection_id, c.company_id, v.kind, v.ledger_id, v.change, v.event_id,
                   v.occurred_at, t.now, %s, %s, 0, t.now, %s, %s, t.now, t.now
              FROM jsonb_to_recordset(%s::jsonb) AS v(connection_id int, kind varchar,
                   ledger_id varchar, change varchar, event_id varchar, occurred_at varchar)
              JOIN billing_sync_connection c ON c.id = v.connection_id
             -- whole seconds, as fields.Datetime.now() which the worker compares with:
             -- due at once, not a second later
             CROSS JOIN (SELECT date_trunc('second', clock_timestamp() AT TIME ZONE 'UTC')
                                AS now) t
            ON CONFLICT (connection_id, event_id) DO NOTHING
            RETURNING id
        """, [source, state, self.env.uid, self.env.uid, json.dumps([{
            "connection_id": cid, "kind": e.kind, "ledger_id": e.ledger_id,
            "change": e.change, "event_id": e.event_id, "occurred_at": e.occurred_at}
            for cid, e in rows])])
        kept = len(self.env.cr.fetchall())
        if kept and state == "pending":
            # the worker reads them at once (a cron thread wakes on the trigger)
            self.env.ref("billing_sync.ir_cron_apply_inbox").sudo()._trigger()
        return kept, len(rows) - kept, unknown

    # ------------------------------------------------------------------ the worker
    @api.model
    def _cron_apply(self, max_seconds=CHUNK_SECONDS):
        """Read back what the ledgers announced and apply it, one bounded chunk a call:
        one connection's changes at a time, many objects per request, Odoo's progress
        notification for the rest. Contacts are applied here; the other kinds wait in
        the inbox for their turn (see README, inbound sync)."""
        deadline = time.monotonic() + max_seconds
        done = 0
        while time.monotonic() < deadline:
            rows = self._claim()
            if not rows:
                break
            rows._apply()
            done += len(rows)
            self.env["billing_sync.job"]._commit()
        remaining = self.search_count(self._due_domain())
        if remaining:
            self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)

    @api.model
    def _due_domain(self):
        return [("state", "=", "pending"), ("kind", "in", APPLIED_KINDS),
                ("next_attempt_at", "<=", fields.Datetime.now()),
                ("connection_id.state", "=", "connected")]

    @api.model
    def _claim(self):
        """The due rows of one connected connection, about at most READ_MAX objects of
        one kind, locked (SKIP LOCKED: another worker takes the next ones). Held while the
        objects are read: a worker that dies leaves them pending, nothing lost."""
        cr = self.env.cr
        self.flush_model()
        cr.execute("""
            SELECT i.connection_id, i.kind FROM billing_sync_inbox i
              JOIN billing_sync_connection c ON c.id = i.connection_id
             WHERE i.state = 'pending' AND i.kind = ANY(%s) AND i.next_attempt_at <= %s
               AND c.state = 'connected' AND c.active
             ORDER BY i.next_attempt_at, i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED
        """, [list(APPLIED_KINDS), fields.Datetime.now()])
        head = cr.fetchone()
        if not head:
            return self.browse()
        cr.execute("""
            SELECT id, ledger_id FROM billing_sync_inbox
             WHERE state = 'pending' AND connection_id = %s AND kind = %s
               AND next_attempt_at <= %s
             ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
        """, [head[0], head[1], fields.Datetime.now(), READ_MAX * 4])
        ids, objects = [], set()
        for row_id, ledger_id in cr.fetchall():
            if ledger_id in objects or len(objects) < READ_MAX:
                objects.add(ledger_id)
                ids.append(row_id)
        return self.browse(ids)

    def _apply(self):
        """Read the objects of these rows (one connection, one kind) and apply them: every
        request through the shared budget; a refusal of the whole read puts the rows off;
        what cannot be applied fails on its own row, with the reason, the rest is done."""
        connection = self.connection_id
        kind = self[:1].kind
        ids = sorted(set(self.mapped("ledger_id")))
        inbound = self.env["billing_sync.inbound"]
        try:
            adapter = connection._adapter()
            token = connection._access_token()

            def read(what, wanted):
                return paced(_pacer(connection), adapter, getattr(adapter, what), token,
                             connection.org_id, wanted, batch=False)

            states = read(READERS[kind], ids)
            if kind == "contact":
                inbound._apply_contacts(connection, states)
                failures, later = {}, {}
            elif kind == "payment":
                failures, later = inbound._apply_payments(connection, states, ids)
            elif kind == "credit_note":
                failures, later = inbound._apply_credit_notes(connection, states, ids)
            else:
                failures, later = inbound._apply_invoices(
                    connection, states, lambda wanted: read("read_payments", wanted))
        except BudgetExhausted as exc:
            self._put_off(exc.wait)
            return
        except RateLimited as exc:
            wait = (connection.rate_window_seconds or 60.0) if exc.assumed else exc.retry_after
            _pacer(connection).block(wait)
            self._put_off(wait)
            return
        except AuthorizationRevoked as exc:
            connection.sudo()._needs_reconnect(exc.message)
            return  # held until the connection is connected again
        except (LedgerError, UserError) as exc:
            self._failed(str(exc))
            return
        waiting = self.filtered(lambda r: r.ledger_id in later)
        for ledger_id, reason in later.items():
            # read again with backoff (attempts counted): soon, and not for ever
            waiting.filtered(lambda r, i=ledger_id: r.ledger_id == i)._failed(reason)
        for ledger_id, reason in failures.items():
            rows = self.filtered(lambda r, i=ledger_id: r.ledger_id == i)
            if not any(rows.mapped("attempts")):
                # the first time: where the administrator looks (then the inbox row)
                connection._note(body=reason)
            rows._failed(reason)
        (self - waiting).filtered(lambda r: r.ledger_id not in failures).write({
            "state": "done", "applied_at": fields.Datetime.now(), "last_error": False})

    # ------------------------------------------------------------------ the pull
    @api.model
    def _cron_pull(self, max_seconds=CHUNK_SECONDS):
        """The safety net for a lost webhook: ask each connected ledger what changed since
        its cursor and apply it at once. The cursor is saved in the same transaction as
        what it brought (kept as done rows of source "pull"), so a crash repeats a pull,
        never skips one. After a long outage it catches up a bounded page per call, with
        Odoo's progress notification for the rest."""
        deadline = time.monotonic() + max_seconds
        connections = self.env["billing_sync.connection"].sudo().search(
            [("state", "=", "connected")], order="pulled_at asc nulls first, id")
        behind = 0
        for connection in connections:
            while True:
                if time.monotonic() >= deadline:
                    behind += 1
                    break
                complete = self._pull(connection)
                self.env["billing_sync.job"]._commit()
                if complete:
                    break
        if behind:
            self.env["ir.cron"]._notify_progress(done=len(connections) - behind,
                                                 remaining=behind)

    @api.model
    def _pull(self, connection):
        """One bounded pull of ``connection``'s changed clients, then of its payments and
        invoices; whether both caught up."""
        contacts = self._pull_step(connection, "changed_contacts", connection.pull_cursor,
                                   self._pulled_contacts)
        documents = self._pull_step(
            connection, "changed_documents", connection.pull_documents_cursor or
            # nothing of the ledger's before the connection concerns what Odoo sent it
            connection.create_date.strftime("%Y-%m-%dT%H:%M:%SZ"), self._pulled_documents)
        return contacts and documents

    @api.model
    def _pull_step(self, connection, method, cursor, apply):
        try:
            adapter = connection._adapter()
            token = connection._access_token()
            changes = paced(_pacer(connection), adapter, getattr(adapter, method), token,
                            connection.org_id, cursor or None, batch=False)
            if changes.full_read and cursor:  # a first pull reads it all anyway
                connection._note(body=self.env._(
                    "The last pull was too long ago for %(ledger)s to list its changes (it "
                    "keeps 30 days of them): everything was read again instead.",
                    ledger=connection.name))
            apply(connection, changes, lambda wanted: paced(
                _pacer(connection), adapter, adapter.read_payments, token, connection.org_id,
                wanted, batch=False))
        except BudgetExhausted:
            return True  # the next run
        except AuthorizationRevoked as exc:
            connection._needs_reconnect(exc.message)
            return True
        except (LedgerError, UserError) as exc:
            _logger.warning("billing_sync: pulling connection %s failed: %s", connection.id,
                            exc)
            return True
        return changes.complete

    @api.model
    def _pulled_contacts(self, connection, changes, _read_payments):
        states = changes.states
        self._receive(connection, [
            WebhookEvent(connection.org_id, "contact", ledger_id, "update",
                         digest_id("pull", ledger_id, state.updated_at), state.updated_at)
            for ledger_id, state in states.items()], source="pull", state="done")
        self.env["billing_sync.inbound"]._apply_contacts(connection, states)
        connection.write({"pull_cursor": changes.cursor, "pulled_at": fields.Datetime.now()})

    @api.model
    def _pulled_documents(self, connection, changes, read_payments):
        """Apply what a pull listed: credit notes, payments (new, changed, deleted), then
        invoices (voids, and any payment of theirs the pull did not list). What could not be
        applied is kept as a row to read again, with the others kept as done."""
        inbound = self.env["billing_sync.inbound"]
        deleted = [i for i in changes.deleted_payments if i not in changes.payments]
        asked = list(changes.payments) + deleted
        # credit notes first: a QuickBooks payment may apply one
        credits = changes.credit_notes
        failed_credits, later_credits = inbound._apply_credit_notes(
            connection, credits, list(credits))
        failed, later = inbound._apply_payments(connection, changes.payments, asked)
        failed_invoices, later_invoices = inbound._apply_invoices(
            connection, changes.invoices, read_payments)
        events = []
        for kind, states, failures, waiting in (
                ("credit_note", credits, failed_credits, later_credits),
                ("payment", {**changes.payments, **dict.fromkeys(deleted)}, failed, later),
                ("invoice", changes.invoices, failed_invoices, later_invoices)):
            for ledger_id, state in states.items():
                stamp = state.updated_at if state else "deleted"
                events.append((WebhookEvent(
                    connection.org_id, kind, ledger_id, "delete" if state is None else "update",
                    digest_id("pull", kind, ledger_id, stamp), state and state.updated_at),
                    ledger_id in failures or ledger_id in waiting))
        self._receive(connection, [e for e, retry in events if not retry], source="pull",
                      state="done")
        self._receive(connection, [e for e, retry in events if retry], source="pull")
        connection.write({"pull_documents_cursor": changes.cursor,
                          "pulled_at": fields.Datetime.now()})

    def _put_off(self, seconds, values=None):
        """Due again in ``seconds``, when the worker is asked to run (a webhook may never
        come to wake it)."""
        when = _later(seconds)
        self.write({**(values or {}), "next_attempt_at": when})
        self.env.ref("billing_sync.ir_cron_apply_inbox").sudo()._trigger(at=when)
        if seconds <= NUDGE_SECONDS:
            self.env.cr.postcommit.add(functools.partial(
                _notify_cron_threads_at, self.env.cr.dbname, seconds))

    def _failed(self, reason):
        for row in self:
            attempts = row.attempts + 1
            if backoff.is_dead(attempts):
                row.write({"state": "failed", "attempts": attempts, "last_error": reason})
            else:
                row._put_off(backoff.retry_delay(attempts),
                             {"attempts": attempts, "last_error": reason})


def _later(seconds):
    return fields.Datetime.now() + datetime.timedelta(seconds=seconds)

