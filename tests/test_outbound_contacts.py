"""Contacts (issue 15): matching never merges two clients; a taken name gets a distinct one.

Both sandboxes over real HTTP, through the worker, as in test_outbound.
"""

from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase, tagged

from odoo.addons.billing_sync.services.ledger.base import PushItem

from .test_outbound import OutboundMixin

PROVIDERS = ("xero", "qbo")


@tagged("post_install", "-at_install")
class TestOutboundContacts(OutboundMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    # ------------------------------------------------------------------ helpers
    def keyed(self, connection, name, **values):
        """A contact a bookkeeper keyed into the ledger; its ledger id."""
        [created] = connection._adapter().push(
            connection._access_token(), connection.org_id, "contact",
            [PushItem("k", "contact", {"name": name, **values})],
            f"keyed-{connection.provider}-{name}")
        self.assertTrue(created.ok, created.error)
        return created.ledger_id

    def contact(self, provider, ledger_id):
        """(name, email) of a ledger contact."""
        if provider == "xero":
            found = self.xero.ledger().contacts[ledger_id]
            return found["Name"], found.get("EmailAddress")
        found = self.qbo.realms[self.qbo_realm()].get("Customer", ledger_id)
        return found["DisplayName"], (found.get("PrimaryEmailAddr") or {}).get("Address")

    def invoice_contact(self, provider, move):
        """The ledger contact the ledger's copy of ``move`` is booked on."""
        link = self.env["billing_sync.link"]._of(self.connection, move)
        self.assertTrue(link, "the invoice is in the ledger")
        if provider == "xero":
            return self.xero.ledger().invoices[link.ledger_id]["Contact"]["ContactID"]
        return self.qbo.realms[self.qbo_realm()].get("Invoice", link.ledger_id)[
            "CustomerRef"]["value"]

    def link(self, partner):
        return self.env["billing_sync.link"]._of(self.connection, partner)

    def assert_done(self, move):
        job = self.jobs(move)
        self.assertEqual(job.state, "done", job.last_error)

    # ------------------------------------------------------------------ (a)
    def test_two_clients_of_the_same_name_are_two_contacts(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.connection = self.connected(provider)
                first = self.partner("Smith & Co", vat="BE0477472701",
                                     email="ap@smith.example")
                second = self.partner("Smith & Co", vat="BE0403170701",
                                      email="billing@smithco.example", ref="P00042")
                move1 = self.invoice(first)
                self.run_worker()
                move2 = self.invoice(second)
                self.run_worker()
                self.assert_done(move1)
                self.assert_done(move2)
                link1, link2 = self.link(first), self.link(second)
                self.assertNotEqual(link1.ledger_id, link2.ledger_id, "never merged")
                self.assertEqual(self.contact(provider, link1.ledger_id),
                                 ("Smith & Co", "ap@smith.example"))
                self.assertEqual(self.contact(provider, link2.ledger_id),
                                 ("Smith & Co (P00042)", "billing@smithco.example"))
                self.assertEqual(self.invoice_contact(provider, move1), link1.ledger_id)
                self.assertEqual(self.invoice_contact(provider, move2), link2.ledger_id)
                # Odoo's name is the client's; the link and the chatter say what the ledger has
                self.assertEqual(second.name, "Smith & Co")
                self.assertEqual(link2.ledger_name, "Smith & Co (P00042)")
                self.assertFalse(link1.ledger_name)
                note = second.message_ids.filtered(lambda m: "Smith &amp; Co (P00042)"
                                                   in (m.body or ""))
                self.assertEqual(len(note), 1, second.message_ids.mapped("body"))
                # a later change of the client keeps the distinct name in the ledger
                second.phone = "+32 2 555 01 02"
                self.run_worker()
                self.assertEqual(self.jobs(second).filtered(
                    lambda j: j.kind == "contact").state, "done")
                self.assertEqual(self.contact(provider, link2.ledger_id)[0],
                                 "Smith & Co (P00042)")

    def test_same_name_in_one_batch_first_keeps_the_name(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.connection = self.connected(provider)
                partners = [self.partner("Acme & Sons", email=f"ap{n}@acme{n}.example")
                            for n in range(3)]
                moves = [self.invoice(p) for p in partners]
                self.run_worker()
                for move in moves:
                    self.assert_done(move)
                names = [self.contact(provider, self.link(p).ledger_id)[0] for p in partners]
                self.assertEqual(names, ["Acme & Sons"] + [f"Acme & Sons ({p.id})"
                                                          for p in partners[1:]])
                self.assertEqual([self.invoice_contact(provider, m) for m in moves],
                                 [self.link(p).ledger_id for p in partners])

    # ------------------------------------------------------------------ (b)
    def test_same_name_other_email_in_the_ledger_is_not_matched(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.connection = self.connected(provider)
                theirs = self.keyed(self.connection, "Harbour Partners",
                                    email="accounts@harbour-other.example")
                partner = self.partner("Harbour Partners", email="ap@harbour.example",
                                       ref="H7")
                before = len(self.ledger_contacts(provider))
                move = self.invoice(partner)
                self.run_worker()
                self.assert_done(move)
                link = self.link(partner)
                self.assertNotEqual(link.ledger_id, theirs)
                self.assertEqual(len(self.ledger_contacts(provider)), before + 1)
                self.assertEqual(self.contact(provider, link.ledger_id),
                                 ("Harbour Partners (H7)", "ap@harbour.example"))
                # the bookkeeper's contact is untouched
                self.assertEqual(self.contact(provider, theirs),
                                 ("Harbour Partners", "accounts@harbour-other.example"))
                self.assertEqual(self.invoice_contact(provider, move), link.ledger_id)

    # ------------------------------------------------------------------ (c)
    def test_tax_id_match_wins_even_when_the_name_differs(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.connection = self.connected(provider)
                # QuickBooks cannot query by tax id: the e-mail finds this one, the name
                # the other; the tax id decides
                holdings = self.keyed(self.connection, "Northwind Holdings",
                                      tax_id="BE0403170701", email="ap@northwind.example")
                namesake = self.keyed(self.connection, "Northwind Ltd")
                partner = self.partner("Northwind Ltd", vat="BE 0403.170.701",
                                       email="ap@northwind.example")
                before = len(self.ledger_contacts(provider))
                move = self.invoice(partner)
                self.run_worker()
                self.assert_done(move)
                self.assertEqual(self.link(partner).ledger_id, holdings)
                self.assertNotEqual(self.link(partner).ledger_id, namesake)
                self.assertEqual(len(self.ledger_contacts(provider)), before)
                self.assertEqual(self.invoice_contact(provider, move), holdings)

    # ------------------------------------------------------------------ (d)
    def test_refused_contact_goes_with_a_new_key_once_fixed(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                self.connection = self.connected(provider)
                # both the name and its distinct form belong to other clients
                self.keyed(self.connection, "Dup Co", email="one@dup-other.example")
                self.keyed(self.connection, "Dup Co (D1)", email="two@dup-other.example")
                partner = self.partner("Dup Co", email="me@dup.example", ref="D1")
                move = self.invoice(partner)
                self.run_worker()
                job = self.jobs(move)
                self.assertEqual(job.state, "blocked")
                self.assertIn("Dup Co (D1)", job.last_error)
                self.assertIn("rename the client", job.last_error)
                self.assertFalse(self.link(partner))
                # the fix: the client's full name; Retry sends it under a new key (the old
                # one would replay the refusal)
                sandbox = getattr(self, provider)
                keys = len(sandbox.idempotency)
                partner.name = "Dup Co Advisory"
                job.action_retry()
                self.run_worker()
                self.assertEqual(job.state, "done", job.last_error)
                self.assertGreater(len(sandbox.idempotency), keys)
                self.assertEqual(self.contact(provider, self.link(partner).ledger_id),
                                 ("Dup Co Advisory", "me@dup.example"))
                self.assertEqual(self.invoice_contact(provider, move),
                                 self.link(partner).ledger_id)

    def test_xero_refused_email_fixed_goes_again(self):
        self.connection = self.connected("xero")
        partner = self.partner("Typo Traders", email="ap@@typo.example")
        move = self.invoice(partner)
        self.run_worker()
        job = self.jobs(move)
        self.assertEqual(job.state, "blocked")
        self.assertIn("Email address must be valid", job.last_error)
        partner.email = "ap@typo.example"
        job.action_retry()
        self.run_worker()
        self.assertEqual(job.state, "done", job.last_error)
        self.assertEqual(self.contact("xero", self.link(partner).ledger_id),
                         ("Typo Traders", "ap@typo.example"))

    def test_quickbooks_vendor_name_gets_a_distinct_customer_name(self):
        self.connection = self.connected("qbo")
        # a supplier, in the display names customers share with vendors and employees:
        # the customer lookup cannot see it, QuickBooks refuses the name (Fault 6240)
        self.qbo._bookkeep(None, lambda ledger: ledger.create(
            "Vendor", {"DisplayName": "Kiwi Supplies"}))
        partner = self.partner("Kiwi Supplies", ref="K9")
        move = self.invoice(partner)
        self.run_worker()
        self.assert_done(move)
        self.assertEqual(self.contact("qbo", self.link(partner).ledger_id)[0],
                         "Kiwi Supplies (K9)")
        self.assertEqual(self.link(partner).ledger_name, "Kiwi Supplies (K9)")

    def test_suffix_setting_is_checked(self):
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.billing_sync_duplicate_name_suffix, " (%(ref)s)")
        with self.assertRaises(ValidationError):
            self.env.company.billing_sync_duplicate_name_suffix = " (copy)"
        self.env.company.billing_sync_duplicate_name_suffix = " - %(id)s"
        self.connection = self.connected("xero")
        self.keyed(self.connection, "Orchard Ltd", email="x@orchard-other.example")
        partner = self.partner("Orchard Ltd")
        move = self.invoice(partner)
        self.run_worker()
        self.assert_done(move)
        self.assertEqual(self.contact("xero", self.link(partner).ledger_id)[0],
                         f"Orchard Ltd - {partner.id}")
