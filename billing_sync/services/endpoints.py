"""Where a ledger connection may send its credentials.

A connection sends its client secret, its refresh token and its bearer token to the
endpoints it is configured with. Whoever can point those elsewhere receives them, so
the database (which an administrator of Billing Sync can edit) is never the authority:

- a provider's production hosts, over https on the standard port, are always allowed;
- any other host (the ledger sandbox, a provider's test environment) only when the Odoo
  server's configuration file names it in ``billing_sync_allowed_endpoints``
  (comma or space separated ``host`` or ``host:port`` entries; an entry without a port
  allows every port of that host);
- plain http only for an allowed host that is this machine (127.0.0.0/8, ::1,
  localhost): the sandbox.

URLs are parsed (urllib.parse), never compared by prefix: ``http://127.0.0.1.evil.example/``
and ``http://127.0.0.1@evil.example/`` are other hosts. Pure Python: no ORM here.
"""

import ipaddress
import re
from urllib.parse import urlsplit

# the odoo.conf option naming the non-production hosts a connection may use
CONFIG_KEY = "billing_sync_allowed_endpoints"

# Production endpoints: the OpenID discovery document and the API base.
PRODUCTION_URLS = {
    "xero": {
        "oauth_url": "https://identity.xero.com/.well-known/openid-configuration",
        "api_url": "https://api.xero.com",
    },
    "qbo": {
        "oauth_url": "https://developer.intuit.com/.well-known/openid_configuration/",
        "api_url": "https://quickbooks.api.intuit.com",
    },
}

# Hosts the production OpenID discovery documents name (authorize, token, revoke,
# userinfo, jwks): identity.xero.com/.well-known/openid-configuration and
# developer.intuit.com/.well-known/openid_configuration/.
DISCOVERED_HOSTS = {
    "xero": ("login.xero.com", "identity.xero.com"),
    "qbo": ("appcenter.intuit.com", "oauth.platform.intuit.com", "developer.api.intuit.com",
            "accounts.platform.intuit.com"),
}

# the endpoints of a discovery document that are sent credentials or a person
DISCOVERY_KEYS = ("authorization_endpoint", "token_endpoint", "revocation_endpoint",
                  "userinfo_endpoint")

LOOPBACK_NAMES = ("localhost",)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# a DNS name: labels of letters, digits and hyphens (IP literals are parsed apart)
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")
_HINT = ("An administrator of the Odoo server can allow it by adding its host to "
         "billing_sync_allowed_endpoints in odoo.conf.")


class EndpointRefused(ValueError):
    """A URL a connection may not use; the message is safe to show (no secret in it)."""


def production_hosts(provider):
    """The hosts of ``provider``'s production endpoints (a frozenset of lower-case names)."""
    urls = PRODUCTION_URLS.get(provider, {})
    hosts = {urlsplit(url).hostname for url in urls.values()}
    return frozenset(hosts | set(DISCOVERED_HOSTS.get(provider, ())))


def _host(text):
    """The normalised host of an allow-list entry or a URL: lower case, IPv6 without
    brackets; None when it is not a plain host name or IP address."""
    host = (text or "").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:  # a name, not an address
        return host if _HOSTNAME.match(host) and not host.replace(".", "").isdigit() else None


def parse_allowed(value):
    """The allow-list of odoo.conf's ``billing_sync_allowed_endpoints``.

    ``value`` is the option's text: entries separated by commas or spaces, each a host
    (``127.0.0.1``, ``sandbox-quickbooks.api.intuit.com``), a ``host:port``
    (``127.0.0.1:8070``, ``[::1]:8070``) or the same written as a URL
    (``http://127.0.0.1:8070``). Case does not matter. Returns a frozenset of
    ``(host, port)`` pairs, port None for "every port". An entry that is none of
    these raises ValueError naming it: a typo must not pass for an allowed host.
    An already parsed allow-list is returned as is; None and "" allow nothing.
    """
    if isinstance(value, frozenset):
        return value
    return frozenset(_parse_entry(entry) for entry in re.split(r"[\s,]+", (value or "").strip())
                     if entry)


def _parse_entry(entry):
    """(host, port or None) of one allow-list entry; ValueError naming it if malformed."""
    text = entry.lower()
    try:
        if "://" in text:
            parts = urlsplit(text)
            host, port = _host(parts.hostname), parts.port
            wrong = (parts.scheme not in _DEFAULT_PORTS or parts.path not in ("", "/")
                     or parts.username is not None or parts.query or parts.fragment)
        elif _host(text) and ":" in text:  # a bare IPv6 address: every port
            host, port, wrong = _host(text), None, False
        else:
            parts = urlsplit("//" + text)
            host, port = _host(parts.hostname), parts.port
            wrong = bool(parts.path or parts.username is not None or parts.query
                         or parts.fragment)
    except ValueError:
        host = None
    if host is None or wrong:
        raise ValueError(
            f"{CONFIG_KEY} in odoo.conf: {entry[:100]!r} is not a host or host:port "
            "(e.g. 127.0.0.1:8070).")
    return host, port


def is_loopback_host(host):
    """True for a host that is this machine: 127.0.0.0/8, ::1 or localhost."""
    host = _host(host)
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback(url):
    """True for a plain-http URL whose host is this machine (the ledger sandbox).

    Decided on the parsed URL: ``http://127.0.0.1.evil.example/`` or
    ``http://127.0.0.1@evil.example/`` are not loopback.
    """
    try:
        parts = _split(url)
    except EndpointRefused:
        return False
    return parts.scheme == "http" and is_loopback_host(parts.hostname)


def display(url):
    """``url`` as it may appear in a message: scheme, host, port and path, without
    what could carry a secret (user name and password, query, fragment); capped."""
    text = str(url or "")
    try:
        parts = urlsplit(text)
        _userinfo, at, host = parts.netloc.rpartition("@")
        netloc = f"***@{host}" if at else host
        shown = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme and netloc else \
            _bare(text)
    except ValueError:
        shown = _bare(text)
    shown = "".join(ch if ch.isprintable() else "?" for ch in shown)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def _bare(text):
    """``text`` up to its query or fragment, without what precedes an @."""
    text = text.split("?", 1)[0].split("#", 1)[0]
    _userinfo, at, rest = text.rpartition("@")
    return f"***@{rest}" if at else rest


def _split(url):
    """urlsplit(url) with every shape that may hide another host refused."""
    text = url if isinstance(url, str) else ""
    if not text:
        raise EndpointRefused("it is empty")
    if any(ch.isspace() or not ch.isprintable() or ch == "\\" for ch in text):
        raise EndpointRefused("it contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError on a port out of range or not a number
    except ValueError as exc:
        raise EndpointRefused("it is not a valid URL (its host or port cannot be read)") from exc
    if port == 0:
        raise EndpointRefused("port 0 is not a port")
    if parts.scheme not in _DEFAULT_PORTS:
        raise EndpointRefused("only https (or http to this machine) is used")
    if "@" in parts.netloc or parts.username is not None:
        raise EndpointRefused("a user name or password in the URL is not accepted")
    if parts.fragment or text.endswith("#"):
        raise EndpointRefused("a fragment (#...) in the URL is not accepted")
    if not parts.hostname:
        raise EndpointRefused("it names no host")
    if parts.hostname.endswith("."):
        raise EndpointRefused("write the host without a trailing dot")
    if _host(parts.hostname) is None:
        raise EndpointRefused("its host is not a valid host name or IP address")
    return parts


def check_url(url, provider, allowed=frozenset(), what="The URL"):
    """Return ``url`` if a connection to ``provider`` may use it; raise EndpointRefused.

    ``allowed`` is the odoo.conf allow-list (text or ``parse_allowed``'s result);
    ``what`` names the URL in the message ("The API base URL"). The rules: the
    provider's production hosts over https on port 443; any other host only if
    ``allowed`` names it (with this port, or without a port); plain http only for
    an allowed host that is this machine. The message names the URL (never a user
    name, password or query) and how an administrator of the server allows it.
    """
    if not url:
        raise EndpointRefused(f"{what} is empty: leave the provider's default for the real "
                              "ledger.")
    try:
        parts = _split(url)
    except EndpointRefused as exc:
        raise EndpointRefused(f"{what} {display(url)} is refused: {exc}.") from None
    allowed = parse_allowed(allowed)
    host = _host(parts.hostname)
    port = parts.port if parts.port is not None else _DEFAULT_PORTS[parts.scheme]
    listed = (host, None) in allowed or (host, port) in allowed
    if parts.scheme == "https" and port == 443 and host in production_hosts(provider):
        return url
    if not listed:
        raise EndpointRefused(
            f"{what} {display(url)} is refused: it is not an endpoint of "
            f"{_label(provider)}'s production service and this server does not allow "
            f"{_hostport(host, parts.port)}. {_HINT}")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise EndpointRefused(
            f"{what} {display(url)} is refused: plain http is only used to reach this "
            "machine (the ledger sandbox); use https.")
    return url


def is_allowed(url, provider, allowed=frozenset()):
    """True when ``check_url`` accepts ``url``."""
    try:
        check_url(url, provider, allowed)
    except EndpointRefused:
        return False
    return True


def check_discovery(document, provider, allowed=frozenset()):
    """Check the endpoints an OpenID discovery document names (authorize, token,
    revoke, userinfo) as ``check_url`` does; EndpointRefused for the first refused.

    A discovery document fetched from an allowed host may still send the token
    request anywhere: each endpoint it names is checked on its own."""
    if not isinstance(document, dict):
        raise EndpointRefused("The OAuth discovery document is not a JSON object.")
    for key in DISCOVERY_KEYS:
        url = document.get(key)
        if url:
            check_url(url, provider, allowed,
                      what=f"The {key.replace('_', ' ')} of the OAuth discovery document")
    return document


def _label(provider):
    return {"xero": "Xero", "qbo": "QuickBooks Online"}.get(provider, provider or "the ledger")


def _hostport(host, port):
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown
