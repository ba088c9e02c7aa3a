"""QBO sandbox: signed webhooks, the bookkeeper actions and the control API."""

import json

import pytest
import requests
from qbo_support import service_invoice
from quickbooks.objects import CreditMemo, Customer, Invoice, Payment

from ledger_sandbox.qbo.seed import DEFAULT_REALM_ID
from ledger_sandbox.qbo.webhooks import NOTIFIED

VERIFIER = "qbo-sandbox-verifier-token"


def _setup(qb, amount=100, name="Hooked Ltd"):
    customer = Customer()
    customer.DisplayName = name
    customer = customer.save(qb=qb)
    return customer, service_invoice(qb, customer, amount).save(qb=qb)


OPERATIONS = {"created": "Create", "updated": "Update", "deleted": "Delete",
              "voided": "Void"}


def _events(app, receiver):
    """Every (name, id, operation) received so far, each delivery's signature checked.

    Deliveries are CloudEvents (the default format): ``type`` qbo.<entity>.<past>.v1 is
    mapped back to the classic (Name, operation) pair the assertions use."""
    assert app.webhook.flush(5.0)
    names = {name.lower(): name for name in NOTIFIED}
    events = []
    for body, headers in receiver.received:
        signature = headers["intuit-signature"]
        assert _qb_validate(body, signature), "bad intuit-signature"
        for event in json.loads(body):
            assert event["intuitaccountid"] == DEFAULT_REALM_ID
            assert event["time"].endswith("Z")
            _qbo, entity, past, version = event["type"].split(".")
            assert (_qbo, version) == ("qbo", "v1")
            events.append((names[entity], event["intuitentityid"], OPERATIONS[past]))
    receiver.received.clear()
    return events


def _qb_validate(body, signature):
    from quickbooks import QuickBooks

    return QuickBooks.validate_webhook_signature(None, body.decode("utf-8"), signature, VERIFIER)


def test_api_changes_fire_signed_notifications(qbo, qbo_webhooks):
    app = qbo.server.app
    customer, invoice = _setup(qbo.qb)
    assert app.webhook.flush(5.0)
    body, headers = qbo_webhooks.received[0]
    assert headers["content-type"] == "application/json"
    tampered = body.replace(b".created.", b".deleted.")
    assert tampered != body
    assert not _qb_validate(tampered, headers["intuit-signature"])
    assert _events(app, qbo_webhooks) == [("Customer", customer.Id, "Create"),
                                          ("Invoice", invoice.Id, "Create")]


def test_bookkeeper_actions_change_the_ledger_and_notify(qbo, qbo_webhooks):
    qb, app = qbo.qb, qbo.server.app
    customer, invoice = _setup(qb, 100)
    _events(app, qbo_webhooks)

    edited = app.edit_contact(customer.Id, email="ap@hooked.test", phone="+44 20 7946 0000")
    assert Customer.get(customer.Id, qb=qb).PrimaryEmailAddr.Address == "ap@hooked.test"
    assert edited["SyncToken"] == "1"
    assert _events(app, qbo_webhooks) == [("Customer", customer.Id, "Update")]

    payment = app.apply_payment(invoice.Id, amount=40)
    assert Invoice.get(invoice.Id, qb=qb).Balance == 60
    assert _events(app, qbo_webhooks) == [("Invoice", invoice.Id, "Update"),
                                          ("Payment", payment["Id"], "Create")]

    app.delete_payment(payment["Id"])
    assert Invoice.get(invoice.Id, qb=qb).Balance == 100
    assert ("Payment", payment["Id"], "Delete") in _events(app, qbo_webhooks)

    credit = app.issue_credit_note(invoice.Id, amount=30)
    assert CreditMemo.get(credit["CreditMemo"]["Id"], qb=qb).RemainingCredit == 0
    assert Invoice.get(invoice.Id, qb=qb).Balance == 70
    kinds = {(name, op) for name, _, op in _events(app, qbo_webhooks)}
    assert kinds >= {("CreditMemo", "Create"), ("Payment", "Create"), ("Invoice", "Update")}

    written = app.write_off(invoice.Id)
    memo = CreditMemo.get(written["CreditMemo"]["Id"], qb=qb)
    assert memo.TotalAmt == 70 and memo.Line[0].SalesItemLineDetail.ItemRef.name == "Bad Debt"
    assert Invoice.get(invoice.Id, qb=qb).Balance == 0
    assert ("CreditMemo", memo.Id, "Create") in _events(app, qbo_webhooks)


def test_full_credit_note_copies_invoice_lines(qbo):
    qb, app = qbo.qb, qbo.server.app
    _, invoice = _setup(qb, 100)
    result = app.issue_credit_note(invoice.Id)
    assert result["CreditMemo"]["TotalAmt"] == invoice.TotalAmt
    assert Invoice.get(invoice.Id, qb=qb).Balance == 0
    assert Payment.get(result["Payment"]["Id"], qb=qb).TotalAmt == 0


def test_bookkeeper_over_http_and_void(qbo, qbo_webhooks):
    qb, server = qbo.qb, qbo.server
    _, invoice = _setup(qb, 50)
    _events(server.app, qbo_webhooks)
    answer = requests.post(f"{server.url}/_sandbox/bookkeeper/void_invoice",
                           json={"invoice_id": invoice.Id}, timeout=5)
    assert answer.status_code == 200 and answer.json()["PrivateNote"] == "Voided"
    assert _events(server.app, qbo_webhooks) == [("Invoice", invoice.Id, "Void")]
    refused = requests.post(f"{server.url}/_sandbox/bookkeeper/apply_payment",
                            json={"invoice_id": invoice.Id, "amount": 5}, timeout=5)
    assert refused.status_code == 400 and refused.json()["Fault"]["Error"][0]["code"] == "6000"
    unknown = requests.post(f"{server.url}/_sandbox/bookkeeper/shred", json={}, timeout=5)
    assert unknown.status_code == 404


def test_control_api_dump_load_reset_and_counters(qbo):
    qb, server = qbo.qb, qbo.server
    _setup(qb, 10, name="Persisted Ltd")
    dump = requests.get(f"{server.url}/_sandbox/dump", timeout=5).json()
    assert requests.post(f"{server.url}/_sandbox/reset", timeout=5).status_code == 200
    assert requests.post(f"{server.url}/_sandbox/load", json=dump, timeout=5).ok
    # Tokens are part of the dump, so the connection survives the reset + load.
    assert [c.DisplayName for c in Customer.all(qb=qb)] == ["Persisted Ltd"]
    counters = requests.get(f"{server.url}/_sandbox/counters", timeout=5).json()
    assert counters["by_endpoint"]["POST /v3/company/{realmId}/query"]["200"] >= 1
    config = requests.post(f"{server.url}/_sandbox/config", json={"per_second": 50},
                           timeout=5).json()
    assert config["per_second"] == 50
    faults = requests.post(f"{server.url}/_sandbox/faults", json={"kind": "http500"},
                           timeout=5).json()
    assert faults["faults"][0]["kind"] == "http500"
    requests.delete(f"{server.url}/_sandbox/faults", timeout=5)


@pytest.mark.parametrize("operation", ["Create", "Update"])
def test_api_notifications_can_be_switched_off(qbo, qbo_webhooks, operation):
    app = qbo.server.app
    app.configure(notify_api_changes=False)
    customer, _ = _setup(qbo.qb, name=f"Quiet {operation}")
    if operation == "Update":
        customer.Notes = "quiet"
        customer.save(qb=qbo.qb)
    assert _events(app, qbo_webhooks) == []
