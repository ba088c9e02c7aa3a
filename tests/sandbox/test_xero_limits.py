"""Xero rate limits, idempotency, fault injection and counters, through xero-python.

xero-python sends through urllib3 with its default Retry policy: GET/PUT/DELETE answered 429
or 503 *with a Retry-After header* are retried after sleeping Retry-After (up to 3 times), and
connection errors on those methods are retried too.  POST is never retried, so the tests that
must see the raw 429/503/reset use POST calls (update_or_create_contacts).
"""

import threading
import time

import pytest
import urllib3
from xero_python.accounting import Contact, Contacts, Invoice, Invoices, LineItem
from xero_python.exceptions import ApiException, RateLimitException


def post_probe(xero):
    """A cheap POST (never retried by urllib3): update-or-create zero contacts."""
    return xero.accounting.update_or_create_contacts(xero.tenant_id, Contacts(contacts=[]))


def test_minute_limit_headers_and_429(xero_sandbox, xero):
    app = xero_sandbox.app
    app.configure(per_minute=3, window_seconds=0.5)
    xero.accounting.get_contacts(xero.tenant_id)
    headers = xero.headers()
    assert (headers["X-MinLimit-Remaining"], headers["X-DayLimit-Remaining"]) == ("2", "4999")
    assert headers["X-AppMinLimit-Remaining"] == "9999"
    post_probe(xero)
    post_probe(xero)
    with pytest.raises(RateLimitException) as caught:
        post_probe(xero)
    error = caught.value
    assert error.status == 429 and error.rate_limit == "minute"
    assert int(error.headers["Retry-After"]) >= 1
    assert error.headers["X-MinLimit-Remaining"] == "0"
    time.sleep(0.55)  # the compressed "minute" slides by
    post_probe(xero)


def test_sdk_get_waits_retry_after_and_succeeds(xero_sandbox, xero):
    # urllib3 (under xero-python) honours Retry-After on a 429 GET and retries by itself.
    app = xero_sandbox.app
    app.configure(per_minute=1, window_seconds=0.5)
    xero.accounting.get_contacts(xero.tenant_id)
    started = time.monotonic()
    xero.accounting.get_contacts(xero.tenant_id)
    assert time.monotonic() - started >= 0.9
    assert app.counters.snapshot()["by_endpoint"]["GET Contacts"] == {"200": 2, "429": 1}


def test_daily_limit(xero_sandbox, xero):
    xero_sandbox.app.configure(per_day=2, day_seconds=30)
    post_probe(xero)
    post_probe(xero)
    with pytest.raises(RateLimitException) as caught:
        post_probe(xero)
    assert caught.value.rate_limit == "daily"
    assert caught.value.headers["X-DayLimit-Remaining"] == "0"


def test_concurrent_limit(xero_sandbox, xero):
    app = xero_sandbox.app
    app.configure(concurrent=2, latency_seconds=0.4)
    outcomes = []

    def call():
        try:
            post_probe(xero)
            outcomes.append("ok")
        except RateLimitException as error:
            outcomes.append(error.rate_limit)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(5)
    assert sorted(outcomes) == ["concurrent", "concurrent", "ok", "ok"]


def test_idempotency_key_replays_first_answer(xero):
    tenant = xero.tenant_id
    contacts = Contacts(contacts=[Contact(name="Once Only Ltd")])
    first = xero.accounting.create_contacts(tenant, contacts, idempotency_key="c-1")
    again = xero.accounting.create_contacts(tenant, contacts, idempotency_key="c-1")
    assert first.contacts[0].contact_id == again.contacts[0].contact_id
    assert len(xero.accounting.get_contacts(tenant).contacts) == 1
    invoice = Invoices(invoices=[Invoice(type="ACCREC",
                                         contact=Contact(contact_id=first.contacts[0].contact_id),
                                         line_items=[LineItem(description="x", unit_amount=10,
                                                              account_code="210")])])
    one = xero.accounting.create_invoices(tenant, invoice, idempotency_key="inv-1")
    two = xero.accounting.create_invoices(tenant, invoice, idempotency_key="inv-1")
    assert one.invoices[0].invoice_id == two.invoices[0].invoice_id
    three = xero.accounting.create_invoices(tenant, invoice, idempotency_key="inv-2")
    assert three.invoices[0].invoice_id != one.invoices[0].invoice_id
    assert len(xero.accounting.get_invoices(tenant).invoices) == 2
    with pytest.raises(ApiException) as caught:
        xero.accounting.create_invoices(tenant, invoice, idempotency_key="k" * 129)
    assert caught.value.status == 400


def test_idempotent_retry_after_server_error_executes(xero_sandbox, xero):
    # An injected 500 never reached the handler, so the retry with the same key runs for real.
    xero_sandbox.app.faults.next("http500")
    contacts = Contacts(contacts=[Contact(name="Retry Ltd")])
    with pytest.raises(ApiException) as caught:
        xero.accounting.create_contacts(xero.tenant_id, contacts, idempotency_key="r-1")
    assert caught.value.status == 500
    made = xero.accounting.create_contacts(xero.tenant_id, contacts, idempotency_key="r-1")
    assert made.contacts[0].name == "Retry Ltd"


@pytest.mark.parametrize("kind,status", [("http500", 500), ("http503", 503), ("http429", 429),
                                         ("http401", 401)])
def test_http_faults(xero_sandbox, xero, kind, status):
    xero_sandbox.app.faults.next(kind, retry_after=7)
    with pytest.raises(ApiException) as caught:
        post_probe(xero)
    assert caught.value.status == status
    if status == 429:
        assert isinstance(caught.value, RateLimitException)
        assert caught.value.headers["Retry-After"] == "7"
    if status == 401:
        assert b"TokenExpired" in caught.value.body
    xero.accounting.get_contacts(xero.tenant_id)  # one-shot


def test_hang_past_client_timeout(xero_sandbox, xero):
    xero_sandbox.app.configure(hang_seconds=1.0)
    xero_sandbox.app.faults.next("hang")
    started = time.monotonic()
    # POST is not retried by urllib3, so the read timeout reaches the caller.
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        xero.accounting.update_or_create_contacts(
            xero.tenant_id, Contacts(contacts=[Contact(name="Slow")]), _request_timeout=(1, 0.3))
    assert time.monotonic() - started < 0.9
    assert xero.accounting.get_contacts(xero.tenant_id).contacts == []


def test_connection_reset(xero_sandbox, xero):
    xero_sandbox.app.faults.next("reset")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        xero.accounting.update_or_create_contacts(
            xero.tenant_id, Contacts(contacts=[Contact(name="Reset")]))
    # urllib3 retries idempotent GETs itself: 3 resets are absorbed, a 4th would surface.
    xero_sandbox.app.faults.next("reset", count=3)
    assert xero.accounting.get_contacts(xero.tenant_id).contacts == []


def test_seeded_fraction_and_counters(xero_sandbox, xero):
    app = xero_sandbox.app
    app.counters.reset()
    app.faults.fraction("http500", 0.5, seed=42, path="/Contacts")
    statuses = []
    for _ in range(20):
        try:
            xero.accounting.get_contacts(xero.tenant_id)
            statuses.append(200)
        except ApiException as error:
            statuses.append(error.status)
    app.faults.clear()
    failures = statuses.count(500)
    assert 3 < failures < 17
    counts = app.counters.snapshot()["by_endpoint"]["GET Contacts"]
    assert counts == {"200": 20 - failures, "500": failures}
