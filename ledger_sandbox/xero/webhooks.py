"""Xero webhooks: payloads per xero-webhooks.yaml, x-xero-signature, intent to receive.

developer.xero.com/documentation/guides/webhooks/overview and …/configuring-your-server:

* the body is ``{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}``;
  each event has resourceUrl, resourceId, eventDateUtc, eventType (CREATE/UPDATE),
  eventCategory (CONTACT/INVOICE/CREDITNOTE), tenantId and tenantType (ORGANISATION);
* ``x-xero-signature`` is base64(HMAC-SHA256(webhook key, raw body));
* intent to receive: Xero posts ``{"events": [], "firstEventSequence": 0,
  "lastEventSequence": 0, "entropy": …}`` several times, some correctly and some incorrectly
  signed; the receiver must answer 200 to the former and 401 to the latter, within 5 seconds
  and with an empty body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
import time
import urllib.error
import urllib.request

from .dates import event_date

RESOURCE_PATHS = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "CreditNotes"}


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

    def _entropy(self) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(20))

    def build(self, tenant_id: str, changes: list[tuple[str, str, str]]) -> dict:
        """One payload for a batch of ``(category, eventType, resourceId)`` changes."""
        base = self.app.resource_base_url()
        now = event_date(self.app.clock())
        events = []
        for category, event_type, resource_id in changes:
            self.sequence += 1
            events.append({
                "resourceUrl": f"{base}/{RESOURCE_PATHS[category]}/{resource_id}",
                "resourceId": resource_id, "eventDateUtc": now, "eventType": event_type,
                "eventCategory": category, "tenantId": tenant_id,
                "tenantType": "ORGANISATION",
            })
        first = self.sequence - len(events) + 1
        return {"events": events, "firstEventSequence": first,
                "lastEventSequence": self.sequence, "entropy": self._entropy()}

    def publish(self, tenant_id: str, changes: list[tuple[str, str, str]]) -> dict | None:
        """Sign and queue one delivery (no-op without webhook URL and key, or no changes)."""
        sender = self.app.webhook
        changes = [c for c in _dedupe(changes) if c[0] in self.app.webhook_categories]
        if not changes or not sender.url or not sender.key:
            return None
        payload = self.build(tenant_id, changes)
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.sent.append(payload)
        sender.send(body, {"Content-Type": "application/json",
                           "x-xero-signature": sign(sender.key, body)})
        return payload

    def intent_to_receive(self, url: str | None = None, key: str | None = None,
                          rounds: int = 2, timeout: float = 5.0) -> dict:
        """Run Xero's intent-to-receive check against ``url`` and report the outcome.

        Sends ``rounds`` correctly signed and ``rounds`` incorrectly signed validation payloads
        (interleaved).  ``ok`` is True when every correct one got 200 and every incorrect one
        got 401, each within ``timeout`` seconds and with an empty body.
        """
        url = url or self.app.webhook.url
        key = key or self.app.webhook.key
        if not url or not key:
            raise ValueError("intent to receive needs a webhook URL and key")
        results = []
        for index in range(rounds * 2):
            correct = index % 2 == 0
            body = json.dumps({"events": [], "lastEventSequence": 0, "firstEventSequence": 0,
                               "entropy": self._entropy()},
                              separators=(",", ":")).encode("utf-8")
            signature = sign(key, body) if correct else sign(key + "-wrong", body)
            status, length, elapsed = _post(url, body, {"Content-Type": "application/json",
                                                        "x-xero-signature": signature},
                                            timeout)
            expected = 200 if correct else 401
            results.append({"correctly_signed": correct, "status": status,
                            "expected": expected, "body_bytes": length,
                            "seconds": round(elapsed, 3),
                            "passed": status == expected and elapsed <= timeout
                            and (length == 0 or not correct)})
        return {"ok": all(r["passed"] for r in results), "url": url, "results": results}


def _dedupe(changes: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    # One request may touch a record twice (create then recompute); Xero reports it once,
    # and a CREATE absorbs later UPDATEs of the same resource in the same batch.
    seen: dict[tuple[str, str], str] = {}
    for category, event_type, resource_id in changes:
        key = (category, resource_id)
        seen.setdefault(key, event_type)
    return [(c, t, r) for (c, r), t in seen.items()]


def _post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, int, float]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, len(answer.read()), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, len(error.read() or b""), time.monotonic() - started
    except (OSError, ValueError):
        return 0, 0, time.monotonic() - started
