"""Shared pytest set-up.

pytest-odoo loads Odoo's registry for the database given with --odoo-database;
plain tests (no database) live beside the Odoo ones and run in the same session.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root():
    return ROOT
