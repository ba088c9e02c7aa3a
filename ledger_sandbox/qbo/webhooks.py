"""QuickBooks Online webhook notifications: CloudEvents (default) or the classic payload.

**CloudEvents** (Intuit's format since 2025, mandatory from 31 July 2026:
https://blogs.intuit.com/2025/11/12/upcoming-change-to-webhooks-payload-structure/ and
https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks/data-objects): the body
is a JSON *array* of events, which may belong to several companies (realms)::

    [{"specversion": "1.0", "id": "<uuid>-Invoice-12",
      "source": "intuit.<app hash>", "type": "qbo.invoice.updated.v1",
      "datacontenttype": "application/json", "time": "2026-01-02T03:04:05.678Z",
      "intuitentityid": "12", "intuitaccountid": "<realmId>", "data": {}}]

``type`` is ``qbo.<entity lower-case>.<operation past tense>.v1`` (created, updated, deleted,
voided, merged, emailed); ``intuitentityid`` is the entity's Id and ``intuitaccountid`` the
realm id.  ``data`` is the empty object of Intuit's samples (it carries ``deletedid`` only
for Merge, which the emulator does not produce; Intuit notes some events come without
``data`` at all, so a receiver must not require it).

**Classic** (``configure(webhook_format="legacy")``; Intuit's webhooks page,
https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks)::

    {"eventNotifications": [{"realmId": "...", "dataChangeEvent": {"entities": [
        {"name": "Invoice", "id": "12", "operation": "Update",
         "lastUpdated": "2026-01-02T03:04:05.000Z"}]}}]}

Both carry the header ``intuit-signature`` = base64(HMAC-SHA256(verifier token, raw body));
python-quickbooks' ``QuickBooks.validate_webhook_signature`` checks exactly that.
Operations emulated: Create, Update, Delete, Void.

**Aggregation**: the events of every realm are collected for ``webhook_batch_seconds``
(default 0.2 s; 0 = one delivery per API request or bookkeeper action) and sent as one
delivery ("Instead of sending events as separate notifications, we put them all together
and send them in the order they happened", https://blogs.intuit.com/2024/12/02/introducing-our-new-webhooks-page).

**Delivery** (core's sender, :mod:`ledger_sandbox.delivery`): the receiver must answer 200
within 3 seconds; otherwise the delivery is retried after 10 s, 20 s, 30 s, 5 min, 20 min,
2 h, 4 h, 6 h and then every 6 h, later deliveries waiting behind it
(https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks/best-practices).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass

# Entities the emulator keeps for which Intuit offers webhooks (its table of "entities that
# support webhooks": TaxRate, TaxCode and CompanyCurrency are not in it).
NOTIFIED = {"Account", "Class", "CreditMemo", "Customer", "Department", "Employee", "Invoice",
            "Item", "Payment", "Term", "Vendor"}

FORMATS = ("cloudevents", "legacy")

# Operation -> the past tense of a CloudEvents ``type``.
PAST_TENSE = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided",
              "Merge": "merged", "Emailed": "emailed"}

# Intuit's documented answer deadline and retry schedule (seconds between attempts; the
# last one repeats for ever).
ANSWER_SECONDS = 3.0
RETRY_DELAYS = (10.0, 20.0, 30.0, 300.0, 1200.0, 7200.0, 14400.0, 21600.0)


@dataclass(frozen=True)
class Event:
    """One change notified: realm, entity name, Id, operation and POSIX time."""

    realm_id: str
    entity: str
    entity_id: str
    operation: str
    stamp: float


def sign(body: bytes, verifier_token: str) -> str:
    """The ``intuit-signature`` value for a raw body."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _stamp_text(stamp: float) -> str:
    return (dt.datetime.fromtimestamp(stamp, dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def events_of(realm_id: str, changes: list[tuple[str, str, str, float]]) -> list[Event]:
    """The notified events of one request's ``(entity, id, operation, POSIX time)``
    changes: entities Intuit notifies about only, a repeated (entity, id, operation) kept
    once with its last time, in the order first seen."""
    latest: dict[tuple[str, str, str], float] = {}
    for entity, entity_id, operation, stamp in changes:
        if entity in NOTIFIED:
            latest[(entity, str(entity_id), operation)] = stamp
    return [Event(str(realm_id), entity, entity_id, operation, stamp)
            for (entity, entity_id, operation), stamp in latest.items()]


def legacy_payload(events: list[Event]) -> dict:
    """The classic body: one ``eventNotifications`` item per realm, a repeated (entity,
    id, operation) of a realm collapsed to its last time (order: first appearance)."""
    realms: dict[str, dict[tuple[str, str, str], float]] = {}
    for event in events:
        entities = realms.setdefault(event.realm_id, {})
        entities[(event.entity, event.entity_id, event.operation)] = event.stamp
    return {"eventNotifications": [
        {"realmId": realm_id, "dataChangeEvent": {"entities": [
            {"name": entity, "id": entity_id, "operation": operation,
             "lastUpdated": _stamp_text(stamp)}
            for (entity, entity_id, operation), stamp in entities.items()]}}
        for realm_id, entities in realms.items()]}


def build(realm_id: str, changes: list[tuple[str, str, str, float]]) -> bytes | None:
    """The classic body for one realm's ``(entity, id, operation, POSIX time)`` changes,
    serialised as the emulator sends it (None when none is notified); kept for callers
    that make legacy deliveries by hand."""
    events = events_of(realm_id, changes)
    if not events:
        return None
    return json.dumps(legacy_payload(events), separators=(",", ":")).encode("utf-8")


def cloud_event(event: Event, source: str) -> dict:
    """One CloudEvent for ``event`` (see the module docstring)."""
    return {
        "specversion": "1.0",
        "id": f"{uuid.uuid4()}-{event.entity}-{event.entity_id}",
        "source": source,
        "type": f"qbo.{event.entity.lower()}.{PAST_TENSE[event.operation]}.v1",
        "datacontenttype": "application/json",
        "time": _stamp_text(event.stamp),
        "intuitentityid": event.entity_id,
        "intuitaccountid": event.realm_id,
        "data": {},
    }


def app_source(client_id: str) -> str:
    """A CloudEvents ``source`` in Intuit's form: ``intuit.`` + a base64 hash naming the
    app (Intuit does not say what it hashes; the emulator hashes the OAuth client id)."""
    digest = hashlib.sha256(client_id.encode("utf-8")).digest()
    return "intuit." + base64.b64encode(digest).decode("ascii")


class QboWebhooks:
    """Turns recorded changes into batched, signed deliveries through the app's sender."""

    def __init__(self, app):
        self.app = app
        self.format = "cloudevents"
        self.sent: list = []  # payloads built, oldest first (tests inspect them)
        self._source: str | None = None
        sender = app.webhook
        sender.policy(ANSWER_SECONDS, RETRY_DELAYS, repeat_last=True)
        sender.builder = self.build
        sender.batch_seconds = 0.2

    def set_format(self, value: str) -> None:
        """``cloudevents`` (default) or ``legacy``."""
        if value not in FORMATS:
            raise ValueError(f"webhook_format must be one of {FORMATS}")
        self.format = value

    def publish(self, realm_id: str, changes: list[tuple[str, str, str, float]]) -> bool:
        """Queue the notified events of one request (batched by the sender); called under
        the app lock."""
        self._source = self.source()
        return self.app.webhook.batch(events_of(realm_id, changes))

    def source(self) -> str:
        """The ``source`` of this app's CloudEvents."""
        client_id = next(iter(self.app.oauth.clients), "ledger-sandbox")
        return app_source(client_id)

    def build(self, events: list[Event]) -> list[tuple[bytes, dict]]:
        """One signed delivery for a batch of events, in the configured format."""
        if not events:
            return []
        if self.format == "legacy":
            payload: dict | list = legacy_payload(events)
        else:
            # the app's OAuth clients are read under the app lock, at publish time
            source = self._source or app_source("ledger-sandbox")
            payload = [cloud_event(event, source) for event in events]
        self.sent.append(payload)
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        return [(body, {"Content-Type": "application/json",
                        "intuit-signature": sign(body, self.app.webhook.key or "")})]
