"""Xero webhooks (signature, payload, intent to receive), bookkeeper actions, control API.

Ledger data is checked through xero-python; the bookkeeper and control endpoints are the
sandbox's own API (plain HTTP / Python methods), and webhook checks read the raw POSTs.
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
from decimal import Decimal

import requests
from xero_python.accounting import Contact, Contacts, Invoice, Invoices, LineItem
from xero_support import WebhookReceiver


def events_of(receiver, app):
    """All events delivered so far (after flushing the sender queue)."""
    app.webhook.flush(3.0)
    out = []
    for body, _headers, ok in receiver.received:
        assert ok, "x-xero-signature must verify"
        out.extend(json.loads(body)["events"])
    return [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in out]


def make_invoice(xero):
    """An AUTHORISED invoice of 230.00 (2 x 100 + 15 % GST) for a new contact."""
    contact = xero.accounting.create_contacts(
        xero.tenant_id, Contacts(contacts=[Contact(name="Hooli")])).contacts[0]
    invoice = Invoice(type="ACCREC", contact=Contact(contact_id=contact.contact_id),
                      due_date=dt.date(2030, 1, 31), status="AUTHORISED",
                      line_items=[LineItem(description="Advisory", quantity=2,
                                           unit_amount=100, account_code="210",
                                           tax_type="OUTPUT2")])
    return xero.accounting.create_invoices(xero.tenant_id, Invoices(invoices=[invoice])).invoices[0]


def test_api_changes_fire_signed_webhooks(xero_sandbox, xero, xero_webhooks):
    app = xero_sandbox.app
    invoice = make_invoice(xero)
    events = events_of(xero_webhooks, app)
    assert ("CONTACT", "CREATE", invoice.contact.contact_id) in events
    assert ("INVOICE", "CREATE", invoice.invoice_id) in events
    body, headers, _ok = xero_webhooks.received[-1]
    expected = base64.b64encode(hmac.new(app.webhook.key.encode(), body,
                                         hashlib.sha256).digest()).decode()
    assert {k.lower(): v for k, v in headers.items()}["x-xero-signature"] == expected
    payload = json.loads(body)
    assert set(payload) == {"events", "firstEventSequence", "lastEventSequence", "entropy"}
    event = payload["events"][0]
    assert set(event) == {"resourceUrl", "resourceId", "eventDateUtc", "eventType",
                          "eventCategory", "tenantId", "tenantType"}
    assert event["tenantId"] == xero.tenant_id and event["tenantType"] == "ORGANISATION"
    assert event["resourceUrl"] == f"{xero_sandbox.url}/api.xro/2.0/Invoices/{invoice.invoice_id}"
    dt.datetime.strptime(event["eventDateUtc"], "%Y-%m-%dT%H:%M:%S.%f")
    assert payload["lastEventSequence"] >= payload["firstEventSequence"] >= 1
    assert len(payload["entropy"]) == 20


def test_bookkeeper_actions_fire_webhooks_and_change_the_ledger(xero_sandbox, xero,
                                                                 xero_webhooks):
    app = xero_sandbox.app
    tenant = xero.tenant_id
    invoice = make_invoice(xero)
    contact_id = invoice.contact.contact_id
    events_of(xero_webhooks, app)
    xero_webhooks.received.clear()

    app.edit_contact(contact_id, EmailAddress="new@hooli.test")
    assert xero.accounting.get_contact(tenant, contact_id).contacts[0].email_address \
        == "new@hooli.test"
    assert events_of(xero_webhooks, app) == [("CONTACT", "UPDATE", contact_id)]

    xero_webhooks.received.clear()
    payment = app.apply_payment(invoice.invoice_id, amount=30)
    after = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices[0]
    assert (after.amount_due, after.status) == (Decimal("200.0"), "AUTHORISED")
    assert events_of(xero_webhooks, app) == [("INVOICE", "UPDATE", invoice.invoice_id)]

    # Over the control API (what the demo and benchmarks use).
    answer = requests.post(f"{xero_sandbox.url}/_sandbox/bookkeeper/delete_payment",
                           json={"payment_id": payment["PaymentID"]}, timeout=5)
    assert answer.status_code == 200 and answer.json()["Status"] == "DELETED"
    assert xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices[0].amount_due \
        == Decimal("230.0")

    full = requests.post(f"{xero_sandbox.url}/_sandbox/bookkeeper/apply_payment",
                         json={"invoice_id": invoice.invoice_id}, timeout=5).json()
    assert full["Amount"] == 230.0
    assert xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices[0].status == "PAID"
    refused = requests.post(f"{xero_sandbox.url}/_sandbox/bookkeeper/void_invoice",
                            json={"invoice_id": invoice.invoice_id}, timeout=5)
    assert refused.status_code == 400


def test_void_credit_note_and_write_offs(xero_sandbox, xero, xero_webhooks):
    app = xero_sandbox.app
    tenant = xero.tenant_id
    to_void = make_invoice(xero)
    app.void_invoice(to_void.invoice_id)
    assert xero.accounting.get_invoice(tenant, to_void.invoice_id).invoices[0].status == "VOIDED"

    contact_id = to_void.contact.contact_id
    second = Invoice(type="ACCREC", contact=Contact(contact_id=contact_id),
                     due_date=dt.date(2030, 1, 31), status="AUTHORISED",
                     line_items=[LineItem(description="x", quantity=1, unit_amount=100,
                                          account_code="210", tax_type="OUTPUT2")])
    credited = xero.accounting.create_invoices(tenant, Invoices(invoices=[second])).invoices[0]
    note = app.issue_credit_note(credited.invoice_id, amount=46)
    assert note["Total"] == 46.0 and note["Status"] == "PAID"
    after = xero.accounting.get_invoice(tenant, credited.invoice_id).invoices[0]
    assert (after.amount_credited, after.amount_due) == (Decimal("46.0"), Decimal("69.0"))

    result = app.write_off(credited.invoice_id)
    assert result["method"] == "credit_note"
    line = result["credit_note"]["LineItems"][0]
    assert (line["AccountCode"], line["TaxType"]) == ("485", "OUTPUT2")
    assert xero.accounting.get_invoice(tenant, credited.invoice_id).invoices[0].status == "PAID"

    third = xero.accounting.create_invoices(tenant, Invoices(invoices=[second])).invoices[0]
    app.apply_payment(third.invoice_id, amount=114.50)
    small = app.write_off(third.invoice_id, method="payment")
    assert small["payment"]["Account"]["Code"] == "486" and small["payment"]["Amount"] == 0.5
    assert xero.accounting.get_invoice(tenant, third.invoice_id).invoices[0].status == "PAID"

    unallocated = app.issue_credit_note(contact_id=contact_id, amount=10, allocate=False)
    assert unallocated["RemainingCredit"] == 10.0
    events = events_of(xero_webhooks, app)
    assert ("INVOICE", "UPDATE", to_void.invoice_id) in events
    assert ("CREDITNOTE", "CREATE", note["CreditNoteID"]) in events
    assert ("CREDITNOTE", "UPDATE", note["CreditNoteID"]) not in events  # CREATE absorbs it


def test_intent_to_receive(xero_sandbox, xero_webhooks):
    app = xero_sandbox.app
    report = app.intent_to_receive()
    assert report["ok"] is True
    assert [r["status"] for r in report["results"]] == [200, 401, 200, 401]

    lenient = WebhookReceiver("some-other-key")  # verifies with the wrong key
    try:
        bad = app.intent_to_receive(url=lenient.url)
        assert bad["ok"] is False
        assert [r["passed"] for r in bad["results"]] == [False, True, False, True]
    finally:
        lenient.close()
    body = json.loads(xero_webhooks.received[0][0])
    assert body["events"] == [] and body["firstEventSequence"] == 0
    assert body["lastEventSequence"] == 0 and body["entropy"]


def test_control_api_reset_dump_load_config_counters(xero_sandbox, xero):
    url = xero_sandbox.url + "/_sandbox"
    make_invoice(xero)
    dump = requests.get(url + "/dump", timeout=5).json()
    assert len(dump["tenants"][0]["invoices"]) == 1
    assert requests.post(url + "/reset", timeout=5).json() == {"ok": True}
    assert requests.get(url + "/dump", timeout=5).json()["tenants"][0]["invoices"] == []
    assert requests.post(url + "/load", json=dump, timeout=5).status_code == 200
    # Tokens were part of the dump, so the SDK session keeps working after the load.
    assert len(xero.accounting.get_invoices(xero.tenant_id).invoices) == 1
    config = requests.post(url + "/config", json={"per_minute": 100, "token_seconds": 900},
                           timeout=5).json()
    assert config["per_minute"] == 100 and config["token_seconds"] == 900
    assert requests.post(url + "/config", json={"bogus": 1}, timeout=5).status_code == 400
    requests.post(url + "/faults", json={"kind": "http500", "count": 1}, timeout=5)
    assert requests.get(url + "/faults", timeout=5).json()["faults"][0]["kind"] == "http500"
    requests.delete(url + "/faults", timeout=5)
    counters = requests.get(url + "/counters", timeout=5).json()
    assert counters["by_endpoint"]["GET Invoices"] == {"200": 1}
    requests.post(url + "/counters/reset", timeout=5)
    assert requests.get(url + "/counters", timeout=5).json()["total"] == 0


def test_seed_from_a_dump_and_the_command_refuses_public_hosts(xero_sandbox, xero):
    from ledger_sandbox.__main__ import main
    from ledger_sandbox.xero import XeroSandbox

    make_invoice(xero)
    copy = XeroSandbox(seed=xero_sandbox.app.dump())
    assert [i["InvoiceNumber"] for i in copy.ledger().dump()["invoices"]] == ["INV-0001"]
    copy.reset()  # reset returns to the same seed
    assert len(copy.ledger().invoices) == 1
    try:
        main(["--host", "0.0.0.0"])
    except SystemExit as stop:
        assert stop.code == 2
    else:
        raise AssertionError("a non-loopback host must be refused")
