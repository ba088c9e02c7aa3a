"""One organisation's rate-limit budget, shared through PostgreSQL (services/ratelimit.py).

The budget commits in its own transactions, as it does for real: each test uses a key of
its own. The tests about two workers open real, separate database sessions (two workers
are two sessions).
"""

import uuid

import psycopg2

import odoo
from odoo.tests import TransactionCase, tagged

from odoo.addons.billing_sync.services.ratelimit import BudgetExhausted, SharedBudget


@tagged("post_install", "-at_install")
class TestRateBudget(TransactionCase):
    def budget(self, **limits):
        slept = []
        budget = SharedBudget(self.env.registry.cursor, self.env.cr,
                              f"test|{uuid.uuid4().hex}", sleep=slept.append, margin=0,
                              **limits)
        self.addCleanup(self.forget, budget.key)
        return budget, slept

    def forget(self, *keys):
        with self.env.registry.cursor() as cr:
            cr.execute("DELETE FROM billing_sync_rate_budget WHERE key = ANY(%s)", [list(keys)])

    def test_a_full_minute_says_how_long_to_wait(self):
        budget, _slept = self.budget(per_minute=3, window_seconds=60)
        for _ in range(3):
            with budget:
                pass
        with self.assertRaises(BudgetExhausted) as caught:
            budget.acquire()
        self.assertAlmostEqual(caught.exception.wait, 60.0, delta=2.0)
        self.assertAlmostEqual(budget.peek(), 60.0, delta=2.0)

    def test_two_workers_share_one_organisation(self):
        key = f"test|{uuid.uuid4().hex}"
        self.addCleanup(self.forget, key, key + "-other")
        first = SharedBudget(self.env.registry.cursor, self.env.cr, key, per_minute=3)
        second = SharedBudget(self.env.registry.cursor, self.env.cr, key, per_minute=3)
        with first, first, second:
            pass
        with self.assertRaises(BudgetExhausted):
            second.acquire()
        other = SharedBudget(self.env.registry.cursor, self.env.cr, key + "-other",
                             per_minute=3)
        with other:  # another organisation has its own budget
            pass

    def test_per_second_and_per_day(self):
        budget, _slept = self.budget(per_minute=500, per_second=2, window_seconds=60)
        budget.acquire()
        budget.acquire()
        with self.assertRaises(BudgetExhausted) as caught:
            budget.max_sleep = 0
            budget.acquire()
        self.assertLessEqual(caught.exception.wait, 1.05)
        daily, _slept = self.budget(per_minute=100, per_day=2, window_seconds=60,
                                    day_seconds=86400)
        daily.acquire()
        daily.acquire()
        with self.assertRaises(BudgetExhausted) as caught:
            daily.acquire()
        self.assertGreater(caught.exception.wait, 86000)

    def test_a_short_wait_is_slept_not_given_back(self):
        budget, slept = self.budget(per_minute=500, per_second=1, window_seconds=60,
                                    max_sleep=5)
        budget.acquire()

        def sleep(seconds):
            # the second passes: the call leaves its window
            slept.append(seconds)
            with self.env.registry.cursor() as cr:
                cr.execute("""
                    UPDATE billing_sync_rate_call SET at = at - interval '2 seconds'
                     WHERE budget_id = (SELECT id FROM billing_sync_rate_budget WHERE key = %s)
                """, [budget.key])

        budget.sleep = sleep
        budget.acquire()
        self.assertEqual(len(slept), 1)
        self.assertLessEqual(slept[0], 1.0)

    def calls_made(self, budget, *seconds_ago):
        """Calls of ``budget`` made that many seconds ago (another worker's, say)."""
        with self.env.registry.cursor() as cr:
            budget._row(cr, lock=False)
            cr.execute("""
                INSERT INTO billing_sync_rate_call (budget_id, at)
                SELECT b.id, (clock_timestamp() AT TIME ZONE 'UTC') - make_interval(secs => ago)
                  FROM billing_sync_rate_budget b, unnest(%s::float[]) ago
                 WHERE b.key = %s
            """, [list(seconds_ago), budget.key])

    def test_a_partial_batch_keeps_to_the_pace_a_full_one_does_not(self):
        budget, _slept = self.budget(per_minute=60, window_seconds=60)
        self.assertEqual(budget.peek(partial=True), 0.0, "an idle organisation: at once")
        # a burst spent half of the minute just now: the 30 calls left must last until
        # its calls leave the window, a minute from now, so a partial batch waits 2 s
        self.calls_made(budget, *[0.0] * 30)
        self.assertEqual(budget.peek(), 0.0, "a full batch goes at once")
        self.assertAlmostEqual(budget.peek(partial=True), 2.0, delta=0.3)
        # a burst about to leave the window holds nothing back
        quiet, _slept = self.budget(per_minute=60, window_seconds=60)
        self.calls_made(quiet, *[57.0] * 30)
        self.assertEqual(quiet.peek(partial=True), 0.0)
        # a minute used up: the window's own wait, partial or not
        full, _slept = self.budget(per_minute=3, window_seconds=60)
        self.calls_made(full, 10.0, 10.0, 10.0)
        self.assertAlmostEqual(full.peek(partial=True), 50.0, delta=1.0)

    def test_a_call_of_several_requests_takes_them_all_or_none(self):
        budget, _slept = self.budget(per_minute=5, window_seconds=60, max_sleep=0)
        self.calls_made(budget, 10.0, 10.0, 10.0)
        self.assertEqual(budget.peek(calls=2), 0.0)
        self.assertAlmostEqual(budget.peek(calls=3), 50.0, delta=1.0)
        with self.assertRaises(BudgetExhausted) as caught:
            budget.acquire(calls=3)
        self.assertAlmostEqual(caught.exception.wait, 50.0, delta=1.0)
        self.assertEqual(self.counted(budget), (3, 0), "nothing taken")
        with budget.call(calls=2):
            budget.spend()
            budget.spend()
        self.assertEqual(self.counted(budget), (5, 0))
        # taken for two requests, one sent: one counted
        spare, _slept = self.budget(per_minute=5, window_seconds=60)
        with spare.call(calls=2):
            spare.spend()
        self.assertEqual(self.counted(spare), (1, 0))
        # a call of three keeps the pace of three: half the minute spent just now leaves
        # a call every 2 s, so three requests wait 6 s
        paced, _slept = self.budget(per_minute=60, window_seconds=60)
        self.calls_made(paced, *[0.0] * 30)
        self.assertAlmostEqual(paced.peek(partial=True, calls=3), 6.0, delta=0.5)

    def counted(self, budget):
        """(requests, batches) the budget counts in its window now."""
        with self.env.registry.cursor() as cr:
            cr.execute("""
                SELECT count(*), count(*) FILTER (WHERE c.batch)
                  FROM billing_sync_rate_call c JOIN billing_sync_rate_budget b
                    ON b.id = c.budget_id WHERE b.key = %s
            """, [budget.key])
            return cr.fetchone()

    def test_batches_have_a_window_of_their_own_inside_the_requests(self):
        # QuickBooks: 40 batches a minute within 500 requests (here 2 within 5)
        budget, _slept = self.budget(per_minute=5, batch_per_minute=2, window_seconds=60)
        for _ in range(2):
            with budget.call(batch=True):
                pass
        with self.assertRaises(BudgetExhausted) as caught:
            budget.acquire(batch=True)
        self.assertAlmostEqual(caught.exception.wait, 60.0, delta=2.0)
        self.assertAlmostEqual(budget.peek(batch=True), 60.0, delta=2.0)
        self.assertEqual(budget.peek(), 0.0, "a request that is no batch still goes")
        for _ in range(3):
            with budget.call():
                pass
        self.assertEqual(self.counted(budget), (5, 2))
        with self.assertRaises(BudgetExhausted):
            budget.acquire()  # the batches counted among the requests too
        # a lone change paces itself by the request window, not by the batches'
        paced, _slept = self.budget(per_minute=60, batch_per_minute=4, window_seconds=60)
        self.calls_made(paced, 0.0, 0.0)
        self.assertAlmostEqual(paced.peek(partial=True), 60 / 58.0, delta=0.2)
        with self.env.registry.cursor() as cr:
            cr.execute("UPDATE billing_sync_rate_call SET batch = true WHERE budget_id = "
                       "(SELECT id FROM billing_sync_rate_budget WHERE key = %s)", [paced.key])
        self.assertAlmostEqual(paced.peek(partial=True, batch=True), 30.0, delta=1.0)

    def test_every_request_the_adapter_reports_is_counted_once(self):
        budget, _slept = self.budget(per_minute=60, batch_per_minute=40, window_seconds=60)
        # a push taken for a batch that reads first, then sends its batch and a second
        # one (a stale retry): three requests, two of them batches
        with budget.call(batch=True):
            budget.spend(False)
            budget.spend(True)
            budget.spend(True)
        self.assertEqual(self.counted(budget), (3, 2))
        # taken for a batch, it sent one request only (everything else was refused
        # before): the batch it did not send is not counted
        with budget.call(batch=True):
            budget.spend(False)
        self.assertEqual(self.counted(budget), (4, 2))
        # an adapter that reports nothing: the call taken is counted as made
        with budget.call():
            pass
        self.assertEqual(self.counted(budget), (5, 2))

    def test_the_ledger_is_believed(self):
        budget, _slept = self.budget(per_minute=60, window_seconds=60)
        budget.acquire()
        budget.observe(minute_remaining=0)  # another app used the rest of this minute
        self.assertGreater(budget.peek(), 50)
        blocked, _slept = self.budget(per_minute=60, window_seconds=60)
        blocked.block(7)  # a 429's Retry-After
        self.assertAlmostEqual(blocked.peek(), 7.0, delta=0.5)
        with self.assertRaises(BudgetExhausted):
            blocked.acquire()


@tagged("post_install", "-at_install")
class TestRateBudgetSessions(TransactionCase):
    """Two workers in two database sessions, as two processes or hosts are."""

    def setUp(self):
        super().setUp()
        self.key = f"test|{uuid.uuid4().hex}"
        self.sessions = [self.session(), self.session()]
        self.addCleanup(self._cleanup)

    def session(self):
        """A database session of its own (a worker's connection), closed for real."""
        _name, info = odoo.sql_db.connection_info_for(self.env.cr.dbname)
        connection = psycopg2.connect(**info)
        connection.autocommit = True
        return connection.cursor()

    def _cleanup(self):
        for cr in self.sessions:
            cr.connection.close()
        with odoo.sql_db.db_connect(self.env.cr.dbname).cursor() as cr:
            cr.execute("DELETE FROM billing_sync_rate_budget WHERE key = %s", [self.key])

    def budget(self, session, **limits):
        db = odoo.sql_db.db_connect(self.env.cr.dbname)
        return SharedBudget(db.cursor, session, self.key, **limits)

    def test_concurrent_calls_are_capped_across_sessions(self):
        first = self.budget(self.sessions[0], per_minute=60, concurrent=1)
        second = self.budget(self.sessions[1], per_minute=60, concurrent=1, max_sleep=0.3)
        with first, self.assertRaises(BudgetExhausted):
            second.acquire()
        with second:  # the slot is free again
            pass

    def test_a_dead_session_frees_its_slot(self):
        first = self.budget(self.sessions[0], per_minute=60, concurrent=1)
        second = self.budget(self.sessions[1], per_minute=60, concurrent=1, max_sleep=0.3)
        first.acquire()
        # the worker dies: its session ends, and PostgreSQL lets its locks go
        self.sessions[0].connection.close()
        self.sessions[0] = self.session()
        with second:
            pass

    def test_a_429_blocks_every_session(self):
        first = self.budget(self.sessions[0], per_minute=60)
        second = self.budget(self.sessions[1], per_minute=60)
        first.block(30)
        self.assertGreater(second.peek(), 25)
