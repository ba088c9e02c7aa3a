"""Xero sandbox webhooks: acceptable answers, retries with backoff, the 24-hour give-up,
intent to receive over the control API, and the credit-note ``data`` block.

Ledger changes go through xero-python; deliveries are read as raw POSTs.
"""

import datetime as dt
import json

import pytest
import requests
from webhook_support import ScriptedReceiver
from xero_python.accounting import Contact, Contacts, CreditNote, CreditNotes, LineItem

from ledger_sandbox.xero.webhooks import sign

KEY = "xero-test-webhook-key"


@pytest.fixture
def receiver(xero_sandbox):
    """A scripted receiver the Xero sandbox delivers to (answers 200 unless told)."""
    hook = ScriptedReceiver()
    xero_sandbox.app.configure(webhook_url=hook.url)
    yield hook
    xero_sandbox.app.configure(webhook_url=None)
    hook.close()


def _checking(body, headers):
    """What a correct receiver answers: 200 when x-xero-signature verifies, else 401."""
    return {"status": 200 if headers.get("x-xero-signature") == sign(KEY, body) else 401}


def _contact_change(xero, name):
    return xero.accounting.create_contacts(
        xero.tenant_id, Contacts(contacts=[Contact(name=name)])).contacts[0]


def test_unacceptable_answers_are_retried_with_growing_delays(xero_sandbox, xero, receiver):
    app = xero_sandbox.app
    assert app.config()["webhook_timeout"] == 5.0
    assert app.config()["webhook_retry_delays"][:3] == [60, 120, 240]
    # 60 s -> 0.06 s; answers Xero does not accept: another status, a body, a cookie, late
    app.configure(webhook_retry_scale=0.001, webhook_timeout=0.25)
    receiver.answers = [{"status": 500}, {"status": 204}, {"body": b"thanks"},
                        {"cookie": "session=1"}, {"delay": 0.6}, {}]
    contact = _contact_change(xero, "Retry Ltd")
    assert app.webhook.flush(10.0)
    attempts = app.webhook.attempts
    assert [a["reason"] for a in attempts] == ["status 500", "status 204", "body", "cookie",
                                               "timeout", None]
    delays = [a["next_in"] for a in attempts[:-1]]
    assert delays == [0.06, 0.12, 0.24, 0.48, 0.96]  # decreasing frequency
    assert attempts[-1]["after_first"] >= sum(delays)
    bodies = receiver.bodies()
    assert len(set(bodies)) == 1  # the same payload (same sequence numbers) each time
    assert json.loads(bodies[0])["events"][0]["resourceId"] == contact.contact_id


def test_after_24_hours_of_failures_the_subscription_is_disabled(xero_sandbox, xero,
                                                                 receiver):
    app = xero_sandbox.app
    url = xero_sandbox.url + "/_sandbox"
    app.configure(webhook_retry_scale=0.00002)  # 24 h -> 1.7 s
    receiver.answers = [{"status": 503}]
    _contact_change(xero, "Down Ltd")
    assert app.webhook.flush(10.0)
    attempts = app.webhook.attempts
    assert len(attempts) >= 10 and not any(a["ok"] for a in attempts)
    assert attempts[-1]["next_in"] is None
    assert attempts[-1]["after_first"] <= 86400 * 0.00002
    report = requests.get(url + "/webhooks", timeout=5).json()
    assert report["enabled"] is False and len(report["given_up"]) == 1
    assert app.config()["webhook_enabled"] is False
    assert app.dump()["settings"]["webhook_enabled"] is False

    # disabled: later changes are not sent at all
    count = len(receiver.received)
    _contact_change(xero, "Unheard Ltd")
    assert app.webhook.flush(2.0) and len(receiver.received) == count

    # the receiver is fixed; re-enabling runs intent to receive, which must pass
    receiver.respond = _checking
    answer = requests.post(url + "/webhooks/intent-to-receive", json={}, timeout=30)
    assert answer.status_code == 200 and answer.json()["ok"] is True
    assert app.config()["webhook_enabled"] is True
    contact = _contact_change(xero, "Heard Ltd")
    assert app.webhook.flush(5.0)
    assert json.loads(receiver.bodies()[-1])["events"][0]["resourceId"] == contact.contact_id


def test_intent_to_receive_over_the_control_api(xero_sandbox, receiver):
    url = xero_sandbox.url + "/_sandbox/webhooks/intent-to-receive"
    receiver.respond = _checking
    report = requests.post(url, json={"url": receiver.url, "key": KEY}, timeout=30).json()
    assert report["ok"] is True and report["url"] == receiver.url
    assert [(r["correctly_signed"], r["status"], r["passed"]) for r in report["results"]] == [
        (True, 200, True), (False, 401, True), (True, 200, True), (False, 401, True)]
    payload = json.loads(receiver.bodies()[0])
    assert payload["events"] == [] and payload["firstEventSequence"] == 0

    # a receiver that answers every request 200 (it does not check signatures) fails
    receiver.respond = None
    receiver.answers = [{}]
    lenient = requests.post(url, json={"rounds": 1}, timeout=30).json()
    assert lenient["ok"] is False
    assert [r["passed"] for r in lenient["results"]] == [True, False]

    # so does one setting a cookie
    receiver.respond = lambda body, headers: {**_checking(body, headers), "cookie": "s=1"}
    cookie = requests.post(url, json={"rounds": 1}, timeout=30).json()
    assert cookie["ok"] is False and cookie["results"][0]["cookie"] is True

    assert requests.post(url, json={"bogus": 1}, timeout=5).status_code == 400
    xero_sandbox.app.configure(webhook_url=None)
    assert requests.post(url, json={}, timeout=5).status_code == 400  # no URL to check


def test_credit_note_events_carry_type_and_status(xero_sandbox, xero, receiver):
    app = xero_sandbox.app
    contact = _contact_change(xero, "Credited Ltd")
    note = CreditNote(type="ACCRECCREDIT", contact=Contact(contact_id=contact.contact_id),
                      date=dt.date(2030, 1, 10), status="DRAFT",
                      line_items=[LineItem(description="Refund", quantity=1, unit_amount=50,
                                           account_code="200", tax_type="OUTPUT2")])
    created = xero.accounting.create_credit_notes(
        xero.tenant_id, CreditNotes(credit_notes=[note])).credit_notes[0]
    xero.accounting.update_credit_note(
        xero.tenant_id, created.credit_note_id,
        CreditNotes(credit_notes=[CreditNote(status="AUTHORISED")]))
    assert app.webhook.flush(5.0)
    events = [e for body in receiver.bodies() for e in json.loads(body)["events"]]
    notes = [(e["eventType"], e["data"]) for e in events if e["eventCategory"] == "CREDITNOTE"]
    assert notes == [("CREATE", {"Type": "ACCRECCREDIT", "Status": "DRAFT"}),
                     ("UPDATE", {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"})]
    assert all("data" not in e for e in events if e["eventCategory"] != "CREDITNOTE")
