"""Reference data imported from the sandboxes, mappings and their validation, mapping health."""

import psycopg2

from odoo.exceptions import UserError, ValidationError
from odoo.tests import Form, TransactionCase, tagged

from .common import ADMIN, LedgerSandboxMixin, make_user


@tagged("post_install", "-at_install")
class TestReferenceData(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes(test_mode=True)
        cls.admin = make_user(cls.env, "bs_map_admin", ADMIN)

    def setUp(self):
        super().setUp()
        self.xero.reset()
        self.qbo.reset()

    def _connected(self, provider):
        connection = self.env["billing_sync.connection"].with_user(self.admin).create(
            self.sandbox_values(provider))
        return self.connect(connection)

    def _kinds(self, connection):
        refs = connection.reference_ids
        return {kind: len(refs.filtered(lambda r, k=kind: r.kind == k))
                for kind in set(refs.mapped("kind"))}

    def test_import_xero(self):
        connection = self._connected("xero")
        connection.action_import_reference_data()
        kinds = self._kinds(connection)
        for kind in ("revenue_account", "bank_account", "tax", "item", "tracking_category",
                     "tracking", "term"):
            self.assertTrue(kinds.get(kind), f"no {kind} imported: {kinds}")
        # the ledger's own ids and codes are kept
        ledger = self.xero.ledger()
        sales = next(a for a in ledger.accounts.values() if a["Type"] == "REVENUE")
        ref = connection.reference_ids.filtered(lambda r: r.ledger_id == sales["AccountID"])
        self.assertEqual((ref.code, ref.name), (sales["Code"], sales["Name"]))
        tax = connection.reference_ids.filtered(lambda r: r.kind == "tax")[:1]
        self.assertTrue(tax.code)
        # importing again creates nothing new
        before = len(connection.reference_ids)
        connection.action_import_reference_data()
        connection.invalidate_recordset()
        self.assertEqual(len(connection.reference_ids), before)

    def test_import_qbo(self):
        connection = self._connected("qbo")
        connection.action_import_reference_data()
        kinds = self._kinds(connection)
        for kind in ("revenue_account", "bank_account", "tax", "item", "tracking", "term"):
            self.assertTrue(kinds.get(kind), f"no {kind} imported: {kinds}")
        names = connection.reference_ids.filtered(lambda r: r.kind == "tracking").mapped("name")
        self.assertTrue(any(n.startswith("Class / ") for n in names), names)
        self.assertTrue(any(n.startswith("Department / ") for n in names), names)

    def test_vanished_records_are_archived(self):
        connection = self._connected("xero")
        connection.action_import_reference_data()
        ledger = self.xero.ledger()
        item = next(iter(ledger.items.values()))
        with self.xero.lock:  # the bookkeeper deletes an item in Xero
            del ledger.items[item["ItemID"]]
        connection.action_import_reference_data()
        ref = self.env["billing_sync.ledger.ref"].with_context(active_test=False).search(
            [("connection_id", "=", connection.id), ("ledger_id", "=", item["ItemID"])])
        self.assertEqual(len(ref), 1)
        self.assertFalse(ref.active)

    def test_cron_imports_every_connected_ledger(self):
        xero = self._connected("xero")
        qbo = self._connected("qbo")
        self.env["billing_sync.connection"]._cron_import_reference_data()
        self.assertTrue(xero.reference_ids and qbo.reference_ids)
        self.assertTrue(xero.reference_imported_at and qbo.reference_imported_at)


@tagged("post_install", "-at_install")
class TestMappings(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes(test_mode=True)
        cls.xero.reset()
        cls.admin = make_user(cls.env, "bs_map_admin2", f"{ADMIN},account.group_account_invoice")
        connection = cls.env["billing_sync.connection"].with_user(cls.admin).create(
            cls.sandbox_values("xero"))
        cls.connection = cls.connect(connection)
        cls.connection.action_import_reference_data()
        refs = cls.connection.reference_ids
        # GST 15%: the same rate as the Odoo tax below
        cls.ref_tax = refs.filtered(lambda r: r.kind == "tax" and r.rate == 15)[0]
        cls.ref_item = refs.filtered(lambda r: r.kind == "item")[0]
        cls.ref_account = refs.filtered(lambda r: r.kind == "revenue_account")[0]
        cls.tax = cls.env["account.tax"].create({
            "name": "Advisory VAT 15", "amount": 15, "type_tax_use": "sale"})
        cls.product = cls.env["product.product"].create({
            "name": "Strategy session", "type": "service", "list_price": 900})
        cls.partner = cls.env["res.partner"].create({"name": "Client Ltd"})
        cls.Mapping = cls.env["billing_sync.mapping"].with_user(cls.admin)

    def _invoice(self):
        move = Form(self.env["account.move"].with_context(default_move_type="out_invoice"))
        move.partner_id = self.partner
        with move.invoice_line_ids.new() as line:
            line.product_id = self.product
            line.tax_ids.clear()
            line.tax_ids.add(self.tax)
        return move.save()

    def test_wrong_kind_or_foreign_ledger_code_is_refused(self):
        with self.assertRaises(ValidationError):
            self.Mapping.create({"connection_id": self.connection.id, "kind": "tax",
                                 "tax_id": self.tax.id, "tax_ref_id": self.ref_item.id})
        other = self.env["billing_sync.connection"].with_user(self.admin).create(
            self.sandbox_values("qbo"))
        foreign = self.env["billing_sync.ledger.ref"].create({
            "connection_id": other.id, "kind": "tax", "ledger_id": "7", "name": "TAX"})
        with self.assertRaises(ValidationError):
            self.Mapping.create({"connection_id": self.connection.id, "kind": "tax",
                                 "tax_id": self.tax.id, "tax_ref_id": foreign.id})
        with self.assertRaises(ValidationError):
            self.Mapping.create({"connection_id": self.connection.id, "kind": "tax",
                                 "tax_id": self.tax.id})

    def test_the_connections_mappings_show_what_maps_to_what(self):
        mapping = self.Mapping.create({"connection_id": self.connection.id, "kind": "tax",
                                       "tax_id": self.tax.id, "tax_ref_id": self.ref_tax.id})
        action = self.connection.action_open_mappings()
        self.assertNotIn("default_kind", action["context"])
        # every kind at once: the list shows the Odoo record and its ledger code
        arch = self.env["billing_sync.mapping"].get_view(action["views"][0][0] if action.get(
            "views") else None, "list")["arch"]
        self.assertIn('name="source_name"', arch)
        self.assertIn('name="target_name"', arch)
        self.assertEqual((mapping.source_name, mapping.target_name),
                         (self.tax.display_name, self.ref_tax.display_name))

    def test_one_mapping_per_odoo_record(self):
        values = {"connection_id": self.connection.id, "kind": "tax", "tax_id": self.tax.id,
                  "tax_ref_id": self.ref_tax.id}
        self.Mapping.create(values)
        with self.assertRaises(psycopg2.errors.UniqueViolation), self.env.cr.savepoint():
            self.Mapping.create(values)
            self.env.flush_all()

    def test_unmapped_tax_blocks_the_invoice_and_names_the_tax(self):
        invoice = self._invoice()
        self.connection.default_account_id = self.ref_account
        with self.assertRaises(UserError) as caught:
            self.connection._check_invoice_mappable(invoice)
        self.assertIn("Advisory VAT 15", str(caught.exception))
        self.Mapping.create({"connection_id": self.connection.id, "kind": "tax",
                             "tax_id": self.tax.id, "tax_ref_id": self.ref_tax.id})
        self.connection._check_invoice_mappable(invoice)  # no error now

    def test_a_tax_mapped_to_another_rate_is_refused(self):
        zero = self.connection.reference_ids.filtered(
            lambda r: r.kind == "tax" and r.rate == 0)[0]
        self.Mapping.create({"connection_id": self.connection.id, "kind": "tax",
                             "tax_id": self.tax.id, "tax_ref_id": zero.id})
        self.connection.default_account_id = self.ref_account
        with self.assertRaises(UserError) as caught:
            self.connection._check_invoice_mappable(self._invoice())
        self.assertIn("taxed at 15% in Odoo", str(caught.exception))

    def test_product_falls_back_to_category_then_default(self):
        self.assertEqual(self.connection._map_product(self.product),
                         (self.env["billing_sync.ledger.ref"],) * 2)
        self.connection.default_account_id = self.ref_account
        self.assertEqual(self.connection._map_product(self.product)[1], self.ref_account)
        parent = self.product.categ_id
        self.Mapping.create({"connection_id": self.connection.id, "kind": "product_category",
                             "categ_id": parent.id, "item_id": self.ref_item.id})
        self.assertEqual(self.connection._map_product(self.product)[0], self.ref_item)

    def test_mapping_health_lists_what_open_invoices_lack(self):
        invoice = self._invoice()
        self.env.flush_all()
        Health = self.env["billing_sync.mapping.health"].with_user(self.admin)
        rows = Health.search([("connection_id", "=", self.connection.id)])
        self.assertEqual(set(rows.mapped("kind")), {"tax", "product"})
        tax_row = rows.filtered(lambda r: r.kind == "tax")
        self.assertEqual((tax_row.tax_id, tax_row.invoice_count), (self.tax, 1))
        self.Mapping.create({"connection_id": self.connection.id, "kind": "tax",
                             "tax_id": self.tax.id, "tax_ref_id": self.ref_tax.id})
        self.Mapping.create({"connection_id": self.connection.id, "kind": "product",
                             "product_tmpl_id": self.product.product_tmpl_id.id,
                             "account_id": self.ref_account.id})
        self.env.flush_all()
        self.assertFalse(Health.search([("connection_id", "=", self.connection.id)]))
        self.assertTrue(invoice)
