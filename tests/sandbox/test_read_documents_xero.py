"""Reading payments and invoices back for inbound sync: XeroAdapter.read_payments,
read_invoices and changed_documents against the emulator, over real HTTP through
xero-python.

Invoices are pushed with the adapter's own ``push``; payments too, or recorded by the
sandbox's bookkeeper (``apply_payment``, ``delete_payment``, ``void_invoice``). A Xero payment
pays one invoice; Xero still lists a deleted one (Status DELETED) and leaves it out of its
invoice's Payments. Request counts come from the sandbox's counters.
"""

import datetime
import inspect
import re
import uuid
from decimal import Decimal

import pytest
import requests
from adapter_support import Meter
from xero_python.accounting import Account, Contact, CurrencyCode, Invoice, Payment
from xero_support import XeroPush

from billing_sync.services.ledger import xero_payloads as payloads
from billing_sync.services.ledger.base import (
    DocumentChanges,
    InvoiceState,
    LedgerAdapter,
    PaymentState,
    PushItem,
    utc_timestamp,
)
from billing_sync.services.ledger.errors import AccessTokenExpired, RateLimited
from billing_sync.services.ledger.xero import XeroAdapter

TAX = "OUTPUT2"  # GST 15 % on income in the seed
UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PAYMENTS = "GET Payments"
INVOICES = "GET Invoices"


def _contact(name):
    return {"name": name, "email": None, "phone": None, "tax_id": None, "street": None,
            "street2": None, "city": None, "zip": None, "state": None, "country_code": None,
            "is_company": True, "term_ref": None, "currency": None}


def _line(price):
    return {"description": f"Work at {price}", "quantity": 1.0, "unit_price": price,
            "discount": 0.0, "item_ref": None, "item_code": None, "account_ref": None,
            "account_code": "200", "tax_ref": TAX, "tracking": [], "line_total": price}


def _document(contact_id, number, price, approved=True):
    tax = round(price * 0.15, 2)
    return {"number": number, "date": "2026-03-02", "due_date": "2026-04-01", "currency": "NZD",
            "contact_ref": contact_id, "reference": "Proposal S00042", "approved": approved,
            "term_ref": None, "lines": [_line(price)], "amount_untaxed": price,
            "amount_tax": tax, "amount_total": round(price + tax, 2)}


def _customer(push, name="Client Ltd"):
    (result,) = push.push("contact", [PushItem(f"res.partner,{name}", "contact",
                                               _contact(name))], f"c-{name}")
    assert result.ok, result.error
    return result.ledger_id


def _invoices(push, contact_id, *prices, key="inv", approved=True):
    """Invoices of ``prices`` (before 15 % GST) pushed in one request; their ids."""
    items = [PushItem(f"account.move,{key}{n}", "invoice",
                      _document(contact_id, f"INV/{key}/{n}", price, approved))
             for n, price in enumerate(prices)]
    results = push.push("invoice", items, key)
    assert all(r.ok for r in results), [r.error for r in results]
    return [r.ledger_id for r in results]


def _pay(push, invoice_id, amount, key, reference="PBNK1/1"):
    """One payment pushed by the adapter (bank account 090, 2026-03-10); its id."""
    (result,) = push.push("payment", [PushItem(f"account.payment,{key}", "payment", {
        "invoice_ref": invoice_id, "amount": amount, "date": "2026-03-10",
        "bank_account_ref": None, "bank_account_code": "090", "reference": reference,
        "currency": "NZD"})], key)
    assert result.ok and not result.incomplete, result.error
    return result.ledger_id


def _read_payments(push, ids):
    return push.adapter.read_payments(push.token, push.tenant_id, ids)


def _read_invoices(push, ids):
    return push.adapter.read_invoices(push.token, push.tenant_id, ids)


def _changed(push, since):
    return push.adapter.changed_documents(push.token, push.tenant_id, since)


def _stamp(record):
    return utc_timestamp(record["UpdatedDateUTC"])


def _later(cursor, **delta):
    moment = datetime.datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ")
    return utc_timestamp(moment + datetime.timedelta(**delta))


@pytest.fixture
def push(xero_sandbox):
    return XeroPush(xero_sandbox)


# =========================================================================== the contract
def test_the_contract_declares_the_document_reads_once():
    for name, last in (("read_payments", "ids"), ("read_invoices", "ids"),
                       ("changed_documents", "since")):
        assert getattr(XeroAdapter, name) is not getattr(LedgerAdapter, name)
        assert (list(inspect.signature(getattr(XeroAdapter, name)).parameters)
                == list(inspect.signature(getattr(LedgerAdapter, name)).parameters)
                == ["self", "access_token", "org_id", last])


def test_parse_without_http():
    invoice_id, contact_id, account_id = (str(uuid.uuid4()) for _ in range(3))
    payment = Payment(
        payment_id=str(uuid.uuid4()), amount=0.1 + 0.2, date=datetime.date(2026, 3, 10),
        reference="", status="AUTHORISED", payment_type="ACCRECPAYMENT",
        account=Account(account_id=account_id, code="090"),
        invoice=Invoice(invoice_id=invoice_id, type="ACCREC",
                        contact=Contact(contact_id=contact_id),
                        currency_code=CurrencyCode("NZD")))
    assert payloads.is_customer_payment(payment)
    values = payloads.payment_values(payment)
    assert values == {"contact_id": contact_id, "date": "2026-03-10",
                      "total": Decimal("0.30"), "allocations": {invoice_id: Decimal("0.30")},
                      "unapplied": Decimal("0.00"), "currency": "NZD",
                      "account_id": account_id, "account_code": "090", "reference": None,
                      "deleted": False}
    assert str(values["total"]) == "0.30"  # to the cent, no float artefact
    payment.status = "DELETED"
    assert payloads.payment_values(payment)["deleted"] is True
    # a bill's payment, a credit note's refund: no customer payment of a sales invoice
    bill = Payment(payment_type="ACCPAYPAYMENT", invoice=Invoice(type="ACCPAY"))
    refund = Payment(payment_type="ARCREDITPAYMENT", invoice=Invoice(type="ACCRECCREDIT"))
    overpayment = Payment(payment_type="AROVERPAYMENTPAYMENT")
    assert not any(payloads.is_customer_payment(p) for p in (bill, refund, overpayment))
    assert payloads.is_customer_payment(Payment(payment_type="ACCRECPAYMENT"))

    statuses = {"AUTHORISED": "open", "PAID": "paid", "VOIDED": "voided",
                "DELETED": "deleted", "DRAFT": "draft", "SUBMITTED": "draft"}
    for status, neutral in statuses.items():
        invoice = Invoice(type="ACCREC", status=status, total=115.0, amount_due=85,
                          invoice_number="INV-7", payments=[
                              Payment(payment_id="p-1"), Payment(payment_id="p-2")])
        assert payloads.invoice_values(invoice) == {
            "status": neutral, "total": Decimal("115.00"), "amount_due": Decimal("85.00"),
            "payment_ids": ("p-1", "p-2"), "number": "INV-7"}
    assert payloads.is_sales_invoice(Invoice(type="ACCREC"))
    assert not payloads.is_sales_invoice(Invoice(type="ACCPAY"))
    assert payloads.id_filter("PaymentID", ["a", "b"]) == \
        'PaymentID==Guid("a") OR PaymentID==Guid("b")'


# =========================================================================== read_payments
def test_full_and_partial_payments_read_back(push):
    contact_id = _customer(push)
    full, partial = _invoices(push, contact_id, 100.0, 200.0)       # 115.00 and 230.00
    paid = _pay(push, full, 115.0, "pay-full")
    part = push.app.apply_payment(partial, 30.0, date="2026-03-11", reference="")["PaymentID"]
    ledger = push.ledger()
    bank = ledger.account_by_code("090")["AccountID"]
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    read = _read_payments(push, [paid, part])
    assert push.api_requests() == {PAYMENTS: 1} and meter.calls == [False]
    assert read == {
        paid: PaymentState(paid, contact_id, "2026-03-10", Decimal("115.00"),
                           {full: Decimal("115.00")}, Decimal("0.00"), "NZD", bank, "090",
                           "PBNK1/1", False, _stamp(ledger.payments[paid])),
        part: PaymentState(part, contact_id, "2026-03-11", Decimal("30.00"),
                           {partial: Decimal("30.00")}, Decimal("0.00"), "NZD", bank, "090",
                           None, False, _stamp(ledger.payments[part])),
    }
    assert UTC_SECOND.match(read[paid].updated_at)
    assert read[paid].total == sum(read[paid].allocations.values()) + read[paid].unapplied

    push.reset_counters()
    invoices = _read_invoices(push, [full, partial])
    assert push.api_requests() == {INVOICES: 1}
    assert invoices == {
        full: InvoiceState(full, "paid", Decimal("115.00"), Decimal("0.00"), (paid,),
                           "INV/inv/0", _stamp(ledger.invoices[full])),
        partial: InvoiceState(partial, "open", Decimal("230.00"), Decimal("200.00"), (part,),
                              "INV/inv/1", _stamp(ledger.invoices[partial])),
    }


def test_two_payments_on_one_invoice(push, xero_clock):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 200.0)                  # 230.00
    first = _pay(push, invoice, 30.0, "two-a", reference="first")
    xero_clock.advance(seconds=5)
    second = push.app.apply_payment(invoice, 50.0, account_code="091",
                                    reference="second")["PaymentID"]
    read = _read_payments(push, [second, first])
    assert {i: (p.total, p.allocations, p.account_code, p.reference)
            for i, p in read.items()} == {
        first: (Decimal("30.00"), {invoice: Decimal("30.00")}, "090", "first"),
        second: (Decimal("50.00"), {invoice: Decimal("50.00")}, "091", "second")}
    (state,) = _read_invoices(push, [invoice]).values()
    assert (state.status, state.amount_due, state.payment_ids) == (
        "open", Decimal("150.00"), (first, second))  # Xero's order: oldest first
    assert state.updated_at == read[second].updated_at  # the payment moved its invoice

    # a write-off booked as a payment (486 Write-offs) pays the rest: the invoice is paid
    push.app.write_off(invoice, method="payment")
    (state,) = _read_invoices(push, [invoice]).values()
    assert (state.status, state.amount_due, len(state.payment_ids)) == (
        "paid", Decimal("0.00"), 3)
    write_off = _read_payments(push, [state.payment_ids[2]])[state.payment_ids[2]]
    assert (write_off.account_code, write_off.total) == ("486", Decimal("150.00"))


def test_deleted_payment_reads_deleted_and_leaves_its_invoice(push, xero_clock):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)
    payment = _pay(push, invoice, 115.0, "del")
    before = _read_payments(push, [payment])[payment]
    invoice_before = _read_invoices(push, [invoice])[invoice]
    assert (before.deleted, invoice_before.status) == (False, "paid")

    xero_clock.advance(minutes=2)
    push.app.delete_payment(payment)
    push.reset_counters()
    after = _read_payments(push, [payment])
    assert push.api_requests() == {PAYMENTS: 1}
    state = after[payment]  # still listed by Xero, with Status DELETED
    assert state.deleted and state.total == Decimal("115.00")
    assert state.allocations == {invoice: Decimal("115.00")}  # what it paid, for the record
    assert state.updated_at == _later(before.updated_at, minutes=2)
    (invoice_after,) = _read_invoices(push, [invoice]).values()
    assert (invoice_after.status, invoice_after.amount_due, invoice_after.payment_ids) == (
        "open", Decimal("115.00"), ())
    assert invoice_after.updated_at == _later(invoice_before.updated_at, minutes=2)


def test_unknown_ids_are_absent_and_non_guids_cost_nothing(push):
    contact_id = _customer(push)
    first, second = _invoices(push, contact_id, 10.0, 20.0)
    one = _pay(push, first, 11.5, "one")
    two = push.app.apply_payment(second, 5.0)["PaymentID"]
    unknown = str(uuid.uuid4())
    push.reset_counters()
    read = _read_payments(push, [one, two.upper(), unknown, "not-a-guid", None, "", one])
    assert push.api_requests() == {PAYMENTS: 1}
    # keyed as asked (Xero's GUIDs ignore case); the unknown one is simply absent
    assert set(read) == {one, two.upper()} and read[two.upper()].ledger_id == two.upper()
    # an invoice id names no payment, a payment id no invoice
    assert _read_payments(push, [first]) == {} and _read_invoices(push, [one]) == {}
    push.reset_counters()
    invoices = _read_invoices(push, [first.upper(), second, unknown, "INV/inv/0"])
    assert push.api_requests() == {INVOICES: 1}
    assert set(invoices) == {first.upper(), second}
    # nothing that can be a Xero id: no request at all
    push.reset_counters()
    nil = "00000000-0000-0000-0000-000000000000"
    assert _read_payments(push, ["x", None, nil]) == {}
    assert _read_invoices(push, ["INV-0001", "", nil]) == {}
    assert push.api_requests() == {}


def test_60_ids_take_2_metered_requests(push):
    contact_id = _customer(push)
    invoices = _invoices(push, contact_id, *[10.0 + n for n in range(10)], key="many")
    payments = [push.app.apply_payment(i, 1.0)["PaymentID"] for i in invoices]
    unknown = [str(uuid.uuid4()) for _ in range(50)]
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    read = _read_payments(push, payments + unknown)
    assert push.api_requests() == {PAYMENTS: 2} and meter.calls == [False, False]
    assert set(read) == set(payments)
    push.reset_counters()
    listed = _read_invoices(push, unknown + invoices)
    assert push.api_requests() == {INVOICES: 2} and len(meter.calls) == 4
    assert set(listed) == set(invoices)
    assert [listed[i].payment_ids for i in invoices] == [(p,) for p in payments]
    assert push.adapter.last_headroom["minute_remaining"] is not None


# =========================================================================== read_invoices
def test_voided_deleted_and_draft_invoices(push, xero_clock):
    contact_id = _customer(push)
    voided, kept = _invoices(push, contact_id, 10.0, 20.0)
    draft, gone = _invoices(push, contact_id, 30.0, 40.0, key="draft", approved=False)
    before = _read_invoices(push, [voided])[voided]
    xero_clock.advance(minutes=1)
    push.app.void_invoice(voided)
    with push.app.lock:  # a draft deleted in Xero (Status DELETED)
        push.ledger().upsert_invoice({"Status": "DELETED"}, gone)
    read = _read_invoices(push, [voided, kept, draft, gone])
    assert {i: s.status for i, s in read.items()} == {
        voided: "voided", kept: "open", draft: "draft", gone: "deleted"}
    assert read[voided].updated_at == _later(before.updated_at, minutes=1)
    assert read[draft].number == "INV/draft/0" and read[kept].total == Decimal("23.00")


# =========================================================================== changed_documents
def test_changed_documents_from_none_then_from_the_cursor(push, xero_clock):
    contact_id = _customer(push)
    first, second, third = _invoices(push, contact_id, 100.0, 200.0, 300.0)
    xero_clock.advance(seconds=5)
    paid = _pay(push, first, 115.0, "pull-a")
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    start = _changed(push, None)
    assert push.api_requests() == {PAYMENTS: 1, INVOICES: 1} and meter.calls == [False] * 2
    assert isinstance(start, DocumentChanges)
    assert (start.complete, start.full_read, start.deleted_payments) == (True, False, ())
    # the states read_payments / read_invoices give: no second read needed
    assert start.payments == _read_payments(push, [paid])
    assert start.invoices == _read_invoices(push, [first, second, third])
    ledger = push.ledger()
    assert start.cursor == _stamp(ledger.payments[paid]) == _stamp(ledger.invoices[first])
    assert start.cursor == _later(_stamp(ledger.invoices[second]), seconds=5)

    # a bookkeeper's payment 3 minutes later: it and its invoice, and (inclusive to the
    # second) what changed within the cursor's own second again
    xero_clock.advance(minutes=3)
    part = push.app.apply_payment(second, 30.0)["PaymentID"]
    push.reset_counters()
    later = _changed(push, start.cursor)
    assert push.api_requests() == {PAYMENTS: 1, INVOICES: 1}
    assert set(later.payments) == {paid, part} and set(later.invoices) == {first, second}
    assert later.payments[paid] == start.payments[paid]  # unchanged: applied idempotently
    assert later.invoices[second].payment_ids == (part,)
    assert later.cursor == later.payments[part].updated_at == _later(start.cursor, minutes=3)
    assert later.complete

    # a voided invoice and a deleted payment are pulled like any change
    xero_clock.advance(minutes=1)
    push.app.void_invoice(third)
    push.app.delete_payment(part)
    pulled = _changed(push, _later(later.cursor, seconds=1))
    assert set(pulled.payments) == {part} and set(pulled.invoices) == {second, third}
    assert pulled.payments[part].deleted and pulled.deleted_payments == ()
    assert pulled.invoices[third].status == "voided"
    assert (pulled.invoices[second].status, pulled.invoices[second].payment_ids) == ("open", ())
    assert pulled.cursor == _later(later.cursor, minutes=1)

    # nothing changed since: nothing listed, the cursor handed back unchanged
    xero_clock.advance(minutes=1)
    since = utc_timestamp(xero_clock.now)
    push.reset_counters()
    nothing = _changed(push, since)
    assert (nothing.payments, nothing.invoices, nothing.cursor, nothing.complete) == (
        {}, {}, since, True)
    assert push.api_requests() == {PAYMENTS: 1, INVOICES: 1}


def test_an_empty_ledger_has_no_cursor_yet(push):
    assert _changed(push, None) == DocumentChanges({}, {}, None)


def test_more_than_a_call_is_caught_up_call_by_call(push, xero_clock):
    """1,050 payments one second apart on one invoice (each moves it): the payments' list
    stops after 10 requests, the invoices' is read through; the cursor is where the
    payments stopped, not the invoice's later change, or the payments in between would
    be skipped."""
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 10000.0)
    ledger, ids = push.ledger(), []
    with push.app.lock:
        for n in range(1050):
            ids.append(ledger.create_payment({
                "Invoice": {"InvoiceID": invoice}, "Account": {"Code": "090"},
                "Amount": 1.0, "Date": "2026-03-10", "Reference": f"n{n}"})["PaymentID"])
            xero_clock.advance(seconds=1)
        ledger.changes.clear()  # no webhook for these
    stamps = [_stamp(ledger.payments[i]) for i in ids]
    assert len(set(stamps)) == 1050
    push.reset_counters()
    first = _changed(push, None)
    assert push.api_requests() == {PAYMENTS: 10, INVOICES: 1}
    assert (first.complete, first.full_read) == (False, False)
    assert set(first.payments) == set(ids[:991]) and first.cursor == stamps[990]
    assert first.invoices[invoice].updated_at == stamps[-1]  # read through, to come again
    assert first.payments[ids[5]].reference == "n5"
    push.reset_counters()
    rest = _changed(push, first.cursor)
    assert push.api_requests() == {PAYMENTS: 1, INVOICES: 1}
    assert rest.complete and set(rest.payments) == set(ids[990:])
    assert rest.cursor == stamps[-1] and set(rest.invoices) == {invoice}
    assert len(rest.invoices[invoice].payment_ids) == 1050


def test_since_that_is_no_timestamp_is_refused_before_sending(push):
    push.reset_counters()
    with pytest.raises(ValueError):
        _changed(push, "last tuesday")
    assert push.api_requests() == {}


# =========================================================================== errors
def test_errors_are_what_a_push_raises(push):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 10.0)
    payment = _pay(push, invoice, 11.5, "err")
    for read, ids, label in ((_read_payments, [payment], PAYMENTS),
                             (_read_invoices, [invoice], INVOICES),
                             (_changed, None, PAYMENTS)):
        push.app.faults.next("http429", 1, retry_after=9, problem="minute")
        push.reset_counters()
        with pytest.raises(RateLimited) as caught:
            read(push, ids)
        assert caught.value.retry_after == 9
        assert push.api_requests() == {label: 1}  # not retried by the SDK's pool
    push.token = "not-a-token-xero-issued"
    for read, ids, words in ((_read_payments, [payment], "Reading Xero payments"),
                             (_read_invoices, [invoice], "Reading Xero invoices"),
                             (_changed, None, "Listing changed Xero payments")):
        with pytest.raises(AccessTokenExpired) as refused:
            read(push, ids)
        assert refused.value.status == 401 and words in str(refused.value)


# =========================================================================== the emulator
def test_emulator_get_payments_filters_as_xero_does(push, xero_clock):
    """GET Payments takes ``where`` on PaymentID with Guid(), If-Modified-Since (inclusive)
    and ``order``, lists DELETED payments, and ignores IDs (a parameter it does not have);
    GET Invoices lists VOIDED and DELETED invoices unless Statuses leaves them out."""
    contact_id = _customer(push)
    first, second = _invoices(push, contact_id, 10.0, 20.0)
    old = push.app.apply_payment(first, 1.0)["PaymentID"]
    xero_clock.advance(seconds=10)
    new = push.app.apply_payment(second, 2.0)["PaymentID"]
    xero_clock.advance(seconds=10)
    push.app.delete_payment(old)  # now the latest change
    api = push.adapter._accounting(push.token)
    tenant = push.tenant_id

    def listed(**options):
        return [p.payment_id for p in api.get_payments(tenant, **options).payments]

    assert listed(where=f'PaymentID==Guid("{new.upper()}")') == [new]
    assert set(listed(where=f'PaymentID==Guid("{new}") OR PaymentID==guid("{old}")')) == {
        new, old}
    assert listed(order="UpdatedDateUTC ASC") == [new, old]
    assert listed(order="UpdatedDateUTC DESC") == [old, new]
    deleted = api.get_payments(tenant, where=f'PaymentID==Guid("{old}")').payments[0]
    assert deleted.status == "DELETED"
    since = datetime.datetime.strptime(_stamp(push.ledger().payments[new]),
                                       "%Y-%m-%dT%H:%M:%SZ")
    assert set(listed(if_modified_since=since)) == {new, old}
    assert listed(if_modified_since=since + datetime.timedelta(seconds=1)) == [old]
    assert listed(if_modified_since=since + datetime.timedelta(seconds=11)) == []
    answer = requests.get(f"{push.server.url}/api.xro/2.0/Payments", params={"IDs": new},
                          headers={"Authorization": f"Bearer {push.token}",
                                   "xero-tenant-id": tenant, "Accept": "application/json"},
                          timeout=5)
    assert answer.status_code == 200  # IDs ignored: every payment listed
    assert {p["PaymentID"] for p in answer.json()["Payments"]} == {new, old}

    push.app.void_invoice(first)
    invoices = {i.invoice_id: i.status for i in api.get_invoices(tenant).invoices}
    assert invoices[first] == "VOIDED"
    with push.app.lock:
        (draft,) = [push.ledger().upsert_invoice({
            "Type": "ACCREC", "Contact": {"ContactID": contact_id}, "LineItems": [
                {"Description": "x", "Quantity": 1, "UnitAmount": 5, "AccountCode": "200"}]})]
        push.ledger().upsert_invoice({"Status": "DELETED"}, draft["InvoiceID"])
    statuses = {i.invoice_id: i.status for i in api.get_invoices(tenant, page=1).invoices}
    assert statuses[draft["InvoiceID"]] == "DELETED"
    shown = api.get_invoices(tenant, statuses=["AUTHORISED", "PAID"]).invoices
    assert {i.invoice_id for i in shown} == {second}
