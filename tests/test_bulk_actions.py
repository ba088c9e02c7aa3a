"""What a Manager does to many rows at once (issue 19, sync visibility): Retry, Send now
and Cancel on the selected sync jobs, Read again on the selected changes from the
ledger, Retry ledger sync from an invoice (or a list of them), and the dashboard's way
to the invoices that need a fix. Each for a Manager of the rows' company only."""

import datetime

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, tagged

from .common import INVOICING, MANAGER, USER, make_user
from .test_outbound import OutboundMixin


@tagged("post_install", "-at_install")
class TestBulkActions(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()
        cls.manager = make_user(cls.env, "bulk_manager", f"{MANAGER},{INVOICING}")
        cls.user = make_user(cls.env, "bulk_user", f"{USER},{INVOICING}")
        cls.other_company = cls.env["res.company"].create({"name": "Bulk Other Firm"})
        cls.manager_b = make_user(
            cls.env, "bulk_manager_b", f"{MANAGER},{INVOICING}",
            company_id=cls.other_company.id,
            company_ids=[fields.Command.set(cls.other_company.ids)])

    def setUp(self):
        super().setUp()
        self.connection = self.connected("xero")
        self.unmapped = self.env["account.tax"].create({
            "name": "Bulk levy 7", "amount": 7, "type_tax_use": "sale"})

    # ------------------------------------------------------------------ helpers
    def stopped_invoices(self, count):
        """``count`` posted invoices the worker stopped on an unmapped tax."""
        moves = self.env["account.move"]
        for n in range(count):
            moves |= self.taxed_invoice(self.partner(f"Bulk Stopped {n} Ltd"), self.unmapped)
        self.run_worker()
        self.assertEqual(set(self.jobs(moves).mapped("state")), {"blocked"})
        return moves

    def job(self, record, **values):
        """A job of ``record`` as the engine leaves it (the engine writes jobs)."""
        return self.env["billing_sync.job"].create({
            "connection_id": self.connection.id, "res_model": record._name,
            "res_id": record.id, "kind": "contact", **values})

    def other_company_job(self):
        connection = self.env["billing_sync.connection"].create({
            "provider": "qbo", "company_id": self.other_company.id})
        partner = self.env["res.partner"].create({
            "name": "Bulk B Client", "company_id": self.other_company.id})
        return self.env["billing_sync.job"].create({
            "connection_id": connection.id, "res_model": "res.partner",
            "res_id": partner.id, "kind": "contact", "state": "blocked"})

    def inbox_row(self, ledger_id, connection=None, **values):
        row = self.env["billing_sync.inbox"].create({
            "connection_id": (connection or self.connection).id, "kind": "contact",
            "ledger_id": ledger_id, "change": "update", "event_id": f"bulk-{ledger_id}"})
        row.write(values)
        return row

    def triggers(self, xmlid):
        return self.env["ir.cron.trigger"].search_count(
            [("cron_id", "=", self.env.ref(xmlid).id)])

    def as_manager(self, records, user=None):
        return records.with_user(user or self.manager)

    # ------------------------------------------------------------------ jobs
    def test_a_manager_retries_and_cancels_many_jobs_at_once(self):
        moves = self.stopped_invoices(3)
        dead = self.job(self.partner("Bulk Dead Ltd"), state="dead", attempts=8,
                        batch_key="bulk-dead-key")
        jobs = self.jobs(moves) | dead
        done = self.jobs(self.invoice(self.partner("Bulk Fine Ltd")))
        self.run_worker()
        self.assertEqual(done.state, "done")
        self.as_manager(jobs | done).action_retry()
        self.assertEqual(set(jobs.mapped("state")), {"pending"})
        self.assertEqual(set(jobs.mapped("attempts")), {0})
        self.assertFalse(dead.batch_key)
        self.assertEqual(done.state, "done", "a job that went is left as it is")
        self.as_manager(jobs | done).action_cancel()
        self.assertEqual(set(jobs.mapped("state")), {"cancelled"})
        self.assertEqual(done.state, "done")
        self.assertFalse(self.env["billing_sync.alert"].search(
            [("connection_id", "=", self.connection.id), ("state", "=", "open")]),
            "nothing stopped any more: the alert closed")
        # cancelled ones go again on Retry
        self.as_manager(jobs).action_retry()
        self.assertEqual(set(jobs.mapped("state")), {"pending"})

    def test_two_stopped_jobs_of_one_record_go_as_one(self):
        partner = self.partner("Bulk Twice Ltd")
        older = self.job(partner, state="dead", attempts=8)
        newer = self.job(partner, state="blocked", last_error="refused")
        other_kind = self.job(partner, state="blocked", kind="payment")
        self.as_manager(older | newer | other_kind).action_retry()
        self.env.flush_all()  # the coalescing index would refuse two unsent jobs
        self.assertEqual((older.state, newer.state, other_kind.state),
                         ("cancelled", "pending", "pending"))

    def test_send_now_cuts_a_backoff_short(self):
        partner = self.partner("Bulk Waiting Ltd")
        later = fields.Datetime.now() + datetime.timedelta(hours=2)
        waiting = self.job(partner, attempts=3, next_attempt_at=later)
        for_link = self.job(self.partner("Bulk Linked Ltd"), kind="payment",
                            next_attempt_at=later, wait_res_model="account.move",
                            wait_res_id=1)
        blocked = self.job(self.partner("Bulk Blocked Ltd"), state="blocked",
                           next_attempt_at=later)
        before = self.triggers("billing_sync.ir_cron_push_jobs")
        self.as_manager(waiting | for_link | blocked).action_send_now()
        self.assertLessEqual(waiting.next_attempt_at, fields.Datetime.now())
        self.assertEqual((waiting.state, waiting.attempts), ("pending", 3),
                         "its attempts stay counted")
        self.assertEqual(for_link.next_attempt_at, later, "it waits for its invoice")
        self.assertEqual((blocked.state, blocked.next_attempt_at), ("blocked", later))
        self.assertGreater(self.triggers("billing_sync.ir_cron_push_jobs"), before)

    def test_jobs_are_refused_to_a_user_and_to_another_companys_manager(self):
        moves = self.stopped_invoices(2)
        jobs = self.jobs(moves)
        for user in (self.user, self.manager_b):
            for method in ("action_retry", "action_cancel", "action_send_now"):
                with self.subTest(user=user.login, method=method), \
                        self.assertRaises(AccessError):
                    getattr(jobs.with_user(user), method)()
        # a selection with one row of another company is refused whole
        foreign = self.other_company_job()
        with self.assertRaises(AccessError):
            self.as_manager(jobs | foreign).action_retry()
        self.assertEqual(set((jobs | foreign).mapped("state")), {"blocked"})

    # ------------------------------------------------------------------ inbox
    def test_a_manager_has_changes_read_again(self):
        later = fields.Datetime.now() + datetime.timedelta(hours=1)
        failed = self.inbox_row("C-FAILED", state="failed", attempts=8,
                                last_error="The contact could not be read.",
                                error_class="validation")
        backing_off = self.inbox_row("C-BACKOFF", attempts=2, next_attempt_at=later)
        gathering = self.inbox_row("C-GATHER", next_attempt_at=later)
        applied = self.inbox_row("C-DONE", state="done")
        rows = failed | backing_off | gathering | applied
        before = self.triggers("billing_sync.ir_cron_apply_inbox")
        self.as_manager(rows).action_retry()
        now = fields.Datetime.now()
        for row in failed | backing_off:
            self.assertEqual((row.state, row.attempts), ("pending", 0))
            self.assertLessEqual(row.next_attempt_at, now)
        self.assertEqual((gathering.state, gathering.next_attempt_at), ("pending", later),
                         "a change still gathering is left to gather")
        self.assertEqual(applied.state, "done")
        self.assertGreater(self.triggers("billing_sync.ir_cron_apply_inbox"), before,
                           "the inbox worker is asked to run")
        self.assertIn(failed, self.env["billing_sync.inbox"].search(
            self.env["billing_sync.inbox"]._due_domain()))

    def test_changes_are_refused_to_a_user_and_to_another_companys_manager(self):
        row = self.inbox_row("C-REFUSED", state="failed", attempts=8)
        with self.assertRaisesRegex(AccessError, "Billing Sync Manager"):
            row.with_user(self.user).action_retry()
        with self.assertRaises(AccessError):
            row.with_user(self.manager_b).action_retry()
        connection_b = self.env["billing_sync.connection"].create({
            "provider": "qbo", "company_id": self.other_company.id})
        row_b = self.inbox_row("B-REFUSED", connection=connection_b, state="failed",
                               attempts=8)
        with self.assertRaises(AccessError):
            self.as_manager(row | row_b).action_retry()
        self.assertEqual((row | row_b).mapped("state"), ["failed", "failed"])
        # company B's Manager reads his own
        row_b.with_user(self.manager_b).action_retry()
        self.assertEqual(row_b.state, "pending")

    # ------------------------------------------------------------------ from the invoice
    def test_a_manager_retries_an_invoice(self):
        moves = self.stopped_invoices(2)
        first = moves[0]
        self.assertEqual(first.with_user(self.manager).billing_sync_status, "error")
        with self.assertRaisesRegex(AccessError, "Billing Sync Manager"):
            first.with_user(self.user).action_billing_sync_retry()
        with self.assertRaises(UserError):  # not his company's: he sees no job of it
            first.with_user(self.manager_b).action_billing_sync_retry()
        self.assertEqual(self.jobs(first).state, "blocked")
        first.with_user(self.manager).action_billing_sync_retry()
        self.assertEqual(self.jobs(first).state, "pending")
        first.invalidate_recordset()
        self.assertEqual(first.with_user(self.manager).billing_sync_status, "pending")
        self.assertEqual(self.jobs(moves[1]).state, "blocked", "only the one asked")
        with self.assertRaisesRegex(UserError, "Nothing to send again"):
            first.with_user(self.manager).action_billing_sync_retry()

    def test_the_invoices_list_action_retries_the_selected_ones(self):
        moves = self.stopped_invoices(2)
        fine = self.invoice(self.partner("Bulk Listed Fine Ltd"))
        self.run_worker()
        action = self.env.ref("billing_sync.action_server_billing_sync_retry_move")
        self.assertEqual(action.binding_model_id.model, "account.move")
        self.assertEqual(action.groups_id, self.env.ref(MANAGER))
        selection = moves | fine
        action.with_user(self.manager).with_context(
            active_model="account.move", active_ids=selection.ids).run()
        self.assertEqual(set(self.jobs(moves).mapped("state")), {"pending"})
        self.assertEqual(self.jobs(fine).state, "done")
        with self.assertRaises(AccessError):  # the action's group
            action.with_user(self.user).with_context(
                active_model="account.move", active_ids=selection.ids).run()

    def test_a_client_retries_too(self):
        partner = self.partner("Bulk Client Ltd")
        job = self.job(partner, state="blocked", last_error="refused")
        partner.with_user(self.manager).action_billing_sync_retry()
        self.assertEqual(job.state, "pending")

    # ------------------------------------------------------------------ dashboard
    def test_the_dashboard_opens_the_invoices_that_need_a_fix(self):
        moves = self.stopped_invoices(1)
        self.invoice(self.partner("Bulk Dashboard Fine Ltd"))
        self.run_worker()
        self.env.flush_all()
        row = self.env["billing_sync.dashboard"].with_user(self.manager).browse(
            self.connection.id)
        action = row.action_open_to_fix()
        self.assertEqual((action["type"], action["res_model"]),
                         ("ir.actions.act_window", "account.move"))
        self.assertEqual(action["context"]["search_default_billing_sync_error"], 1)
        self.assertIn(("move_type", "in", ("out_invoice", "out_refund")), action["domain"])
        # what the list shows with its filter on: the stopped invoice alone
        Move = self.env["account.move"].with_user(self.manager)
        shown = Move.search(action["domain"] + [("billing_sync_status", "=", "error")])
        self.assertEqual(shown, moves)
        # the search view has the filter the action sets
        views = Move.get_views([(False, "search")])
        self.assertIn('name="billing_sync_error"', views["views"]["search"]["arch"])

    def test_the_dashboard_button_is_for_those_who_read_invoices(self):
        no_invoices = make_user(self.env, "bulk_dash_user", USER)
        Dashboard = self.env["billing_sync.dashboard"]
        arch = Dashboard.with_user(no_invoices).get_views([(False, "kanban")])[
            "views"]["kanban"]["arch"]
        self.assertNotIn("action_open_to_fix", arch)
        arch = Dashboard.with_user(self.manager).get_views([(False, "kanban")])[
            "views"]["kanban"]["arch"]
        self.assertIn("action_open_to_fix", arch)
        self.env.flush_all()
        with self.assertRaisesRegex(AccessError, "Invoicing"):
            Dashboard.with_user(no_invoices).browse(self.connection.id).action_open_to_fix()
