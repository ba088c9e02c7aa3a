"""Webhook deliveries from a ledger, as plain Python: the signature first, then the events.

Both providers sign the raw body the same way: base64(HMAC-SHA256(key, body)) in a header
(Xero ``x-xero-signature`` with the app's webhook key, Intuit ``intuit-signature`` with the
app's verifier token). Nothing of a delivery is parsed before its signature is checked, in
constant time, against every key the database holds for the provider. Each adapter turns
a verified body into ``WebhookEvent`` rows (``parse_webhook``): a hint of what changed,
never its new state, which the inbound worker reads from the API.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

# bigger than any delivery either provider documents (Intuit batches events, Xero sends a
# few dozen at most): a larger body is refused before it is read whole
MAX_BODY = 256 * 1024
# the object kinds a ledger tells about, as PushItem kinds name them
EVENT_KINDS = ("contact", "invoice", "credit_note", "payment")
CHANGES = ("create", "update", "delete", "void", "merge")


class MalformedDelivery(ValueError):
    """A correctly signed body that is not a delivery of the provider's documented shape."""


@dataclass(frozen=True)
class WebhookEvent:
    """One change a ledger announced: ``org_id`` (Xero tenant, QuickBooks realm) changed
    ``kind`` ``ledger_id`` (``change``) at ``occurred_at`` (ISO 8601 text, as sent);
    ``event_id`` is unique per event (the provider's own id, or a digest of the event
    where it sends none): a delivery received twice changes nothing the second time."""

    org_id: str
    kind: str
    ledger_id: str
    change: str
    event_id: str
    occurred_at: str | None = None


def signature(key, body):
    """base64(HMAC-SHA256(key, body)): what either provider sends for ``body``."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def matching_keys(body, given, keys):
    """The keys of ``keys`` under which ``given`` signs ``body`` (usually one; none for a
    forged or missing signature). Every key is compared, each in constant time."""
    if not given or not isinstance(given, str):
        return []
    given = given.strip().encode("ascii", "replace")
    return [key for key in keys
            if key and hmac.compare_digest(signature(key, body).encode("ascii"), given)]


def load_json(body):
    """The JSON of a verified body; MalformedDelivery when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedDelivery("the body is not JSON") from exc


def digest_id(*parts):
    """An event id for a provider that sends none: a digest of what identifies the event."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:40]


def text(value, what, size=100):
    """``value`` as a non-empty string of at most ``size`` characters (MalformedDelivery
    otherwise): ids and dates of a delivery are short, and nothing longer is stored."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > size:
        raise MalformedDelivery(f"{what} is missing or not a short text")
    return value.strip()
