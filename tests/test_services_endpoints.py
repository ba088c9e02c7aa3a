"""Plain tests (no database) of which endpoints a connection may send credentials to."""

import pytest

from odoo.addons.billing_sync.services import endpoints
from odoo.addons.billing_sync.services.endpoints import (
    PRODUCTION_URLS,
    EndpointRefused,
    check_discovery,
    check_url,
    is_allowed,
    is_loopback,
    parse_allowed,
)

SANDBOX = "127.0.0.1:8070, 127.0.0.1:8071"

# the production discovery documents' endpoints (identity.xero.com/.well-known/
# openid-configuration, developer.intuit.com/.well-known/openid_configuration/)
XERO_DISCOVERY = {
    "authorization_endpoint": "https://login.xero.com/identity/connect/authorize",
    "token_endpoint": "https://identity.xero.com/connect/token",
    "revocation_endpoint": "https://identity.xero.com/connect/revocation",
    "userinfo_endpoint": "https://identity.xero.com/connect/userinfo",
}
INTUIT_DISCOVERY = {
    "authorization_endpoint": "https://appcenter.intuit.com/connect/oauth2",
    "token_endpoint": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    "revocation_endpoint": "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
    "userinfo_endpoint": "https://accounts.platform.intuit.com/v1/openid_connect/userinfo",
}


@pytest.mark.parametrize("provider", ["xero", "qbo"])
def test_production_endpoints_need_no_configuration(provider):
    for url in PRODUCTION_URLS[provider].values():
        assert check_url(url, provider) == url
        assert is_allowed(url, provider, "")
    document = XERO_DISCOVERY if provider == "xero" else INTUIT_DISCOVERY
    assert check_discovery(document, provider) is document
    assert is_allowed("https://API.XERO.COM/api.xro/2.0" if provider == "xero"
                      else "https://QuickBooks.API.Intuit.com/v3", provider)
    assert is_allowed("https://api.xero.com:443" if provider == "xero"
                      else "https://quickbooks.api.intuit.com:443", provider)


def test_one_providers_production_is_not_the_others():
    assert not is_allowed(PRODUCTION_URLS["qbo"]["api_url"], "xero")
    assert not is_allowed(PRODUCTION_URLS["xero"]["api_url"], "qbo")
    with pytest.raises(EndpointRefused):
        check_discovery(INTUIT_DISCOVERY, "xero")


@pytest.mark.parametrize("url", [
    "http://api.xero.com",  # production host, but not over https
    "https://api.xero.com:8443",  # production host, another port
    "https://api.xero.com.evil.example/",
    "https://evil.example/api.xero.com",
    "https://api.xero.com@evil.example/",
    "https://api.xero.com.",  # trailing dot
])
def test_production_lookalikes_are_refused(url):
    assert not is_allowed(url, "xero")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1.evil.example/",
    "http://127.0.0.1@evil.example/",
    "http://127.0.0.1:8070@evil.example/",
    "http://evil.example#@127.0.0.1:8070",
    "http://evil.example\\@127.0.0.1:8070",
    "https://evil.example",
    "http://127.0.0.1:9999",  # only :8070 and :8071 are listed
    "HTTP://LOCALHOST",  # not listed
    "http://localhost:8070",
    "http://[::1]:8070",
    "http://127.0.0.1.:8070",  # trailing dot
    "http://127.1:8070",  # another spelling of 127.0.0.1 is not the listed host
    "http://2130706433:8070",
    "http://0x7f000001:8070",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "ftp://127.0.0.1:8070/",
    "127.0.0.1:8070",  # no scheme
    "//127.0.0.1:8070",
    "http:///x",
    "http://127.0.0.1:8070/#token",
    "http://127.0.0.1:0",
    "http://127.0.0.1:70000",
    "http://127.0.0.1:80a",
    "http://127.0.0.1:8070/ x",
    "http://127.0.0.1:8070/\nx",
    "",
    None,
])
def test_attack_urls_are_refused(url):
    assert not is_allowed(url, "xero", SANDBOX)
    assert not is_allowed(url, "qbo", SANDBOX)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8070",
    "http://127.0.0.1:8070/",
    "http://127.0.0.1:8071/.well-known/openid_configuration/",
    "HTTP://127.0.0.1:8070/.well-known/openid-configuration",
    "https://127.0.0.1:8070",
])
def test_listed_sandbox_is_allowed(url):
    assert check_url(url, "xero", SANDBOX) == url


def test_allow_list_spellings():
    assert parse_allowed(None) == parse_allowed("") == frozenset()
    assert parse_allowed(
        "127.0.0.1:8070,http://127.0.0.1:8071  [::1]:8070 ::1 LOCALHOST "
        "Sandbox-QuickBooks.API.Intuit.com https://127.0.0.2/") == frozenset({
            ("127.0.0.1", 8070), ("127.0.0.1", 8071), ("::1", 8070), ("::1", None),
            ("localhost", None), ("sandbox-quickbooks.api.intuit.com", None),
            ("127.0.0.2", None)})
    parsed = parse_allowed(SANDBOX)
    assert parse_allowed(parsed) is parsed


@pytest.mark.parametrize("entry", ["127.0.0.1:99999", "127.0.0.1:abc", "http://a@b",
                                   "ftp://127.0.0.1", "127.0.0.1/x", "*", "a..b",
                                   "http://127.0.0.1/path"])
def test_malformed_allow_list_entry_is_an_error_naming_it(entry):
    with pytest.raises(ValueError, match="billing_sync_allowed_endpoints") as caught:
        parse_allowed(f"127.0.0.1:8070, {entry}")
    assert repr(entry) in str(caught.value)


def test_entry_without_port_allows_every_port_and_case_does_not_matter():
    assert is_allowed("http://127.0.0.1:9999/x", "xero", "127.0.0.1")
    assert is_allowed("HTTP://LOCALHOST:5/", "qbo", "localhost")
    assert is_allowed("http://[::1]:8070/", "qbo", "[::1]:8070")
    assert is_allowed("http://[::1]:1/", "qbo", "::1")
    assert not is_allowed("http://[::1]:1/", "qbo", "[::1]:8070")


def test_plain_http_only_to_this_machine():
    listed = "sandbox-quickbooks.api.intuit.com, 10.0.0.5, 127.0.0.1"
    assert is_allowed("https://sandbox-quickbooks.api.intuit.com", "qbo", listed)
    with pytest.raises(EndpointRefused, match="plain http"):
        check_url("http://sandbox-quickbooks.api.intuit.com", "qbo", listed)
    with pytest.raises(EndpointRefused, match="plain http"):
        check_url("http://10.0.0.5:8070", "xero", listed)
    assert is_allowed("https://10.0.0.5:8070", "xero", listed)
    assert is_allowed("http://127.0.0.1:1", "xero", listed)


def test_refusal_names_the_url_and_the_remedy_never_a_secret():
    with pytest.raises(EndpointRefused) as caught:
        check_url("https://evil.example/capture?client_secret=s3cr3t", "xero", SANDBOX,
                  what="The API base URL")
    text = str(caught.value)
    assert text.startswith("The API base URL https://evil.example/capture is refused")
    assert "billing_sync_allowed_endpoints" in text and "odoo.conf" in text
    assert "administrator of the Odoo server" in text
    assert "s3cr3t" not in text
    with pytest.raises(EndpointRefused) as caught:
        check_url("http://user:hunter2@127.0.0.1:8070/", "xero", SANDBOX)
    assert "hunter2" not in str(caught.value) and "user:" not in str(caught.value)
    assert "***@127.0.0.1:8070" in str(caught.value)


def test_discovery_document_naming_an_endpoint_off_the_list_is_refused():
    sandbox = {key: f"http://127.0.0.1:8070/{key}" for key in endpoints.DISCOVERY_KEYS}
    assert check_discovery(sandbox, "xero", SANDBOX) is sandbox
    for key in endpoints.DISCOVERY_KEYS:
        rogue = {**sandbox, key: "http://127.0.0.1:9999/capture"}
        with pytest.raises(EndpointRefused, match=key.replace("_", " ")):
            check_discovery(rogue, "xero", SANDBOX)
    # the production document's endpoints with one moved elsewhere
    with pytest.raises(EndpointRefused, match="token endpoint"):
        check_discovery({**XERO_DISCOVERY, "token_endpoint": "https://evil.example/token"},
                        "xero")


def test_is_loopback_parses_the_url():
    assert is_loopback("http://127.0.0.1:8070/")
    assert is_loopback("http://127.9.9.9/")
    assert is_loopback("http://[::1]:8070")
    assert is_loopback("http://LOCALHOST:1")
    assert not is_loopback("http://127.0.0.1.evil.example/")
    assert not is_loopback("http://127.0.0.1@evil.example/")
    assert not is_loopback("http://localhost.evil.example/")
    assert not is_loopback("https://127.0.0.1/")  # https needs no insecure-transport switch
    assert not is_loopback("http://10.0.0.1/")
    assert not is_loopback(None)
