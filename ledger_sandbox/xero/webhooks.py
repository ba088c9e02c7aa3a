"""Xero webhooks: payloads per xero-webhooks.yaml, x-xero-signature, retries, intent to receive.

developer.xero.com/documentation/guides/webhooks/overview and …/configuring-your-server:

* the body is ``{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}``;
  each event has resourceUrl, resourceId, eventDateUtc, eventType (CREATE/UPDATE),
  eventCategory (CONTACT/INVOICE/CREDITNOTE), tenantId and tenantType (ORGANISATION);
  a CREDITNOTE event also carries ``data`` ``{"Type": ACCRECCREDIT|ACCPAYCREDIT,
  "Status": DRAFT|SUBMITTED|AUTHORISED|PAID|VOIDED|DELETED}`` (xero-webhooks.yaml,
  ``CreditNoteWebhookEvent``: required), read from the credit note when it is notified;
* ``x-xero-signature`` is base64(HMAC-SHA256(webhook key, raw body));
* an acceptable answer is a 200 within 5 seconds, with no body and no cookies; otherwise
  "we will continue retrying the request, with decreasing frequency for up to 24 hours.
  After 24 hours the webhook will be disabled and needs to be re-enabled".  Xero does not
  publish the intervals: the emulator waits 1 min and doubles the wait up to 256 min, then
  repeats it, and gives up (disabling the subscription) when the next attempt would fall
  beyond 24 h after the first; ``webhook_retry_scale`` compresses all of it;
* intent to receive: Xero posts ``{"events": [], "firstEventSequence": 0,
  "lastEventSequence": 0, "entropy": …}`` several times, some correctly and some incorrectly
  signed; the receiver must answer 200 to the former and 401 to the latter, within 5 seconds
  and with an empty body (and, like every answer, no cookies).  Passing it re-enables a
  disabled subscription, as re-enabling one in Xero runs it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string

from ..delivery import Answer, deliver_once
from .dates import event_date

RESOURCE_PATHS = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "CreditNotes"}

ANSWER_SECONDS = 5.0
RETRY_DELAYS = (60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3840.0, 7680.0, 15360.0)
GIVE_UP_SECONDS = 24 * 3600.0


def acceptable(answer: Answer) -> str | None:
    """Xero's acceptable answer: 200, no body, no cookies (None) -- else the reason."""
    if answer.status != 200:
        return f"status {answer.status}"
    if answer.body:
        return "body"
    if "set-cookie" in answer.headers:
        return "cookie"
    return None


def sign(key: str, body: bytes) -> str:
    """Xero's x-xero-signature for ``body``."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class XeroWebhooks:
    """Builds, signs and queues webhook deliveries for one sandbox."""

    def __init__(self, app):
        self.app = app
        self.sequence = 0
        self.rng = random.Random()
        self.sent: list[dict] = []  # payloads queued, newest last (tests inspect them)
        app.webhook.policy(ANSWER_SECONDS, RETRY_DELAYS, repeat_last=True,
                           give_up_seconds=GIVE_UP_SECONDS, disable_on_give_up=True,
                           accept=acceptable)

    def _entropy(self) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(20))

    def build(self, tenant_id: str, changes: list[tuple[str, str, str]],
              ledger=None) -> dict:
        """One payload for a batch of ``(category, eventType, resourceId)`` changes
        (``ledger``: where credit notes are read for their ``data`` block)."""
        base = self.app.resource_base_url()
        now = event_date(self.app.clock())
        if ledger is None:
            ledger = self.app.ledgers.get(tenant_id)
        events = []
        for category, event_type, resource_id in changes:
            self.sequence += 1
            event = {
                "resourceUrl": f"{base}/{RESOURCE_PATHS[category]}/{resource_id}",
                "resourceId": resource_id, "eventDateUtc": now, "eventType": event_type,
                "eventCategory": category, "tenantId": tenant_id,
                "tenantType": "ORGANISATION",
            }
            if category == "CREDITNOTE":
                event["data"] = credit_note_data(ledger, resource_id)
            events.append(event)
        first = self.sequence - len(events) + 1
        return {"events": events, "firstEventSequence": first,
                "lastEventSequence": self.sequence, "entropy": self._entropy()}

    def publish(self, tenant_id: str, changes: list[tuple[str, str, str]],
                ledger=None) -> dict | None:
        """Sign and queue one delivery (no-op without webhook URL and key, with the
        subscription disabled, or without changes).  Call it under the app lock: credit
        notes are read from ``ledger`` for their ``data``."""
        sender = self.app.webhook
        changes = [c for c in _dedupe(changes) if c[0] in self.app.webhook_categories]
        if not changes or not sender.url or not sender.key or not sender.enabled:
            return None
        payload = self.build(tenant_id, changes, ledger)
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.sent.append(payload)
        sender.send(body, {"Content-Type": "application/json",
                           "x-xero-signature": sign(sender.key, body)})
        return payload

    def intent_to_receive(self, url: str | None = None, key: str | None = None,
                          rounds: int = 2, timeout: float | None = None) -> dict:
        """Run Xero's intent-to-receive check against ``url`` and report the outcome.

        Sends ``rounds`` correctly signed and ``rounds`` incorrectly signed validation payloads
        (interleaved).  ``ok`` is True when every correct one got 200 and every incorrect one
        got 401, each within ``timeout`` seconds (default: ``webhook_timeout``, 5 s) with an
        empty body and no cookie.  Passing it for the configured URL and key re-enables the
        subscription.
        """
        sender = self.app.webhook
        url = url or sender.url
        key = key or sender.key
        timeout = sender.timeout if timeout is None else timeout
        if not url or not key:
            raise ValueError("intent to receive needs a webhook URL and key")
        results = []
        for index in range(int(rounds) * 2):
            correct = index % 2 == 0
            body = json.dumps({"events": [], "lastEventSequence": 0, "firstEventSequence": 0,
                               "entropy": self._entropy()},
                              separators=(",", ":")).encode("utf-8")
            signature = sign(key, body) if correct else sign(key + "-wrong", body)
            answer = deliver_once(url, body, {"Content-Type": "application/json",
                                              "x-xero-signature": signature}, timeout)
            expected = 200 if correct else 401
            cookie = "set-cookie" in answer.headers
            results.append({"correctly_signed": correct, "status": answer.status,
                            "expected": expected, "body_bytes": len(answer.body),
                            "cookie": cookie, "seconds": round(answer.seconds, 3),
                            "passed": answer.status == expected and answer.seconds <= timeout
                            and (not answer.body or not correct) and not cookie})
        ok = all(r["passed"] for r in results)
        if ok and url == sender.url and key == sender.key:
            sender.enabled = True  # re-enabling a subscription in Xero runs this check
        return {"ok": ok, "url": url, "results": results}


def _dedupe(changes: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    # One request may touch a record twice (create then recompute); Xero reports it once,
    # and a CREATE absorbs later UPDATEs of the same resource in the same batch.
    seen: dict[tuple[str, str], str] = {}
    for category, event_type, resource_id in changes:
        key = (category, resource_id)
        seen.setdefault(key, event_type)
    return [(c, t, r) for (c, r), t in seen.items()]


def credit_note_data(ledger, credit_note_id: str) -> dict:
    """The ``data`` of a CREDITNOTE event: the credit note's Type and Status now."""
    note = ledger.credit_notes.get(credit_note_id) if ledger is not None else None
    note = note or {}
    return {"Type": note.get("Type", "ACCRECCREDIT"), "Status": note.get("Status", "DRAFT")}
