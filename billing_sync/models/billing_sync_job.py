import datetime
import functools
import logging
import os
import secrets
import threading
import time

import psycopg2
import psycopg2.errors
from psycopg2 import sql

import odoo
from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from odoo.addons.base.models.ir_cron import ODOO_NOTIFY_FUNCTION

from ..services import backoff
from ..services.hints import hint_for, hint_of
from ..services.idempotency import batch_key
from ..services.ledger.errors import (
    ERROR_CLASSES,
    AccessTokenExpired,
    AuthorizationRevoked,
    LedgerAnswerInvalid,
    LedgerError,
    RateLimited,
)
from ..services.ratelimit import TABLES as RATE_TABLES
from ..services.ratelimit import BudgetExhausted, SharedBudget, paced, read_committed

_logger = logging.getLogger(__name__)

KINDS = [
    ("contact", "Contact"),
    ("invoice", "Invoice"),
    ("credit_note", "Credit note"),
    ("payment", "Payment"),
    ("void_invoice", "Void invoice"),
    ("delete_payment", "Remove payment"),
]
# the jobs Retry sends again (the others are on their way, or done)
RETRYABLE = ("blocked", "dead", "cancelled")
# contacts before invoices, invoices before what refers to them
PRIORITY = {"contact": 10, "invoice": 20, "credit_note": 30, "payment": 40, "void_invoice": 50}
# edits after sync: a payment Odoo took back leaves the ledger first, then the document
# it paid is voided (or credited), and only then does its replacement go
PRIORITY.update({"delete_payment": 12, "void_invoice": 15})
# a job claimed before leases existed (no lease): requeued after this, as it was then
STUCK_AFTER = datetime.timedelta(minutes=10)
# the first key of a claimed batch's advisory lock (its second: the batch's lease number);
# PostgreSQL releases it when the worker's session ends, however the worker died
LEASE_LOCKS = 0x42534C31  # "BSL1"
# the first key of the lock one worker holds while it claims a batch to send again (its
# second: the batch key's hash), so that such a batch is never split between workers
REPLAY_LOCKS = 0x42535231  # "BSR1"
# a worker that dies is noticed by the next sweep: the claim leaves a run this much later
SWEEP_AFTER = datetime.timedelta(seconds=30)
# one cron call sends at most this much, then reports its progress: Odoo calls it again
CHUNK_BATCHES = 20
CHUNK_SECONDS = 10.0
# Odoo's cron threads look for work this often (ir.cron's SLEEP_INTERVAL): a push run
# waits itself for jobs due sooner
LINGER = 60.0
# a job waiting for another record's link looks again by itself after this (a wake missed)
LINK_WAIT = datetime.timedelta(minutes=10)
# finished jobs are deleted after this many days (Settings › Billing Sync)
DEFAULT_RETENTION_DAYS = 30
MISMATCH_HINT = ("The ledger computed other figures than Odoo: check that the tax is mapped "
                 "to a ledger tax of the same rate and that the connection has a rounding "
                 "account, then Retry: the document is sent again as an update.")


def _budget_key(connection):
    """The organisation a connection calls, as the rate-limit budget knows it."""
    return f"{connection.provider}|{connection.api_url}|{connection.org_id}"


def _pacer(connection):
    """The organisation's rate-limit budget, shared with every worker through PostgreSQL
    (services/ratelimit.py); the caller's cursor holds its concurrency slots."""
    limits = connection._adapter_class().LIMITS
    env = connection.env
    return SharedBudget(
        functools.partial(read_committed, env.registry), env.cr,
        _budget_key(connection),
        per_minute=limits.get("per_minute"), batch_per_minute=limits.get("batch_per_minute"),
        per_day=limits.get("per_day"), per_second=limits.get("per_second"),
        concurrent=limits.get("concurrent"),
        window_seconds=float(connection.rate_window_seconds or 60.0))


_NOTIFIER_LOCK = threading.Lock()
_notifier = {}


def _notify_cron_threads(dbname):
    """Tell Odoo's cron threads a trigger of ``dbname`` is due, as ``ir.cron._notifydb``
    does (they listen in the 'postgres' database), on one connection this process keeps
    open: borrowing a pooled cursor, committing and giving it back cost several round
    trips on every post. A process forked since (Odoo's workers) opens its own."""
    with _NOTIFIER_LOCK:
        for attempt in (1, 2):  # a connection the server closed meanwhile: once more
            conn = _notifier.get("conn")
            try:
                if conn is None or conn.closed or _notifier.get("pid") != os.getpid():
                    _db, info = odoo.sql_db.connection_info_for("postgres")
                    conn = psycopg2.connect(**info)
                    conn.autocommit = True
                    _notifier.update(conn=conn, pid=os.getpid())
                with conn.cursor() as cur:
                    cur.execute(sql.SQL("SELECT {}('cron_trigger', %s)").format(
                        sql.Identifier(ODOO_NOTIFY_FUNCTION)), [dbname])
                return
            except psycopg2.Error as exc:
                _notifier.pop("conn", None)
                if attempt == 2:
                    # the trigger is kept: the cron threads find it at their next look
                    _logger.warning("billing_sync: could not wake the cron threads: %s", exc)


_TIMERS = {}


def _notify_cron_threads_at(dbname, seconds):
    """Tell the cron threads of ``dbname`` in ``seconds`` that a trigger is due: a trigger
    for later only wakes them at their next look (a minute in Odoo's cron threads), far
    later than a ledger's rate-limit wait. One timer per database and second, in this
    process; the trigger row stays the truth if the process ends first."""
    due = int(time.time() + seconds) + 1
    with _NOTIFIER_LOCK:
        for key in [k for k in _TIMERS if k[1] < time.time()]:
            del _TIMERS[key]
        if (dbname, due) in _TIMERS:
            return
        timer = threading.Timer(max(0.0, due - time.time()), _notify_cron_threads, [dbname])
        timer.daemon = True
        _TIMERS[(dbname, due)] = timer
    timer.start()


def _wake(cr, res_model, res_id, connection_id):
    """Jobs of ``connection_id`` waiting for that record's link: due now. Their ids."""
    cr.execute("""
        UPDATE billing_sync_job SET next_attempt_at = now() AT TIME ZONE 'UTC',
               wait_res_model = NULL, wait_res_id = NULL
         WHERE state = 'pending' AND wait_res_model = %s AND wait_res_id = %s
           AND connection_id = %s
     RETURNING id
    """, [res_model, res_id, connection_id])
    return cr.fetchall()


def _wake_after(registry, waiting):
    with registry.cursor() as cr:
        if _wake(cr, *waiting):
            cr.execute("SELECT id FROM ir_cron WHERE id = (SELECT res_id FROM ir_model_data "
                       "WHERE module = 'billing_sync' AND name = 'ir_cron_push_jobs')")
            cron = cr.fetchone()
            if cron:
                cr.execute("INSERT INTO ir_cron_trigger (cron_id, call_at) "
                           "VALUES (%s, now() AT TIME ZONE 'UTC')", [cron[0]])


def _unbelievable(results, sent):
    """Why the adapter's ``results`` do not account for exactly the ``sent`` keys, each
    once, every success with its ledger id (None: they do)."""
    keys = [result.key for result in results]
    if len(keys) != len(set(keys)):
        return "a record answered twice"
    if set(keys) != set(sent):
        return f"{len(set(sent) - set(keys))} record(s) without an answer" if \
            set(sent) - set(keys) else "an answer for a record that was not sent"
    if any(result.ok and not result.ledger_id for result in results):
        return "accepted without a ledger id"
    return None


class BillingSyncJob(models.Model):
    """One change to carry to the ledger: the outbox of the outbound sync.

    Written in the same transaction as the change itself (a save never calls
    the ledger); a scheduled action claims jobs with SKIP LOCKED, sends them in
    batches under an idempotency key recorded before sending, and records the
    outcome on the job, the link and the record.
    """

    _name = "billing_sync.job"
    _inherit = ["billing_sync.record.access"]
    _description = "Ledger sync job"
    _order = "id desc"
    _rec_name = "record_name"

    connection_id = fields.Many2one("billing_sync.connection", required=True,
                                    ondelete="cascade", index=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True)
    res_model = fields.Char(required=True, index=True)
    res_id = fields.Many2oneReference(model_field="res_model", required=True, index=True)
    record_name = fields.Char(compute="_compute_record_name", string="Record")
    kind = fields.Selection(KINDS, required=True)
    priority = fields.Integer(required=True, default=50)
    state = fields.Selection(
        [("pending", "Pending"), ("started", "Sending"), ("done", "Done"),
         ("blocked", "Needs a fix"), ("dead", "Failed"), ("cancelled", "Cancelled")],
        default="pending", required=True, index=True,
    )
    attempts = fields.Integer(default=0)
    next_attempt_at = fields.Datetime(default=fields.Datetime.now, index=True)
    batch_key = fields.Char(index=True, copy=False,
                            help="Idempotency key of the batch this job was sent in.")
    started_at = fields.Datetime()
    done_at = fields.Datetime()
    last_error = fields.Text()
    hint = fields.Text()
    # what kind of problem last stopped or delayed the job (ERROR_CLASSES), as the adapter
    # classed it, with the ledger's HTTP status and own words: hints, alerts and the
    # dashboard key off the class
    error_class = fields.Selection(
        ERROR_CLASSES, readonly=True, copy=False, index=True,
        help="What kind of problem last stopped or delayed this job.")
    error_status = fields.Integer(string="HTTP status", readonly=True, copy=False)
    ledger_message = fields.Text(string="Ledger's message", readonly=True, copy=False)
    outcome_unknown = fields.Boolean(
        copy=False, help="An attempt got no answer (timeout, 5xx, a worker that died): the "
                         "ledger may hold the document already, so a new attempt looks it up "
                         "by number before creating it.")
    # Edits after sync: the ledger object a void_invoice / delete_payment job retires. Kept
    # on the job, since the record may be deleted before the job runs.
    ledger_id = fields.Char(string="Ledger ID", readonly=True, copy=False)
    ledger_type = fields.Char(readonly=True, copy=False)
    ledger_number = fields.Char(readonly=True, copy=False)
    ledger_org_id = fields.Char(
        string="Ledger organisation", readonly=True, copy=False,
        help="The organisation Ledger ID belongs to: such a job never goes to another one "
             "(a connection moved to another organisation).")
    record_gone = fields.Boolean(
        readonly=True, copy=False,
        help="The engine found the record deleted: the job is then seen under its "
             "company's rule alone.")
    ledger_payment_ids = fields.Char(
        readonly=True, copy=False,
        help="Ledger payments (comma separated) the reset took off this invoice in Odoo: "
             "removed in the ledger before the invoice is voided or credited.")
    block_reason = fields.Selection(
        [("mapping", "Mapping to fix"), ("ledger_refusal", "Refused by the ledger"),
         ("mismatch", "Differs from Odoo"), ("other", "Other")],
        readonly=True, copy=False,
        help="Why the job was last held: a job held for a mapping goes again by itself "
             "when a mapping or a connection default of its ledger is saved.")
    # What the job waits for: the record (its invoice) that must reach the ledger first.
    # Writing that record's link wakes the job (_wake_waiting); no attempt is spent.
    wait_res_model = fields.Char(readonly=True, copy=False)
    wait_res_id = fields.Many2oneReference(model_field="wait_res_model", readonly=True,
                                           copy=False)
    waiting_for = fields.Char(compute="_compute_waiting_for",
                              help="The record that must reach the ledger before this one.")
    lease_id = fields.Integer(
        readonly=True, copy=False,
        help="The claim of the worker sending this job: an advisory lock PostgreSQL holds "
             "while that worker lives. A sending job whose lock is gone goes again.")

    def init(self):
        # Coalescing: one unsent job per record, kind and connection. Enqueueing
        # uses ON CONFLICT against this index, so two transactions changing the
        # same record at once still leave one job.
        self.env.cr.execute("""
            CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_job_coalesce
                ON billing_sync_job (connection_id, res_model, res_id, kind)
             WHERE state = 'pending' AND batch_key IS NULL
        """)
        self.env.cr.execute("""
            CREATE INDEX IF NOT EXISTS billing_sync_job_due
                ON billing_sync_job (priority, id) WHERE state = 'pending';
            CREATE INDEX IF NOT EXISTS billing_sync_job_due_connection
                ON billing_sync_job (connection_id, priority, id) WHERE state = 'pending';
            CREATE INDEX IF NOT EXISTS billing_sync_job_due_at
                ON billing_sync_job (connection_id, next_attempt_at) WHERE state = 'pending';
            CREATE INDEX IF NOT EXISTS billing_sync_job_waiting
                ON billing_sync_job (wait_res_model, wait_res_id)
             WHERE state = 'pending' AND wait_res_model IS NOT NULL;
            CREATE INDEX IF NOT EXISTS billing_sync_job_started
                ON billing_sync_job (id) WHERE state = 'started';
            CREATE SEQUENCE IF NOT EXISTS billing_sync_job_lease_seq
                MAXVALUE 2147483647 CYCLE;
        """)
        self.env.cr.execute(RATE_TABLES)

    def _compute_record_name(self):
        for job in self:
            record = job._record()
            job.record_name = record.display_name if record else f"{job.res_model},{job.res_id}"

    @api.depends("wait_res_model", "wait_res_id")
    def _compute_waiting_for(self):
        for job in self:
            record = (job.wait_res_model in self.env and job.wait_res_id
                      and self.env[job.wait_res_model].browse(job.wait_res_id).exists())
            job.waiting_for = record.display_name if record else False

    def _record(self):
        self.ensure_one()
        if self.res_model not in self.env:
            return None
        return self.env[self.res_model].browse(self.res_id).exists()

    # ------------------------------------------------------------------ enqueue
    @api.model
    def _enqueue(self, records, kind):
        """Write (or coalesce into) a job per record and connection; never calls a ledger."""
        if not records or self.env.context.get("billing_sync_no_push"):
            return
        Connection = self.env["billing_sync.connection"].sudo()
        by_company = {}
        for record in records:
            by_company.setdefault(record.company_id.id or self.env.company.id, []).append(record)
        # on every post: ids only, one query, no connection record read
        query = Connection._search([("company_id", "in", list(by_company)),
                                    *Connection._SYNCING_DOMAIN])
        table = Connection._table
        rows = self.env.execute_query(query.select(SQL.identifier(table, "id"),
                                                   SQL.identifier(table, "company_id")))
        now = fields.Datetime.now()
        for connection_id, company_id in rows:
            for record in by_company.get(company_id, []):
                self._enqueue_one(Connection.browse(connection_id), record, kind, now)
        if rows:
            self._trigger_push()

    @api.model
    def _enqueue_one(self, connection, record, kind, now):
        cr = self.env.cr
        # a job parked for a fix goes again with the next change
        cr.execute("""
            UPDATE billing_sync_job SET state = 'pending', next_attempt_at = %s, attempts = 0,
                   batch_key = NULL, write_date = %s
             WHERE connection_id = %s AND res_model = %s AND res_id = %s AND kind = %s
               AND state = 'blocked'
               AND NOT EXISTS (SELECT 1 FROM billing_sync_job p
                                WHERE p.connection_id = %s AND p.res_model = %s
                                  AND p.res_id = %s AND p.kind = %s
                                  AND p.state = 'pending' AND p.batch_key IS NULL)
         RETURNING id
        """, (now, now, connection.id, record._name, record.id, kind,
              connection.id, record._name, record.id, kind))
        if cr.fetchall():
            self.invalidate_model()
            return
        cr.execute("""
            INSERT INTO billing_sync_job (connection_id, company_id, res_model, res_id, kind,
                                          priority, state, attempts, next_attempt_at,
                                          create_uid, create_date, write_uid, write_date)
            SELECT id, company_id, %s, %s, %s, %s, 'pending', 0, %s, %s, %s, %s, %s
              FROM billing_sync_connection WHERE id = %s
            ON CONFLICT (connection_id, res_model, res_id, kind)
               WHERE state = 'pending' AND batch_key IS NULL
            DO NOTHING
        """, (record._name, record.id, kind, PRIORITY[kind], now, self.env.uid, now,
              self.env.uid, now, connection.id))

    # ------------------------------------------------------------------ worker
    @api.model
    def _cron_push(self, max_batches=CHUNK_BATCHES, max_seconds=CHUNK_SECONDS):
        """Send one bounded chunk of due batches, then tell Odoo what is left: a cron that
        reports progress is called again at once (ir.cron), so a backfill never holds one
        call, nor its worker, for long. Returns the number of batches sent.

        A worker waits (holding no job) only for an organisation's budget that frees within
        the chunk; otherwise it stops and the cron is triggered for when it frees. Run by
        the scheduled action, it also waits for jobs due within LINGER (given back for the
        budget, backing off, waiting for another record): Odoo's cron threads look for work
        only that often, and such a job would otherwise wait for them."""
        self._requeue_stuck()
        linger = bool(self.env.context.get("cron_id"))
        sent = 0
        deadline = time.monotonic() + max_seconds
        waits = []
        while sent < max_batches and time.monotonic() < deadline:
            waits = []
            jobs = self._claim_batch(waits)
            if not jobs:
                naps = waits + ([self._next_due_in()] if linger else [])
                naps = [nap for nap in naps if nap is not None]
                if naps and (linger or time.monotonic() + min(naps) < deadline):
                    # holding nothing; a change made meanwhile is claimed at the next look
                    time.sleep(max(0.0, min(min(naps), 0.5, deadline - time.monotonic())))
                    continue
                break
            jobs._send_claimed()
            sent += 1
        remaining = self._due_count()
        if waits and not sent and not (linger and min(waits) <= LINGER):
            # every due job waits for its organisation's budget, long: nothing to do until
            # then (a shorter wait, the next call waits)
            remaining = 0
            self._trigger_push(fields.Datetime.now() + datetime.timedelta(
                seconds=min(waits)))
        elif waits and not remaining and linger:
            remaining = 1
        elif not remaining and linger and self._next_due_in() is not None:
            remaining = 1  # due within LINGER: the next call waits for it
        self.env["ir.cron"]._notify_progress(done=sent, remaining=remaining)
        return sent

    @api.model
    def _next_due_in(self):
        """Seconds until the next job of a connection that may send falls due, if within
        LINGER (None otherwise); jobs already due are the claim's business."""
        self.env.cr.execute("""
            SELECT EXTRACT(epoch FROM min(j.next_attempt_at) - (now() AT TIME ZONE 'UTC'))
              FROM billing_sync_job j
              JOIN billing_sync_connection c ON c.id = j.connection_id
             WHERE j.state = 'pending' AND c.state = 'connected' AND c.active
               AND j.next_attempt_at > now() AT TIME ZONE 'UTC'
               AND j.next_attempt_at <= now() AT TIME ZONE 'UTC' + make_interval(secs => %s)
        """, [LINGER])
        due = self.env.cr.fetchone()[0]
        return None if due is None else max(0.0, float(due))

    def _send_claimed(self):
        """Send this claimed batch, keep its outcome (commit), then let its lease go: a
        lease let go before the outcome is kept would let a sweep resend the batch."""
        try:
            self._read_committed()
            self._send_batch()
            self._commit()
        except Exception:
            self._rollback()
            raise
        finally:
            self._release_lease()

    @api.model
    def _trigger_push(self, at=None):
        """Ask for a push run at ``at`` (now by default: the cron threads are told once this
        transaction is kept). Never skipped for a trigger already there: one planned for
        later (a sweep) was told to no thread, and a change behind it would wait for their
        next look.

        As ``ir.cron._trigger`` does, in one statement: it runs on every post, where the
        ORM's create and the cron's read cost more than the job itself."""
        cron_id = self._push_cron_id()
        now = fields.Datetime.now()
        at = at or now
        self.env.cr.execute("""
            INSERT INTO ir_cron_trigger (cron_id, call_at, create_uid, create_date, write_uid,
                                         write_date)
            VALUES (%s, %s, %s, %s, %s, %s)
        """, [cron_id, at, self.env.uid, now, self.env.uid, now])
        postcommit = self.env.cr.postcommit
        if at <= now and not postcommit.data.get("billing_sync_notify"):
            # once per transaction, however many changes it queued
            postcommit.data["billing_sync_notify"] = True
            postcommit.add(functools.partial(_notify_cron_threads, self.env.cr.dbname))

    @api.model
    def _push_cron_id(self):
        """The push's scheduled action (ir.model.data's cached lookup, no record read)."""
        return self.env["ir.model.data"]._xmlid_to_res_id("billing_sync.ir_cron_push_jobs")

    @api.model
    def _due_count(self):
        """Jobs due now whose connection may send (the rest waits for a person)."""
        self.env.flush_all()
        self.env.cr.execute("""
            SELECT count(*) FROM billing_sync_job j
              JOIN billing_sync_connection c ON c.id = j.connection_id
             WHERE j.state = 'pending' AND j.next_attempt_at <= %s AND c.state = 'connected'
               AND c.active
        """, [fields.Datetime.now()])
        return self.env.cr.fetchone()[0]

    def _commit(self):
        # each batch's outcome is kept whatever happens to the next one; tests
        # run in one transaction and must not commit
        if not getattr(threading.current_thread(), "testing", False):
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _read_committed(self):
        """Keep what is done, and run the next transaction READ COMMITTED: a worker that
        waited for another (a lock on a ledger's contacts, rows another worker claims)
        must then see what that one kept. Odoo's REPEATABLE READ would show it the world
        as it was when its transaction began, and fail on rows changed since."""
        if not getattr(threading.current_thread(), "testing", False):
            self.env.cr.commit()  # pylint: disable=invalid-commit
            self.env.cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def _rollback(self):
        if not getattr(threading.current_thread(), "testing", False):
            self.env.cr.rollback()  # pylint: disable=invalid-commit

    @api.model
    def _requeue_stuck(self):
        """Jobs whose worker died while sending (its lease, an advisory lock of its
        database session, is gone) go again with their recorded batch key, so the ledger
        answers what it did the first time. A job whose worker lives is never touched,
        however long its call takes. Jobs claimed without a lease (before leases existed)
        go again after STUCK_AFTER."""
        self.flush_model()
        self._read_committed()
        try:
            return self._requeue_dead_leases()
        except psycopg2.errors.SerializationFailure:
            # another worker swept them in the same instant
            self._rollback()
            return self.browse()

    @api.model
    def _requeue_dead_leases(self):
        self.env.cr.execute("""
            SELECT j.id FROM billing_sync_job j
             WHERE j.state = 'started'
               AND CASE WHEN j.lease_id IS NULL OR j.lease_id = 0 THEN j.started_at < %s
                   ELSE NOT EXISTS (
                       SELECT 1 FROM pg_locks l
                        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                          AND l.database = (SELECT oid FROM pg_database
                                             WHERE datname = current_database())
                          AND l.classid = %s::oid AND l.objid = j.lease_id::oid) END
               FOR UPDATE SKIP LOCKED
        """, [fields.Datetime.now() - STUCK_AFTER, LEASE_LOCKS])
        stuck = self.browse([row[0] for row in self.env.cr.fetchall()])
        # a job that keeps killing its worker must not be sent forever
        hopeless = stuck.filtered(lambda j: backoff.is_dead(j.attempts))
        hopeless.write({"state": "dead", "lease_id": 0,
                        "hint": "The worker stopped while sending this, every time; see the "
                                "server log."})
        (stuck - hopeless).write({"state": "pending", "next_attempt_at": fields.Datetime.now(),
                                  "outcome_unknown": True, "lease_id": 0})
        return stuck

    @api.model
    def _claim_batch(self, waits=None):
        """Lock the next batch (one connection, one kind), mark it started under a lease
        of this worker, commit.

        Connections take turns: the one whose organisation was called least recently goes
        first, so a backfill on one ledger never holds back another's changes. A connection
        whose organisation has no call left now is passed over; its wait is added to
        ``waits``. Only connected connections are claimed: the others keep their jobs
        waiting, attempts unspent."""
        cr = self.env.cr
        now = fields.Datetime.now()
        self.flush_model()
        self.env["billing_sync.connection"].flush_model(["state", "org_id", "api_url"])
        cr.execute("""
            SELECT c.id FROM billing_sync_connection c
             WHERE c.state = 'connected' AND c.active
               AND EXISTS (SELECT 1 FROM billing_sync_job j
                            WHERE j.connection_id = c.id AND j.state = 'pending'
                              AND j.next_attempt_at <= %s)
        """, [now])
        connections = self.env["billing_sync.connection"].browse(
            [row[0] for row in cr.fetchall()])
        if not connections:
            return self.browse()
        keys = {connection: _budget_key(connection) for connection in connections}
        cr.execute("SELECT key, served_at FROM billing_sync_rate_budget WHERE key = ANY(%s)",
                   [list(keys.values())])
        served = dict(cr.fetchall())
        for connection in sorted(connections, key=lambda c: (
                served.get(keys[c]) or datetime.datetime.min, c.id)):
            partial, batch = self._next_call(connection, now)
            wait = _pacer(connection).peek(partial=partial, batch=batch)
            if wait > 0:
                if waits is not None:
                    waits.append(wait)
                continue
            try:
                self._read_committed()
                jobs = self._claim_from(connection, now)
            except psycopg2.errors.SerializationFailure:
                # another worker claimed or changed these rows in the same instant
                self._rollback()
                continue
            if jobs:
                return jobs
        # nothing claimed: let go of any row a look locked
        self._commit()
        return self.browse()

    @api.model
    def _next_call(self, connection, now):
        """(partial, batch) of the call ``connection`` would make next: whether it carries
        less than a full batch (a replay goes as it was: never partial), and whether it
        starts with a batch request (a ledger counting those apart: adapter.batched). A
        partial one keeps to its organisation's pace."""
        cr = self.env.cr
        cr.execute("""
            SELECT kind, batch_key FROM billing_sync_job
             WHERE connection_id = %s AND state = 'pending' AND next_attempt_at <= %s
             ORDER BY priority, id LIMIT 1
        """, [connection.id, now])
        head = cr.fetchone()
        adapter = connection._adapter_class()
        if not head:
            return False, False
        kind, key = head
        size = adapter.batch_size(kind)
        if key:
            cr.execute("SELECT count(*) FROM billing_sync_job WHERE batch_key = %s", [key])
        else:
            cr.execute("""
                SELECT count(*) FROM (
                    SELECT 1 FROM billing_sync_job
                     WHERE connection_id = %s AND state = 'pending' AND next_attempt_at <= %s
                       AND kind = %s AND batch_key IS NULL LIMIT %s) due
            """, [connection.id, now, kind, size])
        count = cr.fetchone()[0]
        return not key and count < size, adapter.batched(kind, count)

    @api.model
    def _claim_from(self, connection, now):
        cr = self.env.cr
        cr.execute("""
            SELECT id, kind, batch_key FROM billing_sync_job
             WHERE connection_id = %s AND state = 'pending' AND next_attempt_at <= %s
             ORDER BY priority, id
             LIMIT 1
               FOR UPDATE SKIP LOCKED
        """, [connection.id, now])
        head = cr.fetchone()
        if not head:
            return self.browse()
        head_id, kind, key = head
        if key:
            # a batch that was sent before (a crash, a 429) goes again exactly as it was,
            # whole, by one worker: another one claiming it now has it all, or will
            cr.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))",
                       [REPLAY_LOCKS, key])
            if not cr.fetchone()[0]:
                return self.browse()
            cr.execute("""SELECT id FROM billing_sync_job WHERE batch_key = %s
                           AND state = 'pending' FOR UPDATE""", [key])
        else:
            # the provider's ceiling, a class constant: no adapter (secret, endpoints) here;
            # an endpoint this server refuses is said by _send_batch, on every job claimed
            size = connection._adapter_class().batch_size(kind)
            cr.execute("""
                SELECT id FROM billing_sync_job
                 WHERE state = 'pending' AND next_attempt_at <= %s AND connection_id = %s
                   AND kind = %s AND batch_key IS NULL
                 ORDER BY priority, id LIMIT %s
                   FOR UPDATE SKIP LOCKED
            """, [now, connection.id, kind, size])
        ids = [row[0] for row in cr.fetchall()] or [head_id]
        if not key:
            # a new attempt gets a new key: a refused attempt's key is never sent again
            key = batch_key(self.env["ir.config_parameter"].sudo().get_param("database.uuid"),
                            connection.id, kind, ids, attempt=secrets.token_hex(8))
        # the lease: held by this worker's session until the outcome is kept, released by
        # PostgreSQL if the worker dies; taken before the claim is visible to anyone
        cr.execute("SELECT nextval('billing_sync_job_lease_seq')")
        lease = cr.fetchone()[0]
        cr.execute("SELECT pg_advisory_lock(%s, %s)", [LEASE_LOCKS, lease])
        cr.execute(sql.SQL("""
            UPDATE billing_sync_job SET state = 'started', batch_key = %s, started_at = %s,
                   attempts = attempts + 1, lease_id = %s, wait_res_model = NULL,
                   wait_res_id = NULL
             WHERE id = ANY(%s)
        """), [key, now, lease, ids])
        # its organisation was served now: the others go first next time
        _pacer(connection).served()
        self._plan_sweep(now)
        # a replay must repeat its first request exactly (see _send_batch)
        jobs = self.browse(ids).with_context(billing_sync_replay=bool(head[2]),
                                             billing_sync_lease=lease)
        jobs.invalidate_recordset()
        # recorded before anything is sent: a crash from here on re-sends this key
        self._commit()
        return jobs

    @api.model
    def _plan_sweep(self, now):
        """Make sure a push runs SWEEP_AFTER from now, if none is planned around then: if
        this worker dies, that run finds its lease gone and sends the batch again."""
        cron_id = self._push_cron_id()
        at = now + SWEEP_AFTER
        self.env.cr.execute("""
            SELECT 1 FROM ir_cron_trigger WHERE cron_id = %s AND call_at BETWEEN %s AND %s
             LIMIT 1
        """, [cron_id, at - SWEEP_AFTER / 2, at + SWEEP_AFTER / 2])
        if not self.env.cr.fetchone():
            self._trigger_push(at)

    def _release_lease(self):
        """Let this batch's lease go (the outcome is kept, or the batch is given back)."""
        lease = self.env.context.get("billing_sync_lease")
        if lease:
            self.env.cr.execute("SELECT pg_advisory_unlock(%s, %s)", [LEASE_LOCKS, lease])

    def _send_batch(self):
        """Push one claimed batch and record every outcome: on the jobs, the links and the
        records (_send_and_record), then in the audit trail, with what the ledger held
        before and after, the key sent and how long it took."""
        Audit = self.env["billing_sync.audit.log"]
        started, keys = time.monotonic(), {job.id: job.batch_key for job in self}
        before = Audit._link_states(self)
        status = self._send_and_record()
        Audit._record_pushes(self, keys, before, started, status)

    def _send_and_record(self):
        """Push one claimed batch and record every outcome; the HTTP status of the
        ledger's answer, when it gave one."""
        connection = self.connection_id
        kind = self[0].kind
        builder = self.env["billing_sync.push"].with_context(billing_sync_no_push=True)
        jobs_by_key = {f"{job.res_model},{job.res_id}": job for job in self}
        # the batch's key, read before a job held on the way retires its own
        key = self[0].batch_key
        try:
            adapter = connection._adapter()
            pacer = _pacer(connection)
            items, skipped = builder._items(connection, adapter, self, pacer)
            for job, reason, waits_for in skipped:
                if waits_for:
                    job._wait_for_link(reason, waits_for)
                else:
                    job._park(reason)
            sent = {item.key for item in items}
            if self.env.context.get("billing_sync_replay") and self._replay_differs(key, sent):
                return None
            results = self._push(connection, adapter, pacer, kind, items, key) if items else []
        except BudgetExhausted as exc:
            # no call left soon in the organisation's budget (shared with every worker):
            # the jobs go back, due when it frees, rather than wait here claimed
            self.filtered(lambda j: j.state == "started")._give_back(exc.wait)
            return None
        except RateLimited as exc:
            # planned wait: the ledger said when (or documents "a minute": one
            # minute of this connection's rate-limit window); not an attempt. Every worker
            # of every host waits as long for this organisation
            wait = (connection.rate_window_seconds or 60.0) if exc.assumed else exc.retry_after
            pacer.block(wait)
            self.filtered(lambda j: j.state == "started")._give_back(wait, str(exc), exc)
            return None
        except AuthorizationRevoked as exc:
            # the connection now needs a person: its jobs wait, attempts unspent, and are
            # claimed again once it is connected (one message on the connection, not one
            # per job)
            connection.sudo()._needs_reconnect(exc.message)
            self.filtered(lambda j: j.state == "started")._give_back(0, str(exc), exc)
            return None
        except (LedgerError, UserError) as exc:
            connection.invalidate_recordset(["state"])
            if connection.state != "connected":
                # the token refresh was refused (the connection says so, once): the jobs
                # wait for the reconnect, attempts unspent
                self.filtered(lambda j: j.state == "started")._give_back(
                    0, str(exc), _ledger_error(exc) or "authentication")
                return None
            # LedgerAnswerInvalid included: an answer that cannot be believed leaves the
            # outcome unknown, and the batch goes again under its key (the ledger replays)
            self.filtered(lambda j: j.state == "started")._retry_later(
                str(exc), error=_ledger_error(exc) or "other")
            return None
        except psycopg2.Error:
            raise  # the transaction is gone: the cron's own rollback, then _requeue_stuck
        except Exception:  # noqa: BLE001 - a bug or an SDK surprise must not wedge the batch
            # the traceback names the code, never a token (adapters and TokenSet print none)
            _logger.exception("billing_sync: sending %s job(s) %s to connection %s failed "
                              "unexpectedly", kind, self.ids, connection.id)
            self.filtered(lambda j: j.state == "started")._retry_later(self.env._(
                "Sending stopped on an unexpected error (the server log has the details): "
                "whether the ledger took it is unknown, so it goes again later under the same "
                "idempotency key and nothing is created twice."), error="other")
            return None
        problem = _unbelievable(results, sent)
        if problem:
            # nothing is recorded from an answer that does not account for every record
            # sent: the whole batch goes again under its key (the ledger replays its first
            # answer, so a partial retry could never match it)
            _logger.error("billing_sync: the %s adapter's answer for jobs %s %s",
                          connection.provider, self.ids, problem)
            self.filtered(lambda j: j.state == "started")._retry_later(self.env._(
                "The ledger's answer said nothing certain about this batch (%s): nothing is "
                "linked, and it goes again later under the same idempotency key, so nothing "
                "is created twice.", problem), error="answer")
            return None
        done = self.browse()
        mismatches = builder._record_successes(
            connection, [(jobs_by_key[result.key], result) for result in results if result.ok],
            sent={item.key: item.values for item in items})
        for result in results:
            job = jobs_by_key[result.key]
            if not result.ok and isinstance(result.error, LedgerAnswerInvalid):
                # no certain answer for this record: its outcome is unknown (it goes again
                # under a new key, looked up by number first)
                job._retry_later(str(result.error), known=False, retire_key=True,
                                 error=result.error)
            elif not result.ok and isinstance(result.error, LedgerError) and result.error.retryable:
                # the ledger answered for this record that it failed, for now: nothing was
                # created, so it goes again later under a new key
                job._retry_later(str(result.error), known=True, error=result.error)
            elif result.ok:
                mismatch = mismatches[job.id]
                if mismatch:
                    # in the ledger, but not equal to Odoo: never "synced"
                    job._park(mismatch, hint=MISMATCH_HINT, sent=True)
                elif result.incomplete:
                    # in the ledger (linked), part of it refused: a Retry sends the rest
                    job._park(str(result.error), ledger=True, error=_ledger_error(result.error))
                else:
                    done |= job
            else:
                job._park(str(result.error), ledger=True, error=_ledger_error(result.error))
        done.write({"state": "done", "done_at": fields.Datetime.now(), "last_error": False,
                    "hint": False, "outcome_unknown": False, **_error_values(None)})
        if done:
            self.env["billing_sync.alert"].sudo()._settle(connection)
        return adapter.last_status if results else None

    def _push(self, connection, adapter, pacer, kind, items, key):
        token = connection._access_token()
        batch = adapter.batched(kind, len(items))
        for attempt in (1, 2):
            try:
                return paced(pacer, adapter, adapter.push, token, connection.org_id, kind,
                             items, key, batch=batch)
            except AccessTokenExpired:
                if attempt == 2:
                    raise
                token = connection._refresh_tokens(force=True)
        return []

    # ------------------------------------------------------------------ outcomes
    def _give_back(self, seconds, reason=None, error=None):
        """Put these claimed jobs back, due in ``seconds``, as if never claimed: the
        attempt is not counted, and the batch goes again under the same key (whatever
        was sent under it, the ledger replays). ``reason``: what the ledger said (a
        planned pause of the budget says nothing); ``error``: its LedgerError (or class)."""
        when = fields.Datetime.now() + datetime.timedelta(seconds=seconds)
        values = {"state": "pending", "next_attempt_at": when}
        if reason:
            values.update(last_error=reason, **_error_values(error))
        for job in self:
            job.write({**values, **job._refunded()})
        if seconds > 0:
            self._trigger_push(when)

    def _wait_for_link(self, reason, record):
        """Wait, unsent and without spending an attempt, until ``record`` (its invoice) is
        in the ledger: writing its link wakes this job (_wake_waiting). It also looks again
        after LINK_WAIT by itself. A record with no job on its way is queued now."""
        self.ensure_one()
        connection = self.connection_id
        now = fields.Datetime.now()
        linked = self.env["billing_sync.link"]._of(connection, record)
        self._requeue({"last_error": reason, "hint": False, "outcome_unknown": False,
                       "wait_res_model": False if linked else record._name,
                       "wait_res_id": False if linked else record.id,
                       "next_attempt_at": now if linked else now + LINK_WAIT}, refund=True)
        if linked:
            return
        if record._name != "account.move" or record.state != "posted":
            return
        kind = {"out_invoice": "invoice", "out_refund": "credit_note"}.get(record.move_type)
        if not kind:
            return
        self.env.cr.execute("""
            SELECT 1 FROM billing_sync_job WHERE connection_id = %s AND res_model = %s
               AND res_id = %s AND kind = %s AND state IN ('pending', 'started', 'blocked', 'dead')
             LIMIT 1
        """, [connection.id, record._name, record.id, kind])
        if not self.env.cr.fetchone():
            self._enqueue_one(connection, record, kind, now)

    def _requeue(self, values, refund=False):
        """Put these jobs back in the queue (pending, no key) with ``values``; ``refund``:
        the attempt their claim counted is given back. One that would meet a newer unsent
        job of its record there (the coalescing index) is cancelled instead: that job
        carries the change."""
        for job in self._cancel_superseded():
            try:
                with self.env.cr.savepoint():
                    job.write({**values, **(job._refunded() if refund else {}),
                               "state": "pending", "batch_key": False})
                    job.flush_recordset()
            except psycopg2.errors.UniqueViolation:
                # queued by another transaction a moment ago
                job.invalidate_recordset()
                job.write({"state": "cancelled"})

    def _refunded(self):
        """The values that give back the attempt this job's claim counted."""
        self.ensure_one()
        return {"attempts": max(0, self.attempts - 1)}

    @api.model
    def _wake_waiting(self, links):
        """The records of ``links`` are in their ledger now: the jobs waiting for them
        (a payment for its invoice, a credit note for the invoice it credits) go now."""
        woke = False
        if not links:
            return
        self.flush_model(["state", "wait_res_model", "wait_res_id"])
        # most links have nobody waiting: one look at the waiting jobs' index for them all
        linked = {(link.res_model, link.res_id, link.connection_id.id) for link in links}
        self.env.cr.execute("""
            SELECT DISTINCT wait_res_model, wait_res_id, connection_id FROM billing_sync_job
             WHERE state = 'pending' AND wait_res_model = ANY(%s) AND wait_res_id = ANY(%s)
               AND connection_id = ANY(%s)
        """, [list({w[0] for w in linked}), list({w[1] for w in linked}),
              list({w[2] for w in linked})])
        for waiting in sorted(set(self.env.cr.fetchall()) & linked):
            try:
                with self.env.cr.savepoint(flush=False):
                    woke = bool(_wake(self.env.cr, *waiting)) or woke
            except psycopg2.errors.SerializationFailure:
                # parked by another worker after this transaction began: woken once this
                # one is kept, in a transaction of its own
                self.env.cr.postcommit.add(
                    lambda db=self.env.registry, w=waiting: _wake_after(db, w))
        if woke:
            self.invalidate_model(["next_attempt_at", "wait_res_model", "wait_res_id"])
            self._trigger_push()

    def _retry_later(self, reason, known=False, retire_key=False, error="network"):
        """A transient failure: back off with jitter, or give up after the last attempt.

        ``known``: the ledger said this attempt created nothing, so its key retires;
        otherwise the outcome is unknown and the next attempt replays the key (or, with
        ``retire_key``, goes under a new one after a lookup by number). ``error``: the
        LedgerError (or the error class) behind it."""
        outcome = {"outcome_unknown": not known, **_error_values(error)}
        dead = self.filtered(lambda j: backoff.is_dead(j.attempts))
        dead.write({"state": "dead", "last_error": reason, **outcome,
                    "hint": "The ledger kept failing; retry once it is reachable.",
                    **({"batch_key": False} if known or retire_key else {})})
        if dead:
            dead._tell_managers(reason)
            for connection in dead.connection_id:
                # a job given up alerts as any stopped one does
                self.env["billing_sync.alert"].sudo()._raise(
                    connection, outcome["error_class"] or "other", reason)
        for job in self - dead:
            again = {"last_error": reason, **outcome,
                     "next_attempt_at": fields.Datetime.now() + datetime.timedelta(
                         seconds=backoff.retry_delay(job.attempts))}
            if known or retire_key:
                # without a key it would meet a newer unsent job for its record: that one
                # carries the change
                job._requeue(again)
            else:
                job.write({**again, "state": "pending"})

    def _replay_differs(self, key, sent):
        """Before a replay under ``key``: True (and the batch goes again under new keys)
        when the request would not be the first one again.

        Both ledgers answer a repeated key with their first answer, whatever is sent: a
        member held or parked since, or one another worker holds, would make that answer
        fit nothing. Each job then goes alone under a new key, its outcome unknown, so
        an invoice or credit note is looked up by its number first."""
        others = self.sudo().search_count([("batch_key", "=", key), ("id", "not in", self.ids)])
        started = self.filtered(lambda j: j.state == "started")
        if not others and len(sent) == len(self) == len(started):
            return False
        # never another worker's batch in flight: only this one's and the unclaimed ones
        holders = self.sudo().filtered(lambda j: j.state == "started") | self.sudo().search([
            ("batch_key", "=", key), ("state", "=", "pending")])
        # nothing was sent: not an attempt, and it goes at once
        holders._requeue({"outcome_unknown": True, "next_attempt_at": fields.Datetime.now(),
                          "last_error": self.env._(
                              "Part of this batch changed since it was sent without an "
                              "answer: it goes again under a new idempotency key, each "
                              "document looked up in the ledger by its number first.")},
                         refund=True)
        return True

    def _cancel_superseded(self):
        """Cancel the jobs of ``self`` a newer unsent job (same record, kind, connection,
        no key) replaces; the others are returned."""
        superseded = self.filtered(lambda j: self.sudo().search_count([
            ("connection_id", "=", j.connection_id.id), ("res_model", "=", j.res_model),
            ("res_id", "=", j.res_id), ("kind", "=", j.kind), ("id", "!=", j.id),
            ("state", "=", "pending"), ("batch_key", "=", False)]))
        superseded.write({"state": "cancelled"})
        return self - superseded

    def _park(self, reason, ledger=False, hint=None, sent=False, reason_class=None, error=None,
              decision=False):
        """A refusal no retry can cure: keep the job for a person and tell them.

        A known refusal means the ledger created nothing under this job's idempotency
        key: the key is retired, so the next attempt (after a fix) sends a new one
        instead of having the ledger replay its refusal. ``sent``: the ledger holds the
        document, but not as Odoo does (``reason`` names both figures). ``error``: the
        ledger's LedgerError, whose class and subject choose the hint. ``decision``: a
        person decides for this very record (a held edit): an activity on it, rather than
        the connection's alert for a kind of problem that may stop a hundred records."""
        self.ensure_one()
        if error is not None:
            hint = hint or hint_of(error.error_class, error.subject)
        hint = hint or (hint_for(reason) if ledger else reason)
        self.write({"state": "blocked", "last_error": reason, "hint": hint,
                    "batch_key": False, "block_reason": reason_class or (
                        "mismatch" if sent else "ledger_refusal" if ledger else "other"),
                    **_error_values(error, "mismatch" if sent else
                                    "mapping" if reason_class == "mapping" else "other")})
        record = self._record()
        if record and hasattr(record, "message_post"):
            if sent:
                body = self.env._("In %(ledger)s, but not as in Odoo: %(reason)s %(hint)s",
                                  ledger=self.connection_id.name, reason=reason, hint=hint)
            else:
                body = self.env._("Not sent to %(ledger)s: %(reason)s %(hint)s",
                                  ledger=self.connection_id.name, reason=reason,
                                  hint=hint if (ledger or hint != reason) else "")
            record.sudo().message_post(body=body)
        if decision:
            responsible = (getattr(record, "invoice_user_id", False)
                           or getattr(record, "user_id", False)
                           or self.connection_id.connected_by_id)
            if responsible and hasattr(record, "activity_schedule"):
                record.sudo().activity_unlink(["mail.mail_activity_data_warning"])
                record.sudo().activity_schedule(
                    "mail.mail_activity_data_warning", user_id=responsible.id,
                    summary=self.env._("Decide for %s", self.connection_id.name), note=hint)
            return
        # one alert (and one activity) per connection and kind of problem, however many
        # records it stops; it closes by itself once none is stuck (billing_sync.alert)
        self.env["billing_sync.alert"].sudo()._raise(
            self.connection_id, self.error_class or "other", reason,
            hint if hint != reason else None)

    def _hold_for_mapping(self, reason):
        """Hold this job, unsent, until a mapping of its ledger is fixed.

        A job released by a remapping that did not cure it is held again quietly: its
        record already says why, and saving another mapping must not repeat it."""
        self.ensure_one()
        if self.block_reason == "mapping" and self.last_error == reason:
            self.write({"state": "blocked", "batch_key": False})
            return
        self._park(reason, reason_class="mapping")

    @api.model
    def _release_mapping_holds(self, connections):
        """Send again the jobs of ``connections`` held for a mapping: one was just saved.

        Each goes as a new attempt under a new idempotency key (none recorded, none
        refused). A held job whose record has a newer unsent job is cancelled: that job
        carries the change. A job whose mapping is still wrong is held again by the
        worker, before any request."""
        if not connections:
            return 0
        cr = self.env.cr
        self.flush_model()
        now = fields.Datetime.now()
        cr.execute("""
            UPDATE billing_sync_job j SET state = 'cancelled', write_date = %s, write_uid = %s
             WHERE j.connection_id = ANY(%s) AND j.state = 'blocked'
               AND j.block_reason = 'mapping'
               AND EXISTS (SELECT 1 FROM billing_sync_job o
                            WHERE o.connection_id = j.connection_id
                              AND o.res_model = j.res_model AND o.res_id = j.res_id
                              AND o.kind = j.kind AND o.id != j.id
                              AND ((o.state = 'pending' AND o.batch_key IS NULL)
                                   OR (o.state = 'blocked' AND o.block_reason = 'mapping'
                                       AND o.id > j.id)))
        """, [now, self.env.uid, connections.ids])
        cr.execute("""
            UPDATE billing_sync_job SET state = 'pending', batch_key = NULL, attempts = 0,
                   next_attempt_at = %s, write_date = %s, write_uid = %s
             WHERE connection_id = ANY(%s) AND state = 'blocked' AND block_reason = 'mapping'
         RETURNING id
        """, [now, now, self.env.uid, connections.ids])
        released = len(cr.fetchall())
        self.invalidate_model()
        if released:
            self._trigger_push()
        return released

    @api.model
    def _forget_organisation(self, connection):
        """``connection`` moves to another organisation: what its unsent jobs knew of the
        old one no longer holds. A job retiring an old-organisation document (a ledger
        id) is cancelled; an unknown outcome says nothing about the new organisation, so
        keys and the lookup by number go. Of two pending jobs for one record and kind (a
        keyed retry and a newer change) the newer one stays."""
        cr = self.env.cr
        self.flush_model()
        now = fields.Datetime.now()
        unsent = ("pending", "blocked", "dead")
        cr.execute("""
            UPDATE billing_sync_job j SET state = 'cancelled', write_date = %s,
                   ledger_org_id = CASE WHEN j.ledger_id IS NOT NULL
                                        THEN COALESCE(j.ledger_org_id, %s) END
             WHERE j.connection_id = %s AND j.state = ANY(%s)
               AND (j.ledger_id IS NOT NULL
                    OR (j.state = 'pending' AND EXISTS (
                        SELECT 1 FROM billing_sync_job o
                         WHERE o.connection_id = j.connection_id AND o.res_model = j.res_model
                           AND o.res_id = j.res_id AND o.kind = j.kind
                           AND o.state = 'pending' AND o.id > j.id)))
        """, [now, connection.org_id, connection.id, list(unsent)])
        cr.execute("""
            UPDATE billing_sync_job SET batch_key = NULL, outcome_unknown = FALSE,
                   write_date = %s
             WHERE connection_id = %s AND state = ANY(%s)
        """, [now, connection.id, list(unsent)])
        self.invalidate_model()

    @api.model
    def _resend(self, connection, links):
        """Queue for ``connection`` the records ``links`` held in the ledger (posted
        invoices, credit notes and payments still in Odoo): after a move to another
        organisation, it must hold them too. Their clients go with them."""
        now = fields.Datetime.now()
        kinds = {"invoice": "account.move", "credit_note": "account.move",
                 "payment": "account.payment"}
        queued = False
        for kind, model in kinds.items():
            ids = links.filtered(lambda lk, k=kind, m=model: lk.ledger_type == k
                                 and lk.res_model == m).mapped("res_id")
            records = self.env[model].browse(ids).exists()
            for record in records.filtered(lambda r: r.state in ("posted", "in_process",
                                                                 "paid")):
                self._enqueue_one(connection, record, kind, now)
                queued = True
        if queued:
            self._trigger_push()

    def _tell_managers(self, reason):
        """One message on each connection for these jobs given up (a batch is one)."""
        for connection in self.connection_id:
            jobs = self.filtered(lambda j, c=connection: j.connection_id == c)
            names = ", ".join(jobs[:5].mapped("record_name")) + (
                self.env._(" and %s more", len(jobs) - 5) if len(jobs) > 5 else "")
            connection.sudo().message_post(body=self.env._(
                "Gave up sending %(records)s after %(n)s attempts: %(reason)s",
                records=names, n=max(jobs.mapped("attempts")), reason=reason))

    # ------------------------------------------------------------------ on demand
    @api.model
    def _send_on_demand(self, records):
        """Queue ``records`` (clients, posted invoices and credit notes, payments) for their
        company's ledgers now, whatever happened before: one posted while its ledger was
        disconnected, or one never sent. A Manager's action; what cannot go (a draft, a
        vendor bill) is counted and said. Returns the notification to show."""
        if not self.env.user.has_group("billing_sync.group_billing_sync_manager"):
            raise AccessError(self.env._("Only Billing Sync Managers send records to the "
                                         "ledger on demand."))
        records.check_access("read")
        Connection = self.env["billing_sync.connection"].sudo()
        now = fields.Datetime.now()
        queued, skipped, no_ledger = 0, 0, set()
        for record in records:
            kind = self._on_demand_kind(record)
            if not kind:
                skipped += 1
                continue
            if record._name == "res.partner":
                record = record.commercial_partner_id
            company = ("company_id" in record._fields and record.company_id) or self.env.company
            connections = Connection.search([("company_id", "=", company.id),
                                             *Connection._SYNCING_DOMAIN])
            if not connections:
                no_ledger.add(company.name)
                continue
            for connection in connections:
                self._enqueue_one(connection, record, kind, now)
                queued += 1
        if queued:
            self._trigger_push()
        message = self.env._("%(n)s sent to the ledger's queue.", n=queued)
        if skipped:
            message += " " + self.env._(
                "%(n)s left out: only clients, posted customer invoices and credit notes, and "
                "posted payments go to the ledger.", n=skipped)
        if no_ledger:
            message += " " + self.env._("No ledger is connected for %s.",
                                        ", ".join(sorted(no_ledger)))
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": {"type": "success" if queued else "warning", "sticky": False,
                           "title": self.env._("Send to ledger"), "message": message}}

    @api.model
    def _on_demand_kind(self, record):
        if record._name == "res.partner":
            return "contact"
        if record._name == "account.move" and record.state == "posted":
            return {"out_invoice": "invoice", "out_refund": "credit_note"}.get(record.move_type)
        if record._name == "account.payment" and record.state in ("in_process", "paid"):
            return "payment"
        return None

    # ------------------------------------------------------------------ retention
    @api.model
    def _cron_prune(self, chunk=5000):
        """Delete the jobs finished (done, or cancelled) longer ago than the retention
        period (Settings › Billing Sync; 0 keeps them), in bulk, a chunk per transaction.
        A cancelled job whose outcome stayed unknown is kept: it may be the only trace of
        a ledger copy no link knows."""
        days = int(self.env["ir.config_parameter"].sudo().get_param(
            "billing_sync.job_retention_days", DEFAULT_RETENTION_DAYS) or 0)
        if days <= 0:
            return 0
        limit = fields.Datetime.now() - datetime.timedelta(days=days)
        pruned = self._prune_rows("billing_sync_job", """
            (state = 'done' AND COALESCE(done_at, write_date) < %(limit)s)
            OR (state = 'cancelled' AND NOT COALESCE(outcome_unknown, FALSE)
                AND write_date < %(limit)s)""", limit, chunk)
        # the ledger changes applied (their event ids guard against a provider's retry,
        # which comes within a day)
        self._prune_rows("billing_sync_inbox",
                         "state = 'done' AND COALESCE(applied_at, received_at) < %(limit)s",
                         limit, chunk)
        self.invalidate_model()
        self.env["billing_sync.inbox"].invalidate_model()
        return pruned

    @api.model
    def _prune_rows(self, table, where, limit, chunk):
        """Delete the rows of ``table`` matching ``where`` (SQL, ``%(limit)s`` its one
        parameter), a chunk per transaction; how many went."""
        pruned = 0
        while True:
            self.env.cr.execute(SQL(
                "DELETE FROM %s WHERE id IN (SELECT id FROM %s WHERE %s LIMIT %s)",
                SQL.identifier(table), SQL.identifier(table),
                SQL(where, limit=limit), chunk))
            pruned += self.env.cr.rowcount
            if self.env.cr.rowcount < chunk:
                return pruned
            self._commit()

    # ------------------------------------------------------------------ access
    # A job names what the superuser worker sends where (record, connection, ledger id
    # to void), and may be the only trace of an attempt whose outcome is unknown: only
    # the engine writes or deletes it (billing_sync.record.access); people act through
    # Retry and Cancel.
    def _engine_only_message(self):
        return self.env._("Sync jobs are written by the sync engine only; use Retry or Cancel.")

    def _as_engine(self):
        """These jobs, for a caller allowed to handle them, as the engine that then
        changes them: a Manager (access rights) of the connection's company (company
        rule) who can read each job's record (billing_sync.record.access)."""
        self.check_access("write")
        return self.sudo()

    def _sending_problem(self, record):
        """Why this job may not go to its connection's ledger (None: it may).

        The worker sends as superuser: a record of another company must never reach this
        company's ledger, whoever queued it; a ledger id of another organisation (the
        connection moved) must never be voided or removed in this one."""
        self.ensure_one()
        connection = self.connection_id
        company = record and "company_id" in record._fields and record.company_id
        if company and company != connection.company_id:
            return self.env._(
                "%(record)s belongs to %(company)s, not to %(ledger)s's company: it is "
                "never sent to that ledger.", record=record.display_name,
                company=company.name, ledger=connection.name)
        if self.ledger_id and self.ledger_org_id and self.ledger_org_id != connection.org_id:
            return self.env._(
                "%(what)s is a document of another organisation than the one %(ledger)s "
                "now syncs with: nothing is sent.",
                what=self.ledger_number or self.ledger_id, ledger=connection.name)
        return None

    # ------------------------------------------------------------------ UI
    def action_retry(self):
        """Send again now (after a fix), one job or a selection. A selection may hold
        several stopped jobs of one record, kind and ledger: only one of them may wait
        unsent (the coalescing index), and the newest carries the record as it is now. The
        older ones are cancelled, as a newer unsent job cancels them (_cancel_superseded);
        one retiring another ledger object (a void of an earlier copy) is left for a Retry
        once the first is done, as the engine leaves it."""
        stopped = self._as_engine().filtered(lambda j: j.state in RETRYABLE)
        newest = {}
        for job in stopped.sorted("id", reverse=True):
            newest.setdefault(job._retry_key(), job)
        older = stopped.filtered(lambda j: newest[j._retry_key()] != j)
        older.filtered(
            lambda j: j.state != "cancelled"
            and j.ledger_id == newest[j._retry_key()].ledger_id
        ).write({"state": "cancelled"})
        jobs = stopped - older
        for job in jobs:
            problem = job._sending_problem(job._record())
            if problem:
                raise AccessError(problem)
        # a newer unsent job of the same record already carries what this one would send
        jobs = jobs._cancel_superseded()
        jobs.write({
            "state": "pending", "attempts": 0, "batch_key": False,
            "next_attempt_at": fields.Datetime.now()})
        self._trigger_push()
        return True

    def _retry_key(self):
        """The jobs of which only one may wait unsent (billing_sync_job_coalesce)."""
        self.ensure_one()
        return (self.connection_id.id, self.res_model, self.res_id, self.kind)

    def action_send_now(self):
        """Send these waiting jobs now rather than at the end of their backoff (the ledger
        is back, a limit was lifted). Their attempts stay counted: one that fails again
        backs off from where it was, and is given up as it would have been. Jobs due
        already, sending, stopped or waiting for another record to reach the ledger
        first (that record's link wakes them) are left as they are."""
        now = fields.Datetime.now()
        jobs = self._as_engine().filtered(
            lambda j: j.state == "pending" and not j.wait_res_model
            and j.next_attempt_at and j.next_attempt_at > now)
        if jobs:
            jobs.write({"next_attempt_at": now})
            self._trigger_push()
        return True

    def action_cancel(self):
        jobs = self._as_engine().filtered(lambda j: j.state in ("pending", "blocked", "dead"))
        jobs.write({"state": "cancelled"})
        self.env["billing_sync.alert"].sudo()._settle(jobs.connection_id)
        return True

    def action_open_record(self):
        self.ensure_one()
        return {"type": "ir.actions.act_window", "res_model": self.res_model,
                "res_id": self.res_id, "view_mode": "form"}


def _ledger_error(error):
    """``error`` when it is a LedgerError (it carries its class), else None."""
    return error if isinstance(error, LedgerError) else None


def _error_values(error, default=None):
    """The job's error_class, error_status and ledger_message for ``error``: a LedgerError,
    an error class (ERROR_CLASSES), or None (``default``'s class, none at all by default)."""
    if isinstance(error, LedgerError):
        return {"error_class": error.error_class, "error_status": error.status or False,
                "ledger_message": error.ledger_message or False}
    return {"error_class": error or default or False, "error_status": False,
            "ledger_message": False}
