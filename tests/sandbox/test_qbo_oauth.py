"""QBO sandbox: Intuit's OAuth 2.0 flow driven through intuit-oauth's AuthClient."""

import datetime as dt
import urllib.parse

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from quickbooks.objects import Customer

from ledger_sandbox.qbo.seed import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REALM_ID
from ledger_sandbox.qbo.store import Realm

REDIRECT = "http://127.0.0.1:9/callback"


def _auth_client(server, client_id=DEFAULT_CLIENT_ID, secret=DEFAULT_CLIENT_SECRET):
    return AuthClient(client_id, secret, REDIRECT,
                      environment=server.url + "/.well-known/openid_sandbox_configuration")


def _query(location):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)


def test_discovery_gives_every_endpoint_of_the_sandbox(qbo_sandbox):
    auth = _auth_client(qbo_sandbox)
    assert auth.auth_endpoint == qbo_sandbox.url + "/connect/oauth2"
    assert auth.token_endpoint == qbo_sandbox.url + "/oauth2/v1/tokens/bearer"
    assert auth.revoke_endpoint == qbo_sandbox.url + "/v2/oauth2/tokens/revoke"


def test_authorize_page_then_redirect_with_code_state_and_realm(qbo_sandbox):
    auth = _auth_client(qbo_sandbox)
    url = auth.get_authorization_url([Scopes.ACCOUNTING], state_token="csrf-123")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and "Connect company" in page.text
    answer = requests.get(url + "&approve=1", allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(REDIRECT + "?")
    query = _query(answer.headers["Location"])
    assert query["state"] == ["csrf-123"] and query["realmId"] == [DEFAULT_REALM_ID]
    auth.get_bearer_token(query["code"][0], realm_id=query["realmId"][0])
    assert auth.access_token and auth.refresh_token.startswith("RT1-")
    assert auth.expires_in == 3600 and auth.x_refresh_token_expires_in > 0


def test_authorize_refusals(qbo_sandbox):
    auth = _auth_client(qbo_sandbox)
    url = auth.get_authorization_url([Scopes.ACCOUNTING], state_token="s1")
    denied = requests.get(url + "&deny=1", allow_redirects=False, timeout=5)
    assert _query(denied.headers["Location"]) == {"error": ["access_denied"], "state": ["s1"]}
    qbo_sandbox.app.configure(redirect_uris=["http://127.0.0.1:9/other"])
    unregistered = requests.get(url + "&approve=1", allow_redirects=False, timeout=5)
    assert unregistered.status_code == 400 and "Location" not in unregistered.headers
    unknown = _auth_client(qbo_sandbox, client_id="nobody")
    refused = requests.get(unknown.get_authorization_url([Scopes.ACCOUNTING]), timeout=5)
    assert refused.status_code == 400


def test_code_is_single_use_and_client_must_authenticate(qbo_sandbox):
    auth = _auth_client(qbo_sandbox)
    url = auth.get_authorization_url([Scopes.ACCOUNTING])
    code = _query(requests.get(url + "&approve=1", allow_redirects=False,
                               timeout=5).headers["Location"])["code"][0]
    wrong_secret = _auth_client(qbo_sandbox, secret="wrong")
    with pytest.raises(AuthClientError) as bad_client:
        wrong_secret.get_bearer_token(code)
    assert bad_client.value.status_code == 401
    auth.get_bearer_token(code)
    with pytest.raises(AuthClientError) as reused:
        auth.get_bearer_token(code)
    assert reused.value.status_code == 400 and b"invalid_grant" in reused.value.content


def test_refresh_rotates_and_a_used_refresh_token_stops_working(qbo):
    auth = qbo.auth
    first_refresh, first_access = auth.refresh_token, auth.access_token
    auth.refresh()
    assert auth.refresh_token != first_refresh and auth.access_token != first_access
    with pytest.raises(AuthClientError) as reused:
        auth.refresh(refresh_token=first_refresh)
    assert reused.value.status_code == 400 and b"invalid_grant" in reused.value.content
    auth.refresh()  # the newest one works


def test_expired_access_token_gets_intuits_401(qbo):
    app = qbo.server.app
    customer = Customer()
    customer.DisplayName = "Before expiry"
    customer.save(qb=qbo.qb)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3601)
    app.clock = lambda: later
    with pytest.raises(AuthorizationException) as expired:
        Customer.all(qb=qbo.qb)
    assert expired.value.error_code == 401
    assert "AuthenticationFailed" in expired.value.detail and "3200" in expired.value.detail
    qbo.auth.refresh()  # refresh tokens outlive access tokens
    assert [c.DisplayName for c in Customer.all(qb=qbo.client())] == ["Before expiry"]


def test_access_lifetime_is_configurable(qbo_sandbox, qbo_connect):
    qbo_sandbox.app.configure(access_lifetime=60)
    connection = qbo_connect()
    assert connection.auth.expires_in == 60


def test_revoke_ends_the_connection(qbo):
    assert qbo.auth.revoke() is True
    with pytest.raises(AuthorizationException):
        Customer.all(qb=qbo.qb)
    with pytest.raises(AuthClientError):
        qbo.auth.refresh()


def test_token_of_one_realm_cannot_read_another(qbo_sandbox, qbo_connect):
    qbo_sandbox.app.add_realm(Realm("1234567890", "Second company"))
    other = qbo_connect(realm_id="1234567890")
    assert other.auth.realm_id == "1234567890"
    other.qb.company_id = DEFAULT_REALM_ID
    # Intuit answers 403 with the lower-case "fault" envelope, which python-quickbooks does
    # not parse as a Fault: it raises its generic exception carrying the body.
    with pytest.raises(QuickbooksException) as forbidden:
        Customer.all(qb=other.qb)
    assert "403" in forbidden.value.message and "AuthorizationFailed" in forbidden.value.message


# --------------------------------------------------------------------------- the adapter
def test_adapter_oauth_as_intuit_documents_it(qbo_sandbox):
    """QboAdapter without intuit-oauth: the consent URL from the discovery document, the code
    and refresh as form posts, revocation as JSON (the sandbox, like Intuit, refuses a form),
    all with HTTP Basic; the discovery document read once, not on every call."""
    from billing_sync.services.ledger import base
    from billing_sync.services.ledger.errors import AuthorizationRevoked
    from billing_sync.services.ledger.qbo import QboAdapter

    base._DISCOVERY.clear()  # noqa: SLF001 - the cache under test
    app = qbo_sandbox.app
    adapter = QboAdapter(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
                         qbo_sandbox.url + "/.well-known/openid_sandbox_configuration",
                         qbo_sandbox.url, timeout=5.0, allowed_endpoints=qbo_sandbox.url)
    app.counters.reset()
    url = adapter.authorization_url(REDIRECT, "st-9")
    assert url.startswith(qbo_sandbox.url + "/connect/oauth2?")
    assert {k: v[0] for k, v in _query(url).items()} == {
        "client_id": DEFAULT_CLIENT_ID, "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting", "redirect_uri": REDIRECT, "state": "st-9"}
    answer = requests.get(url + "&approve=1", allow_redirects=False, timeout=5)
    callback = _query(answer.headers["Location"])
    tokens = adapter.exchange_code(callback["code"][0], REDIRECT, callback["realmId"][0])
    # Intuit's x_refresh_token_expires_in (101 days) is kept
    assert tokens.refresh_expires_at - tokens.expires_at > dt.timedelta(days=100)
    rotated = adapter.refresh(tokens.refresh_token)
    assert rotated.refresh_token != tokens.refresh_token
    with pytest.raises(AuthorizationRevoked):
        adapter.refresh(tokens.refresh_token)  # used once: rotation
    adapter.revoke(rotated.refresh_token)
    with pytest.raises(AuthorizationRevoked):
        adapter.refresh(rotated.refresh_token)
    counts = app.counters.snapshot()["by_endpoint"]
    assert counts["GET /.well-known/openid_configuration"] == {"200": 1}
    assert counts["POST /v2/oauth2/tokens/revoke"] == {"200": 1}
    # a form-encoded revocation is refused (Intuit takes JSON): the adapter's was not one
    form = requests.post(qbo_sandbox.url + "/v2/oauth2/tokens/revoke",
                         data={"token": rotated.refresh_token},
                         auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET), timeout=5)
    assert form.status_code == 400
