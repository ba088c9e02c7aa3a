"""Reading payments, invoices and credit memos back for inbound sync:
QboAdapter.read_payments, read_invoices, read_credit_notes and changed_documents against the
QuickBooks emulator, over real HTTP through python-quickbooks' session.

Invoices are pushed with the adapter's own push; payments are pushed by it too, or made by
the sandbox's bookkeeper ("Receive payment" across invoices, delete, void); credit memos are
the bookkeeper's (issued for an invoice or a customer, applied by a zero Payment, written
off, voided). Amounts come back as Decimals to the cent; the cursor rules are
changed_contacts' (see test_changed_contacts.py). Request counts come from the sandbox's
counters.
"""

import datetime
import inspect
import re
from decimal import Decimal

import pytest
import requests
from adapter_support import Meter
from qbo_support import QboPush
from xero_support import XeroClock

from billing_sync.services.ledger import qbo as qbo_adapter
from billing_sync.services.ledger import qbo_payloads
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
from billing_sync.services.ledger.qbo import QboAdapter

UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
QUERY = "POST /v3/company/{realmId}/query"
CDC = "GET /v3/company/{realmId}/cdc"
ZERO = Decimal("0.00")


def _d(text):
    return Decimal(text)


@pytest.fixture
def push(qbo_sandbox):
    return QboPush(qbo_sandbox)


# --------------------------------------------------------------------------- helpers
def _id(push, entity, name):
    field = "DisplayName" if entity == "Customer" else "Name"
    return next(r["Id"] for r in push.ledger().all(entity) if r.get(field) == name)


def _customer(push, name="Payer Ltd"):
    values = {"name": name, "email": None, "phone": None, "tax_id": None, "street": None,
              "street2": None, "city": None, "zip": None, "state": None, "country_code": None,
              "is_company": True, "term_ref": None, "currency": None}
    (result,) = push.push("contact", [PushItem(f"res.partner,{name}", "contact", values)],
                          f"c-{name}")
    assert result.ok, result.error
    return result.ledger_id


def _invoices(push, customer_id, *amounts, key="inv"):
    """Invoices of one untaxed line each ("No VAT": their total is the amount), pushed."""
    no_vat = _id(push, "TaxCode", "No VAT")
    items = []
    for n, amount in enumerate(amounts):
        line = {"description": "Work", "quantity": 1.0, "unit_price": amount, "discount": 0.0,
                "item_ref": None, "item_code": None, "account_ref": None, "account_code": None,
                "tax_ref": no_vat, "tracking": [], "line_total": amount}
        items.append(PushItem(f"account.move,{key}{n}", "invoice", {
            "number": f"INV/{key}/{n}", "date": "2026-03-02", "due_date": "2026-04-01",
            "currency": "GBP", "contact_ref": customer_id, "reference": None,
            "approved": True, "term_ref": None, "lines": [line], "amount_untaxed": amount,
            "amount_tax": 0.0, "amount_total": amount}))
    results = push.push("invoice", items, key)
    assert all(r.ok for r in results), [r.error for r in results]
    return results


def _pay(push, invoice_id, amount, key, reference, bank=None):
    """A payment of ``amount`` to one invoice, pushed as Odoo sends it (into ``bank``)."""
    (result,) = push.push("payment", [PushItem(f"account.payment,{key}", "payment", {
        "invoice_ref": invoice_id, "amount": amount, "date": "2026-03-10",
        "bank_account_ref": bank, "bank_account_code": None, "reference": reference,
        "currency": "GBP"})], key)
    assert result.ok, result.error
    return result.ledger_id


def _payments(push, ids):
    return push.adapter.read_payments(push.token, push.realm, ids)


def _read(push, ids):
    return push.adapter.read_invoices(push.token, push.realm, ids)


def _changed(push, since):
    return push.adapter.changed_documents(push.token, push.realm, since)


def _stamp(push, entity, ledger_id):
    """The MetaData.LastUpdatedTime QuickBooks holds, as updated_at says it."""
    return utc_timestamp(push.ledger().get(entity, ledger_id)["MetaData"]["LastUpdatedTime"])


def _clock(push):
    clock = XeroClock()  # any controllable clock: the sandbox stamps MetaData to the second
    push.app.clock = clock
    return clock


def _cursor(moment):
    return utc_timestamp(moment)


def _later(cursor, **delta):
    moment = datetime.datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ")
    return _cursor(moment + datetime.timedelta(**delta))


def _store(push, entity, body):
    """An object put straight into the realm's store (through its entity rules, not the
    API, no webhook): its Id."""
    ledger = push.app.ledgers[push.realm]
    with push.app.lock:
        row = ledger.create(entity, body)
        ledger.events.clear()
    return row["Id"]


def _store_invoice(push, customer_id, amount):
    no_vat = _id(push, "TaxCode", "No VAT")
    return _store(push, "Invoice", {
        "CustomerRef": {"value": customer_id},
        "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"TaxCodeRef": {"value": no_vat}}}]})


def _store_payment(push, customer_id, amount):
    """A payment on account (applied to nothing): it changes no invoice."""
    return _store(push, "Payment", {"CustomerRef": {"value": customer_id},
                                    "TotalAmt": amount, "Line": []})


# =========================================================================== the contract
def test_the_contract_declares_the_document_reads_once():
    for name, parameter in (("read_payments", "ids"), ("read_invoices", "ids"),
                            ("read_credit_notes", "ids"), ("changed_documents", "since")):
        assert getattr(QboAdapter, name) is not getattr(LedgerAdapter, name)
        assert (list(inspect.signature(getattr(QboAdapter, name)).parameters)
                == list(inspect.signature(getattr(LedgerAdapter, name)).parameters)
                == ["self", "access_token", "org_id", parameter])
        with pytest.raises(NotImplementedError):
            getattr(LedgerAdapter, name)(None, "token", "org", None)
    changes = DocumentChanges({}, {}, None)
    assert (changes.deleted_payments, changes.complete, changes.full_read) == ((), True, False)
    assert changes.credit_notes == {}


def test_parsing_without_http():
    row = {"Id": "7", "CustomerRef": {"value": "3", "name": "Payer Ltd"},
           "TxnDate": "2026-03-12", "TotalAmt": 175.5, "UnappliedAmt": 25,
           "CurrencyRef": {"value": "GBP", "name": "British Pound Sterling"},
           "PaymentRefNum": "BACS 77", "PrivateNote": "Paid early",
           "Line": [{"Amount": 100, "LinkedTxn": [{"TxnId": "11", "TxnType": "Invoice"}]},
                    {"Amount": 0.1, "LinkedTxn": [{"TxnId": "12", "TxnType": "Invoice"}]},
                    {"Amount": 50.4, "LinkedTxn": [{"TxnId": "12", "TxnType": "Invoice"}]}]}
    values = qbo_payloads.payment_values(row)
    assert values == {"contact_id": "3", "date": "2026-03-12", "total": _d("175.50"),
                      "allocations": {"11": _d("100.00"), "12": _d("50.50")},
                      "unapplied": _d("25.00"), "currency": "GBP", "account_id": None,
                      "account_code": None, "reference": "BACS 77", "deleted": False,
                      "credits": {}}
    assert list(values["allocations"]) == ["11", "12"]  # QuickBooks' order
    assert all(a.as_tuple().exponent == -2 for a in values["allocations"].values())
    # float digits, not their binary expansion
    assert qbo_payloads.read_amount(0.1 + 0.2) == _d("0.30")
    assert qbo_payloads.read_amount("3") == _d("3.00")
    # no UnappliedAmt: 0; no DepositToAccountRef: None (QuickBooks' Undeposited Funds)
    bare = qbo_payloads.payment_values({"TotalAmt": 10, "DepositToAccountRef": {"value": "4"}})
    assert (bare["unapplied"], bare["account_id"], bare["allocations"]) == (ZERO, "4", {})

    # a credit application: a zero Payment whose invoice line its credit memo line matches
    credit = qbo_payloads.payment_values({
        "TotalAmt": 0, "PrivateNote": "Credit note 5001 applied; not a void",
        "Line": [{"Amount": 30, "LinkedTxn": [{"TxnId": "11", "TxnType": "Invoice"}]},
                 {"Amount": 30, "LinkedTxn": [{"TxnId": "2", "TxnType": "CreditMemo"}]}]})
    assert (credit["allocations"], credit["credits"], credit["total"], credit["deleted"]) == (
        {"11": _d("30.00")}, {"2": _d("30.00")}, ZERO, False)
    # voided: zeroed, "Voided" before its memo: deleted, allocating nothing
    voided = qbo_payloads.payment_values({**row, "TotalAmt": 0, "UnappliedAmt": 0,
                                          "PrivateNote": "Voided - Paid early"})
    assert (voided["deleted"], voided["allocations"], voided["total"]) == (True, {}, ZERO)

    for broken in ({**row, "TotalAmt": None}, {**row, "TotalAmt": "lots"},
                   {**row, "UnappliedAmt": "NaN"},
                   {**row, "Line": [{"Amount": 5, "LinkedTxn": [
                       {"TxnId": "11", "TxnType": "Invoice"},
                       {"TxnId": "12", "TxnType": "Invoice"}]}]}):
        with pytest.raises(ValueError):
            qbo_payloads.payment_values(broken)

    invoice = {"Id": "11", "DocNumber": "INV/1", "TotalAmt": 100, "Balance": 40,
               "LinkedTxn": [{"TxnId": "7", "TxnType": "Payment"},
                             {"TxnId": "9", "TxnType": "Estimate"},
                             {"TxnId": "8", "TxnType": "Payment"}]}
    assert qbo_payloads.invoice_values(invoice) == {
        "status": "open", "total": _d("100.00"), "amount_due": _d("40.00"),
        "payment_ids": ("7", "8"), "number": "INV/1"}
    assert qbo_payloads.invoice_values({**invoice, "Balance": 0})["status"] == "paid"
    assert qbo_payloads.invoice_values({**invoice, "TotalAmt": 0, "Balance": 0})["status"] \
        == "open"  # a zero invoice nothing voided
    assert qbo_payloads.invoice_values({**invoice, "TotalAmt": 0, "Balance": 0,
                                        "PrivateNote": "Voided"})["status"] == "voided"
    with pytest.raises(ValueError):
        qbo_payloads.invoice_values({**invoice, "Balance": None})


# =========================================================================== read_payments
def test_a_full_and_a_partial_payment_read_back(push):
    customer = _customer(push)
    big, small = _invoices(push, customer, 500.0, 200.0, key="fp")
    bank = _id(push, "Account", "Business Bank Account")
    full = _pay(push, small.ledger_id, 200.0, "fp-pay", "PBNK1/2026/00001", bank=bank)
    partial = push.app.apply_payment(big.ledger_id, amount=120.5, txn_date="2026-03-11",
                                     reference="CHQ 0042")["Id"]
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    read = _payments(push, [full, int(partial)])
    assert push.api_requests() == {QUERY: 1} and meter.calls == [False]
    assert read == {
        full: PaymentState(full, customer, "2026-03-10", _d("200.00"),
                           {small.ledger_id: _d("200.00")}, ZERO, currency="GBP",
                           account_id=bank, reference="PBNK1/2026/00001",
                           updated_at=_stamp(push, "Payment", full)),
        # received in QuickBooks with no account: Undeposited Funds, which it names not
        partial: PaymentState(partial, customer, "2026-03-11", _d("120.50"),
                              {big.ledger_id: _d("120.50")}, ZERO, currency="GBP",
                              account_id=None, reference="CHQ 0042",
                              updated_at=_stamp(push, "Payment", partial))}
    assert UTC_SECOND.match(read[full].updated_at)
    assert read[full].account_code is None and not read[partial].deleted

    push.reset_counters()
    invoices = _read(push, [big.ledger_id, small.ledger_id])
    assert push.api_requests() == {QUERY: 1}
    assert invoices == {
        big.ledger_id: InvoiceState(big.ledger_id, "open", _d("500.00"), _d("379.50"),
                                    (partial,), number=big.number,
                                    updated_at=_stamp(push, "Invoice", big.ledger_id)),
        small.ledger_id: InvoiceState(small.ledger_id, "paid", _d("200.00"), ZERO, (full,),
                                      number=small.number,
                                      updated_at=_stamp(push, "Invoice", small.ledger_id))}
    assert big.number == "INV/fp/0"


def test_one_payment_across_two_invoices_with_an_unapplied_remainder(push):
    customer = _customer(push)
    first, second = (r.ledger_id for r in _invoices(push, customer, 100.0, 80.0, key="mx"))
    bank = _id(push, "Account", "Business Bank Account")
    # the bookkeeper's "Receive payment", through the control API
    answer = requests.post(f"{push.server.url}/_sandbox/bookkeeper/receive_payment", json={
        "customer_id": customer, "lines": {first: 100, second: 50.5}, "unapplied": 25,
        "reference": "BACS 77", "account_id": bank, "txn_date": "2026-03-12"}, timeout=5)
    assert answer.status_code == 200, answer.text
    payment = answer.json()["Id"]
    assert answer.json()["UnappliedAmt"] == 25 and answer.json()["TotalAmt"] == 175.5

    state = _payments(push, [payment])[payment]
    assert state.allocations == {first: _d("100.00"), second: _d("50.50")}
    assert list(state.allocations) == [first, second]
    assert (state.unapplied, state.total) == (_d("25.00"), _d("175.50"))
    assert state.total == sum(state.allocations.values()) + state.unapplied
    assert (state.account_id, state.reference, state.date, state.contact_id) == (
        bank, "BACS 77", "2026-03-12", customer)
    invoices = _read(push, [first, second])
    assert (invoices[first].status, invoices[first].amount_due) == ("paid", ZERO)
    assert (invoices[second].status, invoices[second].amount_due) == ("open", _d("29.50"))
    assert invoices[first].payment_ids == invoices[second].payment_ids == (payment,)

    # a credit memo applied to the rest: QuickBooks' zero Payment, its credit line in credits
    issued = push.app.issue_credit_note(second, amount=29.5)
    applied, memo = issued["Payment"]["Id"], issued["CreditMemo"]["Id"]
    credit = _payments(push, [applied])[applied]
    assert (credit.total, credit.allocations, credit.unapplied, credit.deleted) == (
        ZERO, {second: _d("29.50")}, ZERO, False)
    assert credit.credits == {memo: _d("29.50")}
    after = _read(push, [second])[second]
    assert (after.status, after.payment_ids) == ("paid", (payment, applied))


def test_a_deleted_payment_is_gone_and_cdc_says_so(push):
    clock = _clock(push)
    customer = _customer(push)
    (invoice,), (spare,) = (_invoices(push, customer, 300.0, key="del"),
                            _invoices(push, customer, 10.0, key="del-b"))
    invoice = invoice.ledger_id
    kept = push.app.apply_payment(invoice, amount=100)["Id"]
    gone = push.app.apply_payment(invoice, amount=50)["Id"]
    assert _read(push, [invoice])[invoice].payment_ids == (kept, gone)
    clock.advance(minutes=2)
    since = _cursor(clock.now)
    clock.advance(seconds=30)
    push.app.delete_payment(gone)
    with push.app.lock:  # QuickBooks deletes invoices too (a bookkeeper here)
        ledger = push.app.ledgers[push.realm]
        ledger.delete("Invoice", {"Id": spare.ledger_id, "SyncToken": ledger.read(
            "Invoice", spare.ledger_id)["SyncToken"]})
        ledger.events.clear()

    # a query does not list a deleted payment: simply absent
    assert set(_payments(push, [kept, gone])) == {kept}
    assert _read(push, [spare.ledger_id]) == {}
    state = _read(push, [invoice])[invoice]
    assert (state.payment_ids, state.amount_due, state.status) == ((kept,), _d("200.00"),
                                                                   "open")
    push.reset_counters()
    changes = _changed(push, since)
    assert push.api_requests() == {CDC: 1}
    assert (changes.complete, changes.full_read) == (True, False)
    assert changes.deleted_payments == (gone,) and changes.payments == {}
    # the invoice the deletion reopened, as read_invoices reads it; the one deleted, said so
    assert changes.invoices == {
        invoice: state,
        spare.ledger_id: InvoiceState(spare.ledger_id, "deleted", ZERO, ZERO,
                                      updated_at=_later(since, seconds=30))}
    assert changes.cursor == state.updated_at == _later(since, seconds=30)


def test_a_voided_payment_and_a_voided_invoice(push):
    customer = _customer(push)
    first, second = (r.ledger_id for r in _invoices(push, customer, 100.0, 60.0, key="vd"))
    pushed = _pay(push, first, 100.0, "vd-pay", "PBNK1/2026/00009")
    answer = requests.post(f"{push.server.url}/_sandbox/bookkeeper/void_payment",
                           json={"payment_id": pushed}, timeout=5)
    assert answer.status_code == 200, answer.text
    # QuickBooks keeps it, zeroed, and puts "Voided" before the memo it had
    stored = push.ledger().get("Payment", pushed)
    assert stored["PrivateNote"] == "Voided - PBNK1/2026/00009" and stored["TotalAmt"] == 0
    assert [line["Amount"] for line in stored["Line"]] == [0]
    state = _payments(push, [pushed])[pushed]
    assert state == PaymentState(pushed, customer, "2026-03-10", ZERO, {}, ZERO,
                                 currency="GBP", reference="PBNK1/2026/00009", deleted=True,
                                 updated_at=_stamp(push, "Payment", pushed))
    reopened = _read(push, [first])[first]
    assert (reopened.status, reopened.amount_due, reopened.payment_ids) == (
        "open", _d("100.00"), ())

    # a voided invoice: zeroed; the payment on it becomes the customer's credit
    on_second = push.app.apply_payment(second, amount=20)["Id"]
    push.app.void_invoice(second)
    assert _read(push, [second]) == {second: InvoiceState(
        second, "voided", ZERO, ZERO, (), number="INV/vd/1",
        updated_at=_stamp(push, "Invoice", second))}
    unapplied = _payments(push, [on_second])[on_second]
    assert (unapplied.allocations, unapplied.unapplied, unapplied.total, unapplied.deleted) == (
        {}, _d("20.00"), _d("20.00"), False)


def test_unknown_ids_are_absent_and_60_ids_take_2_queries(push):
    customer = _customer(push)
    invoices = [r.ledger_id for r in _invoices(push, customer, 50.0, 70.0, key="many")]
    payments = [push.app.apply_payment(i, amount=10)["Id"] for i in invoices]
    for ids, entity, read in ((payments, "Payment", _payments), (invoices, "Invoice", _read)):
        top = max(int(r["Id"]) for r in push.ledger().all(entity))
        asked = [*ids, *(str(top + 1000 + n) for n in range(58)), None, "", ids[0]]
        assert len({a for a in asked if a}) == 60
        meter = Meter()
        push.adapter.meter = meter
        push.reset_counters()
        found = read(push, asked)
        assert push.api_requests() == {QUERY: 2}  # 50 ids a query
        assert meter.calls == [False, False]  # queries: requests, not batches
        assert list(found) == ids
    push.reset_counters()
    assert _payments(push, [None, "", " "]) == {} and _read(push, []) == {}
    assert push.api_requests() == {}  # nothing that can be an Id: no request at all


# =========================================================================== changed_documents
def test_changes_are_listed_by_cdc_from_the_cursor(push):
    clock = _clock(push)
    customer = _customer(push)
    first, second = (r.ledger_id for r in _invoices(push, customer, 100.0, 80.0, key="cd"))
    early = push.app.apply_payment(first, amount=40)["Id"]
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    pulled = _changed(push, None)
    # CDC looks back 30 days at most: a first pull reads each entity by a query
    assert push.api_requests() == {QUERY: 3} and meter.calls == [False, False, False]
    assert isinstance(pulled, DocumentChanges)
    assert (pulled.complete, pulled.full_read, pulled.deleted_payments) == (True, True, ())
    assert pulled.payments == _payments(push, [early])
    assert pulled.invoices == _read(push, [first, second])
    assert pulled.cursor == pulled.payments[early].updated_at == _stamp(push, "Invoice", first)

    clock.advance(minutes=3)
    late = push.app.receive_payment(lines={second: 30}, reference="BACS 9")["Id"]
    meter.calls.clear()
    push.reset_counters()
    changes = _changed(push, pulled.cursor)
    assert push.api_requests() == {CDC: 1} and meter.calls == [False]
    assert (changes.complete, changes.full_read) == (True, False)
    # inclusive to the second: what changed within the cursor's own second comes again
    assert set(changes.payments) == {early, late} and set(changes.invoices) == {first, second}
    assert changes.payments == _payments(push, [early, late])
    assert changes.invoices == _read(push, [first, second])
    assert changes.payments[early] == pulled.payments[early]
    assert changes.cursor == changes.payments[late].updated_at == _later(pulled.cursor,
                                                                          minutes=3)

    # a void later: the invoice voided and the payment it set free
    clock.advance(minutes=3)
    push.app.void_invoice(first)
    voided = _changed(push, changes.cursor)
    assert set(voided.payments) == {late, early} and set(voided.invoices) == {second, first}
    assert voided.invoices[first].status == "voided"
    assert (voided.payments[early].allocations, voided.payments[early].unapplied) == (
        {}, _d("40.00"))
    assert voided.cursor == _later(changes.cursor, minutes=3)

    # nothing changed since: nothing listed, the cursor handed back unchanged
    clock.advance(minutes=1)
    since = _cursor(clock.now)
    push.reset_counters()
    assert _changed(push, since) == DocumentChanges({}, {}, since)
    assert push.api_requests() == {CDC: 1}


def test_a_first_pull_or_an_old_cursor_is_a_full_read(push):
    now = XeroClock()
    clock = _clock(push)
    customer = _customer(push)
    clock.now = now.now - datetime.timedelta(days=50)
    ancient = _store_invoice(push, customer, 10)
    clock.now = now.now - datetime.timedelta(days=35)
    old = _store_invoice(push, customer, 20)
    on_account = _store_payment(push, customer, 15)
    deleted = _store_payment(push, customer, 5)
    with push.app.lock:
        ledger = push.app.ledgers[push.realm]
        ledger.delete("Payment", {"Id": deleted, "SyncToken": "0"})
        ledger.events.clear()
    clock.now = now.now
    (recent,) = (r.ledger_id for r in _invoices(push, customer, 30.0, key="recent"))
    since = _cursor(now.now - datetime.timedelta(days=40))
    push.reset_counters()
    changes = _changed(push, since)
    assert push.api_requests() == {QUERY: 3}  # no CDC request at all
    assert (changes.complete, changes.full_read) == (True, True)
    assert changes.invoices == _read(push, [old, recent]) and ancient not in changes.invoices
    assert changes.payments == _payments(push, [on_account])
    assert changes.payments[on_account].unapplied == _d("15.00")
    assert changes.deleted_payments == ()  # a query cannot see a deletion
    assert changes.cursor == changes.invoices[recent].updated_at

    everything = _changed(push, None)
    assert set(everything.invoices) == {ancient, old, recent} and everything.full_read
    assert everything.cursor == changes.cursor


def test_full_pages_bound_the_cursor_by_the_entity_read_least_far(push, monkeypatch):
    """A page of 3 here (1,000 in QuickBooks): the payments fill theirs at an earlier change
    than the invoices do, so the cursor stops there; the invoices read beyond it come again
    from it."""
    monkeypatch.setattr(qbo_adapter, "PAGE", 3)
    clock = _clock(push)
    customer = _customer(push)
    clock.advance(seconds=10)
    invoices, payments = [], []
    for make, out, amount in ((_store_invoice, invoices, 10), (_store_invoice, invoices, 20),
                              *((_store_payment, payments, 5 + n) for n in range(4)),
                              (_store_invoice, invoices, 30)):
        out.append(make(push, customer, amount))
        clock.advance(seconds=1)
    paid = [_stamp(push, "Payment", i) for i in payments]
    billed = [_stamp(push, "Invoice", i) for i in invoices]
    assert sorted({*paid, *billed}) == [*billed[:2], *paid, billed[2]]  # a second apart
    push.reset_counters()
    first = _changed(push, None)
    assert push.api_requests() == {QUERY: 3}
    assert (first.complete, first.full_read) == (False, True)
    assert set(first.payments) == set(payments[:3]) and set(first.invoices) == set(invoices)
    assert first.cursor == paid[2] < billed[2]

    push.reset_counters()
    rest = _changed(push, first.cursor)  # within 30 days: CDC
    assert push.api_requests() == {CDC: 1}
    assert (rest.complete, rest.full_read) == (True, False)
    assert set(rest.payments) == set(payments[2:]) and set(rest.invoices) == {invoices[2]}
    assert rest.cursor == billed[2]

    # CDC answering its ceiling (3 here) may have left some out: the queries read instead
    monkeypatch.setattr(qbo_adapter, "CDC_MAX", 3)
    push.reset_counters()
    capped = _changed(push, first.cursor)
    assert push.api_requests() == {CDC: 1, QUERY: 3}
    assert capped == rest


# =========================================================================== errors
def test_errors_are_what_a_push_raises(push):
    clock = _clock(push)
    customer = _customer(push)
    (invoice,) = (r.ledger_id for r in _invoices(push, customer, 90.0, key="err"))
    payment = push.app.apply_payment(invoice, amount=9)["Id"]
    since = _cursor(clock.now)
    for call in (lambda: _payments(push, [payment]), lambda: _read(push, [invoice]),
                 lambda: _changed(push, since), lambda: _changed(push, None)):
        push.app.faults.next("http429")
        push.reset_counters()
        with pytest.raises(RateLimited) as limited:
            call()
        assert limited.value.retry_after == 60
        assert sum(push.api_requests().values()) == 1  # not retried

    # an answer QuickBooks documents otherwise: said, never read as a zero
    with push.app.lock:
        push.ledger().get("Payment", payment)["TotalAmt"] = "lots"
    with pytest.raises(LedgerAnswerInvalid) as garbled:
        _payments(push, [payment])
    assert f"Payment {payment}" in str(garbled.value)
    assert "Reading QuickBooks payments" in str(garbled.value)

    push.reset_counters()
    with pytest.raises(ValueError):
        _changed(push, "last tuesday")
    assert push.api_requests() == {}

    push.token = "not-a-token-intuit-issued"
    with pytest.raises(AccessTokenExpired) as refused:
        _read(push, [invoice])
    assert refused.value.status == 401 and "Reading QuickBooks invoices" in str(refused.value)
    with pytest.raises(AccessTokenExpired) as listing:
        _changed(push, since)
    assert "Listing changed QuickBooks payments, invoices and credit memos" in str(
        listing.value)
    with pytest.raises(AccessTokenExpired):
        push.adapter.read_payments(None, push.realm, [payment])  # refused before sending


# =========================================================================== credit memos
def _notes(push, ids):
    return push.adapter.read_credit_notes(push.token, push.realm, ids)


def _taxed_invoice(push, customer_id, key):
    """An invoice of two lines, pushed: 100.00 of "Consulting hours" at VAT 20% and 50.00 of
    "Hardware" at 0%: 150.00 net, 20.00 VAT, 170.00."""
    vat, zero = _id(push, "TaxCode", "20.0% S"), _id(push, "TaxCode", "0.0% Z")
    lines = [{"description": description, "quantity": 1.0, "unit_price": amount,
              "discount": 0.0, "item_ref": _id(push, "Item", item), "item_code": None,
              "account_ref": None, "account_code": None, "tax_ref": code, "tracking": [],
              "line_total": amount, "tax_amount": tax}
             for description, item, code, amount, tax in (
                 ("Consulting, March", "Consulting hours", vat, 100.0, 20.0),
                 ("Cables", "Hardware", zero, 50.0, 0.0))]
    (result,) = push.push("invoice", [PushItem(f"account.move,{key}", "invoice", {
        "number": f"INV/{key}", "date": "2026-03-02", "due_date": "2026-04-01",
        "currency": "GBP", "contact_ref": customer_id, "reference": None, "approved": True,
        "term_ref": None, "lines": lines, "amount_untaxed": 150.0, "amount_tax": 20.0,
        "amount_total": 170.0})], key)
    assert result.ok, result.error
    assert result.totals == {"total": 170.0, "tax": 20.0, "amount_due": 170.0}
    return result.ledger_id


def _memo(push, memo_id):
    """The CreditMemo the sandbox holds."""
    return push.ledger().get("CreditMemo", memo_id)


def test_credit_memos_parsed_without_http():
    row = {"Id": "4", "DocNumber": "5004", "TxnDate": "2026-03-20",
           "CustomerRef": {"value": "3", "name": "Payer Ltd"},
           "CurrencyRef": {"value": "GBP", "name": "British Pound Sterling"},
           "PrivateNote": "Returned cables", "GlobalTaxCalculation": "TaxExcluded",
           "TotalAmt": 170.1, "Balance": 45.5, "RemainingCredit": 45.5,
           "TxnTaxDetail": {"TotalTax": 20, "TaxLine": []},
           "Line": [
               {"Id": "1", "LineNum": 1, "Description": "Consulting", "Amount": 100,
                "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {
                    "ItemRef": {"value": "2", "name": "Consulting hours"},
                    "TaxCodeRef": {"value": "1"}, "Qty": 1, "UnitPrice": 100}},
               {"Id": "2", "LineNum": 2, "Amount": 50.1, "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {"TaxCodeRef": {"value": "3"}}},
               {"Amount": 0, "Description": "Thank you", "DetailType": "DescriptionOnly",
                "DescriptionLineDetail": {}},
               {"Amount": 150.1, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]}
    values = qbo_payloads.credit_note_values(row)
    assert values == {
        "contact_id": "3", "status": "open", "total": _d("170.10"), "tax": _d("20.00"),
        "remaining": _d("45.50"), "allocations": {}, "date": "2026-03-20", "number": "5004",
        "reference": "Returned cables", "currency": "GBP",
        "lines": (CreditLine("Consulting", _d("100.00"), ZERO, item_id="2", tax_ref="1"),
                  CreditLine(None, _d("50.10"), ZERO, tax_ref="3"))}
    assert all(line.account_id is None and line.account_code is None
               for line in values["lines"])
    state = CreditNoteState("4", **values)
    assert (state.ledger_id, state.updated_at) == ("4", None)

    # RemainingCredit (Intuit's "credit amount still available") decides; Balance only
    # stands in for it where QuickBooks sends none
    assert qbo_payloads.credit_note_values({**row, "RemainingCredit": 0})["status"] == "paid"
    assert qbo_payloads.credit_note_values({**row, "Balance": 0})["remaining"] == _d("45.50")
    alone = {k: v for k, v in row.items() if k != "RemainingCredit"}
    assert qbo_payloads.credit_note_values(alone)["remaining"] == _d("45.50")
    # no tax detail, no note: 0 and None; a zero memo nothing voided is open
    bare = qbo_payloads.credit_note_values({**row, "TxnTaxDetail": None, "PrivateNote": " "})
    assert (bare["tax"], bare["reference"]) == (ZERO, None)
    assert qbo_payloads.credit_note_values(
        {**row, "TotalAmt": 0, "RemainingCredit": 0, "Balance": 0})["status"] == "open"
    voided = qbo_payloads.credit_note_values({**row, "TotalAmt": 0, "RemainingCredit": 0,
                                              "PrivateNote": "Voided - Returned cables"})
    assert (voided["status"], voided["reference"]) == ("voided", "Voided - Returned cables")
    # tax included in the line amounts: QuickBooks says no line's share, so the lines are
    # as given and the tax is the memo's only
    inclusive = qbo_payloads.credit_note_values({**row, "GlobalTaxCalculation": "TaxInclusive",
                                                 "TotalAmt": 150.1})
    assert [(line.net, line.tax) for line in inclusive["lines"]] == [
        (_d("100.00"), ZERO), (_d("50.10"), ZERO)]
    assert inclusive["tax"] == _d("20.00")

    without_both = {k: v for k, v in alone.items() if k != "Balance"}
    for broken in ({**row, "TotalAmt": None}, {**row, "TotalAmt": "lots"}, without_both,
                   {**row, "TxnTaxDetail": {"TotalTax": "NaN"}},
                   {**row, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": None}]}):
        with pytest.raises(ValueError):
            qbo_payloads.credit_note_values(broken)

    # a payment line names one invoice or one credit memo, never both
    with pytest.raises(ValueError):
        qbo_payloads.payment_values({"TotalAmt": 0, "Line": [{"Amount": 5, "LinkedTxn": [
            {"TxnId": "11", "TxnType": "Invoice"}, {"TxnId": "2", "TxnType": "CreditMemo"}]}]})
    # credit used from two memos, one of them on two lines: summed per memo, in order
    used = qbo_payloads.payment_values({"TotalAmt": 10, "Line": [
        {"Amount": 40, "LinkedTxn": [{"TxnId": "11", "TxnType": "Invoice"}]},
        {"Amount": 20, "LinkedTxn": [{"TxnId": "3", "TxnType": "CreditMemo"}]},
        {"Amount": 5, "LinkedTxn": [{"TxnId": "2", "TxnType": "CreditMemo"}]},
        {"Amount": 5.5, "LinkedTxn": [{"TxnId": "3", "TxnType": "CreditMemo"}]},
        {"Amount": 9, "LinkedTxn": [{"TxnId": "8", "TxnType": "JournalEntry"}]}]})
    assert used["credits"] == {"3": _d("25.50"), "2": _d("5.00")}
    assert list(used["credits"]) == ["3", "2"] and used["allocations"] == {"11": _d("40.00")}


def test_a_credit_memo_issued_for_an_invoice_and_applied(push):
    customer = _customer(push)
    invoice = _taxed_invoice(push, customer, "cm-full")
    # the bookkeeper credits the whole invoice: its lines copied, applied by a zero Payment
    issued = push.app.issue_credit_note(invoice, memo="Cancelled order")
    memo, payment = issued["CreditMemo"]["Id"], issued["Payment"]["Id"]
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    read = _notes(push, [memo])
    assert push.api_requests() == {QUERY: 1} and meter.calls == [False]
    stored = _memo(push, memo)
    assert read == {memo: CreditNoteState(
        memo, customer, "paid", _d("170.00"), _d("20.00"), ZERO,
        lines=(CreditLine("Consulting, March", _d("100.00"), ZERO,
                          item_id=_id(push, "Item", "Consulting hours"),
                          tax_ref=_id(push, "TaxCode", "20.0% S")),
               CreditLine("Cables", _d("50.00"), ZERO, item_id=_id(push, "Item", "Hardware"),
                          tax_ref=_id(push, "TaxCode", "0.0% Z"))),
        allocations={}, date=stored["TxnDate"], number=stored["DocNumber"],
        reference="Cancelled order", currency="GBP",
        updated_at=_stamp(push, "CreditMemo", memo))}
    state = read[memo]
    assert state.number == "5001" and UTC_SECOND.match(state.updated_at)
    assert sum(line.net for line in state.lines) + state.tax == state.total
    # QuickBooks' own subtotal line makes no CreditLine
    assert [line["DetailType"] for line in stored["Line"]] == [
        "SalesItemLineDetail", "SalesItemLineDetail", "SubTotalLineDetail"]

    # the payment that applied it: no money, the invoice paid by the memo's credit
    applying = _payments(push, [payment])[payment]
    assert applying == PaymentState(
        payment, customer, applying.date, ZERO, {invoice: _d("170.00")}, ZERO, currency="GBP",
        updated_at=_stamp(push, "Payment", payment), credits={memo: _d("170.00")})
    assert applying.total + sum(applying.credits.values()) \
        == sum(applying.allocations.values()) + applying.unapplied
    paid = _read(push, [invoice])[invoice]
    assert (paid.status, paid.amount_due, paid.payment_ids) == ("paid", ZERO, (payment,))


def test_an_unapplied_credit_memo_is_open_and_a_part_applied_one_too(push):
    customer = _customer(push)
    (invoice,) = (r.ledger_id for r in _invoices(push, customer, 100.0, key="cm-open"))
    # credit for the customer, applied to nothing: their credit
    memo = push.app.issue_credit_note(customer_id=customer, amount=40, apply=False)[
        "CreditMemo"]["Id"]
    no_vat, services = _id(push, "TaxCode", "No VAT"), _id(push, "Item", "Services")
    state = _notes(push, [memo])[memo]
    assert state == CreditNoteState(
        memo, customer, "open", _d("40.00"), ZERO, _d("40.00"),
        lines=(CreditLine(None, _d("40.00"), ZERO, item_id=services, tax_ref=no_vat),),
        date=_memo(push, memo)["TxnDate"], number=_memo(push, memo)["DocNumber"],
        currency="GBP", updated_at=_stamp(push, "CreditMemo", memo))
    assert state.reference is None and state.allocations == {}

    # 25 of it applied (a zero Payment, as QuickBooks' "Receive payment" with the credit
    # ticked): still open, 15 left
    applying = _store(push, "Payment", {"CustomerRef": {"value": customer}, "TotalAmt": 0,
                                        "Line": [
        {"Amount": 25, "LinkedTxn": [{"TxnId": invoice, "TxnType": "Invoice"}]},
        {"Amount": 25, "LinkedTxn": [{"TxnId": memo, "TxnType": "CreditMemo"}]}]})
    part = _notes(push, [memo])[memo]
    assert (part.status, part.total, part.remaining) == ("open", _d("40.00"), _d("15.00"))
    assert _payments(push, [applying])[applying].credits == {memo: _d("25.00")}
    assert _read(push, [invoice])[invoice].amount_due == _d("75.00")

    # tax included in the line (GlobalTaxCalculation TaxInclusive): 120.00 at 20%, of which
    # 20.00 VAT; the line's own share is not said: its amount as given, the tax the memo's
    inclusive = _store(push, "CreditMemo", {
        "CustomerRef": {"value": customer}, "GlobalTaxCalculation": "TaxInclusive",
        "Line": [{"Amount": 120, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {
            "ItemRef": {"value": services}, "TaxCodeRef": {"value": _id(push, "TaxCode",
                                                                       "20.0% S")}}}]})
    gross = _notes(push, [inclusive])[inclusive]
    assert (gross.total, gross.tax, gross.remaining, gross.status) == (
        _d("120.00"), _d("20.00"), _d("120.00"), "open")
    assert [(line.net, line.tax) for line in gross.lines] == [(_d("120.00"), ZERO)]


def test_a_write_off_is_a_bad_debt_credit_memo_applied(push):
    customer = _customer(push)
    (invoice,) = (r.ledger_id for r in _invoices(push, customer, 90.0, key="cm-wo"))
    cash = push.app.apply_payment(invoice, amount=30)["Id"]
    # over the control API, as a bookkeeper would: the 60.00 left, written off
    answer = requests.post(f"{push.server.url}/_sandbox/bookkeeper/write_off",
                           json={"invoice_id": invoice}, timeout=5)
    assert answer.status_code == 200, answer.text
    memo, payment = answer.json()["CreditMemo"]["Id"], answer.json()["Payment"]["Id"]
    state = _notes(push, [memo])[memo]
    assert state == CreditNoteState(
        memo, customer, "paid", _d("60.00"), ZERO, ZERO,
        lines=(CreditLine(None, _d("60.00"), ZERO, item_id=_id(push, "Item", "Bad Debt"),
                          tax_ref=_id(push, "TaxCode", "No VAT")),),
        date=_memo(push, memo)["TxnDate"], number=_memo(push, memo)["DocNumber"],
        reference=f"Bad debt write-off of invoice {invoice}", currency="GBP",
        updated_at=_stamp(push, "CreditMemo", memo))
    both = _payments(push, [cash, payment])
    assert (both[payment].total, both[payment].allocations, both[payment].credits) == (
        ZERO, {invoice: _d("60.00")}, {memo: _d("60.00")})
    assert (both[cash].total, both[cash].allocations, both[cash].credits) == (
        _d("30.00"), {invoice: _d("30.00")}, {})
    written = _read(push, [invoice])[invoice]
    assert (written.status, written.amount_due, written.payment_ids) == (
        "paid", ZERO, (cash, payment))


def test_a_voided_credit_memo(push):
    customer = _customer(push)
    (invoice,) = (r.ledger_id for r in _invoices(push, customer, 100.0, key="cm-void"))
    issued = push.app.issue_credit_note(invoice, amount=30, memo="Goodwill")
    memo, payment = issued["CreditMemo"]["Id"], issued["Payment"]["Id"]
    assert _read(push, [invoice])[invoice].amount_due == _d("70.00")
    answer = requests.post(f"{push.server.url}/_sandbox/bookkeeper/void_credit_note",
                           json={"memo_id": memo}, timeout=5)
    assert answer.status_code == 200, answer.text
    # QuickBooks keeps it, zeroed, "Voided" before its memo
    stored = _memo(push, memo)
    assert stored["PrivateNote"] == "Voided - Goodwill"
    assert (stored["TotalAmt"], stored["RemainingCredit"], stored["Balance"]) == (0, 0, 0)
    state = _notes(push, [memo])[memo]
    assert state == CreditNoteState(
        memo, customer, "voided", ZERO, ZERO, ZERO,
        lines=(CreditLine(None, ZERO, ZERO, item_id=_id(push, "Item", "Services"),
                          tax_ref=_id(push, "TaxCode", "No VAT")),),
        date=stored["TxnDate"], number=stored["DocNumber"], reference="Voided - Goodwill",
        currency="GBP", updated_at=_stamp(push, "CreditMemo", memo))
    # its credit is unapplied: the invoice reopens, the zero payment applies nothing now
    reopened = _read(push, [invoice])[invoice]
    assert (reopened.status, reopened.amount_due, reopened.payment_ids) == (
        "open", _d("100.00"), ())
    emptied = _payments(push, [payment])[payment]
    assert (emptied.total, emptied.allocations, emptied.credits, emptied.unapplied) == (
        ZERO, {}, {}, ZERO)

    # the API's own void (operation=void), on a memo applied to nothing
    spare = push.app.issue_credit_note(customer_id=customer, amount=12, apply=False)[
        "CreditMemo"]
    answer = requests.post(
        f"{push.server.url}/v3/company/{push.realm}/creditmemo",
        params={"operation": "void", "minorversion": 75},
        json={"Id": spare["Id"], "SyncToken": spare["SyncToken"]},
        headers={"Authorization": f"Bearer {push.token}", "Accept": "application/json"},
        timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["CreditMemo"]["PrivateNote"] == "Voided"
    voided = _notes(push, [spare["Id"]])[spare["Id"]]
    assert (voided.status, voided.total, voided.remaining, voided.reference) == (
        "voided", ZERO, ZERO, "Voided")


def test_unknown_memo_ids_are_absent_and_60_ids_take_2_queries(push):
    customer = _customer(push)
    memos = [push.app.issue_credit_note(customer_id=customer, amount=5 + n, apply=False)[
        "CreditMemo"]["Id"] for n in range(2)]
    top = max(int(r["Id"]) for r in push.ledger().all("CreditMemo"))
    asked = [*memos, *(str(top + 1000 + n) for n in range(58)), None, "", memos[0]]
    assert len({a for a in asked if a}) == 60
    meter = Meter()
    push.adapter.meter = meter
    push.reset_counters()
    found = _notes(push, asked)
    assert push.api_requests() == {QUERY: 2}  # 50 ids a query
    assert meter.calls == [False, False]
    assert list(found) == memos
    assert [found[m].total for m in memos] == [_d("5.00"), _d("6.00")]
    # a deleted memo is gone: absent, as an Id QuickBooks never knew
    with push.app.lock:
        ledger = push.app.ledgers[push.realm]
        ledger.delete("CreditMemo", {"Id": memos[1], "SyncToken": _memo(push, memos[1])[
            "SyncToken"]})
        ledger.events.clear()
    assert list(_notes(push, memos)) == [memos[0]]
    push.reset_counters()
    assert _notes(push, [None, "", " "]) == {} and _notes(push, []) == {}
    assert push.api_requests() == {}  # nothing that can be an Id: no request at all


def test_changed_credit_memos_by_cdc_and_by_a_full_read(push):
    clock = _clock(push)
    customer = _customer(push)
    first, second = (r.ledger_id for r in _invoices(push, customer, 100.0, 80.0, key="cmc"))
    applied = push.app.issue_credit_note(first, amount=30)
    kept, application = applied["CreditMemo"]["Id"], applied["Payment"]["Id"]
    spare = push.app.issue_credit_note(customer_id=customer, amount=15, apply=False)[
        "CreditMemo"]["Id"]
    push.reset_counters()
    pulled = _changed(push, None)
    # a first pull: one query per entity, credit memos included
    assert push.api_requests() == {QUERY: 3}
    assert (pulled.complete, pulled.full_read) == (True, True)
    assert pulled.credit_notes == _notes(push, [kept, spare])
    assert pulled.credit_notes[kept].status == "paid"
    assert pulled.payments[application].credits == {kept: _d("30.00")}
    assert pulled.cursor == _stamp(push, "CreditMemo", spare)

    clock.advance(minutes=2)
    since = _cursor(clock.now)
    clock.advance(seconds=30)
    # the applied memo deleted (its invoice reopens), the spare one voided, a new one issued
    with push.app.lock:
        ledger = push.app.ledgers[push.realm]
        ledger.delete("CreditMemo", {"Id": kept, "SyncToken": _memo(push, kept)["SyncToken"]})
        ledger.events.clear()
    push.app.void_credit_note(spare)
    clock.advance(seconds=30)
    fresh = push.app.issue_credit_note(second, amount=20)
    new, new_payment = fresh["CreditMemo"]["Id"], fresh["Payment"]["Id"]
    push.reset_counters()
    changes = _changed(push, since)
    assert push.api_requests() == {CDC: 1}
    assert (changes.complete, changes.full_read) == (True, False)
    assert changes.credit_notes == {
        kept: CreditNoteState(kept, None, "deleted", ZERO, ZERO, ZERO,
                              updated_at=_later(since, seconds=30)),
        **_notes(push, [spare, new])}
    assert changes.credit_notes[spare].status == "voided"
    assert changes.credit_notes[new].status == "paid"
    # what the deletion and the new memo changed: the payments and invoices, as read
    assert changes.payments == _payments(push, [application, new_payment])
    assert changes.payments[application].credits == {}
    assert changes.invoices == _read(push, [first, second])
    assert changes.invoices[first].amount_due == _d("100.00")
    assert changes.cursor == _later(since, minutes=1) == changes.credit_notes[new].updated_at

    # a query cannot see a deletion: a full read lists the memos QuickBooks still has
    everything = _changed(push, None)
    assert everything.full_read and everything.credit_notes == _notes(push, [spare, new])
    assert kept not in everything.credit_notes

    # nothing changed since: nothing listed, the cursor handed back
    clock.advance(minutes=1)
    quiet = _cursor(clock.now)
    assert _changed(push, quiet) == DocumentChanges({}, {}, quiet)


def test_credit_memo_errors_are_what_a_push_raises(push):
    clock = _clock(push)
    customer = _customer(push)
    memo = push.app.issue_credit_note(customer_id=customer, amount=9, apply=False)[
        "CreditMemo"]["Id"]
    since = _cursor(clock.now)
    for call in (lambda: _notes(push, [memo]), lambda: _changed(push, since)):
        push.app.faults.next("http429")
        push.reset_counters()
        with pytest.raises(RateLimited) as limited:
            call()
        assert limited.value.retry_after == 60
        assert sum(push.api_requests().values()) == 1  # not retried

    # an answer QuickBooks documents otherwise: said, never read as a zero
    with push.app.lock:
        push.ledger().get("CreditMemo", memo)["TotalAmt"] = "lots"
    for call, what in ((lambda: _notes(push, [memo]), "Reading QuickBooks credit memos"),
                       (lambda: _changed(push, since), "Listing changed QuickBooks")):
        with pytest.raises(LedgerAnswerInvalid) as garbled:
            call()
        assert f"CreditMemo {memo}" in str(garbled.value) and what in str(garbled.value)

    push.token = "not-a-token-intuit-issued"
    with pytest.raises(AccessTokenExpired) as refused:
        _notes(push, [memo])
    assert refused.value.status == 401


def test_full_pages_of_credit_memos_bound_the_cursor_too(push, monkeypatch):
    """A page of 3 here: four memos changed before the one invoice; the memos fill their
    page first, so the cursor stops at the third memo and the invoice comes again."""
    monkeypatch.setattr(qbo_adapter, "PAGE", 3)
    clock = _clock(push)
    customer = _customer(push)
    clock.advance(seconds=10)
    memos = []
    for n in range(4):
        memos.append(push.app.issue_credit_note(customer_id=customer, amount=10 + n,
                                                apply=False)["CreditMemo"]["Id"])
        clock.advance(seconds=1)
    invoice = _store_invoice(push, customer, 50)
    stamps = [_stamp(push, "CreditMemo", m) for m in memos]
    push.reset_counters()
    first = _changed(push, None)
    assert push.api_requests() == {QUERY: 3}
    assert (first.complete, first.full_read) == (False, True)
    assert set(first.credit_notes) == set(memos[:3]) and invoice in first.invoices
    assert first.cursor == stamps[2] < _stamp(push, "Invoice", invoice)
    rest = _changed(push, first.cursor)  # within 30 days: CDC
    assert (rest.complete, rest.full_read) == (True, False)
    assert set(rest.credit_notes) == set(memos[2:]) and invoice in rest.invoices
    assert rest.cursor == _stamp(push, "Invoice", invoice)
