"""Reading contacts back for inbound sync: XeroAdapter / QboAdapter.read_contacts against the
emulators, over real HTTP through xero-python and python-quickbooks' session.

What a push sends is what a read gives back, key by key, in the same neutral shape (the
payload modules' ``contact_values`` / ``customer_values`` invert ``contact`` / ``customer``),
except a key the ledger does not let be read, which is absent. Request counts come from the
sandboxes' counters.
"""

import datetime
import re
import uuid

import pytest
from adapter_support import Meter
from qbo_support import QboPush
from xero_support import XeroClock, XeroPush

from billing_sync.services.ledger import qbo_payloads, xero_payloads
from billing_sync.services.ledger.base import ContactState, LedgerAdapter, PushItem, utc_timestamp
from billing_sync.services.ledger.errors import AccessTokenExpired, RateLimited
from billing_sync.services.ledger.qbo import QboAdapter
from billing_sync.services.ledger.xero import XeroAdapter

# the neutral keys a contact is read back with (is_company, term_ref, currency: pushed only)
KEYS = ("name", "email", "phone", "tax_id", "street", "street2", "city", "zip", "state",
        "country_code")
UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
QUERY = "POST /v3/company/{realmId}/query"


def _contact(name, **values):
    return {"name": name, "email": None, "phone": None, "tax_id": None, "street": None,
            "street2": None, "city": None, "zip": None, "state": None, "country_code": None,
            "is_company": True, "term_ref": None, "currency": None, **values}


def _full(name, n=0, **values):
    """Every field a contact has, distinct per ``n``."""
    return _contact(name, **{
        "email": f"billing{n}@client{n}.test", "phone": f"+64 9 555 {n:04d}",
        "tax_id": f"GB{n:09d}", "street": f"{n} Queen Street", "street2": f"Level {n}",
        "city": "Auckland", "zip": f"{1000 + n}", "state": "Auckland", "country_code": "NZ",
        **values})


def _read_back(values):
    """What a read gives for pushed ``values``: the neutral keys only."""
    return {key: values[key] for key in KEYS}


def _push_contacts(push, contacts, key):
    items = [PushItem(f"res.partner,{key}{n}", "contact", values)
             for n, values in enumerate(contacts)]
    results = push.push("contact", items, key)
    assert all(r.ok for r in results), [r.error for r in results]
    return [r.ledger_id for r in results]


def test_the_contract_declares_read_contacts_once():
    import inspect

    for cls in (XeroAdapter, QboAdapter):
        assert cls.read_contacts is not LedgerAdapter.read_contacts
        assert (list(inspect.signature(cls.read_contacts).parameters)
                == list(inspect.signature(LedgerAdapter.read_contacts).parameters)
                == ["self", "access_token", "org_id", "ids"])
    state = ContactState("1", {"name": "A"})
    assert (state.updated_at, state.version) == (None, None)
    with pytest.raises(AttributeError):
        state.version = "2"  # frozen


def test_timestamps_are_normalised_to_utc_seconds():
    assert utc_timestamp("2015-07-24T10:35:08-07:00") == "2015-07-24T17:35:08Z"
    assert utc_timestamp("2026-01-02T03:04:05+00:00") == "2026-01-02T03:04:05Z"
    assert utc_timestamp("2026-01-02T03:04:05.1234567Z") == "2026-01-02T03:04:05Z"
    assert utc_timestamp("2026-01-02T03:04:05") == "2026-01-02T03:04:05Z"
    aware = datetime.datetime(2026, 1, 2, 13, 4, 5, 999000,
                              tzinfo=datetime.timezone(datetime.timedelta(hours=13)))
    assert utc_timestamp(aware) == "2026-01-02T00:04:05Z"
    assert utc_timestamp(datetime.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"
    assert utc_timestamp(None) is None and utc_timestamp("") is None
    assert utc_timestamp("yesterday") is None


# =========================================================================== Xero
@pytest.fixture
def xero_push(xero_sandbox):
    return XeroPush(xero_sandbox)


def test_xero_parse_inverts_the_builder_without_http():
    values = _full("Acme Ltd", 7)
    assert xero_payloads.contact_values(xero_payloads.contact(values)) == _read_back(values)
    # an update sends blanks for what Odoo cleared: read back as None
    cleared = _contact("Acme Ltd")
    model = xero_payloads.contact(cleared, str(uuid.uuid4()))
    assert xero_payloads.contact_values(model) == _read_back(cleared)
    assert xero_payloads.contact_values(xero_payloads.contact(_contact("Bare Ltd"))) == \
        _read_back(_contact("Bare Ltd"))


def test_xero_round_trip_of_every_field(xero_push):
    pushed = [_full("Acme Ltd", 1), _full("Beta Ltd", 2, email=None, street2=None),
              _contact("Gamma Ltd", phone="021 555 0003")]
    ids = _push_contacts(xero_push, pushed, "rt")
    xero_push.reset_counters()
    read = xero_push.adapter.read_contacts(xero_push.token, xero_push.tenant_id, ids)
    assert xero_push.api_requests() == {"GET Contacts": 1}
    assert set(read) == set(ids)
    for ledger_id, values in zip(ids, pushed, strict=True):
        state = read[ledger_id]
        assert state.ledger_id == ledger_id
        assert state.values == _read_back(values)  # every key: Xero lets all be read
        assert state.version is None
        stored = xero_push.ledger().contacts[ledger_id]["UpdatedDateUTC"]
        assert state.updated_at == utc_timestamp(stored)

    # an update clearing fields in Odoo reads back cleared
    update = _contact("Acme Limited", email="ap@acme.test")
    (result,) = xero_push.push("contact", [PushItem("res.partner,rt0", "contact", update,
                                                    ledger_id=ids[0])], "rt-update")
    assert result.ok, result.error
    again = xero_push.adapter.read_contacts(xero_push.token, xero_push.tenant_id, [ids[0]])
    assert again[ids[0]].values == _read_back(update)


def test_xero_bookkeeper_edit_shows_and_moves_updated_at(xero_push, xero_clock):
    (contact_id,) = _push_contacts(xero_push, [_full("Edited Ltd", 4)], "edit")
    before = xero_push.adapter.read_contacts(xero_push.token, xero_push.tenant_id,
                                             [contact_id])[contact_id]
    xero_clock.advance(minutes=3)
    xero_push.app.edit_contact(contact_id, {
        "EmailAddress": "new.address@edited.test", "Name": "Edited Limited",
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "555 0101",
                    "PhoneAreaCode": "09", "PhoneCountryCode": "64"},
                   {"PhoneType": "MOBILE", "PhoneNumber": "021 999"}],
        "Addresses": [{"AddressType": "STREET", "AddressLine1": "Not the billing one"},
                      {"AddressType": "POBOX", "AddressLine1": "PO Box 99",
                       "City": "Wellington", "PostalCode": "6011", "Country": "New Zealand"}],
    })
    after = xero_push.adapter.read_contacts(xero_push.token, xero_push.tenant_id,
                                            [contact_id])[contact_id]
    assert after.values == {
        "name": "Edited Limited", "email": "new.address@edited.test",
        # the DEFAULT phone, its country and area codes first; the POBOX address
        "phone": "64 09 555 0101", "tax_id": "GB000000004", "street": "PO Box 99",
        "street2": None, "city": "Wellington", "zip": "6011", "state": None,
        "country_code": "New Zealand"}
    assert UTC_SECOND.match(after.updated_at) and UTC_SECOND.match(before.updated_at)
    assert after.updated_at > before.updated_at
    moved = datetime.datetime.strptime(after.updated_at, "%Y-%m-%dT%H:%M:%SZ") - \
        datetime.datetime.strptime(before.updated_at, "%Y-%m-%dT%H:%M:%SZ")
    assert datetime.timedelta(minutes=3) - datetime.timedelta(seconds=1) <= moved \
        <= datetime.timedelta(minutes=3, seconds=1)


def test_xero_archived_included_unknown_absent(xero_push):
    kept, archived = _push_contacts(xero_push, [_contact("Kept Ltd"), _contact("Gone Ltd")],
                                    "arch")
    xero_push.app.edit_contact(archived, ContactStatus="ARCHIVED")
    unknown = str(uuid.uuid4())
    xero_push.reset_counters()
    read = xero_push.adapter.read_contacts(
        xero_push.token, xero_push.tenant_id,
        [kept, archived.upper(), unknown, "not-a-guid", None, "", kept])
    assert xero_push.api_requests() == {"GET Contacts": 1}
    # keyed as asked (Xero's GUIDs ignore case); the unknown ones are simply absent
    assert set(read) == {kept, archived.upper()}
    assert read[archived.upper()].values["name"] == "Gone Ltd"
    assert read[archived.upper()].ledger_id == archived.upper()
    # nothing that can be a Xero id: no request at all
    xero_push.reset_counters()
    assert xero_push.adapter.read_contacts(xero_push.token, xero_push.tenant_id,
                                           ["x", None, "00000000-0000-0000-0000-000000000000"]
                                           ) == {}
    assert xero_push.api_requests() == {}


def test_xero_120_ids_cost_3_metered_requests(xero_push):
    contacts = [_contact(f"Client {n:03d} Ltd", email=f"c{n}@many.test") for n in range(70)]
    ids = (_push_contacts(xero_push, contacts[:50], "many-a")
           + _push_contacts(xero_push, contacts[50:], "many-b"))
    asked = ids + [str(uuid.uuid4()) for _ in range(50)]
    assert len(set(asked)) == 120
    meter = Meter()
    xero_push.adapter.meter = meter
    xero_push.reset_counters()
    read = xero_push.adapter.read_contacts(xero_push.token, xero_push.tenant_id, asked)
    assert xero_push.api_requests() == {"GET Contacts": 3}
    assert meter.calls == [False, False, False]  # each one counted by the engine's budget
    assert set(read) == set(ids)
    assert [read[i].values["name"] for i in ids] == [c["name"] for c in contacts]
    assert xero_push.adapter.last_headroom["minute_remaining"] is not None


def test_xero_refused_token_raises_what_the_push_raises(xero_push):
    (contact_id,) = _push_contacts(xero_push, [_contact("Token Ltd")], "tok")
    xero_push.token = "not-a-token-xero-issued"
    with pytest.raises(AccessTokenExpired) as pushed:
        xero_push.push("contact", [PushItem("res.partner,t", "contact", _contact("T Ltd"))],
                       "tok-2")
    with pytest.raises(AccessTokenExpired) as read:
        xero_push.adapter.read_contacts(xero_push.token, xero_push.tenant_id, [contact_id])
    assert read.value.status == pushed.value.status == 401
    assert "Reading Xero contacts" in str(read.value)


def test_xero_rate_limit_is_translated(xero_push):
    (contact_id,) = _push_contacts(xero_push, [_contact("Busy Ltd")], "busy")
    xero_push.app.faults.next("http429", 1, retry_after=9, problem="minute")
    xero_push.reset_counters()
    with pytest.raises(RateLimited) as caught:
        xero_push.adapter.read_contacts(xero_push.token, xero_push.tenant_id, [contact_id])
    assert caught.value.retry_after == 9
    assert xero_push.api_requests() == {"GET Contacts": 1}  # not retried by the SDK's pool


# =========================================================================== QuickBooks
@pytest.fixture
def qbo_push(qbo_sandbox):
    return QboPush(qbo_sandbox)


def _qbo_read_back(values):
    """What a QuickBooks read gives for pushed ``values``: the DisplayName the push made of
    the name, every other key as sent (tax_id only where QuickBooks answers it in clear)."""
    return {**_read_back(values), "name": qbo_payloads.display_name(values["name"])}


def _same_where_readable(read, pushed):
    """Key by key equal; only tax_id may be missing (QuickBooks masks it)."""
    expected = _qbo_read_back(pushed)
    assert set(KEYS) - {"tax_id"} <= set(read) <= set(KEYS)
    assert read == {key: expected[key] for key in read}


def test_qbo_parse_inverts_the_builder_without_http():
    values = _full("Jane: Doe\tLtd", 3)
    body = qbo_payloads.customer(values)
    assert qbo_payloads.customer_values(body) == _qbo_read_back(values)
    # QuickBooks answers the tax id masked: it cannot be read, so it is absent
    for masked in ("XXXXXX0003", "***0003", "\u2022\u2022\u2022\u20220003"):
        read = qbo_payloads.customer_values({**body, "PrimaryTaxIdentifier": masked})
        assert "tax_id" not in read and read["name"] == "Jane- Doe Ltd"
    # and leaves it out where there is none (or the company keeps none): absent too
    bare = qbo_payloads.customer_values(qbo_payloads.customer(_contact("Bare")))
    assert bare == {key: None for key in KEYS if key != "tax_id"} | {"name": "Bare"}


def test_qbo_round_trip_of_every_field(qbo_push):
    pushed = [_full("Acme Ltd", 1), _full("Jane: Doe", 2, is_company=False, street2=None),
              _contact("Gamma Ltd", email="ap@gamma.test")]
    ids = _push_contacts(qbo_push, pushed, "rt")
    qbo_push.reset_counters()
    read = qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm, ids)
    assert qbo_push.api_requests() == {QUERY: 1}
    assert set(read) == set(ids)
    for ledger_id, values in zip(ids, pushed, strict=True):
        state = read[ledger_id]
        assert state.ledger_id == ledger_id
        _same_where_readable(state.values, values)
        stored = qbo_push.ledger().get("Customer", ledger_id)
        assert state.values["name"] == stored["DisplayName"]
        assert state.version == "0" == str(stored["SyncToken"])
        assert state.updated_at == utc_timestamp(stored["MetaData"]["LastUpdatedTime"])
        assert UTC_SECOND.match(state.updated_at)
    assert read[ids[1]].values["name"] == "Jane- Doe"  # the DisplayName as pushed


def test_qbo_update_clearing_fields_round_trips(qbo_push):
    """An update is sparse: a field cleared in Odoo goes as empty, so QuickBooks clears it
    too. (Not the tax id: QuickBooks answers it masked, inbound sync never compares it.)"""
    (customer_id,) = _push_contacts(qbo_push, [_full("Clear Ltd", 6)], "clr")
    cleared = _contact("Clear Ltd")
    (result,) = qbo_push.push("contact", [PushItem("res.partner,clr0", "contact", cleared,
                                                   ledger_id=customer_id, version="0")], "clr-2")
    assert result.ok, result.error
    read = qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm, [customer_id])
    values = {k: v for k, v in read[customer_id].values.items() if k != "tax_id"}
    _same_where_readable(values, cleared)


def test_qbo_bookkeeper_edit_shows_and_moves_version_and_updated_at(qbo_push):
    clock = XeroClock()  # any controllable clock: the sandbox stamps MetaData to the second
    qbo_push.app.clock = clock
    (customer_id,) = _push_contacts(qbo_push, [_full("Edited Ltd", 5)], "edit")
    before = qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm,
                                            [customer_id])[customer_id]
    clock.advance(minutes=3)
    qbo_push.app.edit_contact(customer_id, email="new.address@edited.test",
                              display_name="Edited Limited", phone="020 7946 0000",
                              fields={"BillAddr": {"Line1": "2 King St", "City": "London",
                                                   "PostalCode": "EC1A 1BB",
                                                   "Country": "GB"}})
    after = qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm,
                                           [customer_id])[customer_id]
    expected = {"name": "Edited Limited", "email": "new.address@edited.test",
                "phone": "020 7946 0000", "street": "2 King St", "street2": None,
                "city": "London", "zip": "EC1A 1BB", "state": None, "country_code": "GB"}
    assert {k: v for k, v in after.values.items() if k != "tax_id"} == expected
    assert (before.version, after.version) == ("0", "1")
    assert after.updated_at > before.updated_at
    moved = datetime.datetime.strptime(after.updated_at, "%Y-%m-%dT%H:%M:%SZ") - \
        datetime.datetime.strptime(before.updated_at, "%Y-%m-%dT%H:%M:%SZ")
    assert datetime.timedelta(minutes=3) - datetime.timedelta(seconds=1) <= moved \
        <= datetime.timedelta(minutes=3, seconds=1)


def test_qbo_inactive_included_unknown_absent(qbo_push):
    kept, inactive = _push_contacts(qbo_push, [_contact("Kept Ltd"), _contact("Gone Ltd")],
                                    "arch")
    qbo_push.app.edit_contact(inactive, active=False)
    qbo_push.reset_counters()
    read = qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm,
                                          [kept, int(inactive), "987654", None, "", kept])
    assert qbo_push.api_requests() == {QUERY: 1}
    assert set(read) == {kept, inactive}
    # QuickBooks renames a customer it makes inactive: its mark is not read as a rename
    assert qbo_push.ledger().get("Customer", inactive)["DisplayName"] == "Gone Ltd (deleted)"
    assert read[inactive].values["name"] == "Gone Ltd" and read[inactive].version == "1"
    assert qbo_payloads.customer_values({"DisplayName": "Old (deleted)", "Active": True}
                                        )["name"] == "Old (deleted)"  # an active one's own
    qbo_push.reset_counters()
    assert qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm, [None, ""]) == {}
    assert qbo_push.api_requests() == {}


def test_qbo_120_ids_cost_3_metered_requests(qbo_push):
    contacts = [_contact(f"Client {n:03d} Ltd", email=f"c{n}@many.test") for n in range(40)]
    ids = _push_contacts(qbo_push, contacts, "many")  # two /batch calls of 30 and 10
    top = max(int(i) for i in ids)
    asked = ids + [str(top + 1000 + n) for n in range(80)]
    assert len(set(asked)) == 120
    meter = Meter()
    qbo_push.adapter.meter = meter
    qbo_push.reset_counters()
    read = qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm, asked)
    assert qbo_push.api_requests() == {QUERY: 3}
    assert meter.calls == [False, False, False]  # queries: requests, not batches
    assert set(read) == set(ids)
    assert [read[i].values["name"] for i in ids] == [c["name"] for c in contacts]


def test_qbo_refused_token_raises_what_the_push_raises(qbo_push):
    (customer_id,) = _push_contacts(qbo_push, [_contact("Token Ltd")], "tok")
    qbo_push.token = "not-a-token-intuit-issued"
    with pytest.raises(AccessTokenExpired) as pushed:
        qbo_push.push("contact", [PushItem("res.partner,t", "contact", _contact("T Ltd"))],
                      "tok-2")
    with pytest.raises(AccessTokenExpired) as read:
        qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm, [customer_id])
    assert read.value.status == pushed.value.status == 401
    assert "Reading QuickBooks customers" in str(read.value)
    # no token at all: refused before anything is sent, as the push does
    with pytest.raises(AccessTokenExpired):
        qbo_push.adapter.read_contacts(None, qbo_push.realm, [customer_id])


def test_qbo_rate_limit_is_translated(qbo_push):
    (customer_id,) = _push_contacts(qbo_push, [_contact("Busy Ltd")], "busy")
    qbo_push.app.faults.next("http429")
    with pytest.raises(RateLimited):
        qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm, [customer_id])
