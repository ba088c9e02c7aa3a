"""Archived ledger codes: found by the reference refresh, held before sending, released by
remapping; the ledger's own refusal of a tracking option named "Tax" reads as tracking."""

import copy

from odoo.tests import TransactionCase, tagged

from .test_outbound import OutboundMixin

# (tracking option to map, the active one to remap to), by provider
TRACKING = {"xero": ("Region / North", "Region / South"),
            "qbo": ("Class / Consulting", "Class / Training")}


@tagged("post_install", "-at_install")
class TestArchivedReferences(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()
        cls.plan = cls.env["account.analytic.plan"].create({"name": "Practices"})

    # ------------------------------------------------------------------ helpers
    def ref(self, connection, kind, name):
        ref = self.env["billing_sync.ledger.ref"].with_context(active_test=False).search(
            [("connection_id", "=", connection.id), ("kind", "=", kind), ("name", "=", name)])
        self.assertEqual(len(ref), 1, f"{kind} {name}")
        return ref

    def mapping(self, connection, kind, record):
        return self.env["billing_sync.mapping"]._lookup(connection, kind, record)

    def map_consulting(self, connection, option):
        # one per ledger: the other subtest's open invoices do not count here
        self.consulting = self.env["account.analytic.account"].create(
            {"name": "Consulting", "plan_id": self.plan.id})
        return self.env["billing_sync.mapping"].create({
            "connection_id": connection.id, "kind": "analytic",
            "analytic_account_id": self.consulting.id,
            "tracking_id": self.ref(connection, "tracking", option).id})

    def consulting_invoice(self, partner):
        move = self.invoice(partner, post=False)
        move.invoice_line_ids.analytic_distribution = {str(self.consulting.id): 100}
        move.action_post()
        return move

    def archive_in_ledger(self, provider, ref):
        """A bookkeeper archives (Xero) or makes inactive (QuickBooks) a code in the ledger."""
        if provider == "xero":
            ledger = self.xero.ledger()
            with self.xero.lock:
                if ref.kind == "tax":
                    ledger.tax_rates[ref.ledger_id]["Status"] = "ARCHIVED"
                else:
                    category = ledger.tracking[ref.parent_ledger_id]
                    option = next(o for o in category["Options"]
                                  if o["TrackingOptionID"] == ref.ledger_id)
                    option.update(Status="ARCHIVED", IsArchived=True, IsActive=False)
            return
        realm = self.qbo.realms[self.qbo_realm()]
        with self.qbo.lock:
            if ref.kind == "tax":
                # tax codes are read-only through the API: the bookkeeper's screen
                code = realm.get("TaxCode", ref.ledger_id)
                realm.put("TaxCode", {**code, "Active": False}, self.qbo.now(), created=False)
            else:
                entity, entity_id = ref.ledger_id.split(":")
                ledger = self.qbo.ledgers[self.qbo_realm()]
                current = ledger.read(entity, entity_id)
                ledger.update(entity, {"Id": entity_id, "SyncToken": current["SyncToken"],
                                       "Active": False, "sparse": True})

    def replacement_tax(self, provider, ref):
        """The bookkeeper adds a new tax of the same rate in place of the archived one."""
        if provider == "xero":
            ledger = self.xero.ledger()
            with self.xero.lock:
                tax = copy.deepcopy(ledger.tax_rates[ref.ledger_id])
                tax.update(TaxType="TAX001", Name=f"{tax['Name']} (2026)", Status="ACTIVE")
                ledger.tax_rates["TAX001"] = tax
            return tax["Name"]
        realm = self.qbo.realms[self.qbo_realm()]
        with self.qbo.lock:
            code = copy.deepcopy(realm.get("TaxCode", ref.ledger_id))
            code.update(Id=realm.new_id("TaxCode"), Name=f"{code['Name']} (2026)", Active=True)
            realm.put("TaxCode", code, self.qbo.now(), created=True)
        return code["Name"]

    def archive_consulting_and_tax(self, provider, connection):
        """Map Consulting, then archive its option and the mapped tax in the ledger."""
        self.map_consulting(connection, TRACKING[provider][0])
        tax_ref = self.mapping(connection, "tax", self.tax).tax_ref_id
        self.archive_in_ledger(provider, self.ref(connection, "tracking", TRACKING[provider][0]))
        self.archive_in_ledger(provider, tax_ref)
        return tax_ref

    def alerts(self, connection):
        return connection.activity_ids.filtered(lambda a: a.summary and "Remap" in a.summary)

    # ------------------------------------------------------------------ tests
    def test_refresh_reports_the_mappings_once(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                tax_ref = self.archive_consulting_and_tax(provider, connection)
                messages = connection.message_ids
                connection.action_import_reference_data()
                self.assertFalse(self.ref(connection, "tracking", TRACKING[provider][0]).active)
                # kept, inactive, not deleted: the mapping still points at it
                self.assertFalse(tax_ref.exists().active)
                new = connection.message_ids - messages
                self.assertEqual(len(new), 1, new.mapped("body"))
                self.assertIn("Analytic account “Consulting”", new.body)
                self.assertIn(f"Tax “{self.tax.display_name}”", new.body)
                self.assertEqual(len(self.alerts(connection)), 1)
                self.assertIn("Consulting", str(self.alerts(connection).note))
                # the next refresh finds nothing new: no second message, still one activity
                connection.action_import_reference_data()
                self.assertEqual(len(connection.message_ids - messages), 1)
                self.assertEqual(len(self.alerts(connection)), 1)

    def test_archived_codes_hold_the_invoice_until_remapped(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                tax_ref = self.archive_consulting_and_tax(provider, connection)
                connection.action_import_reference_data()
                move = self.consulting_invoice(self.partner(f"Archive {provider} Ltd"))
                before = self.request_count(provider)
                self.run_worker()
                self.assertEqual(self.request_count(provider), before,
                                 "held before any request, the customer's included")
                job = self.jobs(move)
                self.assertEqual((job.state, job.block_reason), ("blocked", "mapping"))
                ledger = "Xero" if provider == "xero" else "QuickBooks Online"
                self.assertIn("Analytic account “Consulting” is mapped to "
                              f"{ledger} ", job.last_error)
                # in the ledger's own words: QuickBooks' tracking is a class
                self.assertIn("tracking option “Region / North”" if provider == "xero"
                              else "class “Consulting”", job.last_error)
                self.assertIn(f"Tax “{self.tax.display_name}” is mapped to", job.last_error)
                self.assertIn("Mappings", job.hint)
                self.assertIn("Analytic account “Consulting”", move.message_ids[0].body)
                self.assertEqual(self.env["billing_sync.alert"].search(
                    [("connection_id", "=", connection.id), ("state", "=", "open")])
                    .error_class, "mapping")
                self.assertEqual(len(self.ledger_invoices(provider)), 0)
                # the mapping health lists both, naming the mapping and the archived code
                self.env.flush_all()
                rows = self.env["billing_sync.mapping.health"].search(
                    [("connection_id", "=", connection.id), ("kind", "=", "archived")])
                self.assertEqual(
                    {(r.mapping_id, r.ledger_ref_id, r.invoice_count) for r in rows},
                    {(self.mapping(connection, "analytic", self.consulting),
                      self.ref(connection, "tracking", TRACKING[provider][0]), 1),
                     (self.mapping(connection, "tax", self.tax), tax_ref, 1)})
                # remapping the option releases it; the tax still holds it, before sending
                self.mapping(connection, "analytic", self.consulting).tracking_id = self.ref(
                    connection, "tracking", TRACKING[provider][1])
                self.assertEqual((job.state, job.batch_key), ("pending", False))
                self.run_worker()
                self.assertEqual((job.state, job.block_reason), ("blocked", "mapping"))
                self.assertNotIn("Consulting", job.last_error)
                self.assertEqual(self.request_count(provider), before)
                # saving a mapping that cures nothing holds it again quietly
                told = len(move.message_ids)
                self.mapping(connection, "journal", self.bank_journal).write({})
                self.mapping(connection, "analytic", self.consulting).tracking_id = self.ref(
                    connection, "tracking", TRACKING[provider][1])
                self.assertEqual(job.state, "pending")
                self.run_worker()
                self.assertEqual((job.state, len(move.message_ids)), ("blocked", told))
                # the bookkeeper's new tax, imported, then mapped: released with a fresh key
                new_tax = self.replacement_tax(provider, tax_ref)
                connection.action_import_reference_data()
                self.mapping(connection, "tax", self.tax).tax_ref_id = self.ref(
                    connection, "tax", new_tax)
                self.assertEqual((job.state, job.batch_key, job.attempts), ("pending", False, 0))
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
                [sent] = self.ledger_invoices(provider)
                if provider == "xero":
                    line = self.xero.ledger().invoices[sent["InvoiceID"]]["LineItems"][0]
                    self.assertEqual(line["TaxType"], "TAX001")
                    self.assertEqual([t["Option"] for t in line["Tracking"]], ["South"])
                else:
                    detail = sent["Line"][0]["SalesItemLineDetail"]
                    self.assertEqual(detail["ClassRef"]["name"], "Training")
                    self.assertEqual(detail["TaxCodeRef"]["name"], new_tax)

    def test_tracking_goes_as_the_ledgers_own_category_and_option(self):
        expected = {"xero": ("Region", "North"), "qbo": ("Class", "Consulting")}
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                option = self.ref(connection, "tracking", TRACKING[provider][0])
                self.assertEqual((option.category, option.option), expected[provider])
                # codes imported before these fields existed get them from their old name
                self.env.flush_all()
                self.env.cr.execute("UPDATE billing_sync_ledger_ref SET category = NULL, "
                                    "option = NULL WHERE id = %s", [option.id])
                option.invalidate_recordset()
                self.env["billing_sync.ledger.ref"].init()
                self.assertEqual((option.category, option.option), expected[provider])
                self.map_consulting(connection, TRACKING[provider][0])
                # what is sent is never parsed back out of the name Odoo shows
                option.name = "North, as shown in Odoo"
                move = self.consulting_invoice(self.partner(f"Tracked {provider} Ltd"))
                self.run_worker()
                self.assertEqual(self.jobs(move).state, "done", self.jobs(move).last_error)
                [sent] = self.ledger_invoices(provider)
                if provider == "xero":
                    line = self.xero.ledger().invoices[sent["InvoiceID"]]["LineItems"][0]
                    self.assertEqual([(t["Name"], t["Option"]) for t in line["Tracking"]],
                                     [expected[provider]])
                else:
                    detail = sent["Line"][0]["SalesItemLineDetail"]
                    self.assertEqual((detail["ClassRef"]["value"], detail["ClassRef"]["name"]),
                                     (option.ledger_id.split(":")[1], "Consulting"))

    def test_archived_bank_account_holds_the_payment(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                move = self.invoice(self.partner(f"Payer {provider} Ltd"))
                self.run_worker()
                self.assertEqual(self.jobs(move).state, "done", self.jobs(move).last_error)
                bank = self.mapping(connection, "journal", self.bank_journal).bank_account_id
                # archived in Odoo by a refresh (the ledger's listing no longer has it)
                bank.active = False
                payment = self.env["account.payment.register"].with_context(
                    active_model="account.move", active_ids=move.ids).create(
                        {"amount": 100, "journal_id": self.bank_journal.id})._create_payments()
                before = self.request_count(provider)
                self.run_worker()
                job = self.jobs(payment)
                self.assertEqual((job.state, job.block_reason), ("blocked", "mapping"))
                self.assertIn(f"Payment journal “{self.bank_journal.display_name}” is mapped to",
                              job.last_error)
                self.assertEqual(self.request_count(provider), before)

    def test_tracking_option_named_tax_refused_by_the_ledger_gets_the_tracking_hint(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                if provider == "qbo":
                    with self.qbo.lock:
                        self.qbo.ledgers[self.qbo_realm()].create("Class", {"Name": "Tax"})
                    connection.action_import_reference_data()
                option = "Department / Tax" if provider == "xero" else "Class / Tax"
                self.map_consulting(connection, option)
                # archived in the ledger after the last refresh: only the ledger knows
                self.archive_in_ledger(provider, self.ref(connection, "tracking", option))
                move = self.consulting_invoice(self.partner(f"Named {provider} Ltd"))
                self.run_worker()
                job = self.jobs(move)
                self.assertEqual((job.state, job.block_reason), ("blocked", "ledger_refusal"),
                                 job.last_error)
                self.assertIn("tracking mapping", job.hint, job.last_error)
                self.assertNotIn("tax mapping", job.hint)
                # classed once, from the ledger's own words, with its status
                self.assertEqual((job.error_class, job.error_status), ("mapping", 400))
                self.assertTrue(job.ledger_message)
                self.assertIn(job.ledger_message, job.last_error)
                self.assertNotIn("Sending", job.ledger_message)

    def test_archived_default_item_holds_until_the_default_changes(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                item = connection.default_item_id
                if provider == "xero":
                    with self.xero.lock:  # Xero items have no status: deleted, gone
                        del self.xero.ledger().items[item.ledger_id]
                else:
                    ledger = self.qbo.ledgers[self.qbo_realm()]
                    with self.qbo.lock:
                        current = ledger.read("Item", item.ledger_id)
                        ledger.update("Item", {"Id": item.ledger_id, "Active": False,
                                               "SyncToken": current["SyncToken"],
                                               "sparse": True})
                messages = connection.message_ids
                connection.action_import_reference_data()
                self.assertFalse(item.active)
                self.assertIn("Default item of", (connection.message_ids - messages).body)
                move = self.invoice(self.partner(f"Default {provider} Ltd"))
                before = self.request_count(provider)
                self.run_worker()
                job = self.jobs(move)
                self.assertEqual((job.state, job.block_reason), ("blocked", "mapping"))
                self.assertIn(f"Default item of {connection.display_name} is", job.last_error)
                self.assertEqual(self.request_count(provider), before)
                connection.default_item_id = connection.reference_ids.filtered(
                    lambda r: r.kind == "item" and r.active)[:1]
                self.assertEqual((job.state, job.batch_key), ("pending", False))
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
