"""QBO sandbox webhooks: CloudEvents, the classic format, aggregation, answers and retries.

Changes are made through python-quickbooks (and the bookkeeper actions); the deliveries are
read as raw POSTs by a scripted receiver, signatures checked with python-quickbooks.
"""

import datetime as dt
import json
import time

import pytest
import requests
from qbo_support import service_invoice
from quickbooks import QuickBooks
from quickbooks.objects import Customer
from webhook_support import ScriptedReceiver

from ledger_sandbox.qbo.seed import DEFAULT_REALM_ID
from ledger_sandbox.qbo.store import Realm
from ledger_sandbox.qbo.webhooks import build

VERIFIER = "qbo-sandbox-verifier-token"
SECOND_REALM = "4620816365179422850"
CLOUD_EVENT_KEYS = {"specversion", "id", "source", "type", "datacontenttype", "time",
                    "intuitentityid", "intuitaccountid", "data"}


@pytest.fixture
def receiver(qbo_sandbox):
    """A scripted receiver the QBO sandbox delivers to (answers 200 unless told)."""
    hook = ScriptedReceiver()
    qbo_sandbox.app.configure(webhook_url=hook.url)
    yield hook
    qbo_sandbox.app.configure(webhook_url=None)
    hook.close()


def _customer(qb, name):
    customer = Customer()
    customer.DisplayName = name
    return customer.save(qb=qb)


def _valid(body, headers):
    return QuickBooks.validate_webhook_signature(None, body.decode("utf-8"),
                                                 headers["intuit-signature"], VERIFIER)


def _cloud_events(receiver):
    events = []
    for _at, body, headers in receiver.received:
        assert _valid(body, headers)
        events.extend(json.loads(body))
    return events


def test_cloud_events_are_the_default_shape(qbo, receiver):
    app = qbo.server.app
    assert app.config()["webhook_format"] == "cloudevents"
    customer = _customer(qbo.qb, "Cloud Ltd")
    invoice = service_invoice(qbo.qb, customer, 120).save(qb=qbo.qb)
    assert app.webhook.flush(5.0)
    _at, body, headers = receiver.received[0]
    assert headers["content-type"] == "application/json"
    assert _valid(body, headers)
    payload = json.loads(body)
    assert isinstance(payload, list)  # a JSON array of CloudEvents, not an object
    events = _cloud_events(receiver)
    assert [(e["type"], e["intuitentityid"]) for e in events] == [
        ("qbo.customer.created.v1", customer.Id), ("qbo.invoice.created.v1", invoice.Id)]
    for event in events:
        assert set(event) == CLOUD_EVENT_KEYS
        assert event["specversion"] == "1.0"
        assert event["datacontenttype"] == "application/json" and event["data"] == {}
        assert event["intuitaccountid"] == DEFAULT_REALM_ID
        assert event["source"].startswith("intuit.") and len(event["source"]) > 20
        moment = dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        assert moment.tzinfo is not None and event["time"].endswith("Z")
        assert event["id"].endswith(f"-{event['intuitentityid']}")
    assert len({e["id"] for e in events}) == len(events)  # unique per event
    assert len({e["source"] for e in events}) == 1  # one app


def test_operations_become_past_tense_types(qbo, receiver):
    app, qb = qbo.server.app, qbo.qb
    customer = _customer(qb, "Types Ltd")
    invoice = service_invoice(qb, customer, 100).save(qb=qb)
    app.edit_contact(customer.Id, email="ap@types.test")
    payment = app.apply_payment(invoice.Id, amount=100)
    app.delete_payment(payment["Id"])
    app.void_invoice(invoice.Id)
    assert app.webhook.flush(5.0)
    types = [(e["type"], e["intuitentityid"]) for e in _cloud_events(receiver)]
    for expected in [("qbo.customer.updated.v1", customer.Id),
                     ("qbo.payment.created.v1", payment["Id"]),
                     ("qbo.payment.deleted.v1", payment["Id"]),
                     ("qbo.invoice.voided.v1", invoice.Id)]:
        assert expected in types


def test_events_of_several_realms_are_aggregated_into_one_delivery(qbo, qbo_connect,
                                                                   receiver):
    app = qbo.server.app
    app.add_realm(Realm(SECOND_REALM, "Second company"))
    second = qbo_connect(realm_id=SECOND_REALM)
    app.configure(webhook_batch_seconds=1.0)
    first_customer = _customer(qbo.qb, "Realm One Ltd")
    second_customer = _customer(second.qb, "Realm Two Ltd")
    assert app.webhook.flush(5.0)
    assert len(receiver.received) == 1
    events = _cloud_events(receiver)
    assert [(e["intuitaccountid"], e["intuitentityid"]) for e in events] == [
        (DEFAULT_REALM_ID, first_customer.Id), (SECOND_REALM, second_customer.Id)]

    # the classic format carries one eventNotifications item per realm
    receiver.received.clear()
    app.configure(webhook_format="legacy")
    app.edit_contact(first_customer.Id, realm_id=DEFAULT_REALM_ID, notes="a")
    app.edit_contact(second_customer.Id, realm_id=SECOND_REALM, notes="b")
    assert app.webhook.flush(5.0)
    (_at, body, headers), = receiver.received
    assert _valid(body, headers)
    notifications = json.loads(body)["eventNotifications"]
    assert [n["realmId"] for n in notifications] == [DEFAULT_REALM_ID, SECOND_REALM]
    assert notifications[1]["dataChangeEvent"]["entities"] == [
        {"name": "Customer", "id": second_customer.Id, "operation": "Update",
         "lastUpdated": notifications[1]["dataChangeEvent"]["entities"][0]["lastUpdated"]}]


def test_the_batch_window_and_one_delivery_per_request(qbo, receiver):
    app = qbo.server.app
    app.configure(webhook_batch_seconds=0.3)
    _customer(qbo.qb, "Window Ltd")
    answered = time.monotonic()
    assert receiver.wait_for(1, 5.0)
    waited = receiver.received[0][0] - answered
    assert 0.15 <= waited <= 2.0, waited  # sent when the window closed, not at once

    receiver.received.clear()
    app.configure(webhook_batch_seconds=0)
    _customer(qbo.qb, "Alone One Ltd")
    _customer(qbo.qb, "Alone Two Ltd")
    assert app.webhook.flush(5.0)
    assert [len(json.loads(body)) for body in receiver.bodies()] == [1, 1]


def test_legacy_format_still_available(qbo, receiver):
    app = qbo.server.app
    app.configure(webhook_format="legacy")
    customer = _customer(qbo.qb, "Legacy Ltd")
    assert app.webhook.flush(5.0)
    (_at, body, headers), = receiver.received
    assert _valid(body, headers)
    (notification,) = json.loads(body)["eventNotifications"]
    assert notification["realmId"] == DEFAULT_REALM_ID
    (entity,) = notification["dataChangeEvent"]["entities"]
    assert (entity["name"], entity["id"], entity["operation"]) == ("Customer", customer.Id,
                                                                   "Create")
    assert entity["lastUpdated"].endswith("Z")
    assert app.dump()["settings"]["webhook_format"] == "legacy"  # a kept app setting
    # the module's build() makes the same classic body by hand (Odoo's tests use it)
    by_hand = json.loads(build(DEFAULT_REALM_ID, [
        ("Customer", "7", "Create", 1764669600.0), ("TaxRate", "1", "Create", 1764669600.0),
        ("Customer", "7", "Create", 1764669601.0)]))
    assert by_hand == {"eventNotifications": [{"realmId": DEFAULT_REALM_ID, "dataChangeEvent": {
        "entities": [{"name": "Customer", "id": "7", "operation": "Create",
                      "lastUpdated": "2025-12-02T10:00:01.000Z"}]}}]}


def test_failed_deliveries_are_retried_on_intuits_schedule(qbo, receiver):
    app = qbo.server.app
    assert app.config()["webhook_retry_delays"] == [10, 20, 30, 300, 1200, 7200, 14400,
                                                    21600]
    assert app.webhook.next_delay(9) == app.webhook.next_delay(40) == 21600  # then every 6 h
    assert app.config()["webhook_timeout"] == 3.0
    app.configure(webhook_retry_scale=0.01, webhook_batch_seconds=0)  # 10 s -> 0.1 s
    receiver.answers = [{"status": 500}, {"status": 404}, {}]
    _customer(qbo.qb, "Retried Ltd")
    assert app.webhook.flush(5.0)
    attempts = app.webhook.attempts
    assert [(a["attempt"], a["status"], a["ok"]) for a in attempts] == [
        (1, 500, False), (2, 404, False), (3, 200, True)]
    assert [a["next_in"] for a in attempts] == [0.1, 0.2, None]
    assert attempts[1]["after_first"] >= 0.1 and attempts[2]["after_first"] >= 0.3
    assert len(set(receiver.bodies())) == 1  # the same delivery (same events) each time
    times = [at for at, _body, _headers in receiver.received]
    assert times[1] - times[0] >= 0.09 and times[2] - times[1] >= 0.19


def test_an_answer_slower_than_the_deadline_fails(qbo, receiver):
    app = qbo.server.app
    app.configure(webhook_timeout=0.2, webhook_retry_scale=0.01, webhook_batch_seconds=0)
    receiver.answers = [{"delay": 0.6}, {}]
    _customer(qbo.qb, "Slow Ltd")
    assert app.webhook.flush(5.0)
    first, second = app.webhook.attempts
    assert (first["status"], first["ok"], first["reason"]) == (0, False, "timeout")
    assert first["seconds"] < 0.5
    assert second["ok"] and second["status"] == 200


def test_later_deliveries_wait_behind_a_failing_one(qbo, receiver):
    app = qbo.server.app
    app.configure(webhook_retry_scale=0.02, webhook_batch_seconds=0)  # 10 s -> 0.2 s
    receiver.answers = [{"status": 503}, {}]
    first = _customer(qbo.qb, "First Ltd")
    second = _customer(qbo.qb, "Second Ltd")
    assert app.webhook.flush(5.0)
    ids = [json.loads(body)[0]["intuitentityid"] for body in receiver.bodies()]
    assert ids == [first.Id, first.Id, second.Id]
    times = [at for at, _body, _headers in receiver.received]
    assert times[2] >= times[1] and times[1] - times[0] >= 0.19


def test_removing_the_url_drops_what_waits_for_a_retry(qbo, receiver):
    app = qbo.server.app
    app.configure(webhook_batch_seconds=0)
    receiver.answers = [{"status": 500}]
    _customer(qbo.qb, "Dropped Ltd")
    assert receiver.wait_for(1)
    assert not app.webhook.flush(0.3)  # waiting 10 s for the first retry
    assert app.webhook.pending() == 1
    app.configure(webhook_url=None)
    assert app.webhook.pending() == 0 and app.webhook.flush(1.0)


def test_webhook_control_api_and_config_checks(qbo, receiver):
    server = qbo.server
    url = server.url + "/_sandbox"
    config = requests.post(url + "/config", json={"webhook_batch_seconds": 0,
                                                  "webhook_retry_delays": []},
                           timeout=5).json()
    assert config["webhook_batch_seconds"] == 0 and config["webhook_retry_delays"] == []
    for bad in ({"webhook_format": "xml"}, {"webhook_batch_seconds": -1},
                {"webhook_timeout": 0}, {"webhook_retry_scale": 0},
                {"webhook_retry_delays": [-1]}):
        assert requests.post(url + "/config", json=bad, timeout=5).status_code == 400, bad
    receiver.answers = [{"status": 500}]
    _customer(qbo.qb, "Control Ltd")
    flushed = requests.post(url + "/webhooks/flush", json={"timeout": 5}, timeout=10).json()
    assert flushed == {"ok": True, "pending": 0}
    report = requests.get(url + "/webhooks", timeout=5).json()
    (attempt,) = report["attempts"]  # no retries configured: given up at once
    assert attempt["status"] == 500 and attempt["reason"] == "status 500"
    assert json.loads(attempt["body"])[0]["type"] == "qbo.customer.created.v1"
    assert len(report["given_up"]) == 1 and report["enabled"] is True
    assert requests.delete(url + "/webhooks", timeout=5).json() == {"ok": True}
    assert requests.get(url + "/webhooks", timeout=5).json()["attempts"] == []
