"""Fixtures and helpers of the QuickBooks Online emulator tests (imported by conftest.py).

python-quickbooks and intuit-oauth are pointed at the sandbox with base URLs only:
``AuthClient(..., environment=<url>/.well-known/openid_sandbox_configuration)`` (intuit-oauth
reads every OAuth endpoint from that discovery document) and ``QuickBooks.api_url_v3 =
<url>/v3``.  The server is started once per module on a free loopback port; every test gets
it reset to the seed, with the per-second throttle off (sequential local calls run far above
10/s) unless a test turns it on.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from billing_sync.services.ledger.base import TimeoutHTTPAdapter


class QboConnection:
    """An AuthClient and a QuickBooks client connected to one sandbox realm."""

    def __init__(self, server, realm_id=None, minorversion=75, redirect_uri="http://127.0.0.1:9/cb",
                 timeout=10.0):
        from intuitlib.client import AuthClient
        from intuitlib.enums import Scopes

        from ledger_sandbox.qbo.seed import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

        self.server = server
        self.auth = AuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, redirect_uri,
                               environment=server.url + "/.well-known/openid_sandbox_configuration")
        self.auth.mount("http://", TimeoutHTTPAdapter(timeout))
        url = self.auth.get_authorization_url([Scopes.ACCOUNTING])
        if realm_id:
            url += "&" + urllib.parse.urlencode({"realm_id": realm_id})
        answer = requests.get(url + "&approve=1", allow_redirects=False, timeout=timeout)
        assert answer.status_code == 302, answer.text
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)
        assert query["state"] == [self.auth.state_token]
        self.auth.get_bearer_token(query["code"][0], realm_id=query["realmId"][0])
        self.minorversion = minorversion
        self.timeout = timeout
        self.qb = self.client()

    def client(self):
        """A new QuickBooks client on the AuthClient's current tokens."""
        from quickbooks import QuickBooks

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            qb = QuickBooks(auth_client=self.auth, refresh_token=self.auth.refresh_token,
                            company_id=self.auth.realm_id, minorversion=self.minorversion)
        # The only change python-quickbooks needs: its API base URL.
        qb.api_url_v3 = self.server.url + "/v3"
        qb.session.mount("http://", TimeoutHTTPAdapter(self.timeout))
        return qb


class QboWebhookReceiver:
    """A loopback HTTP endpoint recording webhook POSTs (body bytes and headers)."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.rfile.read(length),
                                 {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/qbo"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        """Stop the receiver."""
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def qbo_server():
    """One QBO emulator served on a free loopback port for the whole module."""
    from ledger_sandbox.core import SandboxServer
    from ledger_sandbox.qbo import QboSandbox

    # requests-oauthlib (which these raw-SDK tests drive; the addon does not) refuses
    # http:// unless oauthlib's local-testing switch is on: on for this module only
    before = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        with SandboxServer(QboSandbox()) as server:
            yield server
    finally:
        if before is None:
            os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = before


@pytest.fixture
def qbo_sandbox(qbo_server):
    """The module's QBO server, reset to the seed and to test-friendly limits."""
    from ledger_sandbox.core import utcnow

    app = qbo_server.app
    app.reset()
    app.webhook.deliveries.clear()
    app.clock = utcnow  # tests that move time replace it
    app.configure(window_seconds=60.0, per_minute=500, per_second=None, concurrent=10,
                  batch_per_minute=40, access_lifetime=3600, hang_seconds=2.0,
                  throttle_format="json", notify_api_changes=True, webhook_url=None,
                  verifier_token="qbo-sandbox-verifier-token", redirect_uris=None,
                  webhook_format="cloudevents", webhook_batch_seconds=0.2,
                  webhook_timeout=3.0, webhook_retry_delays=None, webhook_retry_scale=1.0)
    yield qbo_server
    app.faults.clear()
    app.webhook.flush(2.0)


@pytest.fixture
def qbo(qbo_sandbox):
    """A QboConnection (AuthClient + QuickBooks client) to the default realm."""
    return QboConnection(qbo_sandbox)


@pytest.fixture
def qbo_connect(qbo_sandbox):
    """Factory of further connections: ``qbo_connect(realm_id=None, timeout=10.0)``."""
    return lambda **kwargs: QboConnection(qbo_sandbox, **kwargs)


@pytest.fixture
def qbo_webhooks(qbo_sandbox):
    """A webhook receiver the QBO sandbox posts to."""
    receiver = QboWebhookReceiver()
    qbo_sandbox.app.configure(webhook_url=receiver.url)
    yield receiver
    qbo_sandbox.app.webhook.flush(2.0)
    qbo_sandbox.app.configure(webhook_url=None)
    receiver.close()


# --------------------------------------------------------------------------- push layer (issue 6)
# (``billing_sync.services`` is made importable without Odoo by conftest.py)


class QboPush:
    """A QboAdapter on the sandbox, with a live access token for the default realm."""

    def __init__(self, server, timeout=5.0):
        from billing_sync.services.ledger.qbo import QboAdapter
        from ledger_sandbox.qbo.seed import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

        self.server = server
        self.app = server.app
        self.connection = QboConnection(server)
        self.token = self.connection.auth.access_token
        self.realm = self.connection.auth.realm_id
        # odoo.conf's allow-list naming this sandbox: the adapter refuses any other host
        self.adapter = QboAdapter(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
                                  server.url + "/.well-known/openid_sandbox_configuration",
                                  server.url, timeout=timeout, allowed_endpoints=server.url)

    def push(self, kind, items, key):
        """adapter.push on the default realm."""
        return self.adapter.push(self.token, self.realm, kind, items, key)

    def find_contacts(self, candidates):
        """adapter.find_contacts on the default realm."""
        return self.adapter.find_contacts(self.token, self.realm, candidates)

    def ledger(self):
        """The realm's entity store (to look at what the push left there)."""
        return self.app.realms[self.realm]

    def api_requests(self):
        """API requests counted by the sandbox (the /v3 endpoints), by endpoint label."""
        counts = self.app.counters.snapshot()["by_endpoint"]
        return {label: sum(statuses.values()) for label, statuses in counts.items()
                if "/v3/" in label}

    def reset_counters(self):
        """Start counting requests from zero."""
        self.app.counters.reset()



def service_invoice(qb, customer, amount):
    """An unsaved QuickBooks invoice of one line of the seeded "Services" item."""
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item

    line = SalesItemLine()
    line.Amount = amount
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = Item.filter(Name="Services", qb=qb)[0].to_ref()
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line = [line]
    return invoice
