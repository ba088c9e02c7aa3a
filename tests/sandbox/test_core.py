"""Unit tests of the provider-neutral sandbox core (limiter, faults, idempotency, server)."""

import json
import urllib.error
import urllib.request

import pytest

from ledger_sandbox.core import (
    FaultInjector,
    IdempotencyStore,
    RateLimiter,
    Response,
    SandboxApp,
    SandboxServer,
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limiter_minute_window_slides():
    clock = FakeClock()
    limiter = RateLimiter(per_minute=2, per_day=100, window_seconds=10, clock=clock)
    first = limiter.acquire("t")
    assert first.allowed and first.min_remaining == 1 and first.day_remaining == 99
    limiter.release("t")
    clock.now += 4
    assert limiter.acquire("t").allowed
    limiter.release("t")
    refused = limiter.acquire("t")
    assert not refused.allowed and refused.problem == "minute"
    assert refused.retry_after == 6  # the first call leaves the window 10 s after it started
    clock.now += 6
    assert limiter.acquire("t").allowed  # the first call slid out
    assert limiter.acquire("other").allowed  # keys are independent


def test_rate_limiter_day_and_concurrent():
    clock = FakeClock()
    limiter = RateLimiter(per_day=2, concurrent=1, day_seconds=100, clock=clock)
    assert limiter.acquire("t").allowed
    busy = limiter.acquire("t")
    assert (busy.allowed, busy.problem) == (False, "concurrent")
    limiter.release("t")
    assert limiter.acquire("t").allowed
    limiter.release("t")
    day = limiter.acquire("t")
    assert (day.allowed, day.problem, day.retry_after) == (False, "day", 100)


def test_fault_injector_count_path_and_fraction():
    faults = FaultInjector()
    faults.next("http500", count=2, path="Invoices")
    assert faults.take("/Contacts") is None
    assert faults.take("/Invoices").kind == "http500"
    assert faults.take("/Invoices").kind == "http500"
    assert faults.take("/Invoices") is None
    faults.fraction("http503", 0.5, seed=7)
    run1 = [bool(faults.take("/x")) for _ in range(50)]
    faults.clear()
    faults.fraction("http503", 0.5, seed=7)
    run2 = [bool(faults.take("/x")) for _ in range(50)]
    assert run1 == run2 and 10 < sum(run1) < 40
    with pytest.raises(ValueError):
        faults.next("explode")


def test_idempotency_store_first_answer_wins_and_is_scoped():
    store = IdempotencyStore()
    store.put("tenant-a", "k1", Response(200, {"n": 1}))
    store.put("tenant-a", "k1", Response(200, {"n": 2}))
    replay = store.get("tenant-a", "k1")
    assert replay.json() == {"n": 1}
    replay.body["n"] = 99  # replays are copies
    assert store.get("tenant-a", "k1").json() == {"n": 1}
    assert store.get("tenant-b", "k1") is None


class EchoApp(SandboxApp):
    """A minimal app: one counted route and one that creates things."""

    def __init__(self):
        super().__init__()
        self.created = 0
        self.routes = [
            ("GET", r"/echo/(?P<word>\w+)", self.echo, {"label": "echo"}),
            ("POST", r"/things", self.create, {"label": "things"}),
        ]

    def echo(self, request):
        return Response(200, {"word": request.params["word"]})

    def create(self, request):
        self.created += 1
        return Response(201, {"n": self.created})


def _get(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=2) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_server_pipeline_counters_faults_idempotency_and_control():
    app = EchoApp()
    with SandboxServer(app) as server:
        assert _get(server.url + "/echo/hi") == (200, {"word": "hi"})
        app.faults.next("http503")
        assert _get(server.url + "/echo/hi")[0] == 503
        headers = {"Idempotency-Key": "abc"}
        assert _get(server.url + "/things", b"{}", headers) == (201, {"n": 1})
        assert _get(server.url + "/things", b"{}", headers) == (201, {"n": 1})
        assert app.created == 1
        app.faults.next("reset")
        with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
            _get(server.url + "/echo/x")
        status, counters = _get(server.url + "/_sandbox/counters")
        assert status == 200
        assert counters["by_endpoint"]["echo"] == {"200": 1, "503": 1, "reset": 1}
        assert counters["total"] == 5
        # the bytes of the bodies sent: {"word": "hi"} once and a 503's error body; the
        # two answers of /things (the second one a replay); none for the reset
        echo_ok = len(json.dumps({"word": "hi"}).encode())
        assert counters["bytes_by_endpoint"]["echo"] > echo_ok
        assert counters["bytes_by_endpoint"]["things"] == 2 * len(json.dumps({"n": 1}))
        assert _get(server.url + "/_sandbox/faults", b'{"kind": "http500"}')[0] == 200
        assert _get(server.url + "/echo/hi")[0] == 500


def test_server_refuses_non_loopback_host():
    with pytest.raises(ValueError):
        SandboxServer(EchoApp(), host="0.0.0.0")
