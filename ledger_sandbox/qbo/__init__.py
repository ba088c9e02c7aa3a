"""QuickBooks Online emulator: :class:`~ledger_sandbox.qbo.app.QboSandbox`."""

from .app import QboSandbox

__all__ = ["QboSandbox"]
