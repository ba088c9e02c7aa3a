"""Listing the contacts changed since a cursor, inbound sync's periodic pull (the safety net
for a lost webhook): XeroAdapter / QboAdapter.changed_contacts against the emulators, over
real HTTP through xero-python and python-quickbooks' session.

The states are read_contacts' own (the caller needs no second read); the cursor is the
ledger's clock, never ours, and inclusive to the second; a call is bounded (about 1,000
contacts) and says when the caller must call again. Many contacts are put straight into
the sandboxes' stores (not through the API) to stay quick. Request counts come from the
sandboxes' counters.
"""

import datetime
import inspect
import re
import uuid

import pytest
from adapter_support import Meter
from qbo_support import QboPush
from xero_support import XeroClock, XeroPush

from billing_sync.services.ledger import qbo_payloads
from billing_sync.services.ledger.base import (
    ContactChanges,
    ContactState,
    LedgerAdapter,
    PushItem,
    change_cursor,
    latest_cursor,
    utc_timestamp,
)
from billing_sync.services.ledger.errors import AccessTokenExpired, RateLimited
from billing_sync.services.ledger.qbo import QboAdapter
from billing_sync.services.ledger.xero import XeroAdapter

UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
XERO_LIST = "GET Contacts"
QUERY = "POST /v3/company/{realmId}/query"
CDC = "GET /v3/company/{realmId}/cdc"


def _contact(name, **values):
    return {"name": name, "email": None, "phone": None, "tax_id": None, "street": None,
            "street2": None, "city": None, "zip": None, "state": None, "country_code": None,
            "is_company": True, "term_ref": None, "currency": None, **values}


def _full(name, n=0, **values):
    return _contact(name, **{
        "email": f"billing{n}@client{n}.test", "phone": f"+64 9 555 {n:04d}",
        "tax_id": f"GB{n:09d}", "street": f"{n} Queen Street", "street2": f"Level {n}",
        "city": "Auckland", "zip": f"{1000 + n}", "state": "Auckland", "country_code": "NZ",
        **values})


def _push_contacts(push, contacts, key):
    items = [PushItem(f"res.partner,{key}{n}", "contact", values)
             for n, values in enumerate(contacts)]
    results = push.push("contact", items, key)
    assert all(r.ok for r in results), [r.error for r in results]
    return [r.ledger_id for r in results]


def _cursor(moment):
    return utc_timestamp(moment)


def _later(cursor, **delta):
    moment = datetime.datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ")
    return _cursor(moment + datetime.timedelta(**delta))


# =========================================================================== the contract
def test_the_contract_declares_changed_contacts_once():
    for cls in (XeroAdapter, QboAdapter):
        assert cls.changed_contacts is not LedgerAdapter.changed_contacts
        assert (list(inspect.signature(cls.changed_contacts).parameters)
                == list(inspect.signature(LedgerAdapter.changed_contacts).parameters)
                == ["self", "access_token", "org_id", "since"])
    with pytest.raises(NotImplementedError):
        LedgerAdapter.changed_contacts(None, "token", "org", None)
    changes = ContactChanges({}, None)
    assert (changes.complete, changes.full_read) == (True, False)
    with pytest.raises(AttributeError):
        changes.cursor = "2026-01-01T00:00:00Z"  # frozen


def test_cursors_are_utc_seconds_and_never_go_back():
    assert change_cursor(None) is None and change_cursor("") is None
    assert change_cursor("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"
    assert change_cursor("2026-01-02T16:04:05.250+13:00") == "2026-01-02T03:04:05Z"
    for junk in ("yesterday", "2026-13-40T00:00:00Z", "0"):
        with pytest.raises(ValueError):
            change_cursor(junk)
    states = {"a": ContactState("a", {}, "2026-01-02T03:04:05Z"),
              "b": ContactState("b", {}, "2026-01-02T03:04:07Z"),
              "c": ContactState("c", {}, None)}
    assert latest_cursor(states, "2026-01-02T03:04:00Z") == "2026-01-02T03:04:07Z"
    assert latest_cursor({}, "2026-01-02T03:04:00Z") == "2026-01-02T03:04:00Z"
    assert latest_cursor({"c": states["c"]}, None) is None
    assert latest_cursor(states, "2026-01-03T00:00:00Z") == "2026-01-03T00:00:00Z"


# =========================================================================== Xero
@pytest.fixture
def xero_push(xero_sandbox):
    return XeroPush(xero_sandbox)


def _xero_changed(push, since):
    return push.adapter.changed_contacts(push.token, push.tenant_id, since)


def _xero_store_contacts(push, clock, count, step=1):
    """``count`` contacts put straight into the tenant's store, ``step`` seconds apart by the
    sandbox's clock (0: all in the same instant); their ids, oldest first."""
    ledger, ids = push.ledger(), []
    with push.app.lock:
        for n in range(count):
            contact = ledger.upsert_contact({"Name": f"Bulk {n:04d} Ltd",
                                             "EmailAddress": f"bulk{n}@many.test"})
            ids.append(contact["ContactID"])
            clock.advance(seconds=step)
        ledger.changes.clear()  # no webhook for these
    return ids


def test_xero_first_pull_lists_every_contact_as_read_contacts_does(xero_push, xero_clock):
    ids = _push_contacts(xero_push, [_full("Acme Ltd", 1), _contact("Beta Ltd")], "first")
    xero_clock.advance(seconds=5)
    (archived,) = _push_contacts(xero_push, [_full("Gamma Ltd", 3)], "first-b")
    xero_push.app.edit_contact(archived, ContactStatus="ARCHIVED")
    ids.append(archived)
    meter = Meter()
    xero_push.adapter.meter = meter
    xero_push.reset_counters()
    changes = _xero_changed(xero_push, None)
    assert xero_push.api_requests() == {XERO_LIST: 1}
    assert meter.calls == [False]
    assert isinstance(changes, ContactChanges)
    assert (changes.complete, changes.full_read) == (True, False)
    # the same states read_contacts gives (archived included): no second read needed
    assert changes.states == xero_push.adapter.read_contacts(xero_push.token,
                                                              xero_push.tenant_id, ids)
    assert set(changes.states) == set(ids)
    stored = xero_push.ledger().contacts
    assert changes.cursor == max(utc_timestamp(stored[i]["UpdatedDateUTC"]) for i in ids)
    assert changes.cursor == changes.states[archived].updated_at
    assert UTC_SECOND.match(changes.cursor)


def test_xero_bookkeeper_edit_is_listed_from_the_cursor(xero_push, xero_clock):
    older = _push_contacts(xero_push, [_full(f"Client {n} Ltd", n) for n in range(2)], "edit")
    xero_clock.advance(seconds=5)
    (newest,) = _push_contacts(xero_push, [_full("Client 2 Ltd", 2)], "edit-b")
    first = _xero_changed(xero_push, None)
    assert set(first.states) == {*older, newest}
    assert first.cursor == first.states[newest].updated_at  # alone in its second

    xero_clock.advance(minutes=3)
    xero_push.app.edit_contact(newest, {"EmailAddress": "moved@client2.test",
                                        "Name": "Client Two Limited"})
    xero_push.reset_counters()
    changes = _xero_changed(xero_push, first.cursor)
    assert xero_push.api_requests() == {XERO_LIST: 1}
    assert list(changes.states) == [newest]  # exactly the contact the bookkeeper edited
    state = changes.states[newest]
    assert (state.values["name"], state.values["email"]) == ("Client Two Limited",
                                                             "moved@client2.test")
    assert changes.states == xero_push.adapter.read_contacts(xero_push.token,
                                                              xero_push.tenant_id, [newest])
    assert changes.cursor == state.updated_at == _later(first.cursor, minutes=3)
    assert changes.complete and not changes.full_read

    # the cursor is inclusive to the second: with another edit, the contact of the
    # cursor's own second is listed again (unchanged: the caller applies it idempotently)
    xero_clock.advance(minutes=3)
    xero_push.app.edit_contact(older[0], EmailAddress="ap@client0.test")
    later = _xero_changed(xero_push, changes.cursor)
    assert set(later.states) == {older[0], newest}
    assert later.states[newest] == state
    assert later.states[older[0]].values["email"] == "ap@client0.test"
    assert later.cursor == _later(changes.cursor, minutes=3)

    # nothing changed since: nothing listed, the cursor handed back unchanged
    xero_clock.advance(minutes=1)
    since = _cursor(xero_clock.now)
    xero_push.reset_counters()
    nothing = _xero_changed(xero_push, since)
    assert (nothing.states, nothing.cursor, nothing.complete) == ({}, since, True)
    assert xero_push.api_requests() == {XERO_LIST: 1}
    # an empty ledger on a first pull: no cursor yet
    xero_push.ledger().contacts.clear()
    assert _xero_changed(xero_push, None) == ContactChanges({}, None)


def test_xero_more_than_a_call_is_caught_up_call_by_call(xero_push, xero_clock):
    ids = _xero_store_contacts(xero_push, xero_clock, 1050)
    stamps = [utc_timestamp(xero_push.ledger().contacts[i]["UpdatedDateUTC"]) for i in ids]
    assert len(set(stamps)) == 1050  # one second apart
    meter = Meter()
    xero_push.adapter.meter = meter
    xero_push.reset_counters()
    first = _xero_changed(xero_push, None)
    assert xero_push.api_requests() == {XERO_LIST: 10} and len(meter.calls) == 10
    assert (first.complete, first.full_read) == (False, False)
    # ten pages of 100, each after the first from the last one's second (whose contact
    # comes again): the oldest 991 changes, in one bounded call
    assert set(first.states) == set(ids[:991])
    assert first.cursor == stamps[990]
    assert first.states[ids[5]].values["email"] == "bulk5@many.test"
    xero_push.reset_counters()
    rest = _xero_changed(xero_push, first.cursor)
    assert xero_push.api_requests() == {XERO_LIST: 1}
    assert rest.complete and set(rest.states) == set(ids[990:])
    assert rest.cursor == stamps[-1]
    assert set(first.states) | set(rest.states) == set(ids)


def test_xero_a_second_holding_more_than_a_call_is_read_through(xero_push, xero_clock):
    """1,050 changes within one second: the cursor cannot move past a part of them, so the
    call reads that second through (page=n of it) rather than hand back a cursor that
    would list the same 1,000 for ever."""
    ids = _xero_store_contacts(xero_push, xero_clock, 1050, step=0)
    second = utc_timestamp(xero_push.ledger().contacts[ids[0]]["UpdatedDateUTC"])
    xero_push.reset_counters()
    first = _xero_changed(xero_push, None)
    # page 1 without a bound, then pages 1 to 11 from that second
    assert xero_push.api_requests() == {XERO_LIST: 12}
    assert first.complete and set(first.states) == set(ids) and first.cursor == second
    xero_push.reset_counters()
    again = _xero_changed(xero_push, first.cursor)  # ties at the cursor: listed again
    assert xero_push.api_requests() == {XERO_LIST: 11}
    assert again.complete and len(again.states) == 1050 and again.cursor == second


def test_xero_since_that_is_no_timestamp_is_refused_before_sending(xero_push):
    xero_push.reset_counters()
    with pytest.raises(ValueError):
        _xero_changed(xero_push, "last tuesday")
    assert xero_push.api_requests() == {}


def test_xero_errors_are_what_a_push_raises(xero_push):
    _push_contacts(xero_push, [_contact("Busy Ltd")], "busy")
    xero_push.app.faults.next("http429", 1, retry_after=7, problem="minute")
    with pytest.raises(RateLimited) as caught:
        _xero_changed(xero_push, None)
    assert caught.value.retry_after == 7
    xero_push.token = "not-a-token-xero-issued"
    with pytest.raises(AccessTokenExpired) as refused:
        _xero_changed(xero_push, None)
    assert "Listing changed Xero contacts" in str(refused.value)


# =========================================================================== QuickBooks
@pytest.fixture
def qbo_push(qbo_sandbox):
    return QboPush(qbo_sandbox)


def _qbo_changed(push, since):
    return push.adapter.changed_contacts(push.token, push.realm, since)


def _qbo_store_customers(push, clock, count, step=1, prefix="Bulk"):
    """``count`` customers put straight into the realm's store (through its entity rules, not
    the API), ``step`` seconds apart by ``clock``; their Ids, oldest first."""
    ledger, ids = push.app.ledgers[push.realm], []
    with push.app.lock:
        for n in range(count):
            row = ledger.create("Customer", {"DisplayName": f"{prefix} {n:04d} Ltd",
                                             "PrimaryEmailAddr": {
                                                 "Address": f"{prefix.lower()}{n}@many.test"}})
            ids.append(row["Id"])
            clock.advance(seconds=step)
        ledger.events.clear()  # no webhook for these
    return ids


def _qbo_clock(push):
    clock = XeroClock()  # any controllable clock: the sandbox stamps MetaData to the second
    push.app.clock = clock
    return clock


def test_qbo_first_pull_is_a_full_read_as_read_contacts_reads(qbo_push):
    clock = _qbo_clock(qbo_push)
    ids = _push_contacts(qbo_push, [_full("Acme Ltd", 1), _contact("Jane: Doe")], "first")
    clock.advance(seconds=5)
    (inactive,) = _push_contacts(qbo_push, [_contact("Gone Ltd")], "first-b")
    qbo_push.app.edit_contact(inactive, active=False)
    ids.append(inactive)
    meter = Meter()
    qbo_push.adapter.meter = meter
    qbo_push.reset_counters()
    changes = _qbo_changed(qbo_push, None)
    # CDC looks back 30 days at most: a first pull reads every customer by one query
    assert qbo_push.api_requests() == {QUERY: 1}
    assert meter.calls == [False]
    assert (changes.complete, changes.full_read) == (True, True)
    assert changes.states == qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm,
                                                             ids)
    assert set(changes.states) == set(ids)
    assert changes.states[inactive].values["name"] == "Gone Ltd"  # inactive, included
    assert changes.states[inactive].version == "1"
    stored = qbo_push.ledger()
    assert changes.cursor == max(utc_timestamp(stored.get("Customer", i)["MetaData"][
        "LastUpdatedTime"]) for i in ids)
    assert changes.cursor == changes.states[inactive].updated_at


def test_qbo_bookkeeper_edit_is_listed_by_cdc_from_the_cursor(qbo_push):
    clock = _qbo_clock(qbo_push)
    older = _push_contacts(qbo_push, [_full(f"Client {n} Ltd", n) for n in range(2)], "edit")
    clock.advance(seconds=5)
    (newest,) = _push_contacts(qbo_push, [_full("Client 2 Ltd", 2)], "edit-b")
    first = _qbo_changed(qbo_push, None)
    assert first.cursor == first.states[newest].updated_at  # alone in its second

    clock.advance(minutes=3)
    qbo_push.app.edit_contact(newest, email="moved@client2.test",
                              display_name="Client Two Limited")
    meter = Meter()
    qbo_push.adapter.meter = meter
    qbo_push.reset_counters()
    changes = _qbo_changed(qbo_push, first.cursor)
    assert qbo_push.api_requests() == {CDC: 1}
    assert meter.calls == [False]
    assert (changes.complete, changes.full_read) == (True, False)
    assert list(changes.states) == [newest]  # exactly the customer the bookkeeper edited
    state = changes.states[newest]
    assert (state.values["name"], state.values["email"], state.version) == (
        "Client Two Limited", "moved@client2.test", "1")
    assert changes.states == qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm,
                                                             [newest])
    assert changes.cursor == state.updated_at == _later(first.cursor, minutes=3)

    # inclusive to the second: with another edit, the customer of the cursor's own second
    # is listed again, unchanged
    clock.advance(minutes=3)
    qbo_push.app.edit_contact(older[0], email="ap@client0.test")
    later = _qbo_changed(qbo_push, changes.cursor)
    assert set(later.states) == {older[0], newest} and later.states[newest] == state
    assert (later.states[older[0]].values["email"], later.states[older[0]].version) == (
        "ap@client0.test", "1")
    assert later.cursor == _later(changes.cursor, minutes=3)

    # nothing changed since: nothing listed, the cursor handed back unchanged
    clock.advance(minutes=1)
    since = _cursor(clock.now)
    qbo_push.reset_counters()
    nothing = _qbo_changed(qbo_push, since)
    assert (nothing.states, nothing.cursor, nothing.complete, nothing.full_read) == (
        {}, since, True, False)
    assert qbo_push.api_requests() == {CDC: 1}


def test_qbo_deleted_customers_are_left_out(qbo_push):
    """QuickBooks deletes no customer through its API (made inactive instead), but CDC lists
    one merged away as ``{"Id", "status": "Deleted"}``; the sandbox's store can hold one."""
    clock = _qbo_clock(qbo_push)
    kept, merged = _push_contacts(qbo_push, [_contact("Kept Ltd"), _contact("Merged Ltd")],
                                  "del")
    since = _cursor(clock.now)
    clock.advance(seconds=2)
    with qbo_push.app.lock:
        qbo_push.ledger().remove("Customer", merged, clock.now)
    assert qbo_push.ledger().deleted["Customer"][merged]["status"] == "Deleted"
    qbo_push.reset_counters()
    changes = _qbo_changed(qbo_push, since)
    assert qbo_push.api_requests() == {CDC: 1}
    assert set(changes.states) == {kept}
    assert changes.cursor == changes.states[kept].updated_at == since
    assert qbo_payloads.is_deleted({"Id": "9", "status": "Deleted"})
    assert not qbo_payloads.is_deleted({"Id": "9", "Active": False})


def test_qbo_more_than_a_call_is_caught_up_call_by_call(qbo_push):
    clock = _qbo_clock(qbo_push)
    ids = _qbo_store_customers(qbo_push, clock, 1050)
    stamps = [utc_timestamp(qbo_push.ledger().get("Customer", i)["MetaData"]["LastUpdatedTime"])
              for i in ids]
    assert len(set(stamps)) == 1050
    qbo_push.reset_counters()
    first = _qbo_changed(qbo_push, None)
    assert qbo_push.api_requests() == {QUERY: 1}
    assert (first.complete, first.full_read) == (False, True)
    assert set(first.states) == set(ids[:1000]) and first.cursor == stamps[999]
    assert first.states[ids[7]].values["email"] == "bulk7@many.test"
    qbo_push.reset_counters()
    rest = _qbo_changed(qbo_push, first.cursor)  # within 30 days: CDC
    assert qbo_push.api_requests() == {CDC: 1}
    assert (rest.complete, rest.full_read) == (True, False)
    assert set(rest.states) == set(ids[999:]) and rest.cursor == stamps[-1]

    # CDC with 1,000 objects may have left some out (Intuit does not say which): the
    # oldest 1,000 changes are read by a query instead, in the same call
    qbo_push.reset_counters()
    capped = _qbo_changed(qbo_push, stamps[0])
    assert qbo_push.api_requests() == {CDC: 1, QUERY: 1}
    assert (capped.complete, capped.full_read) == (False, False)
    assert set(capped.states) == set(ids[:1000]) and capped.cursor == stamps[999]


def test_qbo_a_second_holding_more_than_a_call_is_read_through(qbo_push):
    clock = _qbo_clock(qbo_push)
    ids = _qbo_store_customers(qbo_push, clock, 1050, step=0)
    second = utc_timestamp(qbo_push.ledger().get("Customer", ids[0])["MetaData"][
        "LastUpdatedTime"])
    qbo_push.reset_counters()
    first = _qbo_changed(qbo_push, None)
    assert qbo_push.api_requests() == {QUERY: 1}
    assert (first.complete, len(first.states), first.cursor) == (False, 1000, second)
    qbo_push.reset_counters()
    rest = _qbo_changed(qbo_push, first.cursor)
    # CDC full; the query's first page all within the cursor's second: STARTPOSITION 1001
    assert qbo_push.api_requests() == {CDC: 1, QUERY: 2}
    assert (rest.complete, rest.full_read, rest.cursor) == (True, False, second)
    assert set(rest.states) == set(ids)


def test_qbo_since_older_than_cdc_looks_back_is_a_full_read(qbo_push):
    now = XeroClock()
    clock = XeroClock()
    qbo_push.app.clock = clock
    clock.advance(days=-50)
    (ancient,) = _qbo_store_customers(qbo_push, clock, 1, prefix="Ancient")
    clock.now = now.now - datetime.timedelta(days=35)
    (old,) = _qbo_store_customers(qbo_push, clock, 1, prefix="Old")
    clock.now = now.now
    (recent,) = _push_contacts(qbo_push, [_full("Recent Ltd", 4)], "recent")
    since = _cursor(now.now - datetime.timedelta(days=40))
    qbo_push.reset_counters()
    changes = _qbo_changed(qbo_push, since)
    assert qbo_push.api_requests() == {QUERY: 1}  # no CDC request at all
    assert (changes.complete, changes.full_read) == (True, True)
    assert set(changes.states) == {old, recent} and ancient not in changes.states
    assert changes.states[old].values["name"] == "Old 0000 Ltd"
    assert changes.states == qbo_push.adapter.read_contacts(qbo_push.token, qbo_push.realm,
                                                             [old, recent])
    assert changes.cursor == changes.states[recent].updated_at


def test_qbo_cdc_refused_by_quickbooks_clock_falls_back_to_the_query(qbo_sandbox):
    """28 days ago by our clock is within the look-back; QuickBooks' clock runs 3 days
    ahead, and its CDC refuses: the same call reads by the query, a full_read."""
    clock = XeroClock()
    clock.advance(days=3)
    qbo_sandbox.app.clock = clock
    push = QboPush(qbo_sandbox)  # a token the sandbox's clock issued
    (customer_id,) = _push_contacts(push, [_contact("Skewed Ltd")], "skew")
    since = _cursor(datetime.datetime.now(datetime.timezone.utc)
                    - datetime.timedelta(days=28))
    push.reset_counters()
    changes = _qbo_changed(push, since)
    counts = push.app.counters.snapshot()["by_endpoint"]
    assert counts[CDC] == {"400": 1} and push.api_requests() == {CDC: 1, QUERY: 1}
    assert (changes.complete, changes.full_read) == (True, True)
    assert set(changes.states) == {customer_id}


def test_qbo_since_that_is_no_timestamp_is_refused_before_sending(qbo_push):
    qbo_push.reset_counters()
    with pytest.raises(ValueError):
        _qbo_changed(qbo_push, str(uuid.uuid4()))
    assert qbo_push.api_requests() == {}


def test_qbo_errors_are_what_a_push_raises(qbo_push):
    clock = _qbo_clock(qbo_push)
    _push_contacts(qbo_push, [_contact("Busy Ltd")], "busy")
    since = _cursor(clock.now)
    qbo_push.app.faults.next("http429")
    with pytest.raises(RateLimited):
        _qbo_changed(qbo_push, since)  # the CDC request, through _get
    qbo_push.token = "not-a-token-intuit-issued"
    with pytest.raises(AccessTokenExpired) as refused:
        _qbo_changed(qbo_push, since)
    assert refused.value.status == 401
    assert "Listing changed QuickBooks customers" in str(refused.value)
    with pytest.raises(AccessTokenExpired):
        _qbo_changed(qbo_push, None)  # the query path too
