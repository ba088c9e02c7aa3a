"""Fixtures and helpers of the Xero emulator tests (imported by conftest.py).

The official SDK is pointed at the sandbox with base URLs only:
``AccountingApi(api_client, base_url=<url>/api.xro/2.0)``, ``IdentityApi(api_client,
base_url=<url>)`` and the token endpoints ``TokenApi.refresh_token_url`` /
``TokenApi.revoke_token_url`` (class attributes; set with monkeypatch so they are restored).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from ledger_sandbox.core import SandboxServer, utcnow
from ledger_sandbox.xero import XeroSandbox
from ledger_sandbox.xero.webhooks import sign

SCOPE = ("openid profile email offline_access accounting.transactions accounting.contacts "
         "accounting.settings")
REDIRECT = "http://127.0.0.1:9/xero/callback"


class XeroClock:
    """A controllable aware-UTC clock for the sandbox (tests move it by hand)."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, **delta):
        """Move the clock forward by ``timedelta(**delta)``."""
        self.now += dt.timedelta(**delta)


def oauth_login(server, scope: str = SCOPE, state: str = "st-123") -> dict:
    """The browser + app steps of the authorization-code flow (the SDK has no helper for
    them): follow the authorize redirect, exchange the code.  Returns the SDK token dict."""
    app = server.app
    client = app.client
    answer = requests.get(server.url + "/identity/connect/authorize", params={
        "response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT,
        "scope": scope, "state": state}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = urllib.parse.urlsplit(answer.headers["Location"])
    query = urllib.parse.parse_qs(location.query)
    assert query["state"] == [state]
    token = requests.post(server.url + "/connect/token", data={
        "grant_type": "authorization_code", "code": query["code"][0],
        "redirect_uri": REDIRECT}, auth=(client["client_id"], client["client_secret"]),
        timeout=5)
    assert token.status_code == 200, token.text
    return sdk_token(token.json())


def sdk_token(body: dict) -> dict:
    """Token endpoint answer -> the dict OAuth2Token.update_token() takes."""
    body = dict(body)
    body["scope"] = body["scope"].split()
    body["expires_at"] = time.time() + body["expires_in"]
    return body


class XeroClient:
    """xero-python objects wired to one sandbox: ApiClient, AccountingApi, IdentityApi."""

    def __init__(self, server, token: dict):
        from xero_python.accounting import AccountingApi
        from xero_python.api_client import ApiClient, Configuration
        from xero_python.api_client.oauth2 import OAuth2Token
        from xero_python.identity import IdentityApi

        client = server.app.client
        self.server = server
        self.store = {"token": token}
        config = Configuration()
        # Configuration() returns a copy of the first instance ever built (SDK metaclass),
        # so the OAuth2Token is assigned after construction, never passed to it.
        config.oauth2_token = OAuth2Token(client_id=client["client_id"],
                                          client_secret=client["client_secret"])
        self.api_client = ApiClient(config, pool_threads=1,
                                    oauth2_token_getter=lambda: self.store["token"],
                                    oauth2_token_saver=self._save)
        self.accounting = AccountingApi(self.api_client, base_url=server.url + "/api.xro/2.0")
        self.identity = IdentityApi(self.api_client, base_url=server.url)
        self.tenant_id = self.identity.get_connections()[0].tenant_id

    def _save(self, token: dict) -> None:
        self.store["token"] = token

    @property
    def token(self) -> dict:
        """The token set the SDK currently holds."""
        return self.store["token"]

    def headers(self) -> dict:
        """Response headers of the SDK's last successful call."""
        return dict(self.api_client.last_response.getheaders())


class WebhookReceiver:
    """A loopback endpoint that checks x-xero-signature like a correct receiver would."""

    def __init__(self, key: str):
        received = self.received = []
        self.key = key

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                ok = self.headers.get("x-xero-signature") == sign(key, body)
                received.append((body, dict(self.headers.items()), ok))
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/xero"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        """Stop the receiver."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def xero_server():
    """One Xero emulator on a free loopback port for the whole test module."""
    with SandboxServer(XeroSandbox()) as server:
        yield server


@pytest.fixture
def xero_sandbox(xero_server, monkeypatch):
    """The module's Xero server reset to the seed, real clock, production limits, short hang.

    Also points the SDK's token endpoints (TokenApi class attributes) at the sandbox.
    """
    from xero_python.api_client.oauth2 import TokenApi

    app = xero_server.app
    app.clock = utcnow
    app.configure(window_seconds=60.0, day_seconds=86400.0, per_minute=60, per_day=5000,
                  concurrent=5, app_per_minute=10000, token_seconds=1800,
                  refresh_grace_seconds=1800, hang_seconds=2.0, latency_seconds=0.0,
                  webhook_url=None, webhook_key="xero-test-webhook-key",
                  authorize_auto_approve=True, webhook_timeout=5.0,
                  webhook_retry_delays=None, webhook_retry_scale=1.0)
    app.reset()
    app.webhook.deliveries.clear()
    monkeypatch.setattr(TokenApi, "refresh_token_url", xero_server.url + "/connect/token")
    monkeypatch.setattr(TokenApi, "revoke_token_url", xero_server.url + "/connect/revocation")
    yield xero_server
    app.faults.clear()
    app.webhook.flush(2.0)


@pytest.fixture
def xero(xero_sandbox):
    """A XeroClient logged in through the OAuth2 flow to the default tenant."""
    return XeroClient(xero_sandbox, oauth_login(xero_sandbox))


@pytest.fixture
def xero_clock(xero_sandbox):
    """Install a controllable clock in the Xero sandbox."""
    clock = XeroClock()
    xero_sandbox.app.clock = clock
    return clock


@pytest.fixture
def xero_webhooks(xero_sandbox):
    """A signature-checking receiver the Xero sandbox posts webhooks to."""
    app = xero_sandbox.app
    receiver = WebhookReceiver(app.webhook.key)
    app.configure(webhook_url=receiver.url)
    yield receiver
    app.webhook.flush(2.0)
    app.configure(webhook_url=None)
    receiver.close()


# --------------------------------------------------------------------------- push layer (issue 6)
# (``billing_sync.services`` is made importable without Odoo by conftest.py)


class XeroPush:
    """A XeroAdapter on the sandbox with a live access token for the default tenant."""

    def __init__(self, server, timeout=5.0):
        from billing_sync.services.ledger.xero import XeroAdapter

        client = server.app.client
        self.server = server
        self.app = server.app
        self.token = oauth_login(server)["access_token"]
        self.tenant_id = self.app.tenant_id
        # odoo.conf's allow-list naming this sandbox: the adapter refuses any other host
        self.adapter = XeroAdapter(client["client_id"], client["client_secret"],
                                   server.url + "/.well-known/openid-configuration",
                                   server.url, timeout=timeout, allowed_endpoints=server.url)

    def push(self, kind, items, key):
        """adapter.push on the default tenant."""
        return self.adapter.push(self.token, self.tenant_id, kind, items, key)

    def find_contacts(self, candidates):
        """adapter.find_contacts on the default tenant."""
        return self.adapter.find_contacts(self.token, self.tenant_id, candidates)

    def ledger(self):
        """The tenant's store (to look at what the push left there)."""
        return self.app.ledger(self.tenant_id)

    def api_requests(self):
        """Accounting API requests counted by the sandbox, by endpoint label."""
        counts = self.app.counters.snapshot()["by_endpoint"]
        return {label: sum(statuses.values()) for label, statuses in counts.items()
                if not label.startswith(("GET /connect", "POST /connect", "GET /.well-known",
                                         "GET /Connections"))}

    def reset_counters(self):
        """Start counting requests from zero."""
        self.app.counters.reset()
