import contextlib
import datetime
import functools
import json
import logging
import time

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

from ..services import backoff
from ..services.ledger.errors import (
    ERROR_CLASSES,
    AuthorizationRevoked,
    LedgerError,
    RateLimited,
)
from ..services.ratelimit import BudgetExhausted, paced
from ..services.webhooks import CHANGES, EVENT_KINDS, WebhookEvent, digest_id
from .billing_sync_job import _notify_cron_threads_at, _pacer

_logger = logging.getLogger(__name__)

# the kinds the worker applies, in the order it applies them (a QuickBooks payment may
# apply a credit note; an invoice's payments are linked before its amount due is compared)
APPLIED_KINDS = ("credit_note", "payment", "invoice", "contact")

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
    error_class = fields.Selection(
        ERROR_CLASSES, readonly=True, index=True,
        help="What kind of problem last kept this change from being applied.")
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
        self.env["billing_sync.connection"].flush_model(["inbound_gather_seconds"])
        self.env.cr.execute("""
            INSERT INTO billing_sync_inbox (connection_id, company_id, kind, ledger_id, change,
                                            event_id, occurred_at, received_at, source, state,
                                            attempts, next_attempt_at, create_uid, write_uid,
                                            create_date, write_date)
            SELECT v.connection_id, c.company_id, v.kind, v.ledger_id, v.change, v.event_id,
                   v.occurred_at, t.now, %s, %s, 0,
                   t.now + make_interval(secs => COALESCE(c.inbound_gather_seconds, 0)),
                   %s, %s, t.now, t.now
              FROM jsonb_to_recordset(%s::jsonb) AS v(connection_id int, kind varchar,
                   ledger_id varchar, change varchar, event_id varchar, occurred_at varchar)
              JOIN billing_sync_connection c ON c.id = v.connection_id
             -- whole seconds, as fields.Datetime.now() which the worker compares with:
             -- due at once, not a second later
             CROSS JOIN (SELECT date_trunc('second', clock_timestamp() AT TIME ZONE 'UTC')
                                AS now) t
            ON CONFLICT (connection_id, event_id) DO NOTHING
            RETURNING next_attempt_at
        """, [source, state, self.env.uid, self.env.uid, json.dumps([{
            "connection_id": cid, "kind": e.kind, "ledger_id": e.ledger_id,
            "change": e.change, "event_id": e.event_id, "occurred_at": e.occurred_at}
            for cid, e in rows])])
        written = self.env.cr.fetchall()
        kept = len(written)
        if kept and state == "pending":
            # the worker reads them at once (a cron thread wakes on the trigger), or once
            # their connection has gathered what follows them (inbound_gather_seconds)
            now = fields.Datetime.now()
            for when in {when for (when,) in written}:
                self._wake_at(when, (when - now).total_seconds())
        return kept, len(rows) - kept, unknown

    # ------------------------------------------------------------------ the worker
    @api.model
    def _cron_apply(self, max_seconds=CHUNK_SECONDS):
        """Read back what the ledgers announced and apply it, one bounded chunk a call:
        one connection's changes at a time, every kind in one read where the ledger allows
        it, many objects per request, Odoo's progress notification for the rest (see
        README, inbound sync)."""
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
        """The due rows of one connected connection, every kind at once (up to READ_MAX
        objects of each), locked (SKIP LOCKED: another worker takes the next ones) and held
        while the objects are read: a worker that dies leaves them pending, nothing lost.

        A connection whose rate budget has no room now for the requests their read takes
        (at the pace that spreads what is left of the window: services/ratelimit.py) gets
        its rows put off together, to the second room comes; a change that arrives
        meanwhile joins them (rows never tried are taken with the due ones), so one read
        takes them all. The next connection is served meanwhile."""
        cr = self.env.cr
        self.flush_model()
        self.env["billing_sync.connection"].flush_model(["state", "active"])
        skipped = [0]
        while True:
            cr.execute("""
                SELECT i.connection_id FROM billing_sync_inbox i
                  JOIN billing_sync_connection c ON c.id = i.connection_id
                 WHERE i.state = 'pending' AND i.kind = ANY(%s) AND i.next_attempt_at <= %s
                   AND c.state = 'connected' AND c.active AND c.id != ALL(%s)
                 ORDER BY i.next_attempt_at, i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED
            """, [list(APPLIED_KINDS), fields.Datetime.now(), skipped])
            head = cr.fetchone()
            if not head:
                return self.browse()
            # with the due rows, those only waiting for the budget (never tried): one
            # read takes them all, or they wait for one moment together
            cr.execute("""
                SELECT id, kind, ledger_id FROM billing_sync_inbox
                 WHERE state = 'pending' AND connection_id = %s AND kind = ANY(%s)
                   AND (next_attempt_at <= %s OR attempts = 0)
                 ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
            """, [head[0], list(APPLIED_KINDS), fields.Datetime.now(),
                  READ_MAX * 4 * len(APPLIED_KINDS)])
            ids, objects = [], {}
            for row_id, kind, ledger_id in cr.fetchall():
                wanted = objects.setdefault(kind, set())
                if ledger_id in wanted or len(wanted) < READ_MAX:
                    wanted.add(ledger_id)
                    ids.append(row_id)
            rows = self.browse(ids)
            connection = self.env["billing_sync.connection"].browse(head[0])
            calls, batch = connection._adapter_class().read_requests(sorted(objects))
            # a backlog (a full read of some kind) goes as soon as the window has room
            partial = all(len(wanted) < READ_MAX for wanted in objects.values())
            wait = _pacer(connection).peek(partial=partial, batch=batch, calls=calls)
            if wait <= 0:
                return rows
            rows._put_off(wait)
            skipped.append(connection.id)

    def _apply(self):
        """Read the objects of these rows (one connection) in one go, then apply them kind
        by kind (credit notes, payments, invoices, contacts: a payment may use a credit
        note, an invoice's payments are linked first): the read through the shared budget,
        all its requests taken before the first goes; a refusal of the whole read puts the
        rows off; what cannot be applied fails on its own row, with the reason, the rest
        is done."""
        connection = self.connection_id
        wanted = {kind: sorted(set(self.filtered(lambda r, k=kind: r.kind == k)
                                   .mapped("ledger_id")))
                  for kind in APPLIED_KINDS if kind in self.mapped("kind")}
        started = time.monotonic()
        self.env["billing_sync.audit.log"]._drop_notes(connection)
        with self._read_failures(connection, self):
            adapter = connection._adapter()
            token = connection._access_token()
            calls, batch = adapter.read_requests(sorted(wanted))
            states = paced(_pacer(connection), adapter, adapter.read_changed, token,
                           connection.org_id, wanted, batch=batch, calls=calls)
            for kind, ids in wanted.items():
                rows = self.filtered(lambda r, k=kind: r.kind == k)
                with self._read_failures(connection, rows):
                    rows._applied(*self._apply_kind(connection, adapter, token, kind,
                                                    states.get(kind, {}), ids), started)

    @api.model
    def _apply_kind(self, connection, adapter, token, kind, states, ids):
        """(failures, later) of applying the ``states`` read of ``kind`` (``ids`` asked)."""
        inbound = self.env["billing_sync.inbound"]
        if kind == "contact":
            inbound._apply_contacts(connection, states)
            return {}, {}
        if kind == "payment":
            return inbound._apply_payments(connection, states, ids)
        if kind == "credit_note":
            return inbound._apply_credit_notes(connection, states, ids)
        return inbound._apply_invoices(connection, states, lambda wanted: paced(
            _pacer(connection), adapter, adapter.read_payments, token, connection.org_id,
            wanted, batch=False))

    @contextlib.contextmanager
    def _read_failures(self, connection, rows):
        """Around reading (and applying) ``rows``: a refusal of the whole read puts them
        off (the budget, a 429), holds them (a revoked connection) or fails them (another
        ledger error, a UserError), and is swallowed; what was applied before stays."""
        try:
            yield
        except BudgetExhausted as exc:
            rows._put_off(exc.wait)
        except RateLimited as exc:
            wait = (connection.rate_window_seconds or 60.0) if exc.assumed else exc.retry_after
            _pacer(connection).block(wait)
            rows._put_off(wait)
        except AuthorizationRevoked as exc:
            connection.sudo()._needs_reconnect(exc.message)
            # held until the connection is connected again
        except (LedgerError, UserError) as exc:
            rows._failed(str(exc), getattr(exc, "error_class", None) or "validation")

    def _applied(self, failures, later, started=None):
        """These rows were read and applied, but for ``failures`` ({ledger id: Failure}:
        noted on the connection the first time, then retried with backoff) and ``later``
        ({ledger id: reason}: read again soon, with backoff). What the applied ones wrote
        goes to the audit trail (``started``: time.monotonic() when their read began)."""
        connection = self.connection_id
        waiting = self.filtered(lambda r: r.ledger_id in later)
        for ledger_id, reason in later.items():
            # read again with backoff (attempts counted): soon, and not for ever
            waiting.filtered(lambda r, i=ledger_id: r.ledger_id == i)._failed(reason)
        for ledger_id, failure in failures.items():
            rows = self.filtered(lambda r, i=ledger_id: r.ledger_id == i)
            if not any(rows.mapped("attempts")):
                # the first time: where the administrator looks (then the inbox row)
                connection._note(body=failure.text)
            rows._failed(failure.text, failure.error_class)
        done = (self - waiting).filtered(lambda r: r.ledger_id not in failures)
        done.write({"state": "done", "applied_at": fields.Datetime.now(), "last_error": False,
                    "error_class": False})
        self.env["billing_sync.audit.log"]._record_ledger_changes(connection, done, started)

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
            Audit = self.env["billing_sync.audit.log"]
            Audit._drop_notes(connection)
            started = time.monotonic()
            apply(connection, changes, lambda wanted: paced(
                _pacer(connection), adapter, adapter.read_payments, token, connection.org_id,
                wanted, batch=False))
            # what the pull changed in Odoo (its done rows are kept, not logged one by one)
            Audit._record_ledger_changes(connection, started=started)
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
        self._wake_at(when, seconds)

    @api.model
    def _wake_at(self, when, seconds):
        """Have the worker run at ``when``, ``seconds`` from now: its cron's trigger, and,
        for a wait of NUDGE_SECONDS or less, the cron threads told when it is due."""
        cron = self.env.ref("billing_sync.ir_cron_apply_inbox").sudo()
        if seconds <= 0:
            cron._trigger()
            return
        cron._trigger(at=when)
        if seconds <= NUDGE_SECONDS:
            self.env.cr.postcommit.add(functools.partial(
                _notify_cron_threads_at, self.env.cr.dbname, seconds))

    def _failed(self, reason, error_class="other"):
        """Not applied for ``reason`` (of ``error_class``): read again with backoff, or
        failed for good after the last attempt."""
        for row in self:
            attempts = row.attempts + 1
            values = {"attempts": attempts, "last_error": reason, "error_class": error_class}
            if backoff.is_dead(attempts):
                row.write({**values, "state": "failed"})
                self.env["billing_sync.audit.log"]._record_not_applied(row)
            else:
                row._put_off(backoff.retry_delay(attempts), values)

    # ------------------------------------------------------------------ UI
    def action_retry(self):
        """Read these changes again now (the cause was fixed, the ledger is back): a
        failed one, or one backing off after a failure, from its first attempt again.
        One never tried (still gathering, or put off for the rate budget) or applied is
        left as it is.

        Rows are the engine's (no group writes them): the caller is checked (a Billing
        Sync Manager who reads the rows: those of his companies), then the engine
        writes."""
        self._check_retry_access()
        rows = self.sudo().filtered(
            lambda r: r.state == "failed" or (r.state == "pending" and r.attempts))
        if rows:
            now = fields.Datetime.now()
            rows.write({"state": "pending", "attempts": 0, "next_attempt_at": now})
            self._wake_at(now, 0)
        return True

    def _check_retry_access(self):
        if not self.env.su and not self.env.user.has_group(
                "billing_sync.group_billing_sync_manager"):
            raise AccessError(self.env._(
                "Only a Billing Sync Manager may have a change from the ledger read again."))
        # the company rule: a Manager acts on his companies' rows only
        self.check_access("read")


def _later(seconds):
    """``seconds`` from now, rounded up to the whole second (as fields.Datetime keeps it):
    never sooner, and rows put off for the same moment come due together."""
    moment = datetime.datetime.now() + datetime.timedelta(seconds=seconds)
    return moment.replace(microsecond=0) + datetime.timedelta(
        seconds=1 if moment.microsecond else 0)

