"""Pacing calls to one ledger organisation under its published limits, shared by every
worker process and host through PostgreSQL.

A ledger counts calls per organisation and app (Xero: 60 a minute, 5,000 a day, 5 at
once; QuickBooks: 500 a minute, 10 a second, 40 batches a minute, 10 at once), whichever
Odoo worker makes them. So the budget lives in the database every worker shares:

- ``billing_sync_rate_budget``: one row per organisation (its key names the provider,
  the API and the organisation) with ``blocked_until`` (a 429's Retry-After: nobody
  calls before) and ``served_at`` (when a worker last claimed work for it: claiming
  rotates over organisations with it);
- ``billing_sync_rate_call``: the calls made in the last day (or minute), one row each,
  stamped with the database's clock, the one clock every host shares.

Taking a call locks the organisation's row in its own short transaction, so two workers
never both take the last call of a window. Calls run at once up to ``concurrent``: each
holds a session-level advisory lock of the worker's own connection, which PostgreSQL
releases when that worker dies. The ledger is believed over the count: its remaining-call
headers add the calls other apps made, and its 429 blocks the organisation for everyone.

Some ledgers also count one kind of request apart: QuickBooks allows 40 ``/batch`` calls a
minute within its 500 requests. A call row says whether it was a batch (``batch``): the
request windows count every row, the batch window only those. A call is taken for the
request its push starts with (``call(batch=...)``); every request the adapter then makes
is reported (``spend``): the first of the kind taken is that call, any other is counted
as made, so the count is the ledger's own, reads and retries included.

A call carrying less than a full batch also keeps to a pace that spreads the window's
calls left until its calls leave it (``peek(partial=True)``): bursts would otherwise spend
the window and stall every change behind them until it frees.

Nobody sleeps long here: a call that cannot go within ``max_sleep`` raises
``BudgetExhausted`` with the wait, and the caller gives its jobs back due at that time.
"""

import contextlib
import time

# the first key of the advisory locks this module takes (its second: budget and slot)
SLOT_LOCKS = 0x42535331  # "BSS1"
# slots of one organisation (its budget id times this, plus the slot number)
MAX_SLOTS = 64

TABLES = """
    CREATE TABLE IF NOT EXISTS billing_sync_rate_budget (
        id serial PRIMARY KEY,
        key varchar NOT NULL UNIQUE,
        blocked_until timestamp,
        served_at timestamp
    );
    CREATE TABLE IF NOT EXISTS billing_sync_rate_call (
        id bigserial PRIMARY KEY,
        budget_id integer NOT NULL REFERENCES billing_sync_rate_budget ON DELETE CASCADE,
        at timestamp NOT NULL
    );
    ALTER TABLE billing_sync_rate_call ADD COLUMN IF NOT EXISTS id bigserial;
    ALTER TABLE billing_sync_rate_budget ADD COLUMN IF NOT EXISTS served_at timestamp;
    ALTER TABLE billing_sync_rate_call ADD COLUMN IF NOT EXISTS batch boolean NOT NULL
        DEFAULT false;
    CREATE INDEX IF NOT EXISTS billing_sync_rate_call_at
        ON billing_sync_rate_call (budget_id, at);
"""


ROW = """
    SELECT id, extract(epoch FROM clock_timestamp() AT TIME ZONE 'UTC'),
           extract(epoch FROM blocked_until)
      FROM billing_sync_rate_budget WHERE key = %s
"""
ROW_FOR_UPDATE = ROW + " FOR UPDATE"


@contextlib.contextmanager
def read_committed(registry):
    """A cursor of ``registry`` (Odoo's) whose transaction is READ COMMITTED, for a
    SharedBudget: its short transactions lock one organisation's row and must then count
    the calls the worker before them kept, which Odoo's REPEATABLE READ would hide. (A
    test's cursor shares the test's transaction as it is.)"""
    with registry.cursor() as cr:
        if type(cr).__name__ != "TestCursor":
            cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        yield cr


class BudgetExhausted(Exception):  # noqa: N818 -- an outcome, not an error
    """No call to this organisation may go within the caller's patience: ``wait``
    seconds until one may."""

    def __init__(self, wait, reason):
        super().__init__(reason)
        self.wait = wait


class SharedBudget:
    """One organisation's budget. ``cursor`` opens a new cursor on the database (its own
    READ COMMITTED transaction, committed on leaving its ``with``: ``read_committed``);
    ``session_cr`` is the caller's cursor,
    whose connection holds the concurrency slots while the call runs."""

    def __init__(self, cursor, session_cr, key, per_minute=None, per_day=None,
                 per_second=None, concurrent=None, batch_per_minute=None, window_seconds=60.0,
                 day_seconds=None, margin=None, max_sleep=1.0, sleep=time.sleep):
        self.cursor = cursor
        self.session_cr = session_cr
        self.key = key
        self.window = float(window_seconds)
        day = float(day_seconds or self.window * 1440)
        # (limit, seconds, batches only) of every sliding window the ledger counts
        self.windows = [(int(limit), seconds, batches) for limit, seconds, batches in (
            (per_second, self.window / 60.0, False), (per_minute, self.window, False),
            (per_day, day, False), (batch_per_minute, self.window, True)) if limit]
        self.per_minute, self.per_day, self.day = per_minute, per_day, day
        self.batch_per_minute = batch_per_minute
        self.concurrent = min(int(concurrent), MAX_SLOTS) if concurrent else None
        # the ledger stamps a call when it arrives, a little after we counted it
        self.margin = self.window * 0.02 if margin is None else margin
        self.max_sleep = max_sleep
        self.sleep = sleep
        self._slots = []
        self._calls = []  # (row id, batch, spent) of the calls of the one running now
        self.waited = 0.0

    # ------------------------------------------------------------------ reading
    def _row(self, cr, lock):
        cr.execute("INSERT INTO billing_sync_rate_budget (key) VALUES (%s) "
                   "ON CONFLICT (key) DO NOTHING", [self.key])
        cr.execute(ROW_FOR_UPDATE if lock else ROW, [self.key])
        return cr.fetchone()

    def _wait(self, cr, budget_id, now, blocked, batch=False, calls=1):
        """Seconds before ``calls`` more calls (batch ones: ``batch``) may go (0: now)."""
        waits = [blocked - now] if blocked else []
        for limit, seconds, batches in self.windows:
            if batches and not batch:
                continue
            # the (limit - calls + 1)-th latest call in the window: the window has room for
            # ``calls`` more when it leaves (never more than the whole window)
            cr.execute("""
                SELECT extract(epoch FROM at) FROM billing_sync_rate_call
                 WHERE budget_id = %s AND at > to_timestamp(%s) AT TIME ZONE 'UTC'
                   AND (batch OR NOT %s)
                 ORDER BY at DESC OFFSET %s LIMIT 1
            """, [budget_id, now - seconds, batches, max(0, limit - min(calls, limit))])
            row = cr.fetchone()
            if row:
                waits.append(row[0] + seconds + self.margin - now)
        return max([0.0, *waits])

    def _spacing(self, cr, budget_id, now, batch=False, calls=1):
        """Seconds before a call that carries less than a full batch should go (0: now);
        ``calls``: a call made of that many requests, which keeps the pace of as many.

        Calls taken as soon as the window has room spend it in bursts, then stall until the
        burst's calls leave the window: at one invoice a second against 60 calls a minute,
        a burst of 30 made changes wait 20 s. So a partial batch goes no sooner than the
        pace that never runs dry: before the j-th call now in the window leaves it, at
        most (calls left + j - 1) more may go. Whatever waits meanwhile rides in the next
        batch; a full batch is never held back, so a backfill keeps the whole ceiling.
        ``batch``: the call is a batch one, paced by the batch window when there is one."""
        batches = bool(batch and self.batch_per_minute)
        limit = self.batch_per_minute if batches else self.per_minute
        if not limit:
            return 0.0
        cr.execute("""
            SELECT extract(epoch FROM at) FROM billing_sync_rate_call
             WHERE budget_id = %s AND at > to_timestamp(%s) AT TIME ZONE 'UTC'
               AND (batch OR NOT %s)
             ORDER BY at
        """, [budget_id, now - self.window, batches])
        made = [row[0] for row in cr.fetchall()]
        left = limit - len(made)
        if not made or left <= 0:  # nothing to spread, or the window's own wait rules
            return 0.0
        rate = min([(left + j) / (at + self.window + self.margin - now)
                    for j, at in enumerate(made) if at + self.window + self.margin > now]
                   or [float("inf")])
        return max(0.0, made[-1] + calls / rate - now)

    def peek(self, partial=False, batch=False, calls=1):
        """Seconds before this organisation may be called (0: now); takes nothing.
        ``partial``: for a call carrying less than a full batch, which also keeps to the
        pace that spreads what is left of the window (``_spacing``); ``batch``: for a batch
        call (the batch window counts too); ``calls``: for that many requests at once."""
        with self.cursor() as cr:
            budget_id, now, blocked = self._row(cr, lock=False)
            wait = self._wait(cr, budget_id, now, blocked, batch, calls)
            if partial and not wait:
                wait = self._spacing(cr, budget_id, now, batch, calls)
            return wait

    # ------------------------------------------------------------------ taking
    def _take(self, batch=False, wait=True, calls=1):
        """Count ``calls`` calls now if the windows allow them (0.0), else the seconds to
        wait; ``wait=False``: count them now whatever they say (a request already going)."""
        with self.cursor() as cr:
            budget_id, now, blocked = self._row(cr, lock=True)
            seconds = self._wait(cr, budget_id, now, blocked, batch, calls) if wait else 0.0
            if seconds > 0:
                return seconds
            oldest = max(seconds for _limit, seconds, _batches in self.windows or [(0, 0, 0)])
            cr.execute("""
                DELETE FROM billing_sync_rate_call
                 WHERE budget_id = %s AND at < to_timestamp(%s) AT TIME ZONE 'UTC';
                INSERT INTO billing_sync_rate_call (budget_id, at, batch)
                     SELECT %s, to_timestamp(%s) AT TIME ZONE 'UTC', %s
                       FROM generate_series(1, %s)
                  RETURNING id;
            """, [budget_id, now - oldest, budget_id, now, bool(batch), max(1, calls)])
            self._calls.extend([row_id, bool(batch), not wait] for (row_id,) in cr.fetchall())
            return 0.0

    def _take_slot(self):
        if not self.concurrent:
            return True
        with self.cursor() as cr:
            budget_id = self._row(cr, lock=False)[0]
        for slot in range(self.concurrent):
            lock = budget_id * MAX_SLOTS + slot
            self.session_cr.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                    [SLOT_LOCKS, lock])
            if self.session_cr.fetchone()[0]:
                self._slots.append(lock)
                return True
        return False

    def _release_slot(self):
        if self._slots:
            self.session_cr.execute("SELECT pg_advisory_unlock(%s, %s)",
                                    [SLOT_LOCKS, self._slots.pop()])

    def acquire(self, batch=False, calls=1):
        """Take one call (a batch one: ``batch``): a concurrency slot and a place in every
        window that counts it, ``calls`` places for a call known to make that many requests
        (all taken at once, or none). Waits at most ``max_sleep`` in all; BudgetExhausted
        with the wait otherwise."""
        deadline = time.monotonic() + self.max_sleep
        while not self._take_slot():
            if time.monotonic() + 0.1 > deadline:
                raise BudgetExhausted(1.0, f"{self.concurrent} calls to this organisation "
                                           "are already running")
            self.sleep(0.1)
        try:
            while True:
                wait = self._take(batch, calls=calls)
                if wait <= 0:
                    return
                if time.monotonic() + wait > deadline:
                    raise BudgetExhausted(wait, "the ledger's rate limit for this organisation "
                                                f"is used up for the next {wait:.0f} s")
                self.waited += wait
                self.sleep(wait)
        except BaseException:
            self._release_slot()
            raise

    def spend(self, batch=False):
        """The adapter is about to send one request (a batch one: ``batch``) within the
        call taken: the first of the kind taken is that call; any other is counted as made
        now, without waiting (the call is under way: stopping it half-done would leave
        what the ledger did unknown). A batch counts in the request windows too."""
        taken = next((call for call in self._calls if not call[2] and call[1] == batch),
                     None)
        if taken:
            taken[2] = True
        else:
            self._take(batch, wait=False)

    def release(self):
        """The call is over: its requests are counted from now. The ledger counted each
        when it arrived, somewhere between when it was taken and now; counting it from the
        later moment never lets another call in before the ledger's window has room for
        it. A call taken but never sent (the adapter sent nothing of its kind) is not
        counted, unless nothing at all was reported (an adapter that does not report)."""
        self._release_slot()
        calls, self._calls = self._calls, []
        if not calls:
            return
        unsent = [call[0] for call in calls if not call[2]]
        with self.cursor() as cr:
            if len(unsent) < len(calls):
                cr.execute("DELETE FROM billing_sync_rate_call WHERE id = ANY(%s)", [unsent])
            cr.execute("UPDATE billing_sync_rate_call SET at = clock_timestamp() AT TIME "
                       "ZONE 'UTC' WHERE id = ANY(%s)", [[call[0] for call in calls]])

    @contextlib.contextmanager
    def call(self, batch=False, calls=1):
        """``with budget.call(batch):`` one call taken for its first request (``calls``: its
        first ``calls`` requests; see ``acquire``), released on leaving; ``spend`` reports
        each request it makes."""
        self.acquire(batch, calls)
        try:
            yield self
        finally:
            self.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def headroom(self):
        """What is left now, as the shared count (the ledger's word included) says:
        {"minute": calls left in the window, "day": calls left today, "batch": batch
        calls left in the window (None where the ledger counts no such limit),
        "blocked": seconds the ledger's 429 still holds every call}. Read with the
        caller's cursor, nothing written: a dashboard's look."""
        cr = self.session_cr
        cr.execute(ROW, [self.key])
        row = cr.fetchone()
        left = {"minute": self.per_minute, "day": self.per_day,
                "batch": self.batch_per_minute, "blocked": 0.0}
        if not row:
            return left
        budget_id, now, blocked = row
        for name, limit, seconds, batches in (
                ("minute", self.per_minute, self.window, False),
                ("day", self.per_day, self.day, False),
                ("batch", self.batch_per_minute, self.window, True)):
            if not limit:
                continue
            cr.execute("""SELECT count(*) FROM billing_sync_rate_call
                           WHERE budget_id = %s AND at > to_timestamp(%s) AT TIME ZONE 'UTC'
                             AND (batch OR NOT %s)""", [budget_id, now - seconds, batches])
            left[name] = max(0, int(limit) - cr.fetchone()[0])
        left["blocked"] = max(0.0, float(blocked - now)) if blocked else 0.0
        return left

    # ------------------------------------------------------------------ the ledger's word
    def observe(self, minute_remaining=None, day_remaining=None):
        """Align with what the ledger says is left (other apps share the quota): the calls
        we do not know of are counted as made now."""
        checks = [(minute_remaining, self.per_minute, self.window),
                  (day_remaining, self.per_day, self.day)]
        checks = [(int(left), limit, seconds) for left, limit, seconds in checks
                  if left is not None and limit]
        if not checks:
            return
        with self.cursor() as cr:
            budget_id, now, _blocked = self._row(cr, lock=True)
            for left, limit, seconds in checks:
                cr.execute("""SELECT count(*) FROM billing_sync_rate_call
                               WHERE budget_id = %s AND at > to_timestamp(%s) AT TIME ZONE 'UTC'
                           """, [budget_id, now - seconds])
                missing = min(limit, limit - left - cr.fetchone()[0])
                if missing > 0:
                    cr.execute("""
                        INSERT INTO billing_sync_rate_call (budget_id, at)
                        SELECT %s, to_timestamp(%s) AT TIME ZONE 'UTC'
                          FROM generate_series(1, %s)
                    """, [budget_id, now, missing])

    def served(self):
        """A worker claimed work for this organisation now (claiming takes turns)."""
        with self.cursor() as cr:
            cr.execute("""
                INSERT INTO billing_sync_rate_budget (key, served_at)
                VALUES (%s, clock_timestamp() AT TIME ZONE 'UTC')
                ON CONFLICT (key) DO UPDATE SET served_at = EXCLUDED.served_at
            """, [self.key])

    def block(self, seconds):
        """The ledger answered 429: nobody calls this organisation for ``seconds``."""
        with self.cursor() as cr:
            self._row(cr, lock=True)
            cr.execute("""
                UPDATE billing_sync_rate_budget
                   SET blocked_until = GREATEST(COALESCE(blocked_until, 'epoch'::timestamp),
                       clock_timestamp() AT TIME ZONE 'UTC' + make_interval(secs => %s))
                 WHERE key = %s
            """, [float(seconds), self.key])



def paced(budget, adapter, call, *args, batch=False, calls=1):
    """``call(*args)``, a method of ``adapter``, as one call of ``budget`` (none: unpaced)
    that starts with a batch request when ``batch`` (``calls`` requests, all taken before
    the first goes): each request the adapter sends is reported to the budget (its
    ``meter``), then its remaining-call headers believed."""
    if budget is None:
        return call(*args)
    with budget.call(batch, calls):
        adapter.meter = budget.spend
        try:
            result = call(*args)
        finally:
            adapter.meter = None
    headroom = adapter.last_headroom or {}
    budget.observe(headroom.get("minute_remaining"), headroom.get("day_remaining"))
    return result
