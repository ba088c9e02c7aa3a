"""Outbound sync: Odoo changes reach the sandboxes through jobs, batched, exactly once."""

import datetime
import threading

from odoo import SUPERUSER_ID, api, fields
from odoo.tests import Form, TransactionCase, tagged

from odoo.addons.billing_sync.services.ledger.base import PushItem

from .common import ADMIN, LedgerSandboxMixin, make_user


class OutboundMixin(LedgerSandboxMixin):
    """A connected, mapped ledger of each provider, and helpers to read the sandboxes."""

    @classmethod
    def setup_outbound(cls, test_mode=True):
        cls.start_sandboxes(test_mode=test_mode)
        cls.admin = make_user(cls.env, "bs_out_admin",
                              f"{ADMIN},account.group_account_invoice,sales_team.group_sale_manager")
        cls.tax = cls.env["account.tax"].create({
            "name": "Services VAT 15", "amount": 15, "type_tax_use": "sale"})
        cls.product = cls.env["product.product"].create({
            "name": "Advisory day", "type": "service", "list_price": 1000,
            "taxes_id": [fields.Command.set(cls.tax.ids)]})
        cls.bank_journal = cls.env["account.journal"].search(
            [("type", "=", "bank"), ("company_id", "=", cls.env.company.id)], limit=1)

    def connected(self, provider):
        """A connection to a freshly reset sandbox, with reference data and mappings."""
        getattr(self, provider).reset()
        if provider == "xero":
            self.xero.configure(base_currency=self.env.company.currency_id.name)
        else:
            # tests call far faster than 10 a second outside the worker's pacer
            # (set-up, reading back); the pacer's own per-second spacing is
            # covered in test_sync_services
            self.qbo.configure(per_second=None,
                               base_currency=self.env.company.currency_id.name)
        # one ledger per company at a time here: jobs go to every connected one
        self.env["billing_sync.connection"].search([]).write({"active": False})
        connection = self.connect(self.env["billing_sync.connection"].create(
            self.sandbox_values(provider)))
        connection.action_import_reference_data()
        refs = connection.reference_ids

        def first(kind, pred=lambda r: True):
            return refs.filtered(lambda r: r.kind == kind and r.active and pred(r))[:1]

        connection.default_account_id = first("revenue_account")
        connection.default_item_id = first("item")
        # the ledger computes its own tax: the Odoo tax has the ledger tax's rate
        tax_ref = first("tax", lambda r: (r.rate or 0) > 0)
        self.tax = self.env["account.tax"].create({
            "name": f"Services tax {tax_ref.rate:g}", "amount": tax_ref.rate,
            "type_tax_use": "sale"})
        self.product.taxes_id = self.tax
        Mapping = self.env["billing_sync.mapping"]
        Mapping.create({"connection_id": connection.id, "kind": "tax", "tax_id": self.tax.id,
                        "tax_ref_id": tax_ref.id})
        Mapping.create({"connection_id": connection.id, "kind": "journal",
                        "journal_id": self.bank_journal.id,
                        "bank_account_id": first("bank_account").id})
        return connection

    def partner(self, name, **values):
        return self.env["res.partner"].create({"name": name, "is_company": True,
                                               "email": f"{name.split()[0].lower()}@x.example",
                                               **values})

    def invoice(self, partner, quantity=2, post=True):
        form = Form(self.env["account.move"].with_context(default_move_type="out_invoice"))
        form.partner_id = partner
        form.invoice_date = fields.Date.today()
        with form.invoice_line_ids.new() as line:
            line.product_id = self.product
            line.quantity = quantity
        move = form.save()
        if post:
            move.action_post()
        return move

    def jobs(self, records, state=None):
        domain = [("res_model", "=", records._name), ("res_id", "in", records.ids)]
        if state:
            domain.append(("state", "=", state))
        return self.env["billing_sync.job"].search(domain)

    def run_worker(self):
        return self.env["billing_sync.job"]._cron_push()

    def claim(self):
        """Claim the next batch as a worker would a minute later, once the calls made so
        far have left the organisation's window (a partial batch keeps to its pace)."""
        self.env.cr.execute("DELETE FROM billing_sync_rate_call")
        return self.env["billing_sync.job"]._claim_batch()

    def ledger_invoices(self, provider):
        if provider == "xero":
            return list(self.xero.ledger().invoices.values())
        return self.qbo.realms[self.qbo_realm()].all("Invoice")

    def ledger_contacts(self, provider):
        if provider == "xero":
            return list(self.xero.ledger().contacts.values())
        return self.qbo.realms[self.qbo_realm()].all("Customer")

    def qbo_realm(self):
        return next(iter(self.qbo.realms))

    def map_stopping_tax(self, connection, tax):
        """Map ``tax`` to the connection's first ledger tax with a rate, at that rate
        (the fix of an invoice stopped by an unmapped tax)."""
        ref = connection.reference_ids.filtered(lambda r: r.kind == "tax" and r.rate > 0)[:1]
        tax.amount = ref.rate
        return self.env["billing_sync.mapping"].create({
            "connection_id": connection.id, "kind": "tax", "tax_id": tax.id,
            "tax_ref_id": ref.id})

    def taxed_invoice(self, partner, tax):
        """A posted invoice of one advisory day taxed with ``tax`` alone."""
        form = Form(self.env["account.move"].with_context(default_move_type="out_invoice"))
        form.partner_id = partner
        form.invoice_date = fields.Date.today()
        with form.invoice_line_ids.new() as line:
            line.product_id = self.product
            line.tax_ids.clear()
            line.tax_ids.add(tax)
        move = form.save()
        move.action_post()
        return move

    def request_count(self, provider):
        return getattr(self, provider).counters.snapshot()["total"]


@tagged("post_install", "-at_install")
class TestOutbound(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def test_saving_only_writes_a_job(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                self.connected(provider)
                before = self.request_count(provider)
                move = self.invoice(self.partner(f"Acme {provider} Ltd"))
                self.assertEqual(self.request_count(provider), before,
                                 "no HTTP call inside the user's transaction")
                job = self.jobs(move)
                self.assertEqual((len(job), job.state, job.kind), (1, "pending", "invoice"))
                self.assertEqual(move.billing_sync_status, "pending")

    def test_invoice_reaches_the_ledger_with_its_customer_first(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                partner = self.partner(f"Bluepeak {provider} Inc", vat="BE0477472701")
                move = self.invoice(partner, quantity=3)
                self.run_worker()
                self.assertEqual(self.jobs(move).state, "done", self.jobs(move).last_error)
                contacts = self.ledger_contacts(provider)
                self.assertEqual(len([c for c in contacts if partner.name in str(c)]), 1)
                invoices = self.ledger_invoices(provider)
                self.assertEqual(len(invoices), 1)
                link = self.env["billing_sync.link"]._of(connection, move)
                self.assertTrue(link.ledger_id and link.synced_at)
                total = invoices[0].get("Total", invoices[0].get("TotalAmt"))
                self.assertAlmostEqual(float(total), move.amount_total, places=2)
                self.assertEqual(move.billing_sync_status, "synced")
                self.assertTrue(move.billing_sync_ledger_url)
                partner_link = self.env["billing_sync.link"]._of(connection, partner)
                self.assertTrue(partner_link.ledger_id)

    def test_existing_ledger_contact_is_matched_not_duplicated(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                # a bookkeeper already keyed this client into the ledger
                adapter = connection._adapter()
                name = f"Keyed {provider} Partners"
                [created] = adapter.push(connection._access_token(), connection.org_id,
                                         "contact", [PushItem("k", "contact", {"name": name})],
                                         f"keyed-{provider}")
                self.assertTrue(created.ok, created.error)
                partner = self.partner(name)
                partner.email = False
                before = len(self.ledger_contacts(provider))
                self.invoice(partner)
                self.run_worker()
                self.assertEqual(len(self.ledger_contacts(provider)), before)
                link = self.env["billing_sync.link"]._of(connection, partner)
                self.assertEqual(link.ledger_id, created.ledger_id)

    def test_changes_coalesce_into_one_job(self):
        self.connected("xero")
        partner = self.partner("Harbour Finch")
        self.invoice(partner)
        self.run_worker()
        for phone in ("+64 1", "+64 2", "+64 3"):
            partner.phone = phone
        self.assertEqual(len(self.jobs(partner, "pending")), 1)
        before = self.request_count("xero")
        self.run_worker()
        self.assertEqual(self.request_count("xero") - before, 1, "one batch, one request")
        contact = [c for c in self.ledger_contacts("xero") if c["Name"] == "Harbour Finch"][0]
        self.assertIn("+64 3", str(contact))

    def test_batches_use_one_request_each(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                self.connected(provider)
                partner = self.partner(f"Batch {provider}")
                self.invoice(partner)
                self.run_worker()  # the customer exists now
                moves = self.env["account.move"]
                for _ in range(12):
                    moves |= self.invoice(partner)
                before = self.request_count(provider)
                self.run_worker()
                self.assertEqual(set(self.jobs(moves).mapped("state")), {"done"})
                self.assertEqual(self.request_count(provider) - before, 1)

    def test_crash_after_the_ledger_accepted_creates_nothing_twice(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                partner = self.partner(f"Crash {provider}")
                self.invoice(partner)
                self.run_worker()
                move = self.invoice(partner)
                jobs = self.claim()
                self.assertEqual(jobs.state, "started")
                # the worker sent the batch and died before recording the answer
                adapter = connection._adapter()
                items, _skipped = self.env["billing_sync.push"]._items(connection, adapter, jobs)
                adapter.push(connection._access_token(), connection.org_id, "invoice", items,
                             jobs.batch_key)
                self.assertEqual(len(self.ledger_invoices(provider)), 2)
                # its session ends with it: the next run finds its lease gone and sends the
                # batch again under its key
                jobs._release_lease()
                self.run_worker()
                self.assertEqual(jobs.state, "done", jobs.last_error)
                self.assertEqual(len(self.ledger_invoices(provider)), 2, "no duplicate")
                self.assertTrue(self.env["billing_sync.link"]._of(connection, move))

    def test_a_replay_missing_a_member_goes_again_under_new_keys(self):
        """Both ledgers answer a repeated key with their first answer: when a member of a
        batch sent without an answer drops out before the replay, the others go again
        under new keys, looked up by number first: each invoice once, linked."""
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                partner = self.partner(f"Replay {provider}")
                self.invoice(partner)
                self.run_worker()
                first, second = self.invoice(partner), self.invoice(partner)
                Job = self.env["billing_sync.job"]
                jobs = self.claim()
                self.assertEqual(len(jobs), 2)
                key = jobs[0].batch_key
                adapter = connection._adapter()
                items, _skipped = self.env["billing_sync.push"]._items(connection, adapter, jobs)
                adapter.push(connection._access_token(), connection.org_id, "invoice", items,
                             key)
                self.assertEqual(len(self.ledger_invoices(provider)), 3)
                # the worker died; found stuck, the batch waits for its replay, and a
                # Manager cancels the second invoice's job meanwhile
                # its sender lives: the batch is its own, however long it takes
                jobs.started_at = fields.Datetime.now() - datetime.timedelta(hours=1)
                self.assertFalse(Job._requeue_stuck())
                # the worker dies: its session ends, and its lease with it
                jobs._release_lease()
                Job._requeue_stuck()
                jobs.filtered(lambda j, s=second: j.res_id == s.id).action_cancel()
                self.run_worker()
                job = jobs.filtered(lambda j, f=first: j.res_id == f.id)
                self.assertEqual(job.state, "done", job.last_error)
                self.assertNotEqual(job.batch_key, key, "a new key")
                self.assertEqual(len(self.ledger_invoices(provider)), 3, "no duplicate")
                self.assertTrue(self.env["billing_sync.link"]._of(connection, first))

    def test_transient_failure_backs_off_then_succeeds(self):
        self.connected("qbo")
        move = self.invoice(self.partner("Flaky Ltd"))
        self.qbo.faults.next("http503", count=10)
        self.run_worker()
        job = self.jobs(move)
        self.assertEqual((job.state, job.attempts), ("pending", 1))
        self.assertGreater(job.next_attempt_at, fields.Datetime.now())
        self.assertTrue(job.last_error)
        self.qbo.faults.clear()
        job.next_attempt_at = fields.Datetime.now()
        self.run_worker()
        self.assertEqual(job.state, "done", job.last_error)

    def test_rate_limited_waits_as_told_without_counting_an_attempt(self):
        self.connected("xero")
        move = self.invoice(self.partner("Busy Ltd"))
        self.xero.faults.next("http429", count=1, retry_after=7)
        self.run_worker()
        job = self.jobs(move)
        self.assertEqual((job.state, job.attempts), ("pending", 0))
        wait = (job.next_attempt_at - fields.Datetime.now()).total_seconds()
        self.assertTrue(5 <= wait <= 8, wait)

    def test_quickbooks_429_without_retry_after_waits_one_window_minute(self):
        connection = self.connected("qbo")
        connection.rate_window_seconds = 12  # a compressed "minute", as in the benchmark
        move = self.invoice(self.partner("Throttled Ltd"))
        self.qbo.faults.next("http429", count=1)
        self.run_worker()
        job = self.jobs(move)
        self.assertEqual((job.state, job.attempts), ("pending", 0))
        wait = (job.next_attempt_at - fields.Datetime.now()).total_seconds()
        self.assertTrue(10 <= wait <= 13, wait)

    def test_gives_up_after_the_last_attempt(self):
        connection = self.connected("xero")
        move = self.invoice(self.partner("Down Ltd"))
        job = self.jobs(move)
        job.attempts = 7
        self.xero.faults.next("http500", count=10)
        self.run_worker()
        self.assertEqual(job.state, "dead")
        self.assertIn("Gave up", connection.message_ids[0].body)
        self.xero.faults.clear()
        job.action_retry()
        self.run_worker()
        self.assertEqual(job.state, "done", job.last_error)

    def test_unmapped_tax_parks_the_invoice_with_a_hint(self):
        connection = self.connected("xero")
        refs = connection.reference_ids.filtered(lambda r: r.kind == "tax" and r.rate > 0)
        other_tax = self.env["account.tax"].create({
            "name": "Luxury levy 20", "amount": refs[0].rate, "type_tax_use": "sale"})
        move = self.taxed_invoice(self.partner("Strict Ltd"), other_tax)
        before = self.request_count("xero")
        self.run_worker()
        job = self.jobs(move)
        self.assertEqual(job.state, "blocked")
        self.assertIn("Luxury levy 20", job.last_error)
        self.assertEqual(move.billing_sync_status, "error")
        self.assertIn("Luxury levy 20", move.billing_sync_error)
        # the connection's alert for the kind of problem, not an activity per invoice
        alert = self.env["billing_sync.alert"].search([("connection_id", "=", connection.id),
                                                       ("state", "=", "open")])
        self.assertEqual((alert.error_class, alert.count), ("mapping", 1))
        self.assertFalse(move.activity_ids)
        self.assertEqual(len(self.ledger_invoices("xero")), 0)
        # the fix, then the next change (or Retry) sends it
        self.env["billing_sync.mapping"].create({
            "connection_id": connection.id, "kind": "tax", "tax_id": other_tax.id,
            "tax_ref_id": refs[0].id})
        job.action_retry()
        self.run_worker()
        self.assertEqual(job.state, "done", job.last_error)
        self.assertGreater(self.request_count("xero"), before)

    def test_payment_and_void(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                self.connected(provider)
                partner = self.partner(f"Payer {provider}")
                move = self.invoice(partner)
                self.run_worker()
                register = self.env["account.payment.register"].with_context(
                    active_model="account.move", active_ids=move.ids).create({
                        "amount": 500, "journal_id": self.bank_journal.id})
                payment = register._create_payments()
                self.run_worker()
                self.assertEqual(self.jobs(payment).state, "done", self.jobs(payment).last_error)
                invoice = self.ledger_invoices(provider)[0]
                due = invoice.get("AmountDue", invoice.get("Balance"))
                self.assertAlmostEqual(float(due), move.amount_total - 500, places=2)
                # an unpaid invoice cancelled in Odoo is voided in the ledger
                other = self.invoice(partner)
                self.run_worker()
                other.button_draft()
                other.button_cancel()
                self.run_worker()
                job = self.jobs(other).filtered(lambda j: j.kind == "void_invoice")
                self.assertEqual(job.state, "done", job.last_error)

    def test_credit_note_is_allocated_to_its_invoice(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                move = self.invoice(self.partner(f"Refund {provider}"))
                self.run_worker()
                reversal = self.env["account.move.reversal"].with_context(
                    active_model="account.move", active_ids=move.ids).create({
                        "journal_id": move.journal_id.id, "reason": "scope cut"})
                credit = self.env["account.move"].browse(reversal.refund_moves()["res_id"])
                credit.action_post()
                self.run_worker()
                job = self.jobs(credit)
                self.assertEqual(job.state, "done", job.last_error)
                self.assertTrue(self.env["billing_sync.link"]._of(connection, credit))


@tagged("post_install", "-at_install")
class TestTwoWorkers(OutboundMixin, TransactionCase):
    """Two workers claim at the same moment: each job goes to exactly one of them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes()

    def test_claims_are_disjoint(self):
        registry = self.registry
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            connection = env["billing_sync.connection"].create(
                {**self.sandbox_values("xero"), "company_id": env.ref("base.main_company").id})
            env.cr.execute("UPDATE billing_sync_connection SET state = 'connected' "
                           "WHERE id = %s", [connection.id])
            partners = env["res.partner"].create(
                [{"name": f"Claim test {i}"} for i in range(120)])
            Job = env["billing_sync.job"]
            now = fields.Datetime.now()
            for partner in partners:
                Job._enqueue_one(connection, partner, "contact", now)
            conn_id, partner_ids = connection.id, partners.ids
        try:
            claimed, errors = {}, []
            a_claimed, b_done = threading.Event(), threading.Event()

            def worker(name):
                try:
                    if name == "a":
                        # A keeps its transaction, and so its row locks, open while B claims
                        threading.current_thread().testing = True
                    else:
                        a_claimed.wait(timeout=20)
                    with registry.cursor() as cr:
                        env = api.Environment(cr, SUPERUSER_ID, {})
                        claimed[name] = env["billing_sync.job"]._claim_batch().ids
                        if name == "a":
                            a_claimed.set()
                            b_done.wait(timeout=20)
                        cr.commit()
                except Exception as exc:  # noqa: BLE001 -- reported below
                    errors.append(exc)
                finally:
                    a_claimed.set()
                    if name == "b":
                        b_done.set()

            threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            self.assertFalse(errors, errors)
            self.assertTrue(claimed["a"] and claimed["b"], claimed)
            self.assertFalse(set(claimed["a"]) & set(claimed["b"]), "a job was claimed twice")
        finally:
            with registry.cursor() as cr:
                cr.execute("DELETE FROM billing_sync_connection WHERE id = %s", [conn_id])
                cr.execute("DELETE FROM res_partner WHERE id = ANY(%s)", [partner_ids])
