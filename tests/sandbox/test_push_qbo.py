"""QuickBooks Online push layer (issue 6): QboAdapter.push / find_contacts against the emulator.

Everything runs over real HTTP through python-quickbooks' own session against the QBO sandbox;
request counts come from the sandbox's counters (API endpoints only: /v3/...).
"""

import pytest
from qbo_support import QboPush

from billing_sync.services.ledger import qbo_payloads as payloads
from billing_sync.services.ledger.base import PushItem
from billing_sync.services.ledger.errors import (
    AccessTokenExpired,
    LedgerRejected,
    LedgerUnavailable,
    RateLimited,
)
from billing_sync.services.ledger.qbo import QboAdapter

BATCH = "POST /v3/company/{realmId}/batch"
QUERY = "POST /v3/company/{realmId}/query"
# one object alone goes to its entity's endpoint: a request, not one of the 40 batches
CUSTOMER = "POST /v3/company/{realmId}/customer"
INVOICE = "POST /v3/company/{realmId}/invoice"
PAYMENT = "POST /v3/company/{realmId}/payment"


@pytest.fixture
def push(qbo_sandbox):
    return QboPush(qbo_sandbox)


def _id(push, entity, name):
    field = "DisplayName" if entity == "Customer" else "Name"
    return next(r["Id"] for r in push.ledger().all(entity) if r.get(field) == name)


def _contact(name, **values):
    return {"name": name, "email": None, "phone": None, "tax_id": None, "street": None,
            "street2": None, "city": None, "zip": None, "state": None, "country_code": None,
            "is_company": True, "term_ref": None, "currency": None, **values}


def _line(push, price, quantity=1.0, discount=0.0, tax="20.0% S", tracking=(), item=None):
    total = round(price * quantity * (1 - discount / 100.0), 2)
    return {"description": f"Work at {price}", "quantity": quantity, "unit_price": price,
            "discount": discount,
            "item_ref": _id(push, "Item", item) if item else None, "item_code": None,
            "account_ref": None, "account_code": None,
            "tax_ref": _id(push, "TaxCode", tax) if tax else None,
            "tracking": list(tracking), "line_total": total}


def _document(customer_id, number, lines, **extra):
    untaxed = round(sum(ln["line_total"] for ln in lines), 2)
    return {"number": number, "date": "2026-03-02", "due_date": "2026-04-01", "currency": "GBP",
            "contact_ref": customer_id, "reference": "Proposal S00042", "approved": True,
            "term_ref": None, "lines": lines, "amount_untaxed": untaxed,
            "amount_tax": round(untaxed * 0.2, 2), "amount_total": round(untaxed * 1.2, 2),
            **extra}


def _customer(push, name="Client Ltd"):
    (result,) = push.push("contact", [PushItem(f"res.partner,{name}", "contact",
                                               _contact(name))], f"c-{name}")
    assert result.ok, result.error
    return result.ledger_id


def _invoices(push, customer_id, *prices, key="inv"):
    items = [PushItem(f"account.move,{n}", "invoice",
                      _document(customer_id, f"INV/{key}/{n}", [_line(push, price, tax="No VAT")]))
             for n, price in enumerate(prices)]
    results = push.push("invoice", items, key)
    assert all(r.ok for r in results), [r.error for r in results]
    return results


# --------------------------------------------------------------------------- contacts
def test_contacts_created_in_one_request_then_updated(push):
    net30 = _id(push, "Term", "Net 30")
    items = [
        PushItem("res.partner,1", "contact", _contact(
            "Acme Ltd", email="billing@acme.test", phone="+44 20 1234", tax_id="GB123456789",
            street="1 High St", street2="Floor 2", city="London", zip="EC1A 1AA",
            country_code="GB", term_ref=net30)),
        PushItem("res.partner,2", "contact", _contact("Jane: Doe", is_company=False)),
    ]
    push.reset_counters()
    first, second = push.push("contact", items, "contacts-1")
    assert push.api_requests() == {BATCH: 1}
    assert first.ok and second.ok and first.version == "0"
    assert first.url == f"https://app.qbo.intuit.com/app/customerdetail?nameId={first.ledger_id}"
    acme = push.ledger().get("Customer", first.ledger_id)
    assert acme["PrimaryEmailAddr"] == {"Address": "billing@acme.test"}
    assert acme["BillAddr"]["Line2"] == "Floor 2" and acme["BillAddr"]["Country"] == "GB"
    assert acme["SalesTermRef"]["value"] == net30 and acme["CompanyName"] == "Acme Ltd"
    assert acme["PrimaryTaxIdentifier"] == "GB123456789"
    assert push.ledger().get("Customer", second.ledger_id)["DisplayName"] == "Jane- Doe"

    # update with the known SyncToken: one request; sparse, so a bookkeeper's note survives
    push.app.edit_contact(first.ledger_id, notes="VIP")
    push.reset_counters()
    (updated,) = push.push("contact", [PushItem(
        "res.partner,1", "contact", _contact("Acme Limited", email="ap@acme.test"),
        ledger_id=first.ledger_id, version="1")], "contacts-2")
    assert updated.ok and updated.version == "2" and push.api_requests() == {CUSTOMER: 1}
    acme = push.ledger().get("Customer", first.ledger_id)
    assert acme["DisplayName"] == "Acme Limited" and acme["Notes"] == "VIP"
    assert acme["PrimaryEmailAddr"]["Address"] == "ap@acme.test"

    # no SyncToken known: one query reads it first
    push.reset_counters()
    (again,) = push.push("contact", [PushItem("res.partner,2", "contact", _contact("Jane Doe"),
                                              ledger_id=second.ledger_id)], "contacts-3")
    assert again.ok and push.api_requests() == {QUERY: 1, CUSTOMER: 1}


def test_stale_sync_token_is_reread_and_reapplied_once(push):
    customer_id = _customer(push, "Stale Ltd")
    push.app.edit_contact(customer_id, email="someone@else.test")  # SyncToken 0 -> 1
    push.reset_counters()
    (result,) = push.push("contact", [PushItem(
        "res.partner,9", "contact", _contact("Stale Ltd", phone="0123"),
        ledger_id=customer_id, version="0")], "stale-1")
    assert result.ok and result.version == "2"
    # the update (5010), one query for the current SyncToken, the update again
    assert push.api_requests() == {CUSTOMER: 2, QUERY: 1}
    stored = push.ledger().get("Customer", customer_id)
    assert stored["PrimaryPhone"]["FreeFormNumber"] == "0123"

    # an invoice whose SyncToken moved because a payment was applied in QuickBooks, then
    # removed there (an invoice with a payment on it is never changed in place)
    (invoice,) = _invoices(push, customer_id, 100, key="stale-inv")
    payment = push.app.apply_payment(invoice.ledger_id, amount=40)
    values = _document(customer_id, "INV/stale-inv/0", [_line(push, 120, tax="No VAT")])
    item = PushItem("account.move,0", "invoice", values, ledger_id=invoice.ledger_id,
                    version=invoice.version)
    (refused,) = push.push("invoice", [item], "stale-2")
    assert not refused.ok and "not changed in place" in str(refused.error)
    push.app.delete_payment(payment["Id"])
    (updated,) = push.push("invoice", [item], "stale-3")
    assert updated.ok, updated.error
    assert push.ledger().get("Invoice", invoice.ledger_id)["Balance"] == 120


# --------------------------------------------------------------------------- invoices
def test_invoice_with_item_tax_tracking_and_discount(push):
    customer_id = _customer(push)
    consulting = _id(push, "Class", "Consulting")
    london = _id(push, "Department", "London")
    lines = [
        _line(push, 150.0, quantity=3, discount=10, item="Consulting hours",
              tracking=[{"ledger_id": f"Class:{consulting}", "category": "Class",
                         "option": "Consulting"},
                        {"ledger_id": f"Department:{london}", "category": "Department",
                         "option": "London"}]),
        _line(push, 2500.0, item="Monthly retainer", tax="5.0% R"),
    ]
    values = _document(customer_id, "INV/2026/0001", lines, reference="S00042 (retainer)")
    values["amount_tax"] = round(405 * 0.2 + 2500 * 0.05, 2)
    values["amount_total"] = round(405 + 2500 + values["amount_tax"], 2)
    push.reset_counters()
    (result,) = push.push("invoice", [PushItem("account.move,7", "invoice", values)], "inv-1")
    assert result.ok, result.error
    assert push.api_requests() == {INVOICE: 1}
    assert result.number == "INV/2026/0001"
    assert result.url == f"https://app.qbo.intuit.com/app/invoice?txnId={result.ledger_id}"
    invoice = push.ledger().get("Invoice", result.ledger_id)
    first = invoice["Line"][0]
    assert first["Amount"] == 405 and first["SalesItemLineDetail"]["Qty"] == 3
    assert first["SalesItemLineDetail"]["UnitPrice"] == 135
    assert first["SalesItemLineDetail"]["ClassRef"]["value"] == consulting
    assert first["SalesItemLineDetail"]["ItemRef"]["value"] == _id(push, "Item",
                                                                   "Consulting hours")
    assert invoice["DepartmentRef"]["value"] == london
    assert invoice["CustomerMemo"] == {"value": "S00042 (retainer)"}
    assert (invoice["TxnDate"], invoice["DueDate"]) == ("2026-03-02", "2026-04-01")
    assert invoice["TotalAmt"] == values["amount_total"]  # 405 + 81 + 2500 + 125


def test_full_batch_is_one_request(push):
    customer_id = _customer(push)
    push.reset_counters()
    results = _invoices(push, customer_id, *range(1, 31), key="thirty")
    assert len(results) == 30 and push.api_requests() == {BATCH: 1}
    assert len(push.ledger().all("Invoice")) == 30


def test_one_invalid_item_fails_alone_with_a_readable_message(push):
    customer_id = _customer(push, "Taken Ltd")
    contacts = push.push("contact", [
        PushItem("res.partner,1", "contact", _contact("Fresh Ltd")),
        PushItem("res.partner,2", "contact", _contact("TAKEN LTD")),
        PushItem("res.partner,3", "contact", _contact("Other Ltd")),
    ], "mixed-contacts")
    assert [r.ok for r in contacts] == [True, False, True]
    error = contacts[1].error
    assert isinstance(error, LedgerRejected) and "Duplicate Name Exists" in error.message
    assert error.details[0]["code"] == "6240"

    bad_tax = _line(push, 10, tax=None)
    bad_tax["tax_ref"] = "999"
    results = push.push("invoice", [
        PushItem("account.move,1", "invoice", _document(customer_id, "A-1", [_line(push, 10)])),
        PushItem("account.move,2", "invoice", _document(customer_id, "A-2", [bad_tax])),
        PushItem("account.move,3", "invoice", _document(None, "A-3", [_line(push, 10)])),
    ], "mixed-invoices")
    assert [r.ok for r in results] == [True, False, False]
    assert "Invalid Reference Id" in str(results[1].error) and "TaxCodeRef" in str(
        results[1].error)
    assert "not in QuickBooks yet" in str(results[2].error)
    assert len(push.ledger().all("Invoice")) == 1


def test_same_idempotency_key_twice_creates_once(push):
    customer_id = _customer(push)
    items = [PushItem(f"account.move,{n}", "invoice",
                      _document(customer_id, f"ONCE-{n}", [_line(push, 10 * (n + 1))]))
             for n in range(3)]
    first = push.push("invoice", items, "bs-invoice-once")
    again = push.push("invoice", items, "bs-invoice-once")
    assert [r.ledger_id for r in first] == [r.ledger_id for r in again]
    assert len(push.ledger().all("Invoice")) == 3
    # keys longer than Intuit's 36 characters for /batch are hashed, deterministically
    long_key = "bs-invoice-" + "f" * 40
    one = push.push("invoice", [PushItem("account.move,9", "invoice", _document(
        customer_id, "LONG-1", [_line(push, 5)]))], long_key)
    two = push.push("invoice", [PushItem("account.move,9", "invoice", _document(
        customer_id, "LONG-1", [_line(push, 5)]))], long_key)
    assert one[0].ok and one[0].ledger_id == two[0].ledger_id
    assert len(push.ledger().all("Invoice")) == 4


# --------------------------------------------------------------------------- credit notes
def test_credit_note_applied_to_its_invoice(push):
    customer_id = _customer(push)
    (invoice,) = _invoices(push, customer_id, 100, key="cn-inv")
    values = _document(customer_id, "RINV/0001", [_line(push, 30, tax="No VAT")],
                       allocations=[{"invoice_ref": invoice.ledger_id, "amount": 30.0,
                                     "date": "2026-03-05"}])
    item = PushItem("account.move,20", "credit_note", values)
    push.reset_counters()
    (result,) = push.push("credit_note", [item], "cn-1")
    assert result.ok and result.error is None
    assert result.url == f"https://app.qbo.intuit.com/app/creditmemo?txnId={result.ledger_id}"
    # the credit memos (+ the invoices' balances as a query item), then the applications
    assert push.api_requests() == {BATCH: 2}
    assert push.ledger().get("Invoice", invoice.ledger_id)["Balance"] == 70
    assert push.ledger().get("CreditMemo", result.ledger_id)["RemainingCredit"] == 0
    (application,) = push.ledger().all("Payment")
    assert application["TotalAmt"] == 0 and {
        ln["LinkedTxn"][0]["TxnType"] for ln in application["Line"]} == {"Invoice",
                                                                          "CreditMemo"}
    # the same push again (a crash after QuickBooks answered): nothing new
    (replayed,) = push.push("credit_note", [item], "cn-1")
    assert replayed.ledger_id == result.ledger_id
    assert len(push.ledger().all("CreditMemo")) == 1 and len(push.ledger().all("Payment")) == 1


def test_credit_note_larger_than_the_open_balance_applies_what_is_open(push):
    customer_id = _customer(push)
    (invoice,) = _invoices(push, customer_id, 100, key="cn-open")
    push.app.apply_payment(invoice.ledger_id, amount=80)  # a payment Odoo does not know
    values = _document(customer_id, "RINV/0002", [_line(push, 50, tax="No VAT")],
                       allocations=[{"invoice_ref": invoice.ledger_id, "amount": 50.0,
                                     "date": "2026-03-05"}])
    (result,) = push.push("credit_note", [PushItem("account.move,21", "credit_note", values)],
                          "cn-2")
    # in QuickBooks (linked) with what was open, but short of Odoo's figure: incomplete
    assert result.ok and result.incomplete
    assert "50.00" in str(result.error) and "20.00" in str(result.error)
    assert push.ledger().get("Invoice", invoice.ledger_id)["Balance"] == 0
    assert push.ledger().get("CreditMemo", result.ledger_id)["RemainingCredit"] == 30

    # nothing open any more: the credit note still exists, the result says what was not done
    values["number"] = "RINV/0003"
    (late,) = push.push("credit_note", [PushItem("account.move,22", "credit_note", values)],
                        "cn-3")
    assert late.ok and late.ledger_id and late.incomplete and "0.00 open" in str(late.error)


# --------------------------------------------------------------------------- payments
def test_partial_then_full_payment(push):
    customer_id = _customer(push)
    (invoice,) = _invoices(push, customer_id, 500, key="pay-inv")
    bank = _id(push, "Account", "Business Bank Account")

    def payment(amount, reference):
        return {"invoice_ref": invoice.ledger_id, "amount": amount, "date": "2026-03-10",
                "bank_account_ref": bank, "bank_account_code": "1200", "reference": reference,
                "currency": "GBP"}

    push.reset_counters()
    (partial,) = push.push("payment", [PushItem("account.payment,1", "payment",
                                                 payment(200.0, "PBNK1/2026/00001"))], "pay-1")
    assert partial.ok and push.ledger().get("Invoice", invoice.ledger_id)["Balance"] == 300
    # the invoice is read first: its customer (values carry no contact_ref), its balance
    assert push.api_requests() == {QUERY: 1, PAYMENT: 1}
    stored = push.ledger().get("Payment", partial.ledger_id)
    assert stored["DepositToAccountRef"]["value"] == bank
    assert stored["PaymentRefNum"] == "PBNK1/2026/00001"
    assert partial.url == f"https://app.qbo.intuit.com/app/recvpayment?txnId={partial.ledger_id}"

    push.reset_counters()
    rest = {**payment(300.0, "PBNK1/2026/00002"), "contact_ref": customer_id}
    (full,) = push.push("payment", [PushItem("account.payment,2", "payment", rest)], "pay-2")
    # the balance is read even with the customer known: a payment never applies more
    assert full.ok and push.api_requests() == {QUERY: 1, PAYMENT: 1}
    assert push.ledger().get("Invoice", invoice.ledger_id)["Balance"] == 0

    (over,) = push.push("payment", [PushItem("account.payment,3", "payment",
                                              payment(1.0, "PBNK1/2026/00003"))], "pay-3")
    assert not over.ok and "nothing left open" in str(over.error)
    assert len(push.ledger().all("Payment")) == 2


# --------------------------------------------------------------------------- void
def test_void_invoice_with_known_stale_and_unknown_sync_token(push):
    customer_id = _customer(push)
    first, second, third = _invoices(push, customer_id, 10, 20, 30, key="void-inv")
    push.app.apply_payment(second.ledger_id, amount=5)  # second's SyncToken moves on
    items = [PushItem("account.move,0", "void_invoice", {}, ledger_id=first.ledger_id,
                      version=first.version),
             PushItem("account.move,1", "void_invoice", {}, ledger_id=second.ledger_id,
                      version=second.version),
             PushItem("account.move,2", "void_invoice", {}, ledger_id=third.ledger_id)]
    results = push.push("void_invoice", items, "void-1")
    assert all(r.ok for r in results), [r.error for r in results]
    for result in results:
        voided = push.ledger().get("Invoice", result.ledger_id)
        assert voided["TotalAmt"] == 0 and voided["PrivateNote"] == "Voided"
    assert results[0].url.endswith(f"invoice?txnId={first.ledger_id}")


# --------------------------------------------------------------------------- failures
@pytest.mark.parametrize("throttle_format", ["json", "xml"])
def test_429_becomes_rate_limited(push, throttle_format):
    customer_id = _customer(push)
    push.app.configure(throttle_format=throttle_format)
    push.app.faults.next("http429")
    item = PushItem("account.move,1", "invoice", _document(customer_id, "RL-1",
                                                           [_line(push, 10)]))
    with pytest.raises(RateLimited) as limited:
        push.push("invoice", [item], "rl-1")
    assert limited.value.retry_after == 60  # Intuit sends no Retry-After: "wait 60 s"
    assert push.adapter.last_headroom == {"minute_remaining": None, "day_remaining": None}
    (result,) = push.push("invoice", [item], "rl-1")  # the same key, later: created once
    assert result.ok and len(push.ledger().all("Invoice")) == 1


def test_a_lone_document_goes_to_its_endpoint_refused_or_replayed_as_in_a_batch(push):
    customer_id = _customer(push, "Lone Ltd")
    # refused: the 400 Fault about the invoice is its own refusal, as a batch item says it
    bad = PushItem("account.move,1", "invoice", _document("999999", "LONE-1", [_line(push, 10)]))
    push.reset_counters()
    (refused,) = push.push("invoice", [bad], "lone-1")
    assert not refused.ok and isinstance(refused.error, LedgerRejected)
    assert "QuickBooks refused it" in str(refused.error)
    assert push.api_requests() == {INVOICE: 1} and not push.ledger().all("Invoice")
    # taken, then sent again under the same requestid (a crash before the answer was
    # kept): QuickBooks answers the first answer again, and there is one invoice
    good = PushItem("account.move,2", "invoice", _document(customer_id, "LONE-2",
                                                           [_line(push, 10)]))
    (first,) = push.push("invoice", [good], "lone-2")
    (again,) = push.push("invoice", [good], "lone-2")
    assert first.ok and again.ok and first.ledger_id == again.ledger_id
    assert len(push.ledger().all("Invoice")) == 1
    assert push.api_requests() == {INVOICE: 3}


def test_batch_ceiling_becomes_rate_limited(push):
    customer_id = _customer(push)
    push.app.configure(batch_per_minute=1)
    push.app.batch_limiter.reset()
    _invoices(push, customer_id, 10, 11, key="ceiling-1")
    with pytest.raises(RateLimited):
        _invoices(push, customer_id, 20, 21, key="ceiling-2")
    # one invoice alone is a request of its own, which the batch ceiling does not count
    push.reset_counters()
    _invoices(push, customer_id, 30, key="ceiling-3")
    assert push.api_requests() == {INVOICE: 1}


@pytest.mark.parametrize("fault", ["http500", "http503", "reset", "hang"])
def test_server_failures_become_unavailable_and_retry_creates_once(qbo_sandbox, fault):
    push = QboPush(qbo_sandbox, timeout=0.3)
    customer_id = _customer(push)
    item = PushItem("account.move,1", "invoice", _document(customer_id, "F-1",
                                                           [_line(push, 10)]))
    push.app.faults.next(fault, hang_seconds=1.0)
    with pytest.raises(LedgerUnavailable):
        push.push("invoice", [item], f"fault-{fault}")
    (result,) = push.push("invoice", [item], f"fault-{fault}")
    assert result.ok and len(push.ledger().all("Invoice")) == 1


def test_expired_token_is_access_token_expired(push):
    push.app.faults.next("http401")
    with pytest.raises(AccessTokenExpired):
        push.push("contact", [PushItem("res.partner,1", "contact", _contact("A Ltd"))], "k")
    with pytest.raises(AccessTokenExpired):
        push.adapter.push(None, push.realm, "contact",
                          [PushItem("res.partner,1", "contact", _contact("A Ltd"))], "k")


# --------------------------------------------------------------------------- matching
def test_find_contacts_by_tax_id_email_and_name_in_one_request(push):
    by_email = _customer(push, "Mail Match Ltd")
    push.app.edit_contact(by_email, email="AP@Mail.test")
    by_name = _customer(push, "O'Name Ltd")
    twin_a = _customer(push, "Twin A")
    twin_b = _customer(push, "Twin B")
    push.app.edit_contact(twin_a, email="twins@corp.test")
    push.app.edit_contact(twin_b, fields={"PrimaryTaxIdentifier": "GB 999 000"})
    push.reset_counters()
    found = push.find_contacts([
        {"key": "p1", "tax_id": None, "email": "ap@mail.test", "name": "Something Else"},
        {"key": "p2", "tax_id": None, "email": None, "name": "o'name ltd"},
        # the e-mail finds Twin A, the name Twin B; the tax id decides for Twin B
        {"key": "p3", "tax_id": "GB999000", "email": "twins@corp.test", "name": "Twin B"},
        {"key": "p4", "tax_id": "XX1", "email": "nobody@x.test", "name": "Nobody"},
    ])
    assert found == {"p1": by_email, "p2": by_name, "p3": twin_b}
    assert push.api_requests() == {BATCH: 1}
    assert push.find_contacts([]) == {}


# --------------------------------------------------------------------------- pure mapping
def test_payload_mapping_without_http():
    line = payloads.sales_line({"description": "Audit", "quantity": 3, "unit_price": 100.0,
                                "discount": 15, "tax_ref": "1", "item_ref": "2",
                                "tracking": [{"ledger_id": "Class:4"}], "line_total": 255.0})
    assert line["Amount"] == 255.0 and line["SalesItemLineDetail"]["UnitPrice"] == 85.0
    assert line["SalesItemLineDetail"]["ClassRef"] == {"value": "4"}
    assert payloads.customer(_contact("X"), "5", "3")["sparse"] is True
    with pytest.raises(payloads.PayloadError):
        payloads.customer(_contact("X"), "5", None)
    assert len(payloads.request_id("k" * 60)) == 36
    assert payloads.request_id("short") == "short"
    assert payloads.quote("O'Brien") == "'O\\'Brien'"
    assert payloads.select_in("Customer", "DisplayName", ["a", "b"]).startswith(
        "SELECT * FROM Customer WHERE DisplayName IN ('a', 'b')")
    application = payloads.credit_application("1", "7", "9", 12.345)
    assert application["TotalAmt"] == 0 and [ln["Amount"] for ln in application["Line"]] == [
        12.35, 12.35]


def test_adapter_limits_and_links():
    adapter = QboAdapter("id", "secret", "http://127.0.0.1:1/d", "http://127.0.0.1:1",
                         allowed_endpoints="127.0.0.1:1")
    # a class constant: read without an adapter (no secret, no endpoint)
    assert QboAdapter.batch_size("invoice") == 30 and QboAdapter.batch_size("credit_note") == 29
    assert adapter.LIMITS == {"per_minute": 500, "per_day": None, "concurrent": 10,
                              "batch_per_minute": 40, "per_second": 10}
    assert adapter.web_url("void_invoice", "12", "r").endswith("/app/invoice?txnId=12")
    assert adapter.web_url("contact", None, "r") is None
