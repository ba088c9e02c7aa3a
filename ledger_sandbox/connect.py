"""Point a billing_sync connection at a sandbox and authorise it, as a person would.

Used by the Odoo tests, the benchmarks and the demo. Works on any object with
the connection's interface (``action_connect``, ``_from_state``,
``_oauth_complete``); no Odoo import here.
"""

from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from .qbo import seed as qbo_seed
from .xero import seed as xero_seed


def connection_values(provider, url):
    """Values of a billing_sync.connection using the sandbox of ``provider`` at ``url``."""
    if provider == "xero":
        return {"provider": "xero", "client_id": xero_seed.DEFAULT_CLIENT_ID,
                "client_secret": xero_seed.DEFAULT_CLIENT_SECRET,
                "oauth_url": f"{url}/.well-known/openid-configuration", "api_url": url}
    return {"provider": "qbo", "client_id": qbo_seed.DEFAULT_CLIENT_ID,
            "client_secret": qbo_seed.DEFAULT_CLIENT_SECRET,
            "oauth_url": f"{url}/.well-known/openid_configuration/", "api_url": url}


def consent(connection, **params):
    """Follow Connect to the sandbox's consent page and approve (or deny, ``deny="1"``);
    returns the query string the ledger sends back to Odoo's callback."""
    url = connection.action_connect()["url"]
    if connection.provider == "qbo":
        params.setdefault("approve", "1")
    if params:
        url += "&" + urlencode(params)
    answer = requests.get(url, allow_redirects=False, timeout=10)
    if answer.status_code != 302:
        raise RuntimeError(f"the sandbox did not redirect: {answer.status_code} {answer.text}")
    return urlsplit(answer.headers["Location"]).query


def authorise(connection, **params):
    """Authorise ``connection`` end to end, as the callback controller does."""
    query = {k: v[0] for k, v in parse_qs(consent(connection, **params)).items()}
    connection._from_state(query["state"])._oauth_complete(query["code"], callback=query)
    return connection
