"""The batch endpoint: ``POST /v3/company/<realm>/batch`` with an IntuitBatchRequest.

Per Intuit's batch page
(https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/batch):
up to 30 ``BatchItemRequest`` per call, each with a ``bId`` and either an ``operation``
(create, update, delete, void) plus one entity, or a ``Query``.  Items run in order and
independently: a failing item answers its own ``Fault`` and the others still run.  The answer
holds one ``BatchItemResponse`` per item, with the same ``bId``.  More than 30 items refuse the
whole call (Fault 2010; Intuit documents the limit, not the exact error, so the code is an
assumption).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import errors
from .entities import Ledger
from .store import ENTITY_TYPES

MAX_ITEMS = 30


def run_batch(ledger: Ledger, body: Any, query: Callable[[str], dict],
              max_items: int = MAX_ITEMS) -> list[dict]:
    """Run every item; return the BatchItemResponse list."""
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise errors.required("BatchItemRequest")
    if len(items) > max_items:
        raise errors.invalid_property(
            f"Batch request has {len(items)} BatchItemRequest; the maximum is {max_items}.",
            "BatchItemRequest")
    answers = []
    for item in items:
        bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
        try:
            answers.append({"bId": bid, **_run_item(ledger, item, query)})
        except errors.QboFault as fault:
            answers.append({"bId": bid, "Fault": fault.fault()})
    return answers


def _run_item(ledger: Ledger, item: Any, query: Callable[[str], dict]) -> dict:
    if not isinstance(item, dict):
        raise errors.bad_request("BatchItemRequest must be an object")
    if "Query" in item:
        return {"QueryResponse": query(str(item["Query"]))}
    entity = next((name for name in ENTITY_TYPES if name in item), None)
    if entity is None:
        raise errors.required("entity")
    operation = str(item.get("operation") or "").lower()
    body = item[entity]
    if operation == "create":
        return {entity: ledger.create(entity, body)}
    if operation == "update":
        return {entity: ledger.update(entity, body)}
    if operation == "delete":
        return {entity: ledger.delete(entity, body)}
    if operation == "void":
        return {entity: ledger.void(entity, body)}
    raise errors.unsupported(operation or "(none)", entity)
