"""Reading payments, invoices and credit notes back for inbound sync:
XeroAdapter.read_payments, read_invoices, read_credit_notes and changed_documents against the
emulator, over real HTTP through xero-python.

Invoices are pushed with the adapter's own ``push``; payments and credit notes too, or
recorded by the sandbox's bookkeeper (``apply_payment``, ``delete_payment``, ``void_invoice``,
``issue_credit_note``, ``write_off``, ``void_credit_note``). A Xero payment pays one invoice;
Xero still lists a deleted one (Status DELETED) and leaves it out of its invoice's Payments.
Request counts come from the sandbox's counters.
"""

import datetime
import inspect
import re
import uuid
from decimal import Decimal

import pytest
import requests
from adapter_support import Meter
from xero_python.accounting import (
    Account,
    Allocation,
    Allocations,
    Contact,
    CreditNote,
    CreditNotes,
    CurrencyCode,
    Invoice,
    LineItem,
    Overpayment,
    Payment,
)
from xero_python.exceptions import ApiException
from xero_support import XeroPush

from billing_sync.services.ledger import xero_payloads as payloads
from billing_sync.services.ledger.base import (
    CreditLine,
    CreditNoteState,
    DocumentChanges,
    InvoiceState,
    LedgerAdapter,
    PaymentState,
    PushItem,
    utc_timestamp,
)
from billing_sync.services.ledger.errors import (
    AccessTokenExpired,
    LedgerAnswerInvalid,
    RateLimited,
)
from billing_sync.services.ledger.xero import XeroAdapter
from ledger_sandbox.core import SandboxError

TAX = "OUTPUT2"  # GST 15 % on income in the seed
UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PAYMENTS = "GET Payments"
INVOICES = "GET Invoices"
CREDIT_NOTES = "GET CreditNotes"
OVERPAYMENTS = "GET Overpayments"
# every list changed_documents reads, one request each when little changed
LISTS = {PAYMENTS: 1, OVERPAYMENTS: 1, INVOICES: 1, CREDIT_NOTES: 1}


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


def _credit_note(push, contact_id, number, *prices, allocations=(), approved=True):
    """A credit note of ``prices`` (one line each, before 15 % GST) pushed by the adapter,
    allocated to ``allocations`` ((invoice id, amount), ...); its id."""
    values = _document(contact_id, number, prices[0], approved)
    untaxed = round(sum(prices), 2)
    tax = round(sum(round(price * 0.15, 2) for price in prices), 2)
    values.update(lines=[_line(price) for price in prices], amount_untaxed=untaxed,
                  amount_tax=tax, amount_total=round(untaxed + tax, 2),
                  allocations=[{"invoice_ref": invoice, "amount": amount,
                                "date": "2026-03-05"} for invoice, amount in allocations])
    (result,) = push.push("credit_note", [PushItem(f"account.move,{number}", "credit_note",
                                                   values)], f"cn-{number}")
    assert result.ok and not result.incomplete, result.error
    return result.ledger_id


def _issue(push, invoice_id=None, amount=None, **options):
    """A tax-inclusive credit note the bookkeeper issues (allocated to ``invoice_id`` unless
    ``allocate=False``); its id."""
    return push.app.issue_credit_note(invoice_id, amount=amount, **options)["CreditNoteID"]


def _read_payments(push, ids):
    return push.adapter.read_payments(push.token, push.tenant_id, ids)


def _read_invoices(push, ids):
    return push.adapter.read_invoices(push.token, push.tenant_id, ids)


def _read_credit_notes(push, ids):
    return push.adapter.read_credit_notes(push.token, push.tenant_id, ids)


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
                       ("read_credit_notes", "ids"), ("changed_documents", "since")):
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


def test_credit_note_parse_without_http():
    first, second, account_id, contact_id = (str(uuid.uuid4()) for _ in range(4))
    note = CreditNote(
        type="ACCRECCREDIT", status="PAID", contact=Contact(contact_id=contact_id),
        date=datetime.date(2026, 3, 12), line_amount_types="Inclusive",
        total=0.1 + 0.2 + 46, total_tax=6.04, remaining_credit=0.0, reference="",
        credit_note_number="CN-0007", currency_code=CurrencyCode("NZD"),
        line_items=[
            LineItem(description="Refund", line_amount=46.0, tax_amount=6.0,
                     account_code="200", account_id=account_id, tax_type="OUTPUT2",
                     item_code="CONSULT-HR"),
            LineItem(description=None, line_amount=0.3, tax_amount=0.04, account_code="200",
                     tax_type="OUTPUT2")],
        allocations=[
            Allocation(invoice=Invoice(invoice_id=first), amount=10.0,
                       date=datetime.date(2026, 3, 12)),
            Allocation(invoice=Invoice(invoice_id=second), amount=16.3,
                       date=datetime.date(2026, 3, 12)),
            Allocation(invoice=Invoice(invoice_id=first), amount=20.0,
                       date=datetime.date(2026, 3, 13)),
            # one Xero says deleted takes nothing any more
            Allocation(invoice=Invoice(invoice_id=second), amount=5.0, is_deleted=True,
                       date=datetime.date(2026, 3, 13))])
    assert payloads.is_sales_credit_note(note)
    values = payloads.credit_note_values(note)
    assert values == {
        "contact_id": contact_id, "status": "paid", "total": Decimal("46.30"),
        "tax": Decimal("6.04"), "remaining": Decimal("0.00"),
        "lines": (CreditLine("Refund", Decimal("40.00"), Decimal("6.00"), account_id, "200",
                             None, "OUTPUT2"),
                  CreditLine(None, Decimal("0.26"), Decimal("0.04"), None, "200", None,
                             "OUTPUT2")),
        "allocations": {first: Decimal("30.00"), second: Decimal("16.30")},
        "date": "2026-03-12", "number": "CN-0007", "reference": None, "currency": "NZD"}
    assert list(values["allocations"]) == [first, second]  # Xero's order
    assert str(values["allocations"][first]) == "30.00"
    # Exclusive: the line amount is the net; NoTax: no tax whatever the line says
    note.line_amount_types = "Exclusive"
    assert payloads.credit_note_values(note)["lines"][0].net == Decimal("46.00")
    note.line_amount_types = "NoTax"
    (line, _other) = payloads.credit_note_values(note)["lines"]
    assert (line.net, line.tax) == (Decimal("46.00"), Decimal("0.00"))
    statuses = {"AUTHORISED": "open", "PAID": "paid", "VOIDED": "voided",
                "DELETED": "deleted", "DRAFT": "draft", "SUBMITTED": "draft"}
    for status, neutral in statuses.items():
        note.status = status
        assert payloads.credit_note_values(note)["status"] == neutral
    bare = payloads.credit_note_values(CreditNote(type="ACCRECCREDIT"))
    assert (bare["status"], bare["lines"], bare["allocations"], bare["total"]) == (
        None, (), {}, Decimal("0.00"))
    assert not payloads.is_sales_credit_note(CreditNote(type="ACCPAYCREDIT"))


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
    # the unknown GUID is looked for among overpayments too (a second request)
    assert push.api_requests() == {PAYMENTS: 1, OVERPAYMENTS: 1}
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
    # the 50 ids Payments did not list are looked for among overpayments: one request
    assert push.api_requests() == {PAYMENTS: 2, OVERPAYMENTS: 1}
    assert meter.calls == [False] * 3
    assert set(read) == set(payments)
    push.reset_counters()
    listed = _read_invoices(push, unknown + invoices)
    assert push.api_requests() == {INVOICES: 2} and len(meter.calls) == 5
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


# =========================================================================== read_credit_notes
def test_credit_note_allocated_to_its_invoice_reads_paid(push):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 200.0)                  # 230.00
    note = _credit_note(push, contact_id, "RINV/1", 30.0, 10.0,      # 46.00, GST 6.00
                        allocations=[(invoice, 46.0)])
    ledger = push.ledger()
    sales = ledger.account_by_code("200")["AccountID"]
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    read = _read_credit_notes(push, [note])
    assert push.api_requests() == {CREDIT_NOTES: 1} and meter.calls == [False]
    assert read == {note: CreditNoteState(
        note, contact_id, "paid", Decimal("46.00"), Decimal("6.00"), Decimal("0.00"),
        lines=(CreditLine("Work at 30.0", Decimal("30.00"), Decimal("4.50"), sales, "200",
                          None, TAX),
               CreditLine("Work at 10.0", Decimal("10.00"), Decimal("1.50"), sales, "200",
                          None, TAX)),
        allocations={invoice: Decimal("46.00")}, date="2026-03-02", number="RINV/1",
        reference="Proposal S00042", currency="NZD",
        updated_at=_stamp(ledger.credit_notes[note]))}
    state = read[note]
    assert UTC_SECOND.match(state.updated_at) and str(state.remaining) == "0.00"
    assert state.total == sum(line.net + line.tax for line in state.lines)
    (due,) = _read_invoices(push, [invoice]).values()
    assert (due.status, due.amount_due) == ("open", Decimal("184.00"))


def test_unallocated_and_tax_inclusive_credit_notes(push):
    """The bookkeeper's credit notes are tax inclusive: a line's net is its amount less its
    tax (GST 15/115 of it, to the cent)."""
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)                  # 115.00
    used = _issue(push, invoice, 46.0, description="A day refunded", date="2026-03-12")
    kept = _issue(push, invoice, 10.0, allocate=False, date="2026-03-13")
    goodwill = _issue(push, contact_id=contact_id, amount=20.0, description="Goodwill",
                      account_code="260", tax_type="NONE", date="2026-03-14")
    ledger = push.ledger()
    push.reset_counters()
    read = _read_credit_notes(push, [used, kept, goodwill])
    assert push.api_requests() == {CREDIT_NOTES: 1}
    sales = ledger.account_by_code("200")["AccountID"]
    assert read[used] == CreditNoteState(
        used, contact_id, "paid", Decimal("46.00"), Decimal("6.00"), Decimal("0.00"),
        lines=(CreditLine("A day refunded", Decimal("40.00"), Decimal("6.00"), sales, "200",
                          None, TAX),),
        allocations={invoice: Decimal("46.00")}, date="2026-03-12",
        number=ledger.credit_notes[used]["CreditNoteNumber"],
        reference="Credit for INV/inv/0", currency="NZD",
        updated_at=_stamp(ledger.credit_notes[used]))
    # unallocated: open, all of its credit left; 10.00 holds 1.30 of GST
    state = read[kept]
    assert (state.status, state.total, state.tax, state.remaining, state.allocations) == (
        "open", Decimal("10.00"), Decimal("1.30"), Decimal("10.00"), {})
    assert state.lines == (CreditLine("Credit", Decimal("8.70"), Decimal("1.30"), sales,
                                      "200", None, TAX),)
    assert state.date == "2026-03-13"
    other = read[goodwill]
    assert (other.status, other.tax, other.remaining, other.reference) == (
        "open", Decimal("0.00"), Decimal("20.00"), "Goodwill")
    assert other.lines == (CreditLine("Goodwill", Decimal("20.00"), Decimal("0.00"),
                                      ledger.account_by_code("260")["AccountID"], "260",
                                      None, "NONE"),)
    (due,) = _read_invoices(push, [invoice]).values()
    assert due.amount_due == Decimal("69.00")


def test_allocations_are_summed_per_invoice(push):
    contact_id = _customer(push)
    first, second = _invoices(push, contact_id, 100.0, 200.0)        # 115.00, 230.00
    note = _issue(push, contact_id=contact_id, amount=46.0, date="2026-03-12")
    ledger = push.ledger()
    with push.app.lock:
        for invoice, amount in ((first, 10.0), (second, 16.0), (first, 20.0)):
            ledger.allocate_credit_note(note, {"Invoice": {"InvoiceID": invoice},
                                               "Amount": amount, "Date": "2026-03-12"})
        ledger.changes.clear()  # no webhook for these
    (state,) = _read_credit_notes(push, [note]).values()
    assert state.allocations == {first: Decimal("30.00"), second: Decimal("16.00")}
    assert list(state.allocations) == [first, second]
    assert (state.status, state.remaining) == ("paid", Decimal("0.00"))


def test_a_write_off_is_a_credit_note_on_bad_debts(push):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)                  # 115.00
    push.app.apply_payment(invoice, 15.0)
    written = push.app.write_off(invoice, date="2026-03-20")
    assert written["method"] == "credit_note"
    note = written["credit_note"]["CreditNoteID"]
    (state,) = _read_credit_notes(push, [note]).values()
    bad_debts = push.ledger().account_by_code("485")["AccountID"]
    # 100.00 written off, the invoice's GST reversed with it (15/115: 13.04)
    assert (state.status, state.total, state.tax, state.remaining) == (
        "paid", Decimal("100.00"), Decimal("13.04"), Decimal("0.00"))
    assert state.lines == (CreditLine("Bad debt written off", Decimal("86.96"),
                                      Decimal("13.04"), bad_debts, "485", None, TAX),)
    assert state.allocations == {invoice: Decimal("100.00")}
    assert (state.date, state.contact_id) == ("2026-03-20", contact_id)
    (due,) = _read_invoices(push, [invoice]).values()
    assert (due.status, due.amount_due) == ("paid", Decimal("0.00"))


def test_voided_deleted_and_draft_credit_notes(push, xero_clock):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)                  # 115.00
    loose = _issue(push, invoice, 23.0, allocate=False, date="2026-03-12")
    allocated = _issue(push, invoice, 46.0, date="2026-03-12")
    draft = _credit_note(push, contact_id, "RINV/draft", 10.0, approved=False)
    gone = _credit_note(push, contact_id, "RINV/gone", 20.0, approved=False)
    before = _read_credit_notes(push, [loose, allocated])
    invoice_before = _read_invoices(push, [invoice])[invoice]

    xero_clock.advance(minutes=1)
    push.app.void_credit_note(loose)
    # Xero voids a credit note only once nothing is allocated from it
    with pytest.raises(SandboxError) as refused:
        push.app.void_credit_note(allocated)
    assert "allocated" in str(refused.value)
    assert push.ledger().credit_notes[allocated]["Status"] == "PAID"
    with push.app.lock:  # a draft deleted in Xero (Status DELETED)
        push.ledger().upsert_credit_note({"Status": "DELETED"}, gone)
    read = _read_credit_notes(push, [loose, allocated, draft, gone])
    assert {i: s.status for i, s in read.items()} == {
        loose: "voided", allocated: "paid", draft: "draft", gone: "deleted"}
    assert read[loose].updated_at == _later(before[loose].updated_at, minutes=1)
    assert read[allocated] == before[allocated]
    assert read[draft].number == "RINV/draft" and read[gone].total == Decimal("23.00")

    # the bookkeeper removes the allocation first, then voids: the invoice is due again
    xero_clock.advance(minutes=1)
    push.app.void_credit_note(allocated, remove_allocations=True)
    (state,) = _read_credit_notes(push, [allocated]).values()
    assert (state.status, state.allocations) == ("voided", {})
    assert state.updated_at == _later(before[allocated].updated_at, minutes=2)
    (due,) = _read_invoices(push, [invoice]).values()
    assert (due.status, due.amount_due) == ("open", Decimal("115.00"))
    assert due.updated_at == _later(invoice_before.updated_at, minutes=2)


def test_unknown_credit_note_ids_are_absent_and_non_guids_cost_nothing(push):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 10.0)
    one = _issue(push, invoice, 5.0)
    two = _issue(push, contact_id=contact_id, amount=7.0)
    supplier = _issue(push, contact_id=contact_id, amount=9.0)
    with push.app.lock:  # a supplier's credit note (the sandbox makes sales ones only)
        push.ledger().credit_notes[supplier]["Type"] = "ACCPAYCREDIT"
    unknown = str(uuid.uuid4())
    push.reset_counters()
    read = _read_credit_notes(push, [one, two.upper(), unknown, supplier, "CN-0001", None,
                                     "", one])
    assert push.api_requests() == {CREDIT_NOTES: 1}
    # keyed as asked (Xero's GUIDs ignore case); unknown and ACCPAYCREDIT ones are absent
    assert set(read) == {one, two.upper()} and read[two.upper()].ledger_id == two.upper()
    # issued without a date: today's, as Xero defaults it
    assert read[one].date == push.app.now().date().isoformat()
    # an invoice id names no credit note, a credit note id no invoice
    assert _read_credit_notes(push, [invoice]) == {} and _read_invoices(push, [one]) == {}
    push.reset_counters()
    nil = "00000000-0000-0000-0000-000000000000"
    assert _read_credit_notes(push, ["CN-0001", None, "", nil]) == {}
    assert push.api_requests() == {}
    # a credit note without its Status is an answer of unknown shape
    push.app.faults.next("no_status", 1)
    with pytest.raises(LedgerAnswerInvalid) as invalid:
        _read_credit_notes(push, [one])
    assert "without its Status" in str(invalid.value)


def test_60_credit_note_ids_take_2_metered_requests(push):
    contact_id = _customer(push)
    notes = [_issue(push, contact_id=contact_id, amount=1.0 + n) for n in range(10)]
    unknown = [str(uuid.uuid4()) for _ in range(50)]
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    read = _read_credit_notes(push, unknown + notes)
    assert push.api_requests() == {CREDIT_NOTES: 2} and meter.calls == [False, False]
    assert set(read) == set(notes)
    # the second request (ids 51 to 60) is paged: the lines came with it
    assert [read[n].total for n in notes] == [Decimal(1 + n).quantize(Decimal("0.01"))
                                              for n in range(10)]
    assert all(len(read[n].lines) == 1 for n in notes)


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
    assert push.api_requests() == LISTS and meter.calls == [False] * 4
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
    assert push.api_requests() == LISTS
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
    assert (nothing.payments, nothing.invoices, nothing.credit_notes, nothing.cursor,
            nothing.complete) == ({}, {}, {}, since, True)
    assert push.api_requests() == LISTS


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
    assert push.api_requests() == {PAYMENTS: 10, OVERPAYMENTS: 1, INVOICES: 1,
                                   CREDIT_NOTES: 1}
    assert (first.complete, first.full_read) == (False, False)
    assert set(first.payments) == set(ids[:991]) and first.cursor == stamps[990]
    assert first.invoices[invoice].updated_at == stamps[-1]  # read through, to come again
    assert first.payments[ids[5]].reference == "n5"
    push.reset_counters()
    rest = _changed(push, first.cursor)
    assert push.api_requests() == LISTS
    assert rest.complete and set(rest.payments) == set(ids[990:])
    assert rest.cursor == stamps[-1] and set(rest.invoices) == {invoice}
    assert len(rest.invoices[invoice].payment_ids) == 1050


def test_changed_credit_notes_are_listed_from_the_cursor(push, xero_clock):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)                  # 115.00
    start = _changed(push, None)
    assert start.credit_notes == {} and set(start.invoices) == {invoice}

    # a credit note issued and allocated 3 minutes later: it and its invoice
    xero_clock.advance(minutes=3)
    note = _issue(push, invoice, 46.0, date="2026-03-12")
    push.reset_counters()
    later = _changed(push, start.cursor)
    assert push.api_requests() == LISTS
    assert set(later.credit_notes) == {note} and set(later.invoices) == {invoice}
    # the state read_credit_notes gives: no second read needed
    assert later.credit_notes == _read_credit_notes(push, [note])
    assert later.credit_notes[note].status == "paid"
    assert later.invoices[invoice].amount_due == Decimal("69.00")
    assert later.cursor == later.credit_notes[note].updated_at == _later(start.cursor,
                                                                          minutes=3)
    assert later.complete

    # a second one left unallocated, then the first voided (its allocation removed first):
    # each is listed once more, as it is now; a supplier's credit note is not
    xero_clock.advance(minutes=1)
    loose = _issue(push, contact_id=contact_id, amount=12.0)
    supplier = _issue(push, contact_id=contact_id, amount=9.0)
    with push.app.lock:
        push.ledger().credit_notes[supplier]["Type"] = "ACCPAYCREDIT"
    xero_clock.advance(minutes=1)
    push.app.void_credit_note(note, remove_allocations=True)
    pulled = _changed(push, _later(later.cursor, seconds=1))
    assert set(pulled.credit_notes) == {note, loose} and set(pulled.invoices) == {invoice}
    assert pulled.credit_notes[note].status == "voided"
    assert pulled.credit_notes[loose].status == "open"
    assert pulled.invoices[invoice].amount_due == Decimal("115.00")
    assert pulled.cursor == _later(later.cursor, minutes=2)
    assert (pulled.payments, pulled.deleted_payments, pulled.complete) == ({}, (), True)

    # from a cursor after every change: nothing
    nothing = _changed(push, _later(pulled.cursor, seconds=1))
    assert (nothing.credit_notes, nothing.cursor) == ({}, _later(pulled.cursor, seconds=1))


def test_credit_notes_stopping_short_hold_the_cursor_back(push, xero_clock):
    """1,050 credit notes one second apart, then a payment: the credit notes' list stops
    after 10 requests, payments and invoices are read through; the cursor is where the
    credit notes stopped, not the payment's later change."""
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)
    ledger, ids = push.ledger(), []
    with push.app.lock:
        for n in range(1050):
            ids.append(ledger.upsert_credit_note({
                "Type": "ACCRECCREDIT", "Status": "AUTHORISED", "Date": "2026-03-10",
                "Contact": {"ContactID": contact_id}, "LineAmountTypes": "NoTax",
                "LineItems": [{"Description": f"n{n}", "Quantity": 1, "UnitAmount": 1.0,
                               "AccountCode": "200"}]})["CreditNoteID"])
            xero_clock.advance(seconds=1)
        ledger.changes.clear()  # no webhook for these
    payment = push.app.apply_payment(invoice, 15.0)["PaymentID"]
    stamps = [_stamp(ledger.credit_notes[i]) for i in ids]
    push.reset_counters()
    first = _changed(push, None)
    assert push.api_requests() == {PAYMENTS: 1, OVERPAYMENTS: 1, INVOICES: 1,
                                   CREDIT_NOTES: 10}
    assert (first.complete, first.full_read) == (False, False)
    assert set(first.credit_notes) == set(ids[:991]) and first.cursor == stamps[990]
    assert set(first.payments) == {payment}  # read through, to come again
    line = first.credit_notes[ids[5]].lines[0]  # NoTax: no tax on the line
    assert (line.description, line.net, line.tax) == ("n5", Decimal("1.00"), Decimal("0.00"))
    push.reset_counters()
    rest = _changed(push, first.cursor)
    assert push.api_requests() == LISTS
    assert rest.complete and set(rest.credit_notes) == set(ids[990:])
    assert set(rest.payments) == {payment}
    assert rest.cursor == rest.payments[payment].updated_at > stamps[-1]


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
    note = _issue(push, contact_id=contact_id, amount=5.0)
    for read, ids, label in ((_read_payments, [payment], PAYMENTS),
                             (_read_invoices, [invoice], INVOICES),
                             (_read_credit_notes, [note], CREDIT_NOTES),
                             (_changed, None, PAYMENTS)):
        push.app.faults.next("http429", 1, retry_after=9, problem="minute")
        push.reset_counters()
        with pytest.raises(RateLimited) as caught:
            read(push, ids)
        assert caught.value.retry_after == 9
        assert push.api_requests() == {label: 1}  # not retried by the SDK's pool
    # the credit notes' list refused once payments and invoices were listed
    push.app.faults.next("http429", 1, path="/CreditNotes$", retry_after=7, problem="minute")
    push.reset_counters()
    with pytest.raises(RateLimited) as caught:
        _changed(push, None)
    assert caught.value.retry_after == 7 and push.api_requests() == LISTS
    push.token = "not-a-token-xero-issued"
    for read, ids, words in ((_read_payments, [payment], "Reading Xero payments"),
                             (_read_invoices, [invoice], "Reading Xero invoices"),
                             (_read_credit_notes, [note], "Reading Xero credit notes"),
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


def test_emulator_get_credit_notes_filters_as_xero_does(push, xero_clock):
    """GET CreditNotes takes ``where`` on CreditNoteID with Guid() and on Type,
    If-Modified-Since (inclusive) and ``order``, ignores IDs (a parameter it does not have),
    answers line items only on paged requests and lists VOIDED and DELETED credit notes;
    an allocation and a void move a credit note's UpdatedDateUTC, and Xero voids only one
    that is allocated to nothing."""
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)                  # 115.00
    old = _issue(push, contact_id=contact_id, amount=23.0)
    xero_clock.advance(seconds=10)
    new = _issue(push, contact_id=contact_id, amount=46.0)
    gone = _credit_note(push, contact_id, "RINV/gone", 20.0, approved=False)
    with push.app.lock:
        push.ledger().upsert_credit_note({"Status": "DELETED"}, gone)
    api = push.adapter._accounting(push.token)
    tenant = push.tenant_id

    def listed(**options):
        return [n.credit_note_id for n in api.get_credit_notes(tenant, **options).credit_notes]

    assert listed(where=f'CreditNoteID==Guid("{new.upper()}")') == [new]
    assert set(listed(where=f'CreditNoteID==Guid("{new}") OR CreditNoteID==guid("{old}")')
               ) == {new, old}
    assert set(listed(where=payloads.SALES_CREDIT_NOTES)) == {old, new, gone}
    assert listed(where='Type=="ACCPAYCREDIT"') == []
    assert listed(order="UpdatedDateUTC ASC", where=f'CreditNoteID!=Guid("{gone}")') == [
        old, new]
    assert listed(order="UpdatedDateUTC DESC")[-1] == old

    # an allocation (PUT CreditNotes/{id}/Allocations) moves the credit note's stamp
    before = _stamp(push.ledger().credit_notes[old])
    xero_clock.advance(seconds=10)
    api.create_credit_note_allocation(tenant, old, Allocations(allocations=[Allocation(
        invoice=Invoice(invoice_id=invoice), amount=23.0, date=datetime.date(2026, 3, 12))]))
    allocated = _stamp(push.ledger().credit_notes[old])
    assert allocated == _later(before, seconds=20)
    assert listed(order="UpdatedDateUTC ASC")[-1] == old
    # Xero refuses to void it while it is allocated; an unallocated one is voided
    with pytest.raises(ApiException) as refused:
        api.update_credit_note(tenant, old, CreditNotes(credit_notes=[
            CreditNote(status="VOIDED")]))
    assert refused.value.status == 400 and "allocated" in refused.value.body.decode()
    xero_clock.advance(seconds=10)
    api.update_credit_note(tenant, new, CreditNotes(credit_notes=[
        CreditNote(status="VOIDED")]))
    voided = _stamp(push.ledger().credit_notes[new])
    assert voided == _later(allocated, seconds=10)

    statuses = {n.credit_note_id: n.status for n in api.get_credit_notes(tenant).credit_notes}
    assert statuses == {old: "PAID", new: "VOIDED", gone: "DELETED"}
    since = datetime.datetime.strptime(allocated, "%Y-%m-%dT%H:%M:%SZ")
    assert listed(if_modified_since=since, order="UpdatedDateUTC ASC") == [old, new]
    assert listed(if_modified_since=since + datetime.timedelta(seconds=1)) == [new]
    assert listed(if_modified_since=since + datetime.timedelta(seconds=11)) == []
    # line items only on a paged request; allocations either way
    unpaged = api.get_credit_notes(tenant, where=f'CreditNoteID==Guid("{old}")')
    paged = api.get_credit_notes(tenant, where=f'CreditNoteID==Guid("{old}")', page=1)
    assert unpaged.credit_notes[0].line_items == [] and len(paged.credit_notes[0].line_items) == 1
    assert [a.invoice.invoice_id for a in unpaged.credit_notes[0].allocations] == [invoice]
    assert paged.pagination.item_count == 1
    answer = requests.get(f"{push.server.url}/api.xro/2.0/CreditNotes", params={"IDs": new},
                          headers={"Authorization": f"Bearer {push.token}",
                                   "xero-tenant-id": tenant, "Accept": "application/json"},
                          timeout=5)
    assert answer.status_code == 200  # IDs ignored: every credit note listed
    assert {n["CreditNoteID"] for n in answer.json()["CreditNotes"]} == {old, new, gone}


def test_bookkeeper_void_credit_note_over_the_control_api(push):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)
    note = _issue(push, invoice, 46.0)
    url = f"{push.server.url}/_sandbox/bookkeeper/void_credit_note"
    refused = requests.post(url, json={"credit_note_id": note}, timeout=5)
    assert refused.status_code == 400 and "allocated" in refused.text
    done = requests.post(url, json={"credit_note_id": note, "remove_allocations": True},
                         timeout=5)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["Status"], body["Allocations"]) == ("VOIDED", [])
    assert push.ledger().invoices[invoice]["AmountDue"] == 115.0
    again = requests.post(url, json={"credit_note_id": note}, timeout=5)
    assert again.status_code == 400  # a voided credit note stays so


# =========================================================================== overpayments
# A client who pays more than is due makes an Overpayment (a RECEIVE-OVERPAYMENT bank
# transaction), allocated to invoices or kept as the client's credit: read_payments reads it
# as a payment, read_invoices lists it among an invoice's payment_ids, changed_documents
# lists it with the payments.
def _overpay(push, contact_id, amount, allocations=None, **options):
    """An overpayment the bookkeeper receives (bank 090), allocated to ``allocations``
    ({invoice id: amount}); its id."""
    return push.app.receive_overpayment(contact_id, amount, allocations=allocations,
                                        **options)["OverpaymentID"]


def test_overpayment_parse_without_http():
    first, second, contact_id = (str(uuid.uuid4()) for _ in range(3))
    overpayment = Overpayment(
        overpayment_id=str(uuid.uuid4()), type="RECEIVE-OVERPAYMENT", status="AUTHORISED",
        contact=Contact(contact_id=contact_id), date=datetime.date(2026, 3, 10),
        total=150.0, remaining_credit=0.1 + 0.2, reference="", currency_code=CurrencyCode("NZD"),
        allocations=[
            Allocation(invoice=Invoice(invoice_id=first), amount=100.0,
                       date=datetime.date(2026, 3, 10)),
            Allocation(invoice=Invoice(invoice_id=second), amount=40.0,
                       date=datetime.date(2026, 3, 11)),
            Allocation(invoice=Invoice(invoice_id=first), amount=9.7,
                       date=datetime.date(2026, 3, 12)),
            Allocation(invoice=Invoice(invoice_id=second), amount=5.0, is_deleted=True,
                       date=datetime.date(2026, 3, 12))])
    assert payloads.is_customer_overpayment(overpayment)
    values = payloads.overpayment_values(overpayment)
    assert values == {"contact_id": contact_id, "date": "2026-03-10",
                      "total": Decimal("150.00"),
                      "allocations": {first: Decimal("109.70"), second: Decimal("40.00")},
                      "unapplied": Decimal("0.30"), "currency": "NZD", "account_id": None,
                      "account_code": None, "reference": None, "deleted": False}
    assert list(values["allocations"]) == [first, second]  # Xero's order
    assert values["total"] == sum(values["allocations"].values()) + values["unapplied"]
    for status, deleted in (("PAID", False), ("VOIDED", True)):
        overpayment.status = status
        assert payloads.overpayment_values(overpayment)["deleted"] is deleted
    assert not payloads.is_customer_overpayment(Overpayment(type="SPEND-OVERPAYMENT"))
    # an invoice lists its overpayments after its payments, each once
    invoice = Invoice(type="ACCREC", status="PAID", total=115.0, amount_due=0,
                      invoice_number="INV-8", payments=[Payment(payment_id="p-1")],
                      overpayments=[Overpayment(overpayment_id="o-1"),
                                    Overpayment(overpayment_id="o-2"),
                                    Overpayment(overpayment_id="o-1")])
    assert payloads.invoice_values(invoice)["payment_ids"] == ("p-1", "o-1", "o-2")


def test_overpayment_allocated_reads_as_a_payment(push, xero_clock):
    contact_id = _customer(push)
    first, second = _invoices(push, contact_id, 100.0, 200.0)      # 115.00 and 230.00
    invoice_before = _read_invoices(push, [first])[first]
    xero_clock.advance(minutes=1)
    # the client paid 150.00 for the first invoice: 115.00 pays it, 35.00 is the client's
    overpaid = _overpay(push, contact_id, 150.0, {first: 115.0}, date="2026-03-10",
                        reference="Bank transfer REF9")
    ledger = push.ledger()
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    read = _read_payments(push, [overpaid])
    assert push.api_requests() == {PAYMENTS: 1, OVERPAYMENTS: 1}
    assert meter.calls == [False, False]
    # Xero's Overpayment names no bank account
    assert read == {overpaid: PaymentState(
        overpaid, contact_id, "2026-03-10", Decimal("150.00"), {first: Decimal("115.00")},
        Decimal("35.00"), "NZD", None, None, "Bank transfer REF9", False,
        _stamp(ledger.overpayments[overpaid]))}
    state = read[overpaid]
    assert state.total == sum(state.allocations.values()) + state.unapplied
    assert UTC_SECOND.match(state.updated_at)

    # the invoice is paid by it and lists it as one of its payments
    (paid,) = _read_invoices(push, [first]).values()
    assert (paid.status, paid.amount_due, paid.payment_ids) == (
        "paid", Decimal("0.00"), (overpaid,))
    assert paid.updated_at == _later(invoice_before.updated_at, minutes=1) == state.updated_at

    # 20.00 more of its credit goes to the second invoice, which a payment also paid
    payment = _pay(push, second, 30.0, "op-2")
    xero_clock.advance(minutes=1)
    push.app.allocate_overpayment(overpaid, second, 20.0)
    read = _read_payments(push, [overpaid, payment])
    assert read[overpaid].allocations == {first: Decimal("115.00"), second: Decimal("20.00")}
    assert read[overpaid].unapplied == Decimal("15.00")
    assert read[overpaid].updated_at == _later(state.updated_at, minutes=1)
    assert read[payment].allocations == {second: Decimal("30.00")}
    (part,) = _read_invoices(push, [second]).values()
    assert (part.status, part.amount_due, part.payment_ids) == (
        "open", Decimal("180.00"), (payment, overpaid))  # payments first, then overpayments

    # all of its credit used: PAID in Xero, nothing unapplied, still a live payment
    push.app.allocate_overpayment(overpaid, second, 15.0)
    (used,) = _read_payments(push, [overpaid]).values()
    assert ledger.overpayments[overpaid]["Status"] == "PAID"
    assert (used.unapplied, used.deleted) == (Decimal("0.00"), False)
    assert used.allocations[second] == Decimal("35.00")


def test_overpayment_not_allocated_is_all_unapplied(push):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)
    kept = _overpay(push, contact_id, 42.5, date="2026-03-14", account_code="091")
    (state,) = _read_payments(push, [kept]).values()
    assert (state.total, state.allocations, state.unapplied, state.reference) == (
        Decimal("42.50"), {}, Decimal("42.50"), None)
    assert (state.date, state.contact_id, state.currency, state.deleted) == (
        "2026-03-14", contact_id, "NZD", False)
    assert (state.account_id, state.account_code) == (None, None)
    (due,) = _read_invoices(push, [invoice]).values()  # nothing applied to the invoice
    assert (due.status, due.amount_due, due.payment_ids) == ("open", Decimal("115.00"), ())


def test_read_payments_asks_overpayments_only_for_what_payments_did_not_list(push):
    contact_id = _customer(push)
    first, second = _invoices(push, contact_id, 100.0, 10.0)
    payment = _pay(push, first, 15.0, "mix")
    overpaid = _overpay(push, contact_id, 20.0, {second: 11.5})
    supplier = _overpay(push, contact_id, 9.0)
    with push.app.lock:  # an overpayment to a supplier (the sandbox makes customers' only)
        push.ledger().overpayments[supplier]["Type"] = "SPEND-OVERPAYMENT"
    unknown = str(uuid.uuid4())
    push.reset_counters()
    read = _read_payments(push, [payment, overpaid.upper(), supplier, unknown, "x", None])
    assert push.api_requests() == {PAYMENTS: 1, OVERPAYMENTS: 1}
    # keyed as asked; a supplier's overpayment and an unknown id are absent
    assert set(read) == {payment, overpaid.upper()}
    assert read[overpaid.upper()].allocations == {second: Decimal("11.50")}
    assert read[payment].allocations == {first: Decimal("15.00")}
    # every id a payment: no look among overpayments
    push.reset_counters()
    assert set(_read_payments(push, [payment, payment.upper()])) == {payment}  # asked once
    assert push.api_requests() == {PAYMENTS: 1}
    # no id that can be Xero's: no request at all
    push.reset_counters()
    assert _read_payments(push, ["x", None, ""]) == {}
    assert push.api_requests() == {}
    # 60 overpayments: 2 requests each way (Payments lists none of them)
    many = [_overpay(push, contact_id, 1.0 + n) for n in range(60)]
    push.reset_counters()
    read = _read_payments(push, many)
    assert push.api_requests() == {PAYMENTS: 2, OVERPAYMENTS: 2}
    assert [read[i].total for i in many] == [Decimal(1 + n).quantize(Decimal("0.01"))
                                             for n in range(60)]
    # an overpayment without its Status is an answer of unknown shape
    push.app.faults.next("no_status", 1, path="/Overpayments$")
    with pytest.raises(LedgerAnswerInvalid) as invalid:
        _read_payments(push, [overpaid])
    assert "without its Status" in str(invalid.value)


def test_voided_overpayment_reads_deleted(push, xero_clock):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)                  # 115.00
    overpaid = _overpay(push, contact_id, 150.0, {invoice: 115.0})
    loose = _overpay(push, contact_id, 30.0)
    before = _read_payments(push, [overpaid, loose])
    xero_clock.advance(minutes=1)
    push.app.void_overpayment(loose)
    # Xero voids an overpayment only once nothing is allocated from it
    with pytest.raises(SandboxError) as refused:
        push.app.void_overpayment(overpaid)
    assert refused.value.status == 400 and "allocated" in str(refused.value)
    push.app.void_overpayment(overpaid, remove_allocations=True)
    read = _read_payments(push, [overpaid, loose])
    assert read[loose].deleted and read[overpaid].deleted
    assert read[loose].updated_at == _later(before[loose].updated_at, minutes=1)
    # its allocation removed first: it pays nothing, the invoice is due again
    assert (read[overpaid].allocations, read[overpaid].total) == ({}, Decimal("150.00"))
    (due,) = _read_invoices(push, [invoice]).values()
    assert (due.status, due.amount_due, due.payment_ids) == ("open", Decimal("115.00"), ())
    assert push.ledger().overpayments[overpaid]["Status"] == "VOIDED"


def test_changed_documents_lists_overpayments_with_the_payments(push, xero_clock):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)                  # 115.00
    start = _changed(push, None)
    assert set(start.payments) == set() and set(start.invoices) == {invoice}

    # an overpayment received and allocated 3 minutes later: it and its invoice
    xero_clock.advance(minutes=3)
    overpaid = _overpay(push, contact_id, 150.0, {invoice: 115.0})
    push.reset_counters()
    later = _changed(push, start.cursor)
    assert push.api_requests() == LISTS
    assert set(later.payments) == {overpaid} and set(later.invoices) == {invoice}
    # the state read_payments gives: no second read needed
    assert later.payments == _read_payments(push, [overpaid])
    assert later.invoices[invoice].payment_ids == (overpaid,)
    assert later.cursor == later.payments[overpaid].updated_at == _later(start.cursor,
                                                                         minutes=3)
    assert later.complete

    # one kept as credit, one to a supplier (left out), then the first voided
    xero_clock.advance(minutes=1)
    loose = _overpay(push, contact_id, 12.0)
    supplier = _overpay(push, contact_id, 9.0)
    with push.app.lock:
        push.ledger().overpayments[supplier]["Type"] = "SPEND-OVERPAYMENT"
    xero_clock.advance(minutes=1)
    push.app.void_overpayment(overpaid, remove_allocations=True)
    pulled = _changed(push, _later(later.cursor, seconds=1))
    assert set(pulled.payments) == {overpaid, loose} and set(pulled.invoices) == {invoice}
    assert pulled.payments[overpaid].deleted and not pulled.payments[loose].deleted
    assert pulled.payments[loose].unapplied == Decimal("12.00")
    assert (pulled.invoices[invoice].amount_due, pulled.invoices[invoice].payment_ids) == (
        Decimal("115.00"), ())
    assert pulled.cursor == _later(later.cursor, minutes=2)
    assert (pulled.deleted_payments, pulled.complete) == ((), True)


def test_overpayments_stopping_short_hold_the_cursor_back(push, xero_clock):
    """1,050 overpayments one second apart, then a payment: the overpayments' list stops
    after 10 requests; the cursor is where it stopped, not at the payment's later change."""
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 100.0)
    ledger, ids = push.ledger(), []
    with push.app.lock:
        for n in range(1050):
            ids.append(ledger.create_bank_transaction({
                "Type": "RECEIVE-OVERPAYMENT", "Contact": {"ContactID": contact_id},
                "BankAccount": {"Code": "090"}, "Reference": f"n{n}",
                "LineItems": [{"Description": "Overpayment", "LineAmount": 1.0}]}
            )["OverpaymentID"])
            xero_clock.advance(seconds=1)
    payment = push.app.apply_payment(invoice, 15.0)["PaymentID"]
    stamps = [_stamp(ledger.overpayments[i]) for i in ids]
    push.reset_counters()
    first = _changed(push, None)
    assert push.api_requests() == {PAYMENTS: 1, OVERPAYMENTS: 10, INVOICES: 1,
                                   CREDIT_NOTES: 1}
    assert (first.complete, first.cursor) == (False, stamps[990])
    assert set(first.payments) == set(ids[:991]) | {payment}
    assert first.payments[ids[5]].reference == "n5"
    push.reset_counters()
    rest = _changed(push, first.cursor)
    assert push.api_requests() == LISTS
    assert rest.complete and set(rest.payments) == set(ids[990:]) | {payment}
    assert rest.cursor == rest.payments[payment].updated_at > stamps[-1]
