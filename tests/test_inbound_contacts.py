"""Inbound sync of clients (issue 18): a change a bookkeeper makes in the ledger reaches
the partner under the ownership policy, read back from the ledger (a webhook is a hint),
never echoed back; conflicts are written down and can be overridden."""

import datetime
import json

from odoo import fields
from odoo.tests import TransactionCase, tagged

from odoo.addons.billing_sync.services.webhooks import WebhookEvent

from .test_outbound import OutboundMixin


@tagged("post_install", "-at_install")
class TestInboundContacts(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def linked_client(self, provider, name, connection=None):
        connection = connection or self.connected(provider)
        partner = self.partner(name, street="1 High Street", city="Leeds", zip="LS1 1AA",
                               phone="0113 000 0000")
        self.invoice(partner)
        self.run_worker()
        link = self.env["billing_sync.link"]._of(connection, partner)
        self.assertTrue(link.synced_values, "the values sent are the base of the next change")
        return connection, partner, link

    def bookkeeper_edits(self, provider, ledger_id, email=None, phone=None):
        if provider == "xero":
            changes = {}
            if email:
                changes["EmailAddress"] = email
            if phone:
                changes["Phones"] = [{"PhoneType": "DEFAULT", "PhoneNumber": phone}]
            self.xero.edit_contact(ledger_id, fields=changes)
        else:
            self.qbo.edit_contact(ledger_id, email=email, phone=phone)

    def announce(self, connection, ledger_id, event_id):
        """What the ledger's webhook says (the endpoint's own tests: test_webhooks)."""
        kept, _repeated, _unknown = self.env["billing_sync.inbox"]._receive(
            connection, [WebhookEvent(connection.org_id, "contact", ledger_id, "update",
                                      event_id)])
        self.assertEqual(kept, 1)

    def apply(self):
        self.apply_inbox()

    def contact_jobs(self, partner):
        return self.jobs(partner).filtered(lambda j: j.state == "pending")

    def test_a_bookkeeper_correction_reaches_the_client_and_is_not_sent_back(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection, partner, link = self.linked_client(provider,
                                                               f"Corrected {provider} Ltd")
                self.bookkeeper_edits(provider, link.ledger_id, email="ap@corrected.example",
                                      phone="0113 999 9999")
                self.announce(connection, link.ledger_id, f"ev-{provider}-1")
                before = self.request_count(provider)
                self.apply()
                self.assertEqual(self.request_count(provider) - before, 1,
                                 "one read, nothing sent back")
                self.assertEqual(partner.billing_sync_invoice_email, "ap@corrected.example")
                self.assertEqual(partner.phone, "0113 999 9999")
                self.assertEqual(partner.city, "Leeds", "what did not change stays")
                self.assertFalse(self.contact_jobs(partner), "no echo: nothing queued")
                row = self.env["billing_sync.inbox"].search(
                    [("event_id", "=", f"ev-{provider}-1")])
                self.assertEqual(row.state, "done")
                self.assertIn("ap@corrected.example", link.synced_values)
                self.assertIn("Updated from", partner.message_ids[0].body)
                # the ledger announces the same contact again (its echo of nothing): no
                # change, no write, no job
                written = partner.write_date
                self.announce(connection, link.ledger_id, f"ev-{provider}-2")
                self.apply()
                self.assertEqual(partner.write_date, written)
                self.assertFalse(self.contact_jobs(partner))

    def test_what_odoo_owns_goes_back_to_the_ledger(self):
        self.env.company.billing_sync_owner_email = "odoo"
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection, partner, link = self.linked_client(provider, f"Owned {provider} Ltd")
                email = partner.billing_sync_invoice_email
                self.bookkeeper_edits(provider, link.ledger_id, email="someone@else.example",
                                      phone="0113 555 5555")
                self.announce(connection, link.ledger_id, f"own-{provider}")
                self.apply()
                self.assertEqual(partner.billing_sync_invoice_email, email, "Odoo's stays")
                self.assertEqual(partner.phone, "0113 555 5555", "the phone is not Odoo's")
                self.assertTrue(self.contact_jobs(partner), "the ledger gets Odoo's back")
                self.run_worker()
                contacts = {c.get("ContactID") or c.get("Id"): c
                            for c in self.ledger_contacts(provider)}
                stored = contacts[link.ledger_id]
                address = stored.get("EmailAddress") or (
                    stored.get("PrimaryEmailAddr") or {}).get("Address")
                self.assertEqual(address, email)

    def test_both_sides_changed_the_policy_decides_and_a_person_can_override(self):
        provider = "xero"
        connection, partner, link = self.linked_client(provider, "Both Ltd")
        # Odoo's change, not sent yet (its job waits), then the bookkeeper's, later
        partner.billing_sync_billing_email = "odoo@both.example"
        job = self.contact_jobs(partner)
        job.next_attempt_at = fields.Datetime.now() + datetime.timedelta(hours=1)
        partner.flush_recordset()
        self.env.cr.execute("UPDATE res_partner SET write_date = write_date - interval '1 hour' "
                            "WHERE id = %s", [partner.id])
        partner.invalidate_recordset(["write_date"])
        self.bookkeeper_edits(provider, link.ledger_id, email="ledger@both.example")
        self.announce(connection, link.ledger_id, "both-1")
        self.apply()
        # last change wins: the bookkeeper's was later
        self.assertEqual(partner.billing_sync_invoice_email, "ledger@both.example")
        conflict = self.env["billing_sync.conflict"].search([("partner_id", "=", partner.id)])
        self.assertEqual((conflict.group, conflict.decision, conflict.policy),
                         ("email", "ledger", "last"))
        self.assertIn("odoo@both.example", conflict.odoo_value)
        self.assertIn("ledger@both.example", conflict.ledger_value)
        # a person takes Odoo's value: written back, and sent to the ledger as any change
        conflict.action_take_other_value()
        self.assertEqual(conflict.state, "overridden")
        self.assertEqual(partner.billing_sync_invoice_email, "odoo@both.example")
        self.assertTrue(self.contact_jobs(partner))
        self.assertEqual(json.loads(conflict.odoo_values), {"email": "odoo@both.example"})

    def test_a_conflict_under_each_owner_policy(self):
        """Both sides changed the billing email: the owner's value stays, whichever side
        changed last, and the conflict says so (last change wins: the test above)."""
        for provider in ("xero", "qbo"):
            connection = None
            for owner in ("odoo", "ledger"):
                with self.subTest(provider=provider, owner=owner):
                    self.env.company.billing_sync_owner_email = owner
                    connection, partner, link = self.linked_client(
                        provider, f"Owned {owner} {provider} Ltd", connection)
                    partner.billing_sync_billing_email = f"odoo-{owner}@owned.example"
                    self.contact_jobs(partner).next_attempt_at = (
                        fields.Datetime.now() + datetime.timedelta(hours=1))
                    self.bookkeeper_edits(provider, link.ledger_id,
                                          email=f"ledger-{owner}@owned.example")
                    self.announce(connection, link.ledger_id, f"owned-{provider}-{owner}")
                    self.apply()
                    self.assertEqual(partner.billing_sync_invoice_email,
                                     f"{owner}-{owner}@owned.example")
                    conflict = self.env["billing_sync.conflict"].search(
                        [("partner_id", "=", partner.id)])
                    self.assertEqual((conflict.group, conflict.decision, conflict.policy),
                                     ("email", owner, owner))
                    self.assertIn(f"odoo-{owner}@owned.example", conflict.odoo_value)
                    self.assertIn(f"ledger-{owner}@owned.example", conflict.ledger_value)
                    # Odoo's value goes to the ledger only where Odoo owns it
                    sent = self.env["billing_sync.push"]._values_contact(connection, partner,
                                                                         to_send=True)
                    self.assertEqual("email" in sent, owner == "odoo")
                    self.assertTrue(self.contact_jobs(partner))

    def test_a_lost_webhook_is_caught_by_the_pull(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection, partner, link = self.linked_client(provider, f"Pulled {provider} Ltd")
                Inbox = self.env["billing_sync.inbox"]
                Inbox._cron_pull()  # the first pull: everything so far, nothing to change
                cursor = connection.pull_cursor
                self.assertTrue(cursor)
                self.assertFalse(self.contact_jobs(partner), "nothing sent back")
                # the bookkeeper's change, whose webhook never comes
                self.bookkeeper_edits(provider, link.ledger_id, email="pulled@ap.example")
                before = self.request_count(provider)
                Inbox._cron_pull()
                self.assertEqual(partner.billing_sync_invoice_email, "pulled@ap.example")
                # one request for the clients; then the payments, invoices and credit
                # notes (Xero: a list of each, overpayments too; QuickBooks: one change
                # feed of all)
                self.assertEqual(self.request_count(provider) - before,
                                 1 + (4 if provider == "xero" else 1))
                self.assertGreaterEqual(connection.pull_cursor, cursor)
                pulled = Inbox.search([("connection_id", "=", connection.id),
                                       ("source", "=", "pull"),
                                       ("ledger_id", "=", link.ledger_id)])
                self.assertTrue(pulled and set(pulled.mapped("state")) == {"done"})
                self.assertFalse(self.contact_jobs(partner))

    def test_a_pull_after_a_long_outage_reads_everything_and_says_so(self):
        connection, partner, link = self.linked_client("qbo", "Outage Ltd")
        connection.pull_cursor = "2026-01-01T00:00:00Z"  # far beyond QuickBooks' 30 days
        self.bookkeeper_edits("qbo", link.ledger_id, email="late@ap.example")
        self.env["billing_sync.inbox"]._cron_pull()
        self.assertEqual(partner.billing_sync_invoice_email, "late@ap.example")
        self.assertIn("30 days", connection.message_ids[0].body)

    def test_what_the_ledger_owns_is_never_sent_and_comes_back(self):
        self.env.company.billing_sync_owner_address = "ledger"
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection, partner, link = self.linked_client(provider, f"Ledger {provider} Ltd")
                # Odoo changes the city and the phone: only the phone goes to the ledger
                partner.write({"city": "York", "phone": "0113 222 2222"})
                self.run_worker()
                contacts = {c.get("ContactID") or c.get("Id"): c
                            for c in self.ledger_contacts(provider)}
                state = connection._adapter().read_contacts(
                    connection._access_token(), connection.org_id, [link.ledger_id])
                self.assertEqual(state[link.ledger_id].values["city"], "Leeds",
                                 "the ledger's address is not Odoo's to change")
                self.assertEqual(state[link.ledger_id].values["phone"], "0113 222 2222")
                self.assertTrue(contacts[link.ledger_id])
                # the ledger's next word puts its address back on the partner
                self.announce(connection, link.ledger_id, f"ledger-{provider}")
                self.apply()
                self.assertEqual(partner.city, "Leeds")
                self.assertEqual(partner.phone, "0113 222 2222")
                self.assertFalse(self.contact_jobs(partner), "nothing sent back")
                self.assertFalse(self.env["billing_sync.conflict"].search(
                    [("partner_id", "=", partner.id)]), "only Odoo moved: no conflict")

    def test_a_change_put_off_by_the_rate_limit_asks_for_its_own_run(self):
        connection, partner, link = self.linked_client("xero", "Patient Ltd")
        from odoo.addons.billing_sync.models.billing_sync_job import _pacer

        _pacer(connection).block(30)  # the organisation's budget: nothing for 30 s
        self.bookkeeper_edits("xero", link.ledger_id, email="later@ap.example")
        self.announce(connection, link.ledger_id, "patient-1")
        cron = self.env.ref("billing_sync.ir_cron_apply_inbox")
        self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]).unlink()
        self.apply()
        row = self.env["billing_sync.inbox"].search([("event_id", "=", "patient-1")])
        self.assertEqual(row.state, "pending")
        self.assertGreater(row.next_attempt_at, fields.Datetime.now())
        # no webhook may come: the worker is asked to run when the row is due
        triggers = self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)])
        self.assertIn(row.next_attempt_at, triggers.mapped("call_at"))
