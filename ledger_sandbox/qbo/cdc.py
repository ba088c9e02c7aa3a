"""Change data capture: ``GET /v3/company/<realm>/cdc?entities=A,B&changedSince=<dateTime>``.

Follows Intuit's "Change data capture operation" page
(https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/change-data-capture):
the full payload of every entity of the listed types changed at or after ``changedSince``,
deleted ones as ``{"Id", "status": "Deleted", "domain", "MetaData"}``; the look-back is at
most 30 days (older: refused with the message Intuit's service returns); at most 1,000
objects per answer (oldest changes first).  One QueryResponse per requested entity, in the
order requested.  A ``changedSince`` without an offset is read in the company's zone (UTC).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import errors
from .entities import Ledger
from .store import ENTITY_TYPES

LOOKBACK_DAYS = 30
MAX_OBJECTS = 1000


def parse_changed_since(value: str | None) -> dt.datetime:
    """Read ``changedSince`` (date or dateTime, offset optional) as an aware datetime."""
    if not value:
        raise errors.required("changedSince")
    text = value.strip().replace(" ", "+").replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise errors.invalid_property(f"Invalid changedSince {value!r}", "changedSince") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def change_data_capture(ledger: Ledger, entities: str | None, changed_since: str | None,
                        now: dt.datetime) -> dict[str, Any]:
    """The CDCResponse body for one realm."""
    if not entities:
        raise errors.required("entities")
    canonical = {name.lower(): name for name in ENTITY_TYPES}
    names = []
    for raw in entities.split(","):
        name = canonical.get(raw.strip().lower())
        if name is None:
            raise errors.invalid_property(f"Unsupported entity {raw.strip()!r} for cdc",
                                          "entities")
        names.append(name)
    since = parse_changed_since(changed_since)
    if since < now - dt.timedelta(days=LOOKBACK_DAYS):
        raise errors.invalid_property(
            f"Operation cdc with changedSince date {changed_since} which is older than fixed "
            f"days is not supported.", "changedSince")
    cutoff = since.timestamp()
    realm = ledger.realm
    found: list[tuple[float, str, dict]] = []
    for name in names:
        for record in realm.entities[name].values():
            stamp = realm.stamp(name, record["Id"])
            if stamp >= cutoff:
                found.append((stamp, name, ledger.render(name, record)))
        for tomb in realm.deleted[name].values():
            stamp = realm.stamp(name, tomb["Id"])
            if stamp >= cutoff:
                found.append((stamp, name, dict(tomb)))
    found.sort(key=lambda item: item[0])
    found = found[:MAX_OBJECTS]
    responses = []
    for name in names:
        objects = [obj for _, entity, obj in found if entity == name]
        response: dict[str, Any] = {}
        if objects:
            response = {name: objects, "startPosition": 1, "maxResults": len(objects),
                        "totalCount": len(objects)}
        responses.append(response)
    return {"CDCResponse": [{"QueryResponse": responses}], "time": errors.qbo_time(now)}
