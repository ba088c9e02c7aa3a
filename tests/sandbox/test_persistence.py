"""The sandbox keeps its state on disk across restarts (``--state-dir``).

Each test runs ``python3 -m ledger_sandbox`` as a real process, talks to it through the
official SDKs (xero-python; python-quickbooks with intuit-oauth), stops it with SIGTERM (what
``make demo`` sends) or SIGKILL, starts it again on the same directory and checks what a
client that reconnects sees.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from qbo_support import QboConnection, service_invoice
from quickbooks.objects import Customer, Invoice
from xero_python.accounting import Contact, Contacts, Invoices, LineItem
from xero_python.accounting import Invoice as XeroInvoice
from xero_support import REDIRECT, XeroClient, oauth_login

from ledger_sandbox.core import STATE_VERSION, IdempotencyStore, Response
from ledger_sandbox.qbo.seed import DEFAULT_REALM_ID
from ledger_sandbox.xero.seed import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sandbox:
    """``python3 -m ledger_sandbox --provider P --port N --state-dir DIR`` as a subprocess."""

    def __init__(self, provider: str, state_dir: Path, port: int | None = None,
                 extra: tuple[str, ...] = ()):
        self.provider = provider
        self.state_dir = state_dir
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = extra
        self.process: subprocess.Popen | None = None
        # what xero_support's helpers read from an in-process server
        self.app = SimpleNamespace(client={"client_id": DEFAULT_CLIENT_ID,
                                           "client_secret": DEFAULT_CLIENT_SECRET})

    def command(self) -> list[str]:
        return [sys.executable, "-m", "ledger_sandbox", "--provider", self.provider,
                "--port", str(self.port), "--state-dir", str(self.state_dir), *self.extra]

    def start(self) -> Sandbox:
        self.process = subprocess.Popen(self.command(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the sandbox exited: {self.process.stderr.read()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(self.url + "/_sandbox/config", timeout=2).ok:
                    return self
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError("the sandbox did not start within 15 s")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Stop the process with ``sig``; returns its stderr."""
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        errors = self.process.stderr.read()
        self.process.stderr.close()
        if sig == signal.SIGTERM:
            assert self.process.returncode == 0, errors
        return errors

    def restart(self) -> Sandbox:
        self.stop()
        return self.start()

    def state(self) -> dict:
        return json.loads((self.state_dir / f"{self.provider}-state.json").read_text())


@pytest.fixture
def running():
    """Start sandboxes with ``running(provider, state_dir, ...)``; all are stopped at the end."""
    started: list[Sandbox] = []

    def start(*args, **kwargs) -> Sandbox:
        sandbox = Sandbox(*args, **kwargs).start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        if sandbox.process.poll() is None:
            sandbox.process.kill()
            sandbox.process.wait(timeout=5)
        if not sandbox.process.stderr.closed:
            sandbox.process.stderr.close()


# --------------------------------------------------------------------------- Xero


def _xero_client(sandbox: Sandbox, token: dict, monkeypatch) -> XeroClient:
    from xero_python.api_client.oauth2 import TokenApi

    monkeypatch.setattr(TokenApi, "refresh_token_url", sandbox.url + "/connect/token")
    monkeypatch.setattr(TokenApi, "revoke_token_url", sandbox.url + "/connect/revocation")
    return XeroClient(sandbox, token)


def _xero_invoice(contact_id: str, amount: float, reference: str) -> Invoices:
    return Invoices(invoices=[XeroInvoice(
        type="ACCREC", contact=Contact(contact_id=contact_id), due_date=dt.date(2030, 1, 31),
        status="AUTHORISED", reference=reference,
        line_items=[LineItem(description="Advisory", quantity=1, unit_amount=amount,
                             account_code="210", tax_type="OUTPUT2")])])


def _authorisation_code(sandbox: Sandbox) -> str:
    answer = requests.get(sandbox.url + "/identity/connect/authorize", params={
        "response_type": "code", "client_id": DEFAULT_CLIENT_ID, "redirect_uri": REDIRECT,
        "scope": "offline_access accounting.transactions", "state": "s"},
        allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)
    return query["code"][0]


def test_xero_state_survives_a_restart(tmp_path, running, monkeypatch):
    sandbox = running("xero", tmp_path)
    xero = _xero_client(sandbox, oauth_login(sandbox), monkeypatch)
    tenant = xero.tenant_id
    contact = xero.accounting.create_contacts(
        tenant, Contacts(contacts=[Contact(name="Persisted Ltd")])).contacts[0]
    first = xero.accounting.create_invoices(
        tenant, _xero_invoice(contact.contact_id, 100, "first")).invoices[0]
    keyed = xero.accounting.create_invoices(
        tenant, _xero_invoice(contact.contact_id, 250, "keyed"),
        idempotency_key="odoo-job-17").invoices[0]
    assert (first.invoice_number, keyed.invoice_number) == ("INV-0001", "INV-0002")
    requests.post(sandbox.url + "/_sandbox/config", timeout=5,
                  json={"webhook_url": "http://127.0.0.1:9/odoo/webhook"}).raise_for_status()
    pending_code = _authorisation_code(sandbox)  # the user clicked Connect...
    held = dict(xero.token)  # what Odoo holds when the sandbox stops

    sandbox.restart()

    # the refresh token issued before the restart still refreshes (and rotates)
    xero.store["token"] = held
    refreshed = xero.api_client.refresh_oauth2_token()
    assert refreshed["refresh_token"] != held["refresh_token"]
    # ...and the code issued before it can still be exchanged once
    exchange = requests.post(sandbox.url + "/connect/token", data={
        "grant_type": "authorization_code", "code": pending_code, "redirect_uri": REDIRECT},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET), timeout=5)
    assert exchange.status_code == 200, exchange.text
    # the objects are still there, with their ids and numbers
    found = xero.accounting.get_invoices(tenant, i_ds=[first.invoice_id, keyed.invoice_id])
    assert {(i.invoice_id, i.invoice_number, i.contact.contact_id, float(i.total))
            for i in found.invoices} == {
        (first.invoice_id, "INV-0001", contact.contact_id, 115.0),
        (keyed.invoice_id, "INV-0002", contact.contact_id, 287.5)}
    assert [c.contact_id for c in xero.accounting.get_contacts(
        tenant, where='Name=="Persisted Ltd"').contacts] == [contact.contact_id]
    # the idempotency key replays its first answer and creates nothing
    replay = xero.accounting.create_invoices(
        tenant, _xero_invoice(contact.contact_id, 250, "keyed"),
        idempotency_key="odoo-job-17").invoices[0]
    assert (replay.invoice_id, replay.invoice_number) == (keyed.invoice_id, "INV-0002")
    assert len(xero.accounting.get_invoices(tenant).invoices) == 2
    # a new invoice gets the next number, never one used before the restart
    fresh = xero.accounting.create_invoices(
        tenant, _xero_invoice(contact.contact_id, 10, "after")).invoices[0]
    assert fresh.invoice_number == "INV-0003"
    assert fresh.invoice_id not in (first.invoice_id, keyed.invoice_id)
    config = requests.get(sandbox.url + "/_sandbox/config", timeout=5).json()
    assert config["webhook_url"] == "http://127.0.0.1:9/odoo/webhook"
    assert sandbox.state()["state_version"] == STATE_VERSION


# --------------------------------------------------------------------------- QuickBooks


def test_qbo_state_survives_a_restart(tmp_path, running, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # requests-oauthlib on http
    # a long interval: only the save of the clean stop can have written the changes
    sandbox = running("qbo", tmp_path, extra=("--save-interval", "60"))
    connection = QboConnection(sandbox)
    qb = connection.qb
    customer = Customer()
    customer.DisplayName = "Persisted Ltd"
    customer = customer.save(qb=qb)
    first = service_invoice(qb, customer, 100).save(qb=qb)
    keyed = service_invoice(qb, customer, 250).save(qb=qb, request_id="odoo-job-17")
    assert (first.DocNumber, keyed.DocNumber) == ("1001", "1002")
    held = connection.auth.refresh_token

    sandbox.restart()

    connection.auth.refresh(refresh_token=held)  # the token from before the restart
    assert connection.auth.refresh_token != held
    qb = connection.client()
    assert qb.company_id == DEFAULT_REALM_ID
    for before in (first, keyed):
        after = Invoice.get(before.Id, qb=qb)
        assert (after.DocNumber, after.TotalAmt, after.CustomerRef.value) == (
            before.DocNumber, before.TotalAmt, customer.Id)
    assert [c.Id for c in Customer.filter(DisplayName="Persisted Ltd", qb=qb)] == [customer.Id]
    replay = service_invoice(qb, customer, 250).save(qb=qb, request_id="odoo-job-17")
    assert (replay.Id, replay.DocNumber) == (keyed.Id, "1002")
    assert Invoice.count(qb=qb) == 2
    fresh = service_invoice(qb, customer, 10).save(qb=qb)
    assert fresh.DocNumber == "1003"
    assert int(fresh.Id) > max(int(first.Id), int(keyed.Id))
    other = Customer()
    other.DisplayName = "New After Restart Ltd"
    assert int(other.save(qb=qb).Id) > int(customer.Id)


def test_changes_reach_the_disk_without_a_clean_stop(tmp_path, running, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    sandbox = running("qbo", tmp_path, extra=("--save-interval", "0.2"))
    connection = QboConnection(sandbox)
    customer = Customer()
    customer.DisplayName = "Survivor Ltd"
    customer = customer.save(qb=connection.qb)
    time.sleep(1.0)  # a save is due within the interval (0.2 s) after the change
    sandbox.stop(signal.SIGKILL)
    assert sandbox.process.returncode == -signal.SIGKILL
    sandbox.start()
    connection.auth.refresh()
    assert Customer.get(customer.Id, qb=connection.client()).DisplayName == "Survivor Ltd"


def _no_per_second_limit(sandbox: Sandbox) -> None:
    # Intuit's 10 requests/second would throttle these busy local clients
    requests.post(sandbox.url + "/_sandbox/config", json={"per_second": None},
                  timeout=5).raise_for_status()


def test_snapshots_taken_under_concurrent_writes_are_consistent(tmp_path, running,
                                                                monkeypatch):
    """Saves run continuously while four clients create invoices under request ids; a
    kill -9 in the middle may lose the last answers, but whatever state is on disk holds
    each invoice together with the answer its request id replays: replaying every id after
    the restart leaves exactly one invoice per id."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    sandbox = running("qbo", tmp_path, extra=("--save-interval", "0"))
    _no_per_second_limit(sandbox)
    connection = QboConnection(sandbox)
    customer = Customer()
    customer.DisplayName = "Busy Ltd"
    customer = customer.save(qb=connection.qb)
    keys = [f"job-{worker}-{n}" for worker in range(4) for n in range(12)]
    answered, failures = [], []

    def work(worker: int) -> None:
        qb = connection.client()
        for key in keys[worker * 12:(worker + 1) * 12]:
            try:
                invoice = service_invoice(qb, customer, 10)
                invoice.PrivateNote = key
                invoice.save(qb=qb, request_id=key)
            except Exception as error:  # noqa: BLE001 - the kill -9 ends every worker
                failures.append(error)
                return
            answered.append(key)

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(answered) < 20 and not failures and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(answered) >= 20 and not failures, failures
    sandbox.stop(signal.SIGKILL)
    for thread in threads:
        # the killed server fails their next request (a reset, or an answer cut short)
        thread.join(timeout=30)

    sandbox.start()
    _no_per_second_limit(sandbox)  # rate limits are per run, not kept
    connection.auth.refresh()
    qb = connection.client()
    for key in keys:
        invoice = service_invoice(qb, customer, 10)
        invoice.PrivateNote = key
        assert invoice.save(qb=qb, request_id=key).PrivateNote == key
    notes = [i.PrivateNote for i in Invoice.filter(CustomerRef=customer.Id, max_results=1000,
                                                   qb=qb)]
    assert sorted(notes) == sorted(keys)


# --------------------------------------------------------------------------- refusals


def _start_refused(sandbox: Sandbox) -> str:
    result = subprocess.run(sandbox.command(), cwd=ROOT, capture_output=True, text=True,
                            timeout=20, check=False)
    assert result.returncode == 2, result.stderr
    return result.stderr


@pytest.mark.parametrize("damage", ["truncated", "not a state", "other version", "incomplete"])
@pytest.mark.parametrize("provider", ["xero", "qbo"])
def test_a_state_file_it_cannot_read_is_refused_and_kept(tmp_path, running, provider, damage):
    running(provider, tmp_path).stop()
    path = tmp_path / f"{provider}-state.json"
    state = json.loads(path.read_text())
    if damage == "truncated":
        text = path.read_text()[:200]
    elif damage == "not a state":
        text = json.dumps(["not", "a", "state"])
    elif damage == "other version":
        text = json.dumps({**state, "state_version": STATE_VERSION + 1})
    else:
        state.pop("idempotency")
        text = json.dumps(state)
    path.write_text(text)
    message = _start_refused(Sandbox(provider, tmp_path))
    assert str(path) in message and "delete it" in message
    assert path.read_text() == text  # never started empty over it


def test_one_process_per_state_file(tmp_path, running):
    first = running("xero", tmp_path)
    message = _start_refused(Sandbox("xero", tmp_path))
    assert "in use by another running sandbox" in message
    assert requests.get(first.url + "/_sandbox/config", timeout=5).ok


# --------------------------------------------------------------------------- in process


def test_idempotent_answers_of_every_body_type_round_trip():
    store = IdempotencyStore()
    store.put("t", "json", Response(400, {"Elements": [{"Total": 1.5}]}, {"X-A": "1"}))
    store.put("t", "text", Response(200, "Rate limit exceeded"))
    store.put("t", "bytes", Response(204, b"\x00\xff"))
    copy = IdempotencyStore()
    copy.load(json.loads(json.dumps(store.dump())))
    for key in ("json", "text", "bytes"):
        before, after = store.get("t", key), copy.get("t", key)
        assert (after.status, after.body, dict(after.headers)) == (
            before.status, before.body, dict(before.headers))


def test_without_state_dir_nothing_is_written(tmp_path):
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "ledger_sandbox", "--port", str(port)],
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, answered = time.monotonic() + 15, False
        while not answered and time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                answered = requests.post(f"http://127.0.0.1:{port}/_sandbox/reset",
                                         timeout=2).ok
            time.sleep(0.05)
        assert answered, "the sandbox did not start"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert list(tmp_path.iterdir()) == []


def test_stop_finishes_requests_in_progress_and_refuses_new_ones():
    """What the last save relies on: when SandboxServer.stop() returns, the request that was
    being handled is done, and a kept-alive connection gets no more work done."""
    import http.client

    from ledger_sandbox.core import SandboxServer
    from ledger_sandbox.xero import XeroSandbox

    app = XeroSandbox()
    server = SandboxServer(app).start()
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    idle.request("GET", "/_sandbox/config")
    assert idle.getresponse().read() and idle.sock is not None  # kept alive
    app.configure(latency_seconds=0.5)
    token = app.connect()["access_token"]
    slow = {}

    def create() -> None:
        slow["answer"] = requests.put(
            server.url + "/api.xro/2.0/Contacts", json={"Contacts": [{"Name": "Late Ltd"}]},
            headers={"Authorization": f"Bearer {token}", "xero-tenant-id": app.tenant_id},
            timeout=5)

    worker = threading.Thread(target=create)
    worker.start()
    time.sleep(0.2)  # the request is in its latency
    server.stop()
    # done when stop() returned (what the last save sees), and answered
    assert [c["Name"] for c in app.ledger().contacts.values()] == ["Late Ltd"]
    worker.join()
    assert slow["answer"].status_code == 200
    idle.request("POST", "/_sandbox/reset")
    refused = idle.getresponse()
    assert refused.status == 503 and refused.getheader("Connection") == "close"
    assert [c["Name"] for c in app.ledger().contacts.values()] == ["Late Ltd"]  # not reset
    idle.close()
