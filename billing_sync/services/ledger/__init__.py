"""Ledger adapters: one interface (base.LedgerAdapter), one class per provider.

Nothing outside this package knows whether the ledger is Xero or QuickBooks.
"""

from .base import LedgerAdapter  # noqa: F401
from .errors import *  # noqa: F401,F403

PROVIDERS = [("xero", "Xero"), ("qbo", "QuickBooks Online")]

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


def adapter_class(provider):
    """The LedgerAdapter subclass for ``provider`` ('xero' or 'qbo')."""
    if provider == "xero":
        from .xero import XeroAdapter

        return XeroAdapter
    if provider == "qbo":
        from .qbo import QboAdapter

        return QboAdapter
    raise ValueError(f"unknown ledger provider {provider!r}")
