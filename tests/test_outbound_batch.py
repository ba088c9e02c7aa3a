"""A batch reads the mappings and links it needs once: building it costs a few queries
whatever the number of its invoices and lines, and sends what the same records built one
by one would send."""

from odoo import fields, sql_db
from odoo.tests import Form, TransactionCase, tagged

from .test_outbound import OutboundMixin


@tagged("post_install", "-at_install")
class TestBatchLoading(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()
        plan = cls.env["account.analytic.plan"].create({"name": "Batch practices"})
        cls.practice = cls.env["account.analytic.account"].create(
            {"name": "Batch consulting", "plan_id": plan.id})
        cls.team = cls.env["crm.team"].create({"name": "Batch team"})
        cls.term = cls.env["account.payment.term"].create({
            "name": "Batch 30 days",
            "line_ids": [fields.Command.create({"value": "percent", "value_amount": 100,
                                                "nb_days": 30})]})
        parent = cls.env["product.category"].create({"name": "Batch services"})
        cls.category = cls.env["product.category"].create(
            {"name": "Batch advisory", "parent_id": parent.id})
        cls.parent_category = parent

    def mapped(self, provider):
        """A connection whose invoices need a mapping of every kind: the product's parent
        category, its tax, the analytic account, the sales team, the payment terms."""
        connection = self.connected(provider)
        refs = connection.reference_ids

        def first(kind):
            return refs.filtered(lambda r: r.kind == kind and r.active)[:1]

        tracking = refs.filtered(lambda r: r.kind == "tracking" and r.active)
        Mapping = self.env["billing_sync.mapping"]
        Mapping.create({"connection_id": connection.id, "kind": "product_category",
                        "categ_id": self.parent_category.id,
                        "account_id": first("revenue_account").id})
        Mapping.create({"connection_id": connection.id, "kind": "analytic",
                        "analytic_account_id": self.practice.id,
                        "tracking_id": tracking[0].id})
        if provider == "xero":  # Xero: a line takes one option per category
            tracking = tracking.filtered(lambda r: r.category != tracking[0].category)
        Mapping.create({"connection_id": connection.id, "kind": "team",
                        "team_id": self.team.id, "tracking_id": tracking[-1].id})
        Mapping.create({"connection_id": connection.id, "kind": "payment_term",
                        "payment_term_id": self.term.id, "term_id": first("term").id})
        self.product.categ_id = self.category
        self.product.taxes_id = self.tax
        return connection

    def documents(self, partners, count):
        """``count`` posted invoices of two lines each over ``partners``."""
        moves = self.env["account.move"]
        for n in range(count):
            form = Form(self.env["account.move"].with_context(default_move_type="out_invoice"))
            form.partner_id = partners[n % len(partners)]
            form.invoice_date = fields.Date.today()
            form.team_id = self.team
            form.invoice_payment_term_id = self.term
            for quantity in (1 + n, 2):
                with form.invoice_line_ids.new() as line:
                    line.product_id = self.product
                    line.quantity = quantity
            move = form.save()
            move.invoice_line_ids.analytic_distribution = {str(self.practice.id): 100}
            move.action_post()
            moves |= move
        return moves

    def build(self, connection, moves):
        """(queries, PushItems) of building one batch of ``moves``' jobs, from a cold
        cache, as a worker starting the batch would."""
        jobs = self.jobs(moves)
        self.assertEqual(len(jobs), len(moves))
        adapter = connection._adapter()
        self.env.flush_all()
        self.env.invalidate_all()
        before = sql_db.sql_counter
        items, skipped = self.env["billing_sync.push"]._items(connection, adapter, jobs)
        queries = sql_db.sql_counter - before
        self.assertEqual(skipped, [])
        return queries, items

    def test_building_a_batch_reads_mappings_and_links_once(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.mapped(provider)
                partners = [self.partner(f"Batch {provider} {n} Ltd") for n in range(2)]
                # the customers reach the ledger first: what follows makes no request
                self.documents(partners, 2)
                self.run_worker()
                moves = self.documents(partners, 12)
                before = self.request_count(provider)
                small, _items = self.build(connection, moves[:3])
                large, items = self.build(connection, moves)
                self.assertEqual(self.request_count(provider), before)
                # nine more invoices, eighteen more lines, each with a product (and its
                # two categories), a tax, an analytic account, a team, payment terms and
                # a customer link to look up: the same queries
                self.assertLessEqual(large - small, 3, (small, large))
                self.assertLess(large, 40, large)
                self.assertEqual(len(items), len(moves))
                # the same values as each built on its own
                for item in items:
                    move = moves.browse(int(item.key.split(",")[1]))
                    alone = self.env["billing_sync.push"]._values_invoice(connection, move)
                    self.assertEqual(item.values, alone)
                sent = items[0].values
                self.assertTrue(sent["approved"])
                self.assertNotIn("status", sent)
                self.assertTrue(sent["term_ref"])
                line = sent["lines"][0]
                self.assertTrue(line["tax_ref"] and line["account_ref"])
                self.assertEqual(len(line["tracking"]), 2)
                self.assertTrue(all(t["category"] and t["option"] for t in line["tracking"]))
                # and the ledger takes them, in one go
                self.run_worker()
                self.assertEqual(set(self.jobs(moves).mapped("state")), {"done"},
                                 self.jobs(moves).mapped("last_error"))

    def test_payments_batch_reads_their_invoices_links_once(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.mapped(provider)
                partners = [self.partner(f"Payer {provider} {n} Ltd") for n in range(3)]
                moves = self.documents(partners, 6)
                self.run_worker()
                payments = self.env["account.payment"]
                for move in moves:
                    payments |= self.env["account.payment.register"].with_context(
                        active_model="account.move", active_ids=move.ids).create(
                            {"amount": 50, "journal_id": self.bank_journal.id}
                        )._create_payments()
                jobs = self.jobs(payments)
                self.env.flush_all()
                self.env.invalidate_all()
                items, skipped = self.env["billing_sync.push"]._items(
                    connection, connection._adapter(), jobs)
                self.assertEqual(skipped, [])
                for item in items:
                    payment = payments.browse(int(item.key.split(",")[1]))
                    self.assertEqual(item.values, self.env["billing_sync.push"]._values_payment(
                        connection, payment))
                    invoice = payment.reconciled_invoice_ids
                    self.assertEqual(item.values["invoice_ref"], self.env[
                        "billing_sync.link"]._of(connection, invoice).ledger_id)
                self.run_worker()
                self.assertEqual(set(self.jobs(payments).mapped("state")), {"done"},
                                 self.jobs(payments).mapped("last_error"))
