"""Ledger adapters: one interface (base.LedgerAdapter), one class per provider.

Nothing outside this package knows whether the ledger is Xero or QuickBooks.
"""

# PRODUCTION_URLS (discovery document and API base of each provider) lives with the
# rules that decide which endpoints a connection may use
from ..endpoints import PRODUCTION_URLS  # noqa: F401
from .base import LedgerAdapter  # noqa: F401
from .errors import *  # noqa: F401,F403

PROVIDERS = [("xero", "Xero"), ("qbo", "QuickBooks Online")]


def adapter_class(provider):
    """The LedgerAdapter subclass for ``provider`` ('xero' or 'qbo')."""
    if provider == "xero":
        from .xero import XeroAdapter

        return XeroAdapter
    if provider == "qbo":
        from .qbo import QboAdapter

        return QboAdapter
    raise ValueError(f"unknown ledger provider {provider!r}")
