"""Local HTTP emulators of the Xero and QuickBooks Online APIs (loopback only).

``XeroSandbox`` and ``QboSandbox`` are imported lazily so that one provider's package can be
used while the other is absent or being worked on.  Shared machinery lives in
:mod:`ledger_sandbox.core`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["QboSandbox", "SandboxServer", "XeroSandbox"]


def __getattr__(name: str) -> Any:
    # Lazy exports: importing ledger_sandbox must not import both providers.
    if name == "XeroSandbox":
        from .xero.app import XeroSandbox

        return XeroSandbox
    if name == "QboSandbox":
        from .qbo.app import QboSandbox

        return QboSandbox
    if name == "SandboxServer":
        from .core import SandboxServer

        return SandboxServer
    raise AttributeError(name)
