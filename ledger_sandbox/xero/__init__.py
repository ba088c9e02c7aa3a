"""Xero emulator: identity (OAuth2, Connections), Accounting API subset, webhooks."""

from .app import XeroSandbox

__all__ = ["XeroSandbox"]
