"""Xero identity emulation: OAuth2 code flow, refresh rotation, revoke, expiry, connections.

The authorize redirect and the code exchange are browser/app steps the SDK does not offer, so
they use plain HTTP (xero_support.oauth_login); everything after goes through xero-python
(ApiClient.refresh_oauth2_token / revoke_oauth2_token, IdentityApi, AccountingApi).
"""

import base64
import hashlib
import urllib.parse

import pytest
import requests
from xero_python.exceptions import ApiException, HTTPStatusException
from xero_support import REDIRECT, XeroClient, oauth_login

SDK_ERRORS = (ApiException, HTTPStatusException, Exception)


def test_authorize_redirects_with_code_and_state_and_connections(xero_sandbox):
    token = oauth_login(xero_sandbox, state="xyz")
    assert token["token_type"] == "Bearer" and token["expires_in"] == 1800
    assert token["refresh_token"] and token["id_token"].count(".") == 2
    client = XeroClient(xero_sandbox, token)
    connections = client.identity.get_connections()
    assert [c.tenant_id for c in connections] == [xero_sandbox.app.tenant_id]
    assert connections[0].tenant_type == "ORGANISATION"
    event = connections[0].auth_event_id
    assert client.identity.get_connections(auth_event_id=event)[0].id == connections[0].id
    client.identity.delete_connection(connections[0].id)
    assert client.identity.get_connections() == []
    with pytest.raises(ApiException) as caught:  # tenant no longer connected
        client.accounting.get_organisations(xero_sandbox.app.tenant_id)
    assert caught.value.status == 403


def test_authorize_errors_and_code_single_use(xero_sandbox):
    app = xero_sandbox.app
    base = xero_sandbox.url + "/identity/connect/authorize"
    bad_client = requests.get(base, params={"client_id": "nope", "redirect_uri": REDIRECT,
                                            "response_type": "code", "scope": "openid"},
                              allow_redirects=False, timeout=5)
    assert bad_client.status_code == 400
    bad_redirect = requests.get(base, params={
        "client_id": app.client["client_id"], "redirect_uri": "https://evil.example/cb",
        "response_type": "code", "scope": "openid"}, allow_redirects=False, timeout=5)
    assert bad_redirect.status_code == 400
    # PKCE S256: the verifier must match the challenge.
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
        b"=").decode()
    answer = requests.get(base, params={
        "client_id": app.client["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
        "scope": "openid offline_access accounting.contacts", "state": "s",
        "code_challenge": challenge, "code_challenge_method": "S256"},
        allow_redirects=False, timeout=5)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)["code"][0]
    creds = (app.client["client_id"], app.client["client_secret"])
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    wrong = requests.post(xero_sandbox.url + "/connect/token",
                          data=dict(form, code_verifier="wrong"), auth=creds, timeout=5)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    ok = requests.post(xero_sandbox.url + "/connect/token", data=dict(form, code_verifier=verifier),
                       auth=creds, timeout=5)
    assert ok.status_code == 200
    again = requests.post(xero_sandbox.url + "/connect/token",
                          data=dict(form, code_verifier=verifier), auth=creds, timeout=5)
    assert again.json() == {"error": "invalid_grant"}
    bad_secret = requests.post(xero_sandbox.url + "/connect/token", data=form,
                               auth=(creds[0], "wrong"), timeout=5)
    assert bad_secret.json() == {"error": "invalid_client"}


def test_consent_page_when_auto_approve_is_off(xero_sandbox):
    app = xero_sandbox.app
    app.configure(authorize_auto_approve=False)
    params = {"client_id": app.client["client_id"], "redirect_uri": REDIRECT,
              "response_type": "code", "scope": "openid", "state": "s1"}
    page = requests.get(xero_sandbox.url + "/identity/connect/authorize", params=params,
                        timeout=5)
    assert page.status_code == 200 and "Allow access" in page.text
    approved = requests.post(xero_sandbox.url + "/identity/connect/authorize",
                             data=dict(params, approve="1"), allow_redirects=False, timeout=5)
    assert approved.status_code == 302 and "state=s1" in approved.headers["Location"]


def test_refresh_rotation_with_grace_period(xero_sandbox, xero_clock):
    client = XeroClient(xero_sandbox, oauth_login(xero_sandbox))
    first = client.token
    second = client.api_client.refresh_oauth2_token()  # through TokenApi.refresh_token_url
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    client.accounting.get_organisations(client.tenant_id)  # new access token works
    # Within Xero's 30-minute grace period the used refresh token still works...
    client.store["token"] = dict(first)
    third = client.api_client.refresh_oauth2_token()
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    # ...after it, the used one is refused with invalid_grant.
    xero_clock.advance(minutes=31)
    client.store["token"] = dict(first)
    with pytest.raises(Exception, match="invalid_grant"):
        client.api_client.refresh_oauth2_token()
    # An unused refresh token from the chain still works after the grace period.
    client.store["token"] = dict(third)
    assert client.api_client.refresh_oauth2_token()["access_token"]


def test_access_token_expiry_gives_xero_401_then_refresh(xero_sandbox, xero_clock):
    client = XeroClient(xero_sandbox, oauth_login(xero_sandbox))
    client.accounting.get_organisations(client.tenant_id)
    xero_clock.advance(minutes=30, seconds=1)  # the SDK's own clock still thinks it is valid
    with pytest.raises(ApiException) as caught:
        client.accounting.get_organisations(client.tenant_id)
    error = caught.value
    assert error.status == 401
    assert error.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    body = error.body.decode() if isinstance(error.body, bytes) else error.body
    assert '"Title": "Unauthorized"' in body and "TokenExpired: token expired at" in body
    client.api_client.refresh_oauth2_token()
    assert client.accounting.get_organisations(client.tenant_id).organisations


def test_short_token_lifetime_is_configurable(xero_sandbox, xero_clock):
    xero_sandbox.app.configure(token_seconds=60)
    token = oauth_login(xero_sandbox)
    assert token["expires_in"] == 60
    client = XeroClient(xero_sandbox, token)
    # The SDK refreshes 60 s ahead of expiry, so a 60 s token is refreshed on first use.
    client.accounting.get_contacts(client.tenant_id)
    assert client.token["access_token"] != token["access_token"]
    stale = dict(client.token, expires_at=client.token["expires_at"] + 3600)
    client.store["token"] = stale
    xero_clock.advance(seconds=61)
    with pytest.raises(ApiException) as caught:
        client.accounting.get_contacts(client.tenant_id)
    assert caught.value.status == 401


def test_revoke_kills_tokens_and_connections(xero_sandbox):
    client = XeroClient(xero_sandbox, oauth_login(xero_sandbox))
    refresh_token = client.token["refresh_token"]
    access_token = client.token["access_token"]
    client.api_client.revoke_oauth2_token()  # through TokenApi.revoke_token_url
    assert client.token["access_token"] is None
    client.store["token"] = dict(client.token, access_token=access_token, scope=["openid"],
                                 expires_in=1800, expires_at=None)
    with pytest.raises(ApiException) as caught:
        client.identity.get_connections()
    assert caught.value.status == 401
    assert xero_sandbox.app.identity.connections == {}
    client.store["token"] = dict(client.token, refresh_token=refresh_token,
                                 scope=["openid", "offline_access"])
    with pytest.raises(Exception, match="invalid_grant"):
        client.api_client.refresh_oauth2_token()


def test_tenant_header_and_bad_token(xero):
    with pytest.raises(ApiException) as caught:
        xero.accounting.get_organisations("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 403
    xero.store["token"] = dict(xero.token, access_token="not-a-token")
    with pytest.raises(ApiException) as caught:
        xero.accounting.get_organisations(xero.tenant_id)
    assert caught.value.status == 401
    assert b"AuthenticationUnsuccessful" in caught.value.body


def test_scope_is_enforced(xero_sandbox):
    token = oauth_login(xero_sandbox, scope="openid offline_access accounting.contacts.read")
    client = XeroClient(xero_sandbox, token)
    assert client.accounting.get_contacts(client.tenant_id).contacts == []
    with pytest.raises(ApiException) as caught:
        client.accounting.get_invoices(client.tenant_id)
    assert caught.value.status == 401 and b"AuthorizationUnsuccessful" in caught.value.body
