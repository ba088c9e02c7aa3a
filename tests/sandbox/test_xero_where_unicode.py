"""Xero sandbox: ``where`` filters on accented (non-ASCII) names, through xero-python and
through billing_sync's adapter (a contact named "Société Générale" must be found, not
created a second time)."""

import pytest
from xero_python.accounting import Contact, Contacts
from xero_support import XeroPush

from ledger_sandbox.xero.where import compile_where

NAMES = ["Société Générale", "Zoë Ørsted ÆØÅ", "Müller & Söhne GmbH", "Łódź Sp. z o.o."]


@pytest.fixture
def contacts(xero):
    made = xero.accounting.create_contacts(
        xero.tenant_id, Contacts(contacts=[Contact(name=n) for n in NAMES])).contacts
    return {c.name: c.contact_id for c in made}


def _names(xero, where):
    found = xero.accounting.get_contacts(xero.tenant_id, where=where).contacts
    return sorted(c.name for c in found)


@pytest.mark.parametrize("where, expected", [
    ('Name=="Société Générale"', ["Société Générale"]),
    ('Name=="Zoë Ørsted ÆØÅ"', ["Zoë Ørsted ÆØÅ"]),
    ('Name.ToLower()=="société générale"', ["Société Générale"]),
    ('Name.ToUpper()=="MÜLLER & SÖHNE GMBH"', ["Müller & Söhne GmbH"]),
    ('Name.ToLower()=="łódź sp. z o.o."', ["Łódź Sp. z o.o."]),
    ('Name.Contains("ørsted")', ["Zoë Ørsted ÆØÅ"]),
    ('Name.StartsWith("Łódź")', ["Łódź Sp. z o.o."]),
    ('Name=="Societe Generale"', []),  # accents are part of the text
    ('Name=="Soci\\u00e9t\\u00e9 G\\u00e9n\\u00e9rale"', ["Société Générale"]),
])
def test_where_matches_unicode_names_through_the_sdk(xero, contacts, where, expected):
    assert _names(xero, where) == expected


def test_the_adapter_finds_an_accented_client_instead_of_creating_it_again(xero_sandbox,
                                                                           contacts):
    push = XeroPush(xero_sandbox)
    found = push.find_contacts([
        {"key": "sg", "tax_id": None, "email": None, "name": "Société Générale"},
        {"key": "zo", "tax_id": None, "email": None, "name": "zoë ørsted æøå"},
    ])
    assert found == {"sg": contacts["Société Générale"], "zo": contacts["Zoë Ørsted ÆØÅ"]}


def test_escapes_in_string_literals():
    match = compile_where(r'Name=="Say \"hé\" \\ ok"')
    assert match({"Name": 'Say "hé" \\ ok'})
    assert not match({"Name": "Say hé ok"})
