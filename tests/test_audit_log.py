"""The audit trail (issue 19): every outcome of the sync, either way, is written by the
engine with the record, its fields before and after, who started it and who authorized
it; nobody, administrators included, changes or deletes an entry; retention archives in
bulk; the trail exports to CSV and XLSX."""

import base64
import csv
import datetime
import io
import json
import zipfile

import psycopg2
from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, TransactionCase, tagged
from odoo.tools import mute_logger

from .common import ADMIN, MANAGER, make_user
from .test_inbound_payments import InboundPaymentsMixin


class AuditMixin(InboundPaymentsMixin):
    def entries(self, records, **where):
        domain = [("res_model", "=", records._name), ("res_id", "in", records.ids)]
        domain += [(key, "=", value) for key, value in where.items()]
        return self.env["billing_sync.audit.log"].search(domain, order="id")


@tagged("post_install", "-at_install")
class TestAuditLog(AuditMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def test_a_push_is_written_with_the_ledgers_copy_before_and_after(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self.connected(provider)
                clerk = make_user(self.env, f"audit_clerk_{provider}",
                                  "account.group_account_invoice")
                partner = self.partner(f"Audited {provider} Ltd")
                move = self.invoice(partner, post=False)
                # the clerk's own change (a job is queued under their name)
                move.with_user(clerk).action_post()
                self.run_worker()
                job = self.jobs(move).filtered(lambda j: j.state == "done")
                entry = self.entries(move, direction="outbound")
                self.assertEqual(len(entry), 1, entry.mapped("outcome"))
                link = self.env["billing_sync.link"]._of(connection, move)
                self.assertEqual((entry.outcome, entry.kind, entry.connection_id),
                                 ("in_ledger", "invoice", connection))
                self.assertEqual((entry.initiated_by, entry.initiator_id,
                                  entry.authorized_by_id), ("user", clerk, clerk))
                self.assertEqual(entry.job_id, job)
                self.assertTrue(entry.idempotency_key)
                self.assertEqual(entry.http_status, 200)
                self.assertGreater(entry.duration_ms, 0)
                self.assertEqual((entry.ledger_id, entry.ledger_number),
                                 (link.ledger_id, link.ledger_number))
                self.assertFalse(entry.values_before, "it was not in the ledger")
                after = json.loads(entry.values_after)
                self.assertEqual(after["ledger_total"], move.amount_total)
                self.assertEqual(after["sync_state"], "synced")
                self.assertEqual(entry.record_name, move.display_name)
                # the client went first, by a scheduled action's doing under the
                # administrator who connected the ledger
                contact = self.entries(partner, direction="outbound")
                self.assertEqual(contact.outcome, "in_ledger")
                # a change of the client: its ledger copy before and after
                partner.write({"phone": "0113 555 0199"})
                self.run_worker()
                update = self.entries(partner, direction="outbound")[-1]
                self.assertNotEqual(update, contact)
                before, after = (json.loads(update.values_before),
                                 json.loads(update.values_after))
                self.assertEqual(before["ledger_id"], after["ledger_id"])
                self.assertNotEqual(before["values"].get("phone"), after["values"]["phone"])
                self.assertIn("555", after["values"]["phone"])

    def test_a_scheduled_change_is_authorized_by_the_administrator_who_connected(self):
        connection = self.connected("xero")
        move = self.invoice(self.partner("Scheduled Ltd"))  # the superuser's, as a cron's
        self.run_worker()
        entry = self.entries(move)
        self.assertEqual((entry.initiated_by, entry.initiator_id, entry.authorized_by_id),
                         ("cron", self.env["res.users"], connection.connected_by_id))
        self.assertTrue(connection.connected_by_id)

    def test_refusals_and_given_up_jobs_are_written_with_the_reason(self):
        connection = self.connected("qbo")
        unmapped = self.env["account.tax"].create({
            "name": "Audit levy 3", "amount": 3, "type_tax_use": "sale"})
        stopped = self.taxed_invoice(self.partner("Unmapped Ltd"), unmapped)
        sent = self.invoice(self.partner("Mapped Ltd"))  # in the same batch
        self.run_worker()
        entry = self.entries(stopped)
        self.assertEqual((entry.outcome, entry.error_class), ("needs_fix", "mapping"))
        self.assertEqual(self.entries(sent).http_status, 200)
        self.assertFalse(entry.http_status, "held before sending: the batch's answer is "
                                            "not its")
        self.assertIn(unmapped.name, entry.message)
        self.assertFalse(entry.values_after)
        # a ledger that keeps failing: every attempt retried, the last one given up
        failing = self.invoice(self.partner("Failing Ltd"))
        self.qbo.faults.next("http500", count=50)
        self.addCleanup(self.qbo.faults.clear)
        job = self.jobs(failing)
        for _attempt in range(12):
            job.next_attempt_at = fields.Datetime.now()
            self.run_worker()
            if job.state == "dead":
                break
        self.assertEqual(job.state, "dead")
        given_up = self.entries(failing)
        self.assertEqual(len(given_up), 1, "retries are not outcomes; the last one is")
        self.assertEqual((given_up.outcome, given_up.error_class, given_up.connection_id),
                         ("given_up", "network", connection))
        self.assertIn("500", given_up.message)

    def test_ledger_changes_are_written_with_odoos_record_before_and_after(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection, move, link = self.sent_invoice(provider, f"Ledger payer {provider}")
                partner = move.partner_id
                # a bookkeeper changes the client's phone and records a payment
                contact = self.env["billing_sync.link"]._of(connection, partner)
                if provider == "xero":
                    self.xero.edit_contact(contact.ledger_id, fields={"Phones": [
                        {"PhoneType": "DEFAULT", "PhoneNumber": "0207 111 2222"}]})
                else:
                    self.qbo.edit_contact(contact.ledger_id, phone="0207 111 2222")
                self.announce(connection, "contact", contact.ledger_id, f"c-{provider}")
                payment_id = self.ledger_pays(provider, link)
                self.announce_payment(provider, connection, link, payment_id, f"p-{provider}")
                self.apply()
                row = self.row(f"c-{provider}")
                changed = self.entries(partner, direction="inbound")
                self.assertEqual(len(changed), 1)
                self.assertEqual((changed.outcome, changed.kind, changed.inbox_id),
                                 ("applied", "contact", row))
                self.assertEqual((changed.initiated_by, changed.authorized_by_id),
                                 (provider, connection.connected_by_id))
                self.assertEqual(json.loads(changed.values_after), {"phone": "0207 111 2222"})
                self.assertEqual(json.loads(changed.values_before), {"phone": False})
                payment = self.ledger_payments(connection, move)
                paid = self.entries(payment, direction="inbound")
                self.assertEqual(len(paid), 1)
                self.assertEqual((paid.outcome, paid.kind, paid.ledger_id),
                                 ("applied", "payment", payment_id))
                self.assertFalse(paid.values_before, "a new Odoo payment")
                after = json.loads(paid.values_after)
                self.assertEqual((after["amount"], after["invoices"]),
                                 (move.amount_total, [move.name]))
                # the ledger deletes it: cancelled here, written down
                self.ledger_deletes(provider, payment_id)
                self.announce_payment(provider, connection, link, payment_id,
                                      f"d-{provider}", change="delete")
                self.apply()
                removed = self.entries(payment, direction="inbound")[-1]
                self.assertEqual(json.loads(removed.values_after), {"state": "canceled"})

    def test_a_change_given_up_is_written_as_not_applied(self):
        connection, move, link = self.sent_invoice("qbo", "Unbookable Ltd")
        connection.ledger_payment_journal_id = False  # nowhere to book it
        payment_id = self.ledger_pays("qbo", link)
        self.announce_payment("qbo", connection, link, payment_id, "unbookable")
        row = self.row("unbookable")
        for _attempt in range(12):
            row.next_attempt_at = fields.Datetime.now()
            self.apply()
            if row.state == "failed":
                break
        self.assertEqual(row.state, "failed")
        entry = self.env["billing_sync.audit.log"].search([("inbox_id", "=", row.id)])
        self.assertEqual((entry.outcome, entry.direction, entry.ledger_id),
                         ("not_applied", "inbound", payment_id))
        self.assertEqual(entry.message, row.last_error)

    def test_nobody_changes_or_deletes_an_entry(self):
        self.connected("xero")
        move = self.invoice(self.partner("Tamper Ltd"))
        self.run_worker()
        entry = self.entries(move)
        sysadmin = make_user(self.env, "audit_sysadmin", f"{ADMIN},base.group_system")
        for who in (sysadmin, self.env.user):
            for Log in (entry.with_user(who), entry.with_user(who).sudo()):
                with self.subTest(user=who.login, su=Log.env.su):
                    with self.assertRaises(AccessError):
                        Log.write({"outcome": "applied"})
                    with self.assertRaises(AccessError):
                        Log.unlink()
        with self.assertRaises(AccessError):
            self.env["billing_sync.audit.log"].with_user(sysadmin).create({
                "direction": "outbound", "outcome": "in_ledger", "initiated_by": "user"})
        with self.assertRaises(AccessError):  # even the superuser, without the engine
            self.env["billing_sync.audit.log"].create({
                "direction": "outbound", "outcome": "in_ledger", "initiated_by": "user"})
        # below the ORM: the database refuses it too
        for statement in ("UPDATE billing_sync_audit_log SET outcome = 'applied' WHERE id = %s",
                          "UPDATE billing_sync_audit_log SET values_after = '{}' WHERE id = %s",
                          "DELETE FROM billing_sync_audit_log WHERE id = %s"):
            with self.subTest(statement=statement), mute_logger("odoo.sql_db"), \
                    self.assertRaises(psycopg2.errors.InsufficientPrivilege), \
                    self.env.cr.savepoint():
                self.env.cr.execute(statement, [entry.id])
        # a job pruned later leaves its entry whole
        self.env.cr.execute("DELETE FROM billing_sync_job WHERE id = %s", [entry.job_id.id])
        entry.invalidate_recordset()
        self.assertFalse(entry.job_id)
        self.assertEqual(entry.outcome, "in_ledger")

    def test_retention_archives_old_entries_in_bulk(self):
        self.connected("xero")
        with freeze_time(fields.Datetime.now() - datetime.timedelta(days=400)):
            old = self.invoice(self.partner("Old Ltd"))
            self.run_worker()
        new = self.invoice(self.partner("New Ltd"))
        self.run_worker()
        Log = self.env["billing_sync.audit.log"]
        old_entries, new_entries = self.entries(old), self.entries(new)
        self.assertTrue(old_entries and new_entries)
        self.env["ir.config_parameter"].set_param("billing_sync.audit_retention_days", "365")
        self.assertGreaterEqual(Log._cron_archive(), len(old_entries))
        self.assertFalse(self.entries(old), "archived: out of the default list")
        archived = Log.with_context(active_test=False).browse(old_entries.ids)
        self.assertEqual(archived.mapped("active"), [False] * len(old_entries))
        self.assertEqual(self.entries(new), new_entries)
        self.env["ir.config_parameter"].set_param("billing_sync.audit_retention_days", "0")
        self.assertEqual(Log._cron_archive(), 0, "0 keeps every entry active")

    def test_the_trail_exports_to_csv_and_xlsx_for_its_company(self):
        self.connected("xero")
        hostile = self.partner("=HYPERLINK(\"http://evil.example\") Ltd")
        move = self.invoice(hostile)
        self.run_worker()
        manager = make_user(self.env, "audit_manager", MANAGER)
        other = self.env["res.company"].create({"name": "Audit Other Firm"})
        outsider = make_user(self.env, "audit_outsider", MANAGER)
        outsider.write({"company_ids": [(6, 0, other.ids)], "company_id": other.id})
        Export = self.env["billing_sync.audit.export"]
        wizard = Export.with_user(manager).create({"file_format": "csv"})
        wizard.action_export()
        text = base64.b64decode(wizard.data).decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        self.assertEqual(rows[0][0], "When")
        names = [row[8] for row in rows[1:]]
        self.assertIn(move.display_name, names)
        self.assertIn("'=HYPERLINK", "\n".join(names), "a formula is quoted, never run")
        self.assertEqual(wizard.count, len(rows) - 1)
        xlsx = Export.with_user(manager).create({"file_format": "xlsx"})
        xlsx.action_export()
        self.assertTrue(xlsx.filename.endswith(".xlsx"))
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(xlsx.data))) as book:
            strings = book.read("xl/sharedStrings.xml").decode()
        self.assertIn(move.display_name, strings)
        self.assertNotIn("<f>", strings)
        theirs = Export.with_user(outsider).create({"file_format": "csv"})
        theirs.action_export()
        self.assertEqual(theirs.count, 0, "another company's trail is not theirs")


@tagged("post_install", "-at_install")
class TestAuditLogRpc(HttpCase):
    def test_an_administrator_cannot_change_an_entry_through_rpc(self):
        admin = make_user(self.env, "audit_rpc_admin", f"{ADMIN},base.group_system")
        company = self.env.company
        entry = self.env["billing_sync.audit.log"]._log([{
            "company_id": company.id, "direction": "outbound", "outcome": "in_ledger",
            "initiated_by": "cron", "record_name": "RPC target"}])
        self.authenticate(admin.login, "audit_rpc_admin")
        for method, args in (("write", [[entry.id], {"outcome": "applied"}]),
                             ("unlink", [[entry.id]]),
                             ("create", [{"direction": "outbound", "outcome": "in_ledger",
                                          "initiated_by": "user"}])):
            with self.subTest(method=method), mute_logger("odoo.http"):
                answer = self.url_open(
                    f"/web/dataset/call_kw/billing_sync.audit.log/{method}",
                    data=json.dumps({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                        "model": "billing_sync.audit.log", "method": method, "args": args,
                        "kwargs": {}}}),
                    headers={"Content-Type": "application/json"}).json()
                self.assertEqual(answer["error"]["data"]["name"],
                                 "odoo.exceptions.AccessError", answer)
        self.assertEqual(entry.outcome, "in_ledger")
        read = self.url_open(
            "/web/dataset/call_kw/billing_sync.audit.log/read",
            data=json.dumps({"jsonrpc": "2.0", "method": "call", "id": 2, "params": {
                "model": "billing_sync.audit.log", "method": "read",
                "args": [[entry.id], ["record_name"]], "kwargs": {}}}),
            headers={"Content-Type": "application/json"}).json()
        self.assertEqual(read["result"][0]["record_name"], "RPC target",
                         "an administrator reads the trail")
