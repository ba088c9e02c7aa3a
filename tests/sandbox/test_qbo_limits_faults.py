"""QBO sandbox: throttles, requestid idempotency and injected faults, seen through the SDKs."""

import time

import pytest
import requests
from intuitlib.exceptions import AuthClientError
from quickbooks.batch import batch_create
from quickbooks.exceptions import (
    AuthorizationException,
    QuickbooksException,
    SevereException,
    ValidationException,
)
from quickbooks.objects import Customer


def _customer(name):
    customer = Customer()
    customer.DisplayName = name
    return customer


def _throttled(call):
    with pytest.raises(ValidationException) as refused:
        call()
    assert refused.value.error_code == 3001
    assert "ThrottleExceeded" in refused.value.message
    return refused.value


def test_per_minute_limit_with_a_compressed_minute(qbo):
    qb, app = qbo.qb, qbo.server.app
    app.configure(per_minute=5, window_seconds=0.5)
    for _ in range(5):
        Customer.all(qb=qb)
    _throttled(lambda: Customer.all(qb=qb))
    snapshot = app.counters.snapshot()["by_endpoint"]["POST /v3/company/{realmId}/query"]
    assert snapshot["429"] == 1
    time.sleep(0.55)  # the compressed minute slides by
    Customer.all(qb=qb)


def test_per_second_limit(qbo):
    qb, app = qbo.qb, qbo.server.app
    app.configure(per_second=3, window_seconds=6.0)  # one "second" lasts 0.1 s
    for _ in range(3):
        Customer.all(qb=qb)
    _throttled(lambda: Customer.all(qb=qb))
    time.sleep(0.12)
    Customer.all(qb=qb)


def test_batch_calls_per_minute(qbo):
    qb, app = qbo.qb, qbo.server.app
    app.configure(batch_per_minute=2)
    batch_create([_customer("B1")], qb=qb)
    batch_create([_customer("B2")], qb=qb)
    _throttled(lambda: batch_create([_customer("B3")], qb=qb))
    Customer.all(qb=qb)  # other endpoints are not affected


def test_concurrent_limit_per_realm(qbo):
    qb, app = qbo.qb, qbo.server.app
    app.configure(concurrent=2)
    realm = qbo.auth.realm_id
    # Two requests in flight (held the way the pipeline holds them) fill the realm's slots.
    assert app.limiter.acquire(realm).allowed and app.limiter.acquire(realm).allowed
    try:
        _throttled(lambda: Customer.all(qb=qb))
    finally:
        app.limiter.release(realm)
        app.limiter.release(realm)
    Customer.all(qb=qb)


def test_throttle_can_answer_in_xml_as_intuits_gateway_does(qbo):
    app = qbo.server.app
    app.configure(throttle_format="xml")
    app.faults.next("http429")
    with pytest.raises(QuickbooksException) as raw:
        Customer.all(qb=qbo.qb)
    assert raw.value.error_code == 10000 and "ThrottleExceeded" in raw.value.message


def test_requestid_replays_the_first_answer_and_creates_nothing(qbo):
    qb = qbo.qb
    first = _customer("Once Ltd").save(qb=qb, request_id="req-1")
    again = _customer("Once Ltd").save(qb=qb, request_id="req-1")
    assert again.Id == first.Id and Customer.count(qb=qb) == 1
    # A repeated requestid replays the first answer even when that was a Fault.
    with pytest.raises(QuickbooksException) as duplicate:
        _customer("Once Ltd").save(qb=qb, request_id="req-2")
    with pytest.raises(QuickbooksException) as replay:
        _customer("Other Ltd").save(qb=qb, request_id="req-2")
    assert duplicate.value.error_code == replay.value.error_code == 6240
    assert Customer.count(qb=qb) == 1
    with pytest.raises(QuickbooksException) as too_long:
        _customer("Long Ltd").save(qb=qb, request_id="x" * 51)
    assert too_long.value.error_code == 6000 and "50 characters" in too_long.value.detail


def test_requestid_after_a_server_error_retries_for_real(qbo):
    qb, app = qbo.qb, qbo.server.app
    app.faults.next("http500")
    with pytest.raises(SevereException) as failed:
        _customer("Retry Ltd").save(qb=qb, request_id="req-500")
    assert failed.value.error_code == 10000
    created = _customer("Retry Ltd").save(qb=qb, request_id="req-500")
    assert created.Id and Customer.count(qb=qb) == 1


def test_injected_http_faults(qbo):
    qb, app = qbo.qb, qbo.server.app
    app.faults.next("http503")
    with pytest.raises(SevereException):
        Customer.all(qb=qb)
    app.faults.next("http429")
    _throttled(lambda: Customer.all(qb=qb))
    app.faults.next("http401")
    with pytest.raises(AuthorizationException) as unauthorised:
        Customer.all(qb=qb)
    assert unauthorised.value.error_code == 401
    assert Customer.all(qb=qb) == []  # faults were one-shot


def test_hang_and_reset(qbo_sandbox, qbo_connect):
    app = qbo_sandbox.app
    connection = qbo_connect(timeout=0.3)
    app.faults.next("hang", hang_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        Customer.all(qb=connection.qb)
    assert time.monotonic() - started < 0.9
    app.faults.next("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        Customer.all(qb=connection.qb)
    assert Customer.all(qb=connection.qb) == []


def test_faults_on_the_token_endpoint_and_seeded_fraction(qbo):
    app = qbo.server.app
    app.faults.next("http503", path=r"/oauth2/v1/tokens/bearer")
    with pytest.raises(AuthClientError) as refused:
        qbo.auth.refresh()
    assert refused.value.status_code == 503
    qbo.auth.refresh()  # the refresh token was not consumed by the failed call
    app.faults.fraction("http500", 0.5, seed=7, path=r"/query")
    outcomes = []
    for _ in range(20):
        try:
            Customer.all(qb=qbo.client())
            outcomes.append("ok")
        except SevereException:
            outcomes.append("500")
    assert 3 <= outcomes.count("500") <= 17
    app.faults.clear()
