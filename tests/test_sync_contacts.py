"""Which ledger contact a partner is, and the name a new one gets (pure, no database)."""

from odoo.addons.billing_sync.services.contacts import (
    check_suffix,
    distinct_name,
    match_contact,
    match_contacts,
    tax_relation,
)
from odoo.addons.billing_sync.services.ledger import xero_payloads


def cand(key="p", tax_id=None, email=None, name="Smith & Co"):
    return {"key": key, "tax_id": tax_id, "email": email, "name": name}


def row(row_id, tax_id=None, email=None, name="Smith & Co"):
    return {"id": row_id, "tax_id": tax_id, "email": email, "name": name}


def test_tax_id_wins_over_everything():
    rows = [row("1", email="ap@smith.test"), row("2", tax_id="BE 0477.472.701",
                                                  email="old@smith.test", name="Smith Holdings")]
    # the email names contact 1, the name too; the tax id names contact 2, which wins
    # even though its email and name differ
    assert match_contact(cand(tax_id="be0477472701", email="ap@smith.test"), rows) == "2"


def test_email_wins_over_name():
    rows = [row("1"), row("2", email="AP@Smith.test ", name="Smith and Company")]
    assert match_contact(cand(email="ap@smith.test"), rows) == "2"


def test_name_match_rejected_when_email_or_tax_id_contradict():
    # the bookkeeper's case: a second "Smith & Co", other tax id, other email
    assert match_contact(cand(tax_id="GB111", email="b@smith2.test"),
                         [row("1", tax_id="GB999", email="a@smith.test")]) is None
    assert match_contact(cand(email="b@smith2.test"), [row("1", email="a@smith.test")]) is None
    assert match_contact(cand(tax_id="GB111"), [row("1", tax_id="GB999")]) is None
    # a contradicted tax id is not rescued by an equal email either
    assert match_contact(cand(tax_id="GB111", email="a@smith.test"),
                         [row("1", tax_id="GB999", email="a@smith.test")]) is None


def test_name_match_accepted_when_the_ledger_contact_lacks_email_and_tax_id():
    assert match_contact(cand(tax_id="GB111", email="a@smith.test"), [row("7")]) == "7"
    # and when the partner lacks them
    assert match_contact(cand(), [row("7", tax_id="GB999", email="x@y.test")]) == "7"
    # names compare as ledgers do: case and spacing ignored
    assert match_contact(cand(name="  smith  &  CO "), [row("7")]) == "7"


def test_ties_are_deterministic():
    rows = [row("10", email="a@smith.test"), row("9", email="a@smith.test"),
            row("2", email="a@smith.test", name="Other")]
    # same level: the one agreeing on more (the name) wins, then the lowest id
    assert match_contact(cand(email="a@smith.test"), rows) == "9"
    assert match_contact(cand(email="a@smith.test"), list(reversed(rows))) == "9"
    uuids = [row("b-uuid"), row("a-uuid")]
    assert match_contact(cand(), uuids) == match_contact(cand(), uuids[::-1]) == "a-uuid"


def test_masked_tax_id_contradicts_but_never_confirms():
    assert tax_relation("GB123451234", "XXXXXXX1234") is None
    assert tax_relation("GB123459999", "XXXXXXX1234") == "differs"
    assert tax_relation("GB 12", "gb-12") == "same"
    assert tax_relation(None, "GB12") is None
    # masked and agreeing: falls to the email, then the name
    assert match_contact(cand(tax_id="GB123451234"), [row("3", tax_id="***1234")]) == "3"
    assert match_contact(cand(tax_id="GB123459999"), [row("3", tax_id="***1234")]) is None


def test_name_holders_say_which_contacts_bear_the_name():
    found = match_contacts(
        [cand("p1", email="b@smith2.test"), cand("p2", name="Nobody")],
        [row("4", email="a@smith.test"), row("5", name="SMITH & CO", email="c@x.test")])
    assert found == {}
    assert found.name_holders == {"p1": ["4", "5"]}


def test_xero_matching_goes_through_the_same_rules():
    contacts = [{"ContactID": "c1", "TaxNumber": "NZ-1", "EmailAddress": "a@smith.test",
                 "Name": "Smith & Co"}]
    found = xero_payloads.match_contacts(
        [cand("p1", tax_id="NZ-2", email="b@smith2.test"), cand("p2", tax_id="nz1")], contacts)
    assert found == {"p2": "c1"}
    assert found.name_holders == {"p1": ["c1"], "p2": ["c1"]}
    assert xero_payloads.is_duplicate_name([
        "The contact name Smith & Co is already assigned to another contact. The contact "
        "name must be unique across all active contacts."])
    assert not xero_payloads.is_duplicate_name(["Email address must be valid."])


def test_distinct_name():
    assert distinct_name("Smith & Co", " (%(ref)s)", ref="P00042", partner_id=42) == \
        "Smith & Co (P00042)"
    assert distinct_name("Smith & Co", " (%(ref)s)", partner_id=42) == "Smith & Co (42)"
    assert distinct_name("Smith & Co", " - %(id)s", ref="P1", partner_id=42) == "Smith & Co - 42"
    # the name gives way, never the suffix
    long = distinct_name("x" * 300, " (%(ref)s)", ref="P7", partner_id=7)
    assert len(long) == 255 and long.endswith(" (P7)")
    # a suffix that cannot tell two clients apart falls back to the default
    assert distinct_name("A", " (copy)", partner_id=3) == "A (3)"
    assert check_suffix(" (copy)") and check_suffix(" (%(name)s)") and check_suffix("")
    assert check_suffix(" (%(ref)s)") is None and check_suffix(" #%(id)s") is None
