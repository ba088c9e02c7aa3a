"""The sync engine in one process (issue 17): waiting for a link, a refused refresh,
changes made while disconnected, sending on demand, bounded chunks, fair claiming, the
shared budget and 429s, retention. Several processes: test_engine_processes.py."""

import datetime

from odoo import fields
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import TransactionCase, tagged

from odoo.addons.billing_sync.services.webhooks import WebhookEvent

from .common import MANAGER, USER, make_user
from .test_outbound import OutboundMixin


@tagged("post_install", "-at_install")
class TestEngine(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def pay(self, moves):
        return self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=moves.ids).create(
            {"journal_id": self.bank_journal.id})._create_payments()

    def second_company_connection(self, name, org_id):
        """A second company, with a QuickBooks connection marked connected to ``org_id``
        (nothing is sent to it here)."""
        company = self.env["res.company"].create({"name": name,
                                                  "currency_id": self.env.company.currency_id.id})
        connection = self.env["billing_sync.connection"].create({
            **self.sandbox_values("qbo"), "company_id": company.id})
        connection.sudo().write({"state": "connected", "org_id": org_id})
        return connection

    def expire(self, connection):
        connection._token_sudo().expires_at = datetime.datetime(2000, 1, 1)

    def test_a_payment_waits_for_its_invoice_and_goes_without_a_retry(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                move = self.invoice(self.partner(f"Waits {provider}"))
                payment = self.pay(move)
                invoice_job, payment_job = self.jobs(move), self.jobs(payment)
                # the invoice is held back (busy ledger): the payment is claimed first
                invoice_job.next_attempt_at = fields.Datetime.now() + datetime.timedelta(hours=1)
                self.run_worker()
                self.assertEqual(payment_job.state, "pending")
                self.assertEqual(payment_job.waiting_for, move.display_name)
                self.assertEqual(payment_job.attempts, 0, "waiting is not an attempt")
                self.assertGreater(payment_job.next_attempt_at, fields.Datetime.now())
                # the invoice goes: its link wakes the payment, sent in the same run
                invoice_job.next_attempt_at = fields.Datetime.now()
                self.run_worker()
                self.assertEqual(invoice_job.state, "done", invoice_job.last_error)
                self.assertEqual(payment_job.state, "done", payment_job.last_error)
                self.assertFalse(payment_job.waiting_for)
                self.assertTrue(self.env["billing_sync.link"]._of(connection, payment))

    def test_a_waiting_payment_queues_an_invoice_nobody_sent(self):
        connection = self.connected("xero")
        move = self.invoice(self.partner("Never sent"))
        self.jobs(move).write({"state": "cancelled"})
        payment = self.pay(move)
        self.run_worker()
        self.assertEqual(self.jobs(move, "done").state, "done", "the invoice was queued")
        self.assertEqual(self.jobs(payment).state, "done", self.jobs(payment).last_error)
        self.assertTrue(self.env["billing_sync.link"]._of(connection, payment))

    def test_a_refused_refresh_spends_no_attempt_and_says_it_once(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                partner = self.partner(f"Revoked {provider}")
                moves = self.invoice(partner) | self.invoice(partner) | self.invoice(partner)
                connection._adapter().revoke(connection._cipher().decrypt(
                    connection._token_sudo().refresh_token))
                self.expire(connection)
                said = connection.message_ids.filtered("body")
                # several cron runs meet the refusal
                self.run_worker()
                self.run_worker()
                jobs = self.jobs(moves)
                self.assertEqual(connection.state, "needs_reconnect")
                self.assertEqual(set(jobs.mapped("state")), {"pending"})
                self.assertEqual(set(jobs.mapped("attempts")), {0}, "no attempt spent")
                self.assertEqual(len(connection.message_ids.filtered("body") - said), 1,
                                 "said once")
                self.assertEqual(len(connection.activity_ids), 1)
                # a change made meanwhile is queued and held too
                later = self.invoice(partner)
                self.assertEqual(self.jobs(later).state, "pending")
                self.connect(connection)
                self.run_worker()
                self.assertEqual(set(self.jobs(moves | later).mapped("state")), {"done"})
                self.assertEqual(len(self.ledger_invoices(provider)), 4, "each once")

    def test_an_invoice_posted_while_disconnected_goes_after_reconnect(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                connection.with_user(self.admin).action_disconnect()
                move = self.invoice(self.partner(f"Offline {provider}"))
                job = self.jobs(move)
                self.assertEqual(job.state, "pending", "queued, held")
                self.run_worker()
                self.assertEqual((job.state, job.attempts), ("pending", 0))
                self.connect(connection)
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
                self.assertTrue(self.env["billing_sync.link"]._of(connection, move))

    def test_managers_send_any_record_on_demand(self):
        connection = self.connected("xero")
        Move = self.env["account.move"].with_context(billing_sync_no_push=True)
        partner = self.partner("On demand")
        move = self.invoice(partner, post=False)
        Move.browse(move.id).action_post()  # posted without a job (as before a connection)
        self.assertFalse(self.jobs(move))
        draft = self.invoice(partner, post=False)
        manager = make_user(self.env, "bs_engine_manager",
                            f"{MANAGER},account.group_account_invoice")
        user = make_user(self.env, "bs_engine_user", f"{USER},account.group_account_invoice")
        action = self.env.ref("billing_sync.action_send_to_ledger_move")
        with self.assertRaises(AccessError):
            self.env["billing_sync.job"].with_user(user)._send_on_demand(
                (move | draft).with_user(user))
        result = action.with_user(manager).with_context(
            active_model="account.move", active_ids=(move | draft).ids).run()
        self.assertIn("1 sent", result["params"]["message"])
        self.assertIn("1 left out", result["params"]["message"])
        self.run_worker()
        self.assertEqual(self.jobs(move).state, "done", self.jobs(move).last_error)
        self.assertTrue(self.env["billing_sync.link"]._of(connection, move))

    def test_on_demand_stays_inside_the_managers_companies(self):
        here = self.connected("xero")
        there = self.second_company_connection("Firm next door", "next-door-org")
        company = there.company_id
        theirs = self.partner("Next door client", company_id=company.id)
        shared = self.partner("Shared client")
        Job = self.env["billing_sync.job"]
        outsider = make_user(self.env, "bs_engine_outsider", MANAGER)
        # a Manager of this company only: the other company's client is out of reach
        with self.assertRaises(AccessError):
            Job.with_user(outsider)._send_on_demand(theirs.with_user(outsider))
        both = make_user(self.env, "bs_engine_both", MANAGER,
                         company_ids=[(6, 0, [self.env.company.id, company.id])])
        # a Manager of both companies, working in this one: the same
        working_here = both.with_context(allowed_company_ids=[self.env.company.id])
        with self.assertRaises(AccessError):
            Job.with_user(working_here)._send_on_demand(
                theirs.with_user(working_here).with_context(
                    allowed_company_ids=[self.env.company.id]))
        self.assertFalse(self.jobs(theirs))
        # working in both: each record goes to its own company's ledger only
        action = self.env.ref("billing_sync.action_send_to_ledger_partner")
        action.with_user(both).with_context(
            allowed_company_ids=[self.env.company.id, company.id],
            active_model="res.partner", active_ids=(theirs | shared).ids).run()
        self.assertEqual(self.jobs(theirs).connection_id, there)
        self.assertEqual(self.jobs(shared).connection_id, here,
                         "a shared client goes to the ledger of the company worked in")

    def test_one_bounded_chunk_per_call_with_progress(self):
        self.connected("qbo")
        partner = self.partner("Chunks")
        moves = self.env["account.move"]
        for _ in range(31):  # QuickBooks takes 30 a batch: two batches
            moves |= self.invoice(partner)
        Job = self.env["billing_sync.job"]
        cron = self.env.ref("billing_sync.ir_cron_push_jobs")
        cron, progress = cron._add_progress()
        pushing = Job.with_context(ir_cron_progress_id=progress.id)
        self.assertEqual(pushing._cron_push(max_batches=1), 1)
        # Odoo calls it again at once for the rest
        self.assertEqual((progress.done, progress.remaining), (1, 1))
        self.assertEqual(len(self.jobs(moves, "done")), 30)
        self.assertEqual(pushing._cron_push(max_batches=1), 1)
        self.assertEqual(len(self.jobs(moves, "done")), 31)
        self.assertEqual(Job._due_count(), 0)

    def test_claiming_takes_turns_across_connections(self):
        backfill = self.connected("xero")
        other = self.second_company_connection("Second firm", "other-org")
        Job = self.env["billing_sync.job"]
        partner = self.partner("Backfill")
        now = fields.Datetime.now()
        for _ in range(4):
            Job._enqueue_one(backfill, partner, "contact", now)
            partner = self.partner("Backfill")
        Job._enqueue_one(other, self.partner("Quiet"), "contact", now)
        first, second = Job._claim_batch(), Job._claim_batch()
        # the connection never called goes first; the backfill does not hold it back
        self.assertEqual({first.connection_id, second.connection_id}, {backfill, other})
        (first | second)._release_lease()

    def test_a_429_blocks_the_organisation_for_every_worker(self):
        connection = self.connected("xero")
        move = self.invoice(self.partner("Busy"))
        self.xero.faults.next("http429", count=1, retry_after=30)
        self.run_worker()
        job = self.jobs(move)
        self.assertEqual((job.state, job.attempts), ("pending", 0))
        self.assertEqual((job.error_class, job.error_status), ("rate_limit", 429))
        from odoo.addons.billing_sync.models.billing_sync_job import _pacer

        # another worker (another budget object, as in another process) waits as long
        self.assertGreater(_pacer(connection).peek(), 25)
        job.next_attempt_at = fields.Datetime.now()
        self.assertFalse(self.env["billing_sync.job"]._claim_batch(), "nobody calls it")

    def test_a_lone_change_keeps_to_the_pace_after_a_burst(self):
        connection = self.connected("xero")
        partner = self.partner("Paced")
        self.invoice(partner)
        self.run_worker()  # the client is in the ledger
        from odoo.addons.billing_sync.models.billing_sync_job import _pacer

        budget = _pacer(connection)
        # a burst (another worker's) spent 40 of the minute's 60 calls just now
        self.env.cr.execute("""
            INSERT INTO billing_sync_rate_call (budget_id, at)
            SELECT id, clock_timestamp() AT TIME ZONE 'UTC' FROM billing_sync_rate_budget,
                   generate_series(1, 40) WHERE key = %s
        """, [budget.key])
        move = self.invoice(partner)  # one invoice, far from a full batch
        Job = self.env["billing_sync.job"]
        self.assertEqual(Job._next_call(connection, fields.Datetime.now()), (True, False),
                         "a partial batch, no batch request (Xero counts none apart)")
        waits = []
        self.assertFalse(Job._claim_batch(waits), "held to the pace, nothing claimed")
        # at most 20 calls left (the first run made some) for the minute the burst takes
        # to leave: one every 3 s or more, never the whole minute
        self.assertGreaterEqual(min(waits), 3.0)
        self.assertLess(min(waits), 10.0)
        # the burst leaves the window: it goes
        self.env.cr.execute("UPDATE billing_sync_rate_call SET at = at - interval '59 s' "
                            "WHERE budget_id = (SELECT id FROM billing_sync_rate_budget "
                            "WHERE key = %s)", [budget.key])
        self.run_worker()
        self.assertEqual(self.jobs(move).state, "done", self.jobs(move).last_error)

    def test_the_budget_counts_every_request_the_ledger_sees(self):
        """QuickBooks counts 40 batches a minute inside 500 requests: the shared budget
        counts each request the adapter sends (reads and lone documents included) and
        which of them were batches, as the ledger does."""
        from odoo.addons.billing_sync.models.billing_sync_job import _budget_key

        connection = self.connected("qbo")
        self.env.cr.execute("DELETE FROM billing_sync_rate_call")
        self.qbo.counters.reset()
        moves = self.invoice(self.partner("Counted A")) | self.invoice(self.partner("Counted B"))
        self.run_worker()
        payment = self.pay(moves[0])
        self.run_worker()
        jobs = self.jobs(moves) | self.jobs(payment)
        self.assertEqual(set(jobs.mapped("state")), {"done"}, jobs.mapped("last_error"))
        seen = {label: sum(statuses.values()) for label, statuses
                in self.qbo.counters.snapshot()["by_endpoint"].items()
                if "/v3/company/" in label}
        # the contacts matched and created, the two invoices: batches; the lone payment
        # reads its invoice, then goes to its own endpoint
        self.assertEqual(seen.get("POST /v3/company/{realmId}/payment"), 1, seen)
        self.assertGreaterEqual(seen.get("POST /v3/company/{realmId}/batch"), 2, seen)
        self.env.cr.execute("""
            SELECT count(*), count(*) FILTER (WHERE c.batch)
              FROM billing_sync_rate_call c
              JOIN billing_sync_rate_budget b ON b.id = c.budget_id WHERE b.key = %s
        """, [_budget_key(connection)])
        self.assertEqual(self.env.cr.fetchone(),
                         (sum(seen.values()), seen["POST /v3/company/{realmId}/batch"]))

    def test_a_change_asks_for_a_push_run_and_wakes_the_cron_threads(self):
        import select

        import psycopg2

        import odoo

        from odoo.addons.billing_sync.models.billing_sync_job import _notify_cron_threads

        self.connected("xero")
        cron = self.env.ref("billing_sync.ir_cron_push_jobs")
        Trigger = self.env["ir.cron.trigger"]
        before = Trigger.search_count([("cron_id", "=", cron.id)])
        partner = self.partner("Wakes")
        self.invoice(partner)
        self.invoice(partner)
        self.assertGreater(Trigger.search_count([("cron_id", "=", cron.id)]), before)
        wakes = [c for c in self.env.cr.postcommit._funcs
                 if getattr(c, "func", None) is _notify_cron_threads]
        self.assertEqual(len(wakes), 1, "one wake-up per transaction")
        # what the cron threads hear: a notification in the 'postgres' database
        _db, info = odoo.sql_db.connection_info_for("postgres")
        listener = psycopg2.connect(**info)
        self.addCleanup(listener.close)
        listener.autocommit = True
        listener.cursor().execute("LISTEN cron_trigger")
        _notify_cron_threads(self.env.cr.dbname)
        select.select([listener], [], [], 5)
        listener.poll()
        self.assertIn(self.env.cr.dbname, [n.payload for n in listener.notifies])

    def test_a_change_put_off_a_few_seconds_wakes_the_cron_threads_when_due(self):
        """Odoo's cron threads look for later triggers once a minute: a change the rate
        budget put off for a few seconds has them told when it is due."""
        import select
        import time

        import psycopg2

        import odoo

        from odoo.addons.billing_sync.models.billing_sync_job import _notify_cron_threads_at

        connection = self.connected("xero")
        Inbox = self.env["billing_sync.inbox"]
        Inbox._receive(connection, [WebhookEvent(connection.org_id, "contact", "c1", "update",
                                                 "nudge-1")])
        row = Inbox.search([("event_id", "=", "nudge-1")])
        row._put_off(2)
        nudges = [c for c in self.env.cr.postcommit._funcs
                  if getattr(c, "func", None) is _notify_cron_threads_at]
        self.assertEqual([n.args for n in nudges], [(self.env.cr.dbname, 2)])
        row._put_off(3600)  # a retry's backoff: found at the threads' next look
        self.assertEqual(len([c for c in self.env.cr.postcommit._funcs
                              if getattr(c, "func", None) is _notify_cron_threads_at]), 1)
        _db, info = odoo.sql_db.connection_info_for("postgres")
        listener = psycopg2.connect(**info)
        self.addCleanup(listener.close)
        listener.autocommit = True
        listener.cursor().execute("LISTEN cron_trigger")
        started = time.monotonic()
        nudges[0]()  # what the commit runs
        heard = []
        while not heard and time.monotonic() - started < 10:
            select.select([listener], [], [], 1)
            listener.poll()
            heard = [n.payload for n in listener.notifies]
        self.assertIn(self.env.cr.dbname, heard)
        self.assertGreaterEqual(time.monotonic() - started, 1.5, "when due, not at once")

    def linked_invoice(self, provider):
        """(connection, contact id, invoice id) of a client and its invoice in the ledger."""
        connection = self.connected(provider)
        move = self.invoice(self.partner(f"Announced {provider}"))
        self.run_worker()
        Link = self.env["billing_sync.link"]
        return (connection, Link._of(connection, move.partner_id).ledger_id,
                Link._of(connection, move).ledger_id)

    def announce(self, connection, *events):
        """``events``: (kind, ledger id, event id) the ledger's webhook announces."""
        self.env["billing_sync.inbox"]._receive(connection, [
            WebhookEvent(connection.org_id, kind, ledger_id, "update", event_id)
            for kind, ledger_id, event_id in events])
        return self.env["billing_sync.inbox"].search(
            [("event_id", "in", [event_id for _kind, _id, event_id in events])])

    def test_the_inbox_reads_every_kind_announced_in_one_go(self):
        """A payment announces its invoice too: QuickBooks reads both (and a contact) in
        ONE /batch request; Xero, which has no batch, one request per kind."""
        reads = {"qbo": {"POST /v3/company/{realmId}/batch": 1},
                 "xero": {"GET Contacts": 1, "GET Invoices": 1}}
        for provider in ("qbo", "xero"):
            with self.subTest(provider=provider):
                connection, contact_id, invoice_id = self.linked_invoice(provider)
                rows = self.announce(connection, ("contact", contact_id, f"c-{provider}"),
                                     ("invoice", invoice_id, f"i-{provider}"))
                app = getattr(self, provider)
                app.counters.reset()
                self.apply_inbox()
                self.assertEqual(set(rows.mapped("state")), {"done"},
                                 rows.mapped("last_error"))
                seen = {label: sum(statuses.values()) for label, statuses
                        in app.counters.snapshot()["by_endpoint"].items()
                        if "/connect/" not in label and "oauth2" not in label}
                self.assertEqual(seen, reads[provider])

    def test_a_connection_out_of_room_puts_its_changes_off_together(self):
        """Under Xero's 60 calls a minute, a read waits for its pace, and what arrives
        meanwhile comes due with it: one read for all, never one per change. The next
        connection is served meanwhile."""
        from odoo.addons.billing_sync.models.billing_sync_job import _pacer

        Inbox = self.env["billing_sync.inbox"]
        connection, contact_id, invoice_id = self.linked_invoice("xero")
        other = self.second_company_connection("Other Firm", "other-realm")
        self.env.cr.execute("DELETE FROM billing_sync_rate_call")
        budget = _pacer(connection)
        # a burst spent 40 of the minute's 60 calls just now
        self.env.cr.execute("""
            INSERT INTO billing_sync_rate_call (budget_id, at)
            SELECT id, clock_timestamp() AT TIME ZONE 'UTC' FROM billing_sync_rate_budget,
                   generate_series(1, 40) WHERE key = %s
        """, [budget.key])
        first = self.announce(connection, ("contact", contact_id, "room-1"),
                              ("invoice", invoice_id, "room-2"))
        waiting = self.announce(other, ("contact", "1", "room-3"))
        self.assertEqual(Inbox._claim(), waiting, "the next connection is served")
        due = set(first.mapped("next_attempt_at"))
        self.assertEqual(len(due), 1, "put off together")
        # 20 calls left for the minute: one every 3 s, two requests (contacts, invoices)
        wait = (due.pop() - fields.Datetime.now()).total_seconds()
        self.assertGreaterEqual(wait, 5.0)
        self.assertLessEqual(wait, 10.0)
        waiting.write({"state": "done"})
        later = self.announce(connection, ("contact", contact_id, "room-4"))
        self.assertFalse(Inbox._claim())
        self.assertLessEqual(abs((later.next_attempt_at - first[0].next_attempt_at)
                                 .total_seconds()), 1.0, "due with the others")
        self.assertEqual(len(set((first | later).mapped("next_attempt_at"))), 1)
        # the burst leaves the window and the rows come due: one claim takes them all
        self.env.cr.execute("UPDATE billing_sync_rate_call SET at = at - interval '59 s'")
        (first | later).write({"next_attempt_at": fields.Datetime.now()})
        self.assertEqual(Inbox._claim(), first | later)

    def test_a_connection_that_gathers_changes_reads_them_together(self):
        """An administrator trades freshness for API calls: announced changes wait that
        long, and whatever follows them rides in the same read."""
        from odoo.addons.billing_sync.models.billing_sync_job import _notify_cron_threads_at

        Inbox = self.env["billing_sync.inbox"]
        connection, contact_id, invoice_id = self.linked_invoice("xero")
        with self.assertRaises(ValidationError):
            connection.inbound_gather_seconds = 301
        # an Administrator's setting: a Manager (who retries jobs) cannot slow the sync
        manager = make_user(self.env, "gather_manager", MANAGER)
        with self.assertRaises(AccessError):
            connection.with_user(manager).write({"inbound_gather_seconds": 300})
        connection.inbound_gather_seconds = 5
        self.env.cr.execute("DELETE FROM billing_sync_rate_call")
        cron = self.env.ref("billing_sync.ir_cron_apply_inbox")
        triggers = self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)])
        first = self.announce(connection, ("contact", contact_id, "gather-1"))
        wait = (first.next_attempt_at - fields.Datetime.now()).total_seconds()
        self.assertGreaterEqual(wait, 4.0)
        self.assertLessEqual(wait, 5.0)
        new = self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]) - triggers
        self.assertEqual(new.mapped("call_at"), [first.next_attempt_at], "the worker runs then")
        self.assertIn((self.env.cr.dbname, wait), [
            c.args for c in self.env.cr.postcommit._funcs
            if getattr(c, "func", None) is _notify_cron_threads_at])
        self.assertFalse(Inbox._claim(), "gathering")
        second = self.announce(connection, ("invoice", invoice_id, "gather-2"))
        first.next_attempt_at = fields.Datetime.now()  # five seconds later
        self.assertEqual(Inbox._claim(), first | second, "one read for both")

    def test_finished_jobs_are_pruned_after_the_retention_period(self):
        connection = self.connected("xero")
        Inbox = self.env["billing_sync.inbox"]
        events = [WebhookEvent(connection.org_id, "contact", f"c{n}", "update", f"prune-{n}")
                  for n in range(3)]
        Inbox._receive(connection, events[:2], state="done")
        Inbox._receive(connection, events[2:])
        rows = Inbox.search([("event_id", "like", "prune-")], order="event_id")
        partner = self.partner("Old news")
        moves = self.invoice(partner) | self.invoice(partner)
        self.run_worker()
        jobs = self.jobs(moves)
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        kept = self.invoice(partner)
        self.jobs(kept).write({"state": "cancelled", "outcome_unknown": True})
        old = fields.Datetime.now() - datetime.timedelta(days=40)
        self.env.cr.execute("UPDATE billing_sync_job SET done_at = %s, write_date = %s "
                            "WHERE id = ANY(%s)", [old, old, (jobs | self.jobs(kept)).ids])
        self.env["ir.config_parameter"].sudo().set_param("billing_sync.job_retention_days", 30)
        self.assertGreaterEqual(self.env["billing_sync.job"]._cron_prune(chunk=1), 2)
        self.assertFalse(jobs.exists())
        self.assertTrue(self.jobs(kept), "an unknown outcome is kept")
        # the inbox: the ledger changes applied long ago go, a recent one and one still to
        # read stay
        self.env.cr.execute("UPDATE billing_sync_inbox SET received_at = %s, applied_at = %s "
                            "WHERE id = ANY(%s)", [old, old, (rows[0] | rows[2]).ids])
        self.env["billing_sync.job"]._cron_prune(chunk=1)
        self.assertEqual(rows.exists(), rows[1:], "old and applied: pruned; the rest kept")
