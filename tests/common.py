"""Helpers shared by the Odoo tests."""

from odoo.tests import new_test_user


def make_user(env, login, groups):
    """An internal user in exactly ``groups`` (comma separated xml ids)."""
    return new_test_user(env, login=login, groups=groups, name=login.replace("_", " ").title())


USER = "billing_sync.group_billing_sync_user"
MANAGER = "billing_sync.group_billing_sync_manager"
ADMIN = "billing_sync.group_billing_sync_admin"
