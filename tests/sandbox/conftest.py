"""Fixtures of the ledger sandbox tests (plain pytest; no Odoo, no database).

pytest-odoo is installed in this interpreter and its autouse fixtures open an Odoo registry,
which needs a database.  The sandbox tests never touch Odoo, so those fixtures are replaced by
no-ops for this directory only (the rest of the suite keeps the plugin's behaviour).
"""

import pytest


def _billing_sync_services_importable():
    """Let ``billing_sync.services...`` import without Odoo.

    The adapters under test are plain Python, but the package ``billing_sync`` is an
    Odoo addon whose __init__ imports its models (Odoo refuses them outside
    ``odoo.addons``). A bare package object for the addon's directory lets the
    services import normally (their own __init__ files run, the addon's does not).
    """
    import importlib.util
    import pathlib
    import sys
    import types

    if "billing_sync" in sys.modules:
        return
    root = pathlib.Path(__file__).resolve().parents[2] / "billing_sync"
    package = types.ModuleType("billing_sync")
    package.__path__ = [str(root)]
    package.__spec__ = importlib.util.spec_from_loader("billing_sync", None, is_package=True)
    package.__spec__.submodule_search_locations = [str(root)]
    sys.modules["billing_sync"] = package


_billing_sync_services_importable()


@pytest.fixture(scope="session", autouse=True)
def load_registry():
    """No Odoo registry for sandbox tests (overrides pytest-odoo's autouse fixture)."""
    yield


@pytest.fixture(scope="session", autouse=True)
def load_http():
    """No Odoo HTTP server for sandbox tests (overrides pytest-odoo's autouse fixture)."""
    yield


@pytest.fixture(scope="module", autouse=True)
def enable_odoo_test_flag():
    """Leave Odoo's test flag alone (overrides pytest-odoo's autouse fixture)."""
    yield


# --------------------------------------------------------------------------- QuickBooks Online
# Fixtures of the QBO emulator tests live in qbo_support.py (qbo_server, qbo_sandbox, qbo,
# qbo_connect, qbo_webhooks).
from qbo_support import (  # noqa: E402, F401
    qbo,
    qbo_connect,
    qbo_sandbox,
    qbo_server,
    qbo_webhooks,
)

# --------------------------------------------------------------------------- Xero
# Fixtures of the Xero emulator tests live in xero_support.py (xero_server, xero_sandbox,
# xero, xero_clock, xero_webhooks).
from xero_support import (  # noqa: E402, F401
    xero,
    xero_clock,
    xero_sandbox,
    xero_server,
    xero_webhooks,
)
