"""Webhook delivery shared by the emulators: an ordered queue, batching, answers, retries.

The provider apps build and sign the bodies; :class:`WebhookSender` only transports them,
the way both providers describe their delivery:

* **Ordered, one at a time.**  Deliveries leave in the order they were queued and a failed
  one is retried before anything queued after it is sent (Intuit: "You may not receive
  subsequent events from our system until you correctly acknowledge the first event",
  https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks/best-practices).
* **Acceptable answer.**  200 within ``timeout`` seconds (Intuit: 3 s; Xero: 5 s, and no
  body, no cookies: https://developer.xero.com/documentation/guides/webhooks/configuring-your-server);
  anything else -- another status, a slower answer, no answer -- is a failed attempt.  A
  provider narrows it further with :attr:`WebhookSender.accept`.
* **Retries** after the delays of ``retry_delays`` (seconds between one attempt and the
  next; with ``repeat_last`` the last delay repeats for ever), every delay multiplied by
  ``retry_scale`` so tests and benchmarks can compress hours into milliseconds, as
  ``window_seconds`` compresses the rate-limit minute.  ``give_up_seconds`` (scaled too)
  ends the retries of a delivery that long after its first attempt; with
  ``disable_on_give_up`` the subscription is then disabled (Xero: "After 24 hours the
  webhook will be disabled and needs to be re-enabled"), which drops what is queued and
  whatever is sent until it is enabled again.
* **Batching** (optional): :meth:`WebhookSender.batch` collects provider events for
  ``batch_seconds`` (from the first event of a batch) and hands them to :attr:`builder`,
  which returns the deliveries to queue (Intuit aggregates the events of every connected
  company into one notification).

Every attempt is recorded in :attr:`WebhookSender.attempts` (a dict: delivery number,
attempt number, status, ok, reason, seconds taken, seconds after the delivery's first
attempt, the delay before the next one) and, as before, ``(status, body)`` in
:attr:`WebhookSender.deliveries`.  Status 0 means no HTTP answer (refused, timed out).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """What one POST to a receiver got back (status 0: no HTTP answer; see ``error``)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    seconds: float = 0.0
    error: str | None = None  # "timeout" | "unreachable" | "bad_url" when status is 0


def deliver_once(url: str, body: bytes, headers: dict, timeout: float) -> Answer:
    """POST ``body`` to ``url`` once, waiting at most ``timeout`` seconds for the answer.

    Redirects are not followed (neither provider documents following them: a 3xx is an
    unacceptable answer like any other non-200).
    """
    started = time.monotonic()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Answer(0, seconds=0.0, error="bad_url")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=max(timeout, 0.001))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("POST", path, body=body, headers=dict(headers))
        answer = connection.getresponse()
        data = answer.read()
        return Answer(answer.status, data, {k.lower(): v for k, v in answer.getheaders()},
                      time.monotonic() - started)
    except TimeoutError:
        return Answer(0, seconds=time.monotonic() - started, error="timeout")
    except (OSError, http.client.HTTPException, ValueError):
        return Answer(0, seconds=time.monotonic() - started, error="unreachable")
    finally:
        connection.close()


def status_200(answer: Answer) -> str | None:
    """Default acceptance: only a 200 counts (the reason of a failure otherwise)."""
    return None if answer.status == 200 else f"status {answer.status}"


@dataclass
class _Delivery:
    number: int
    body: bytes
    headers: dict
    attempts: int = 0
    first_at: float | None = None
    next_at: float = 0.0


class WebhookSender:
    """Delivers webhook POSTs to ``url`` from a background thread, in order, with retries.

    ``deliveries`` records ``(status, body)`` per attempt and ``attempts`` the details (see
    the module docstring).  Tests call :meth:`flush` to wait for the queue to drain.
    """

    def __init__(self, url: str | None = None, key: str | None = None, timeout: float = 5.0):
        self.url = url
        self.key = key
        self.timeout = timeout
        # the provider's documented schedule (kept to restore it) and the one in force
        self.default_retry_delays: tuple[float, ...] = ()
        self.retry_delays: list[float] = []
        self.repeat_last = False
        self.retry_scale = 1.0
        self.give_up_seconds: float | None = None
        self.disable_on_give_up = False
        self.enabled = True
        self.accept: Callable[[Answer], str | None] = status_200
        self.batch_seconds = 0.0
        self.builder: Callable[[list], list[tuple[bytes, dict]]] | None = None
        self.deliveries: list[tuple[int, bytes]] = []
        self.attempts: list[dict] = []
        self.given_up: list[dict] = []  # deliveries abandoned (retries over, or disabled)
        # deliveries (or batches) not sent: subscription disabled, or cleared while queued
        self.dropped = 0
        self.last_error: str | None = None  # an emulator bug met while building or sending
        self._cond = threading.Condition()
        self._queue: list[_Delivery] = []
        self._batch: list = []
        self._batch_due = 0.0
        self._flush_batch = False
        self._busy = False  # an attempt or a build is under way
        self._number = 0
        self._thread: threading.Thread | None = None

    # ---- policy

    def policy(self, timeout: float, retry_delays: tuple[float, ...], repeat_last: bool,
               give_up_seconds: float | None = None, disable_on_give_up: bool = False,
               accept: Callable[[Answer], str | None] = status_200) -> None:
        """Set the provider's documented delivery rules (the apps call it once)."""
        self.timeout = timeout
        self.default_retry_delays = tuple(retry_delays)
        self.retry_delays = list(retry_delays)
        self.repeat_last = repeat_last
        self.give_up_seconds = give_up_seconds
        self.disable_on_give_up = disable_on_give_up
        self.accept = accept

    def set_retry_delays(self, delays: list[float] | None) -> None:
        """Replace the schedule (seconds between attempts; None: the provider's own)."""
        if delays is None:
            self.retry_delays = list(self.default_retry_delays)
            return
        values = [float(d) for d in delays]
        if any(d < 0 for d in values):
            raise ValueError("webhook_retry_delays must not be negative")
        self.retry_delays = values

    def next_delay(self, attempts: int) -> float | None:
        """Unscaled seconds before attempt ``attempts + 1`` (None: no further attempt)."""
        if attempts - 1 < len(self.retry_delays):
            return self.retry_delays[attempts - 1]
        if self.repeat_last and self.retry_delays:
            return self.retry_delays[-1]
        return None

    # ---- queueing

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="webhook-sender",
                                            daemon=True)
            self._thread.start()

    def send(self, body: bytes, headers: dict) -> bool:
        """Queue one delivery; False when nothing is sent (no URL, or disabled)."""
        with self._cond:
            if not self.url:
                return False
            if not self.enabled:
                self.dropped += 1
                return False
            self._enqueue(body, headers)
            return True

    def _enqueue(self, body: bytes, headers: dict) -> None:
        # hold _cond
        self._number += 1
        self._queue.append(_Delivery(self._number, body, dict(headers),
                                     next_at=time.monotonic()))
        self._ensure_thread()
        self._cond.notify_all()

    def batch(self, events: list) -> bool:
        """Add provider events to the open batch (sent ``batch_seconds`` after its first
        event through :attr:`builder`); with ``batch_seconds`` 0 they are built and queued
        at once.  False when nothing will be sent (no URL, or disabled)."""
        if not events:
            return False
        with self._cond:
            if not self.url or self.builder is None:
                return False
            if not self.enabled:
                self.dropped += 1
                return False
            if self.batch_seconds <= 0 and not self._batch:
                for body, headers in self.builder(list(events)):
                    self._enqueue(body, headers)
                return True
            if not self._batch:
                self._batch_due = time.monotonic() + self.batch_seconds
            self._batch.extend(events)
            self._ensure_thread()
            self._cond.notify_all()
            return True

    def clear(self, history: bool = False) -> None:
        """Drop the open batch and every queued delivery (and, with ``history``, the
        records of past attempts)."""
        with self._cond:
            self.dropped += len(self._queue) + (1 if self._batch else 0)
            self._queue.clear()
            self._batch = []
            if history:
                self.deliveries.clear()
                self.attempts.clear()
                self.given_up.clear()
            self._cond.notify_all()

    def pending(self) -> int:
        """Deliveries queued or being attempted, plus one for an open batch."""
        with self._cond:
            return len(self._queue) + (1 if self._batch else 0)

    def flush(self, timeout: float = 5.0) -> bool:
        """Send the open batch now and wait until every queued delivery was delivered or
        abandoned; False on timeout (e.g. a delivery waiting for a retry)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._batch:
                self._flush_batch = True
                self._cond.notify_all()
            while self._queue or self._batch or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    # ---- the worker

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
                self._busy = True
            try:
                if job[0] == "build":
                    built = self.builder(job[1]) if self.builder else []
                    with self._cond:
                        if self.url and self.enabled:
                            for body, headers in built:
                                self._enqueue(body, headers)
                        else:
                            self.dropped += len(built)
                else:
                    self._attempt(job[1])
            except Exception as error:  # noqa: BLE001 - a builder bug must not stop delivery
                self.last_error = repr(error)
                with self._cond:
                    self.dropped += 1
                    if job[0] == "attempt" and self._queue and self._queue[0] is job[1]:
                        self._queue.pop(0)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _next_job(self) -> tuple[str, Any]:
        # hold _cond; block until a batch is due or the head delivery is
        while True:
            now = time.monotonic()
            if self._batch and (self._flush_batch or self._batch_due <= now):
                events, self._batch, self._flush_batch = self._batch, [], False
                return ("build", events)
            if self._queue and not self.url:
                self.dropped += len(self._queue)
                self._queue.clear()
                self._cond.notify_all()
                continue
            if self._queue and self._queue[0].next_at <= now:
                return ("attempt", self._queue[0])
            waits = [d for d in (self._batch_due if self._batch else None,
                                 self._queue[0].next_at if self._queue else None)
                     if d is not None]
            self._cond.wait(max(0.0, min(waits) - now) if waits else None)

    def _attempt(self, delivery: _Delivery) -> None:
        url = self.url or ""
        started = time.monotonic()
        if delivery.first_at is None:
            delivery.first_at = started
        delivery.attempts += 1
        answer = deliver_once(url, delivery.body, delivery.headers, self.timeout)
        if answer.status == 0:
            reason = answer.error or "unreachable"
        elif answer.seconds > self.timeout:
            reason = "slow"
        else:
            reason = self.accept(answer)
        record = {"delivery": delivery.number, "attempt": delivery.attempts, "url": url,
                  "status": answer.status, "ok": reason is None, "reason": reason,
                  "seconds": round(answer.seconds, 4),
                  "after_first": round(started - delivery.first_at, 4),
                  "next_in": None, "body": delivery.body}
        with self._cond:
            self.deliveries.append((answer.status, delivery.body))
            self.attempts.append(record)
            still_queued = bool(self._queue) and self._queue[0] is delivery
            if not still_queued:
                return  # cleared while it was being attempted
            if reason is None:
                self._queue.pop(0)
                return
            delay = self.next_delay(delivery.attempts)
            now = time.monotonic()
            if delay is not None:
                wait = delay * self.retry_scale
                window = (self.give_up_seconds * self.retry_scale
                          if self.give_up_seconds is not None else None)
                if window is None or now + wait - delivery.first_at <= window:
                    record["next_in"] = round(wait, 4)
                    delivery.next_at = now + wait
                    return
            self._queue.pop(0)
            self.given_up.append({"delivery": delivery.number, "attempts": delivery.attempts,
                                  "body": delivery.body})
            if self.disable_on_give_up:
                self.enabled = False
                self.dropped += len(self._queue) + (1 if self._batch else 0)
                self._queue.clear()
                self._batch = []

    # ---- reporting

    def report(self) -> dict:
        """JSON-ready state for the control API (bodies as text)."""
        with self._cond:
            attempts = [{**a, "body": a["body"].decode("utf-8", "replace")}
                        for a in self.attempts]
            given_up = [{**g, "body": g["body"].decode("utf-8", "replace")}
                        for g in self.given_up]
            return {"url": self.url, "enabled": self.enabled,
                    "queued": len(self._queue), "batched_events": len(self._batch),
                    "dropped": self.dropped, "last_error": self.last_error,
                    "attempts": attempts, "given_up": given_up}
