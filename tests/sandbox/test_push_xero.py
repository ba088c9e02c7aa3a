"""Xero push layer (issue 6): XeroAdapter.push / find_contacts against the emulator.

Everything runs over real HTTP through xero-python against the Xero sandbox; request counts
come from the sandbox's counters (accounting endpoints only).
"""

import datetime

import pytest
from xero_support import XeroPush

from billing_sync.services.ledger import xero_payloads as payloads
from billing_sync.services.ledger.base import PushItem
from billing_sync.services.ledger.errors import (
    AccessTokenExpired,
    LedgerRejected,
    LedgerUnavailable,
    RateLimited,
)
from billing_sync.services.ledger.xero import XeroAdapter

TAX = "OUTPUT2"  # GST 15 % on income in the seed


@pytest.fixture
def push(xero_sandbox):
    return XeroPush(xero_sandbox)


def _contact(name, **values):
    return {"name": name, "email": None, "phone": None, "tax_id": None, "street": None,
            "street2": None, "city": None, "zip": None, "state": None, "country_code": None,
            "is_company": True, "term_ref": None, "currency": None, **values}


def _line(price, quantity=1.0, discount=0.0, tax=TAX, tracking=(), item_code=None,
          account_code="200"):
    total = round(price * quantity * (1 - discount / 100.0), 2)
    return {"description": f"Work at {price}", "quantity": quantity, "unit_price": price,
            "discount": discount, "item_ref": None, "item_code": item_code,
            "account_ref": None, "account_code": account_code, "tax_ref": tax,
            "tracking": list(tracking), "line_total": total}


def _document(contact_id, number, lines, rate=0.15, **extra):
    untaxed = round(sum(ln["line_total"] for ln in lines), 2)
    tax = round(sum(round(ln["line_total"] * rate, 2) for ln in lines), 2)
    return {"number": number, "date": "2026-03-02", "due_date": "2026-04-01", "currency": "NZD",
            "contact_ref": contact_id, "reference": "Proposal S00042", "approved": True,
            "term_ref": None, "lines": lines, "amount_untaxed": untaxed, "amount_tax": tax,
            "amount_total": round(untaxed + tax, 2), **extra}


def _customer(push, name="Client Ltd", **values):
    (result,) = push.push("contact", [PushItem(f"res.partner,{name}", "contact",
                                               _contact(name, **values))], f"c-{name}")
    assert result.ok, result.error
    return result.ledger_id


def _invoices(push, contact_id, *prices, key="inv"):
    items = [PushItem(f"account.move,{key}{n}", "invoice",
                      _document(contact_id, f"INV/{key}/{n}", [_line(price)]))
             for n, price in enumerate(prices)]
    results = push.push("invoice", items, key)
    assert all(r.ok for r in results), [r.error for r in results]
    return results


# --------------------------------------------------------------------------- contacts
def test_contacts_created_in_one_request_then_updated(push):
    items = [
        PushItem("res.partner,1", "contact", _contact(
            "Acme Ltd", email="billing@acme.test", phone="+64 9 123 4567", tax_id="NZ-111",
            street="1 Queen St", street2="Level 2", city="Auckland", zip="1010",
            state="Auckland", country_code="NZ", term_ref="DAYSAFTERBILLDATE:20",
            currency="NZD")),
        PushItem("res.partner,2", "contact", _contact("Beta Ltd", email="ap@beta.test")),
        PushItem("res.partner,3", "contact", _contact("Gamma Ltd")),
    ]
    push.reset_counters()
    results = push.push("contact", items, "contacts-1")
    assert push.api_requests() == {"POST Contacts": 1}
    assert [r.ok for r in results] == [True, True, True]
    assert [r.key for r in results] == ["res.partner,1", "res.partner,2", "res.partner,3"]
    acme = push.ledger().contacts[results[0].ledger_id]
    assert acme["Name"] == "Acme Ltd" and acme["EmailAddress"] == "billing@acme.test"
    assert acme["TaxNumber"] == "NZ-111"
    assert acme["PaymentTerms"] == {"Sales": {"Day": 20, "Type": "DAYSAFTERBILLDATE"}}
    assert acme["Addresses"][0]["City"] == "Auckland"
    assert acme["Phones"][0]["PhoneNumber"] == "+64 9 123 4567"
    assert results[0].url == f"https://go.xero.com/Contacts/View/{results[0].ledger_id}"
    assert results[0].version

    # one update and one create share a request; the update keeps its ContactID
    update = PushItem("res.partner,2", "contact",
                      _contact("Beta Limited", email="accounts@beta.test"),
                      ledger_id=results[1].ledger_id)
    new = PushItem("res.partner,4", "contact", _contact("Delta Ltd"))
    push.reset_counters()
    again = push.push("contact", [update, new], "contacts-2")
    assert push.api_requests() == {"POST Contacts": 1}
    assert again[0].ok and again[0].ledger_id == results[1].ledger_id
    beta = push.ledger().contacts[results[1].ledger_id]
    assert (beta["Name"], beta["EmailAddress"]) == ("Beta Limited", "accounts@beta.test")
    assert again[1].ok and again[1].ledger_id not in {r.ledger_id for r in results}
    assert len(push.ledger().contacts) == 4


def test_contact_refusals_are_per_item(push):
    _customer(push, "Taken Ltd")
    items = [PushItem("res.partner,1", "contact", _contact("Fine Ltd")),
             PushItem("res.partner,2", "contact", _contact("Taken Ltd")),   # Xero refuses
             PushItem("res.partner,3", "contact", _contact("Bad Mail Ltd", email="nope")),
             PushItem("res.partner,4", "contact", _contact("Euro Ltd", currency="XXX")),
             PushItem("res.partner,5", "contact", _contact(""))]            # never sent
    push.reset_counters()
    results = push.push("contact", items, "contacts-bad")
    assert push.api_requests() == {"POST Contacts": 1}
    assert [r.ok for r in results] == [True, False, False, False, False]
    assert "already assigned to another contact" in str(results[1].error)
    assert isinstance(results[1].error, LedgerRejected) and results[1].error.details
    assert "Email address must be valid" in str(results[2].error)
    assert "currency" in str(results[3].error)
    assert "needs a name" in str(results[4].error)


# --------------------------------------------------------------------------- invoices
def test_full_invoice_batch_is_one_request(push):
    contact_id = _customer(push)
    department = {"ledger_id": None, "category": "Department", "option": "Advisory"}
    region = {"ledger_id": None, "category": "Region", "option": "North"}
    items = [PushItem(f"account.move,{n}", "invoice", _document(contact_id, f"INV/2026/{n:04d}", [
        _line(1234.5678, quantity=3, discount=10.0, tracking=[department, region],
              item_code="CONSULT-HR"),
        _line(99.99, account_code="210"),
    ])) for n in range(50)]
    push.reset_counters()
    results = push.push("invoice", items, "invoices-50")
    assert push.api_requests() == {"POST Invoices": 1}  # 0.02 requests per invoice
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert all(r.error is None for r in results)      # totals agree with Odoo's
    first = push.ledger().invoices[results[0].ledger_id]
    assert results[0].number == first["InvoiceNumber"] == "INV/2026/0000"
    assert results[0].url.endswith(f"InvoiceID={results[0].ledger_id}")
    assert first["Status"] == "AUTHORISED" and first["Type"] == "ACCREC"
    assert first["Reference"] == "Proposal S00042"
    assert first["Date"] == "2026-03-02" and first["DueDate"] == "2026-04-01"
    line = first["LineItems"][0]
    assert line["ItemCode"] == "CONSULT-HR" and line["AccountCode"] == "200"
    assert line["TaxType"] == TAX and line["DiscountRate"] == 10.0
    assert line["UnitAmount"] == 1234.5678                 # unitdp=4
    assert line["LineAmount"] == round(1234.5678 * 3 * 0.9, 2)
    assert {(t["Name"], t["Option"]) for t in line["Tracking"]} == {
        ("Department", "Advisory"), ("Region", "North")}
    assert first["Total"] == items[0].values["amount_total"]


def test_invoice_updated_while_unpaid(push):
    contact_id = _customer(push)
    (created,) = _invoices(push, contact_id, 100.0)
    values = _document(contact_id, "INV/inv/0", [_line(100.0), _line(50.0)],
                       reference="Proposal S00043")
    push.reset_counters()
    (updated,) = push.push("invoice", [PushItem("account.move,inv0", "invoice", values,
                                                ledger_id=created.ledger_id)], "inv-upd")
    assert push.api_requests() == {"POST Invoices": 1}
    assert updated.ok and updated.ledger_id == created.ledger_id
    invoice = push.ledger().invoices[created.ledger_id]
    assert invoice["Reference"] == "Proposal S00043" and invoice["Total"] == 172.5
    assert len(push.ledger().invoices) == 1


def test_batch_with_one_invalid_invoice(push):
    contact_id = _customer(push)
    items = [
        PushItem("account.move,1", "invoice", _document(contact_id, "INV/1", [_line(10.0)])),
        PushItem("account.move,2", "invoice",
                 _document(contact_id, "INV/2", [_line(10.0, tax="NOSUCHTAX")])),
        PushItem("account.move,3", "invoice", _document(contact_id, "INV/3", [_line(30.0)])),
        PushItem("account.move,4", "invoice", _document(None, "INV/4", [_line(30.0)])),
    ]
    push.reset_counters()
    results = push.push("invoice", items, "inv-mixed")
    assert push.api_requests() == {"POST Invoices": 1}
    assert [r.ok for r in results] == [True, False, True, False]
    assert "TaxType code 'NOSUCHTAX' does not exist" in results[1].error.message
    assert "not in Xero yet" in results[3].error.message
    numbers = sorted(i["InvoiceNumber"] for i in push.ledger().invoices.values())
    assert numbers == ["INV/1", "INV/3"]


def test_same_idempotency_key_twice_creates_once(push):
    contact_id = _customer(push)
    items = [PushItem(f"account.move,{n}", "invoice",
                      _document(contact_id, f"INV/{n}", [_line(10.0 * (n + 1))]))
             for n in range(3)]
    first = push.push("invoice", items, "the-same-key")
    second = push.push("invoice", items, "the-same-key")   # a retry after a lost answer
    assert [r.ledger_id for r in first] == [r.ledger_id for r in second]
    assert all(r.ok for r in second)
    assert len(push.ledger().invoices) == 3
    # contacts too
    one = push.push("contact", [PushItem("res.partner,9", "contact", _contact("Once Ltd"))], "k")
    two = push.push("contact", [PushItem("res.partner,9", "contact", _contact("Once Ltd"))], "k")
    assert one[0].ok and two[0].ok and one[0].ledger_id == two[0].ledger_id


# --------------------------------------------------------------------------- credit notes
def test_credit_note_allocated_to_its_invoice(push):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 200.0)                  # total 230.00
    values = _document(contact_id, "RINV/0001", [_line(40.0)])       # total 46.00
    values["allocations"] = [{"invoice_ref": invoice.ledger_id, "amount": 46.0,
                              "date": "2026-03-05"}]
    item = PushItem("account.move,cn1", "credit_note", values)
    push.reset_counters()
    (result,) = push.push("credit_note", [item], "cn-1")
    # the invoice's amount due is read first: an allocation never exceeds it
    assert push.api_requests() == {"POST CreditNotes": 1, "GET Invoices": 1,
                                   "PUT CreditNotes/{id}/Allocations": 1}
    assert result.ok and result.error is None, result.error
    assert result.number == "RINV/0001"
    assert "ViewCreditNote.aspx?creditNoteID=" in result.url
    note = push.ledger().credit_notes[result.ledger_id]
    assert note["Status"] == "PAID" and note["RemainingCredit"] == 0
    assert push.ledger().invoices[invoice.ledger_id]["AmountDue"] == 184.0

    # the same call again (a retry after a crash): both answers replayed, nothing doubled
    push.reset_counters()
    (again,) = push.push("credit_note", [item], "cn-1")
    # the creation's answer is replayed (no allocation in it): the allocation is asked
    # again under its own key, and Xero replays that answer too
    assert push.api_requests() == {"POST CreditNotes": 1, "GET Invoices": 1,
                                   "PUT CreditNotes/{id}/Allocations": 1}
    assert again.ok and again.ledger_id == result.ledger_id
    assert push.ledger().invoices[invoice.ledger_id]["AmountCredited"] == 46.0
    assert len(push.ledger().credit_notes) == 1


def test_credit_note_update_allocates_only_what_is_missing(push):
    contact_id = _customer(push)
    (invoice,) = _invoices(push, contact_id, 200.0)
    values = _document(contact_id, "RINV/0002", [_line(40.0)])
    (created,) = push.push("credit_note", [PushItem("account.move,cn", "credit_note",
                                                    dict(values, allocations=[]))], "cn-a")
    values["allocations"] = [{"invoice_ref": invoice.ledger_id, "amount": 20.0,
                              "date": "2026-03-05"}]
    push.reset_counters()
    (updated,) = push.push("credit_note", [PushItem("account.move,cn", "credit_note", values,
                                                    ledger_id=created.ledger_id)], "cn-b")
    assert push.api_requests() == {"GET CreditNotes": 1, "POST CreditNotes": 1,
                                   "GET Invoices": 1, "PUT CreditNotes/{id}/Allocations": 1}
    assert updated.ok and updated.error is None and updated.ledger_id == created.ledger_id
    assert push.ledger().credit_notes[created.ledger_id]["RemainingCredit"] == 26.0
    # allocated, the same total: not edited again (Xero would refuse), nothing missing
    push.reset_counters()
    (same,) = push.push("credit_note", [PushItem("account.move,cn", "credit_note", values,
                                                 ledger_id=created.ledger_id)], "cn-c")
    assert push.api_requests() == {"GET CreditNotes": 1}
    assert same.ok and not same.incomplete and same.error is None
    # another total: Xero refuses to edit an allocated credit note, in words
    changed = dict(values, lines=[_line(30.0)], amount_total=34.5)
    (locked,) = push.push("credit_note", [PushItem("account.move,cn", "credit_note", changed,
                                                   ledger_id=created.ledger_id)], "cn-d")
    assert not locked.ok and "cannot be edited" in locked.error.message


def test_credit_note_batch_allocation_refused_keeps_the_note(push):
    contact_id = _customer(push)
    (small,) = _invoices(push, contact_id, 10.0)                     # total 11.50
    notes = []
    for n, amount in enumerate((46.0, 5.75)):
        values = _document(contact_id, f"RINV/{n}", [_line(40.0 if n == 0 else 5.0)])
        values["allocations"] = [{"invoice_ref": small.ledger_id, "amount": amount,
                                  "date": "2026-03-05"}]
        notes.append(PushItem(f"account.move,cn{n}", "credit_note", values))
    push.reset_counters()
    results = push.push("credit_note", notes, "cn-batch")
    assert push.api_requests() == {"POST CreditNotes": 1, "GET Invoices": 1,
                                   "PUT CreditNotes/{id}/Allocations": 1}
    # the first takes what is due (capped, so incomplete, with both figures); nothing is
    # left for the second: both credit notes are in Xero, neither job is done
    assert results[0].ok and results[0].incomplete
    assert "46.00" in str(results[0].error) and "11.50" in str(results[0].error)
    assert results[1].ok and results[1].incomplete and "0.00 due" in str(results[1].error)
    assert push.ledger().invoices[small.ledger_id]["AmountDue"] == 0


# --------------------------------------------------------------------------- payments
def test_full_and_partial_payments_in_one_request(push):
    contact_id = _customer(push)
    full, partial = _invoices(push, contact_id, 100.0, 200.0)       # 115.00 and 230.00
    items = [
        PushItem("account.payment,1", "payment", {
            "invoice_ref": full.ledger_id, "amount": 115.0, "date": "2026-03-10",
            "bank_account_ref": None, "bank_account_code": "090", "reference": "PBNK1/1",
            "currency": "NZD"}),
        PushItem("account.payment,2", "payment", {
            "invoice_ref": partial.ledger_id, "amount": 30.0, "date": "2026-03-10",
            "bank_account_ref": push.ledger().account_by_code("090")["AccountID"],
            "bank_account_code": None, "reference": "PBNK1/2", "currency": "NZD"}),
        PushItem("account.payment,3", "payment", {
            "invoice_ref": partial.ledger_id, "amount": 9999.0, "date": "2026-03-10",
            "bank_account_ref": None, "bank_account_code": "090", "reference": "too much",
            "currency": "NZD"}),
    ]
    push.reset_counters()
    results = push.push("payment", items, "pay-1")
    assert push.api_requests() == {"PUT Payments": 1}
    assert [(r.ok, r.incomplete) for r in results] == [(True, False), (True, False),
                                                       (False, False)]
    # more than is due: sent as Odoo has it, refused by Xero, said; nothing half-booked
    assert "exceeds the amount outstanding" in results[2].error.message
    assert not results[2].ledger_id
    assert results[0].url.endswith(f"InvoiceID={full.ledger_id}")
    assert results[0].parts == {full.ledger_id: results[0].ledger_id}
    assert push.ledger().payments[results[0].ledger_id]["Reference"] == "PBNK1/1"
    assert push.ledger().invoices[full.ledger_id]["Status"] == "PAID"
    assert push.ledger().invoices[partial.ledger_id]["AmountDue"] == 200.0

    # a payment already in Xero is not sent again (Xero cannot edit payments)
    push.reset_counters()
    (same,) = push.push("payment", [PushItem("account.payment,1", "payment", items[0].values,
                                             ledger_id=results[0].ledger_id)], "pay-2")
    assert same.ok and same.ledger_id == results[0].ledger_id
    assert push.api_requests() == {}


# --------------------------------------------------------------------------- void
def test_void_invoices_in_one_request(push):
    contact_id = _customer(push)
    first, second, paid = _invoices(push, contact_id, 10.0, 20.0, 30.0)
    push.ledger().create_payment({"Invoice": {"InvoiceID": paid.ledger_id}, "Amount": 5.0,
                                  "Account": {"Code": "090"}, "Date": "2026-03-03"})
    items = [PushItem(f"account.move,{n}", "void_invoice", {}, ledger_id=r.ledger_id)
             for n, r in enumerate((first, second, paid))]
    items.append(PushItem("account.move,9", "void_invoice", {}))        # never reached Xero
    push.reset_counters()
    results = push.push("void_invoice", items, "void-1")
    assert push.api_requests() == {"POST Invoices": 1}
    assert [r.ok for r in results] == [True, True, False, False]
    assert push.ledger().invoices[first.ledger_id]["Status"] == "VOIDED"
    assert push.ledger().invoices[second.ledger_id]["Status"] == "VOIDED"
    assert "payment or credit note allocated" in results[2].error.message
    assert "nothing to void" in results[3].error.message


# --------------------------------------------------------------------------- failures
def test_429_raises_rate_limited_without_sdk_retry(push):
    contact_id = _customer(push)
    push.app.faults.next("http429", 1, retry_after=7, problem="minute")
    push.reset_counters()
    with pytest.raises(RateLimited) as caught:
        _invoices(push, contact_id, 10.0)
    assert caught.value.retry_after == 7 and caught.value.problem == "minute"
    # a GET (which urllib3 would retry after Retry-After by itself) is not retried either
    push.app.faults.next("http429", 1, retry_after=30, problem="daily")
    with pytest.raises(RateLimited) as caught:
        push.find_contacts([{"key": "k", "tax_id": None, "email": None, "name": "X"}])
    assert caught.value.retry_after == 30 and caught.value.problem == "daily"
    assert push.api_requests() == {"POST Invoices": 1, "GET Contacts": 1}
    assert push.adapter.last_headroom == {"minute_remaining": 0, "day_remaining": None}


@pytest.mark.parametrize("kind", ["http500", "http503", "reset"])
def test_server_failures_raise_unavailable_once(push, kind):
    contact_id = _customer(push)
    push.app.faults.next(kind, 1)
    push.reset_counters()
    with pytest.raises(LedgerUnavailable):
        _invoices(push, contact_id, 10.0)
    push.app.faults.next(kind, 1)
    with pytest.raises(LedgerUnavailable):
        push.find_contacts([{"key": "k", "tax_id": None, "email": None, "name": "X"}])
    requests = push.api_requests()
    assert sum(requests.values()) == 2, requests   # no retry by the SDK's urllib3 pool


def test_hang_hits_the_adapter_timeout(push):
    contact_id = _customer(push)
    push.adapter.timeout = 0.5
    push.app.configure(hang_seconds=3.0)
    push.app.faults.next("hang", 1)
    started = datetime.datetime.now()
    with pytest.raises(LedgerUnavailable):
        _invoices(push, contact_id, 10.0)
    assert (datetime.datetime.now() - started).total_seconds() < 2.5


def test_expired_token_raises(push):
    push.app.faults.next("http401", 1)
    with pytest.raises(AccessTokenExpired):
        push.push("contact", [PushItem("res.partner,1", "contact", _contact("A"))], "k401")


def test_headroom_reported_after_a_push(push):
    _customer(push)
    headroom = push.adapter.last_headroom
    assert headroom["minute_remaining"] is not None and headroom["minute_remaining"] < 60
    assert headroom["day_remaining"] is not None and headroom["day_remaining"] < 5000


# --------------------------------------------------------------------------- find_contacts
def test_find_contacts_by_tax_id_email_then_name_in_one_request(push):
    by_tax = _customer(push, "Tax Match Ltd", tax_id="NZ-123", email="shared@x.test")
    by_mail = _customer(push, "Mail Match Ltd", email="ap@mail.test")
    by_name = _customer(push, "Name Match Ltd")
    candidates = [
        # tax id wins over an email that belongs to another contact
        {"key": "p1", "tax_id": "nz-123", "email": "AP@mail.test", "name": "Other"},
        {"key": "p2", "tax_id": "NZ-999", "email": "ap@MAIL.test", "name": "Name Match Ltd"},
        {"key": "p3", "tax_id": None, "email": None, "name": "name match ltd"},
        {"key": "p4", "tax_id": "NZ-000", "email": "no@one.test", "name": "Nobody"},
        {"key": "p5", "tax_id": None, "email": None, "name": 'Quote "Ltd" \\ Co'},
    ]
    push.reset_counters()
    found = push.find_contacts(candidates)
    assert push.api_requests() == {"GET Contacts": 1}
    assert found == {"p1": by_tax, "p2": by_mail, "p3": by_name}


def test_find_contacts_for_a_full_batch_takes_few_requests(push):
    items = [PushItem(f"res.partner,{n}", "contact", _contact(
        f"Client number {n:03d} Limited", email=f"accounts.payable{n:03d}@client{n:03d}.test",
        tax_id=f"NZ-{n:09d}")) for n in range(50)]
    created = push.push("contact", items, "fifty")
    candidates = [{"key": it.key, "tax_id": it.values["tax_id"], "email": it.values["email"],
                   "name": it.values["name"]} for it in items]
    push.reset_counters()
    found = push.find_contacts(candidates)
    assert push.api_requests()["GET Contacts"] <= 2
    assert found == {it.key: r.ledger_id for it, r in zip(items, created, strict=True)}


# --------------------------------------------------------------------------- pure mapping
def test_payloads_without_http():
    contact = payloads.contact(_contact("A", email=" a@b.test ", term_ref="OFFOLLOWINGMONTH",
                                        term_days=20, country_code="NZ"))
    assert contact.email_address == "a@b.test" and contact.contact_id is None
    assert contact.payment_terms.sales.day == 20
    assert contact.addresses[0].country == "NZ"
    assert payloads.payment_terms("DAYSAFTERBILLDATE") is None      # no day: left alone
    with pytest.raises(payloads.PayloadError):
        payloads.payment_terms("NEXTTUESDAY:3")
    update = payloads.contact(_contact("A"), ledger_id="abc")
    assert update.contact_id == "abc" and update.email_address == ""   # cleared in Xero
    line = payloads.line_item(_line(10.123456, discount=5.0, tracking=[
        {"ledger_id": "opt-id", "category": None, "option": None}], account_code=None)
        | {"account_ref": "acc-id"})
    assert (line.unit_amount, line.discount_rate, line.account_id) == (10.1235, 5.0, "acc-id")
    assert line.tracking[0].tracking_option_id == "opt-id"
    with pytest.raises(payloads.PayloadError):
        payloads.invoice(_document("c", "N", [_line(1.0)], date="03/02/2026"))
    note = _document("c", "CN", [_line(1.0)])
    note["allocations"] = [{"invoice_ref": "i1", "amount": 1.15, "date": "2026-03-05"},
                           {"invoice_ref": "i2", "amount": 2.0, "date": None}]
    body = payloads.allocations(note, already={"I1": 1.15})
    assert [a.invoice.invoice_id for a in body.allocations] == ["i2"]
    assert body.allocations[0].date == datetime.date(2026, 3, 2)
    assert payloads.allocations(note, already={"i1": 1.15, "i2": 2.0}) is None
    # what is left of an allocation, capped at the invoice's amount due
    (left,) = payloads.allocations(note, already={"i1": 1.0}, due={"i1": 0.1, "i2": 0}
                                   ).allocations
    assert (left.invoice.invoice_id, left.amount) == ("i1", 0.1)
    clauses = payloads.where_clauses([{"key": "k", "tax_id": "T", "email": None,
                                       "name": 'A "B"'}])
    assert clauses == ['TaxNumber=="T" OR Name=="A \\"B\\""']
    many = [{"key": str(n), "tax_id": None, "email": None, "name": "x" * 100 + str(n)}
            for n in range(100)]
    assert all(len(c) <= payloads.MAX_WHERE_CHARS for c in payloads.where_clauses(many))
    assert payloads.match_contacts(
        [{"key": "k", "tax_id": None, "email": None, "name": "  acme   LTD "}],
        [{"ContactID": "1", "TaxNumber": "", "EmailAddress": "", "Name": "Acme Ltd"}],
    ) == {"k": "1"}


def test_adapter_contract_constants():
    adapter = XeroAdapter("id", "secret", "http://127.0.0.1:9/x", "http://127.0.0.1:9",
                          allowed_endpoints="127.0.0.1:9")
    assert {XeroAdapter.batch_size(k) for k in ("contact", "invoice", "credit_note",
                                                 "payment", "void_invoice")} == {50}
    assert XeroAdapter.LIMITS == {"per_minute": 60, "per_day": 5000, "concurrent": 5,
                                  "batch_per_minute": None, "per_second": None}
    assert adapter.web_url("invoice", "i", "org") == \
        "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=i"
    assert adapter.web_url("contact", "c", "org") == "https://go.xero.com/Contacts/View/c"
    assert adapter.web_url("credit_note", "n", "org") == \
        "https://go.xero.com/AccountsReceivable/ViewCreditNote.aspx?creditNoteID=n"
    assert adapter.web_url("payment", "p", "org") is None
    assert adapter.web_url("contact", None, "org") is None
    with pytest.raises(ValueError):
        adapter.push("t", "o", "contact", [PushItem(str(n), "contact", {}) for n in range(51)],
                     "k")
