"""QuickBooks Online webhook notifications (the classic payload) and their signature.

Payload, per Intuit's webhooks page
(https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks)::

    {"eventNotifications": [{"realmId": "...", "dataChangeEvent": {"entities": [
        {"name": "Invoice", "id": "12", "operation": "Update",
         "lastUpdated": "2026-01-02T03:04:05.000Z"}]}}]}

Header ``intuit-signature`` = base64(HMAC-SHA256(verifier token, raw body)); python-quickbooks'
``QuickBooks.validate_webhook_signature`` checks exactly that.  Operations: Create, Update,
Delete, Void (Merge and Emailed are not produced by the emulator).  Intuit aggregates events
per realm; the emulator sends one notification per API request or bookkeeper action, with
every entity that request changed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

# Entities for which Intuit offers webhooks (all emulated ones but TaxRate).
NOTIFIED = {"Account", "Class", "CreditMemo", "Customer", "Department", "Invoice", "Item",
            "Payment", "TaxCode", "Term"}


def sign(body: bytes, verifier_token: str) -> str:
    """The ``intuit-signature`` value for a raw body."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def build(realm_id: str, events: list[tuple[str, str, str, float]]) -> bytes | None:
    """Serialise a notification for ``(entity, id, operation, POSIX time)`` events.

    Repeated (entity, id, operation) triples collapse to the last one; returns None when no
    event is one Intuit notifies about.
    """
    latest: dict[tuple[str, str, str], float] = {}
    for entity, entity_id, operation, stamp in events:
        if entity in NOTIFIED:
            latest[(entity, entity_id, operation)] = stamp
    if not latest:
        return None
    entities = [
        {"name": entity, "id": entity_id, "operation": operation,
         "lastUpdated": dt.datetime.fromtimestamp(stamp, dt.UTC)
         .isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        for (entity, entity_id, operation), stamp in latest.items()
    ]
    payload = {"eventNotifications": [{"realmId": realm_id,
                                       "dataChangeEvent": {"entities": entities}}]}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
