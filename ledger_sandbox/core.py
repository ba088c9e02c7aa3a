"""Shared machinery of the ledger sandbox emulators (provider independent).

One emulator is a :class:`SandboxApp` subclass: a list of routes plus hooks that shape the
provider's own error bodies.  :class:`SandboxServer` serves an app over HTTP on loopback only.

Request pipeline run by :meth:`SandboxApp.handle` for every non-control request::

    counters -> fault injection -> auth -> rate limit -> idempotency -> handler

The control API under ``/_sandbox/`` (reset, dump/load, faults, counters, config, bookkeeper
actions, webhooks) bypasses counters, faults, auth and rate limits, so tests and benchmarks
can steer the emulator without disturbing what they measure.

Route handlers are called as ``handler(request)``; ``request.params`` holds the named groups of
the route regex and ``request.route`` the matched :class:`Route`.  A handler returns a
:class:`Response` or raises :class:`SandboxError`, which the app renders in the provider's shape
through :meth:`SandboxApp.render_error`.
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime as dt
import ipaddress
import json
import math
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .delivery import WebhookSender

FAULT_KINDS = ("http500", "http503", "hang", "reset", "http429", "http401", "redirect",
               "bad_json", "no_ids", "one_fewer", "no_access_token", "empty_object",
               "no_status")
# Faults that spoil the answer of a request the emulator did handle (the ledger did the
# work, what came back cannot be believed): the answer kept for an idempotent replay is the
# true one, so a retry under the same key gets it.
ANSWER_FAULTS = ("bad_json", "no_ids", "one_fewer", "no_access_token", "empty_object",
                 "no_status")
# Version of the shape of SandboxApp.dump() (the --state-dir files): bump it when a dump of
# this version can no longer be loaded as-is; a state file of another version is refused.
STATE_VERSION = 1


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime (the default app clock)."""
    return dt.datetime.now(dt.timezone.utc)


class Headers(dict):
    """A dict of HTTP headers whose keys are case-insensitive (stored lower-cased)."""

    def __init__(self, items: Any = ()):
        super().__init__()
        pairs = items.items() if hasattr(items, "items") else items
        for key, value in pairs:
            self[key] = value

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        """Return the header value for ``key`` (any case) or ``default``."""
        return super().get(key.lower(), default)

    def pop(self, key: str, *default: Any) -> Any:
        """Remove and return the header ``key`` (any case)."""
        return super().pop(key.lower(), *default)

    def update(self, other: Any = (), **more: str) -> None:
        """Merge headers, lower-casing every name (dict.update would bypass __setitem__)."""
        pairs = other.items() if hasattr(other, "items") else other
        for key, value in [*pairs, *more.items()]:
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Set ``key`` (any case) unless present; return its value."""
        return super().setdefault(key.lower(), default)


@dataclass
class Request:
    """One HTTP request as the app sees it (already fully read from the socket)."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    client: str = "127.0.0.1"
    params: dict[str, str] = field(default_factory=dict)
    route: Any = None
    # Free slot for hooks to pass data down the pipeline (e.g. the authenticated tenant).
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            self.headers = Headers(self.headers)

    def json(self) -> Any:
        """Return the body parsed as JSON, or None when empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def arg(self, name: str, default: Any = None) -> Any:
        """Return the first query value for ``name`` (case-insensitive name) or ``default``."""
        lowered = name.lower()
        for key, values in self.query.items():
            if key.lower() == lowered and values:
                return values[0]
        return default

    def form(self) -> dict[str, str]:
        """Return an application/x-www-form-urlencoded body as a dict of first values."""
        parsed = urllib.parse.parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}


class Response:
    """An HTTP answer; dict/list bodies are sent as JSON (application/json; charset=utf-8).

    ``action`` is set only by transport faults: ``"hang"`` or ``"reset"`` tell the server to
    misbehave instead of answering.
    """

    def __init__(
        self,
        status: int = 200,
        body: bytes | dict | list | str | None = b"",
        headers: dict | None = None,
        action: str | None = None,
        hang_seconds: float = 0.0,
    ):
        self.status = status
        self.body = body if body is not None else b""
        self.headers = Headers(headers or {})
        self.action = action
        self.hang_seconds = hang_seconds
        # the counters' endpoint label of a provider request (None: the control API)
        self.label: str | None = None

    def body_bytes(self) -> bytes:
        """Serialise the body and set a Content-Type when the body type implies one."""
        body = self.body
        if isinstance(body, (dict, list)):
            self.headers.setdefault("content-type", "application/json; charset=utf-8")
            return json.dumps(body, default=str).encode("utf-8")
        if isinstance(body, str):
            self.headers.setdefault("content-type", "text/plain; charset=utf-8")
            return body.encode("utf-8")
        return body

    def json(self) -> Any:
        """Return the body as Python data (parsing bytes/str JSON), for tests and replays."""
        if isinstance(self.body, (dict, list)):
            return self.body
        raw = self.body.encode("utf-8") if isinstance(self.body, str) else self.body
        return json.loads(raw.decode("utf-8")) if raw else None

    def copy(self) -> Response:
        """Return a deep copy (stored idempotent answers must not be mutated by replays)."""
        return Response(self.status, copy.deepcopy(self.body), dict(self.headers), self.action,
                        self.hang_seconds)

    def __repr__(self) -> str:
        return f"Response({self.status}, action={self.action!r})"


class SandboxError(Exception):
    """Raised by handlers/hooks; rendered by :meth:`SandboxApp.render_error`.

    ``kind`` is a provider-neutral tag (e.g. ``"validation"``, ``"not_found"``) and ``detail``
    carries whatever the provider renderer needs; ``body`` short-circuits rendering.
    """

    def __init__(self, status: int, message: str = "", kind: str = "error",
                 detail: Any = None, body: Any = None, headers: dict | None = None):
        super().__init__(message or kind)
        self.status = status
        self.message = message
        self.kind = kind
        self.detail = detail
        self.body = body
        self.headers = headers or {}


@dataclass
class Route:
    """A route: method, compiled path regex, handler and per-route pipeline switches."""

    method: str
    regex: re.Pattern
    handler: Callable[[Request], Response]
    label: str = ""
    auth: bool = True
    limited: bool = True
    idempotent: bool = True

    @classmethod
    def of(cls, spec: Any) -> Route:
        """Build a Route from a Route or a ``(method, regex, handler[, options])`` tuple."""
        if isinstance(spec, Route):
            return spec
        method, regex, handler, *rest = spec
        options = dict(rest[0]) if rest else {}
        pattern = re.compile(regex, re.IGNORECASE) if isinstance(regex, str) else regex
        options.setdefault("label", f"{method.upper()} {pattern.pattern}")
        return cls(method.upper(), pattern, handler, **options)


# --------------------------------------------------------------------------- counters


class Counters:
    """Thread-safe request counters by endpoint label and status (benchmarks read these)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, collections.Counter] = {}
        self._bytes: collections.Counter = collections.Counter()
        self._total = 0

    def hit(self, endpoint_label: str, status: int | str) -> None:
        """Count one request to ``endpoint_label`` that ended with ``status``."""
        with self._lock:
            self._data.setdefault(endpoint_label, collections.Counter())[str(status)] += 1
            self._total += 1

    def sent(self, endpoint_label: str, size: int) -> None:
        """Count ``size`` bytes of response body sent for ``endpoint_label`` (what a
        provider that prices API use by data read, as Xero does from 2026, would bill)."""
        with self._lock:
            self._bytes[endpoint_label] += size

    def snapshot(self) -> dict:
        """Return ``{"by_endpoint": {label: {status: n}}, "total": n, "bytes_by_endpoint":
        {label: bytes of response bodies}}``."""
        with self._lock:
            return {
                "by_endpoint": {label: dict(c) for label, c in self._data.items()},
                "total": self._total,
                "bytes_by_endpoint": dict(self._bytes),
            }

    def reset(self) -> None:
        """Forget all counts."""
        with self._lock:
            self._data.clear()
            self._bytes.clear()
            self._total = 0


# --------------------------------------------------------------------------- rate limits


@dataclass
class Decision:
    """Outcome of :meth:`RateLimiter.acquire`."""

    allowed: bool
    problem: str | None = None  # 'minute' | 'day' | 'concurrent' | None
    retry_after: int = 0
    min_remaining: int | None = None
    day_remaining: int | None = None


class RateLimiter:
    """Per-key sliding-window limits: calls per window, per day window, and concurrent calls.

    ``window_seconds`` is the length of "a minute" and ``day_seconds`` of "a day", so a
    benchmark can compress time.  A refused call does not consume quota.  Call
    :meth:`release` once per allowed :meth:`acquire` when the request finishes.
    """

    def __init__(self, per_minute: int | None = None, per_day: int | None = None,
                 concurrent: int | None = None, window_seconds: float = 60.0,
                 day_seconds: float = 86400.0, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.per_day = per_day
        self.concurrent = concurrent
        self.window_seconds = window_seconds
        self.day_seconds = day_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._minute: dict[str, collections.deque] = {}
        self._day: dict[str, collections.deque] = {}
        self._active: collections.Counter = collections.Counter()

    def configure(self, **limits: Any) -> None:
        """Change limits/windows at run time (unknown names raise TypeError)."""
        for name, value in limits.items():
            if name not in ("per_minute", "per_day", "concurrent", "window_seconds", "day_seconds"):
                raise TypeError(f"unknown rate-limit option {name!r}")
            setattr(self, name, value)

    def _prune(self, stamps: collections.deque, now: float, width: float) -> None:
        while stamps and stamps[0] <= now - width:
            stamps.popleft()

    @staticmethod
    def _wait(stamps: collections.deque, now: float, width: float) -> int:
        # Seconds until the oldest call in the window leaves it; Retry-After is whole seconds.
        return max(1, math.ceil(stamps[0] + width - now)) if stamps else 1

    def peek(self, key: str) -> Decision:
        """Return the remaining quotas for ``key`` without consuming any."""
        with self._lock:
            _now, minute, day = self._windows(key)
            return Decision(True, None, 0, self._left(self.per_minute, minute),
                            self._left(self.per_day, day))

    def _windows(self, key: str) -> tuple[float, collections.deque, collections.deque]:
        # (now, minute window, day window) of ``key``, expired calls dropped; hold _lock
        now = self.clock()
        minute = self._minute.setdefault(key, collections.deque())
        day = self._day.setdefault(key, collections.deque())
        self._prune(minute, now, self.window_seconds)
        self._prune(day, now, self.day_seconds)
        return now, minute, day

    @staticmethod
    def _left(limit: int | None, stamps: collections.deque) -> int | None:
        return None if limit is None else max(0, limit - len(stamps))

    def acquire(self, key: str) -> Decision:
        """Try to start one call for ``key``; on success it counts against every limit."""
        with self._lock:
            now, minute, day = self._windows(key)
            min_left = self._left(self.per_minute, minute)
            day_left = self._left(self.per_day, day)
            if self.per_day is not None and len(day) >= self.per_day:
                return Decision(False, "day", self._wait(day, now, self.day_seconds),
                                min_left, 0)
            if self.per_minute is not None and len(minute) >= self.per_minute:
                return Decision(False, "minute", self._wait(minute, now, self.window_seconds),
                                0, day_left)
            if self.concurrent is not None and self._active[key] >= self.concurrent:
                return Decision(False, "concurrent", 1, min_left, day_left)
            minute.append(now)
            day.append(now)
            self._active[key] += 1
            return Decision(True, None, 0, self._left(self.per_minute, minute),
                            self._left(self.per_day, day))

    def release(self, key: str) -> None:
        """Finish one call started by a successful :meth:`acquire`."""
        with self._lock:
            if self._active[key] > 0:
                self._active[key] -= 1

    def reset(self) -> None:
        """Forget all recorded calls."""
        with self._lock:
            self._minute.clear()
            self._day.clear()
            self._active.clear()


# --------------------------------------------------------------------------- idempotency


class IdempotencyStore:
    """Stored first answers by ``(scope, key)``; scope is the tenant/realm.

    :meth:`lock` serialises concurrent requests with the same key so that the second one
    waits for the first and then replays its answer instead of creating a duplicate.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], Response] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def lock(self, scope: str, key: str) -> threading.Lock:
        """Return the lock serialising requests for ``(scope, key)``."""
        with self._lock:
            return self._locks.setdefault((scope, key), threading.Lock())

    def get(self, scope: str, key: str) -> Response | None:
        """Return a copy of the stored answer for ``(scope, key)``, or None."""
        with self._lock:
            stored = self._answers.get((scope, key))
        return stored.copy() if stored is not None else None

    def put(self, scope: str, key: str, response: Response) -> None:
        """Store ``response`` as the answer for ``(scope, key)`` (first one wins)."""
        with self._lock:
            self._answers.setdefault((scope, key), response.copy())

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)

    def reset(self) -> None:
        """Forget all stored answers."""
        with self._lock:
            self._answers.clear()
            self._locks.clear()

    def dump(self) -> list[dict]:
        """The stored answers as JSON-serialisable data (for :meth:`load`)."""
        with self._lock:
            return [{"scope": scope, "key": key, **_response_data(response)}
                    for (scope, key), response in self._answers.items()]

    def load(self, items: list[dict]) -> None:
        """Replace the stored answers with :meth:`dump` output."""
        answers = {(str(item["scope"]), str(item["key"])): _response_from(item)
                   for item in items}
        with self._lock:
            self._answers = answers


def _response_data(response: Response) -> dict:
    # A stored answer as JSON data: its body kept as JSON, text or base64 bytes.
    body = response.body
    if isinstance(body, (dict, list)):
        kind, value = "json", body
    elif isinstance(body, str):
        kind, value = "text", body
    else:
        kind, value = "base64", base64.b64encode(bytes(body)).decode("ascii")
    return {"status": response.status, "headers": dict(response.headers), "body_type": kind,
            "body": value}


def _response_from(item: dict) -> Response:
    kind, value = item.get("body_type", "json"), item.get("body")
    if kind == "base64":
        value = base64.b64decode(value or "")
    elif kind == "text":
        value = str(value)
    elif kind != "json":
        raise ValueError(f"unknown body type {kind!r} of a stored idempotent answer")
    return Response(int(item["status"]), value, dict(item.get("headers") or {}))


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """One armed fault: ``kind`` plus options (e.g. ``hang_seconds``, ``retry_after``)."""

    kind: str
    remaining: int | None = None  # None: fraction mode
    fraction: float = 0.0
    rng: random.Random | None = None
    path: re.Pattern | None = None
    opts: dict = field(default_factory=dict)


class FaultInjector:
    """Arms faults for the next N requests or for a seeded fraction of requests.

    Kinds: ``http500``, ``http503``, ``hang``, ``reset``, ``http429``, ``http401`` and
    ``redirect`` (a 307 to option ``location``, default the same URL; option ``status``)
    answer instead of the provider; ``bad_json`` (a 200 whose body is an HTML page),
    ``no_ids`` (a 200 whose objects lack their ids), ``one_fewer`` (a 200 with the last
    object left out), ``no_access_token`` (a token answer without ``access_token``),
    ``empty_object`` (a 200 whose body is ``{}``: every array missing) and ``no_status``
    (a 200 whose objects lack their Status) spoil the answer of a request the provider did
    handle.  An optional ``path`` regex limits a fault to matching
    request paths.  Count faults are used in arming order before fraction faults are
    considered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.injected: collections.Counter = collections.Counter()

    @staticmethod
    def _check(kind: str) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")

    def next(self, kind: str, count: int = 1, path: str | None = None, **opts: Any) -> None:
        """Make the next ``count`` (matching) requests fail with ``kind``."""
        self._check(kind)
        with self._lock:
            self._faults.append(Fault(kind, remaining=int(count),
                                      path=re.compile(path) if path else None, opts=opts))

    def fraction(self, kind: str, fraction: float, seed: int | None = 0,
                 path: str | None = None, **opts: Any) -> None:
        """Make a reproducible (seeded) ``fraction`` of (matching) requests fail with ``kind``."""
        self._check(kind)
        with self._lock:
            self._faults.append(Fault(kind, None, float(fraction), random.Random(seed),
                                      re.compile(path) if path else None, opts))

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict]:
        """Describe the armed faults (for the control API)."""
        with self._lock:
            return [{"kind": f.kind, "remaining": f.remaining, "fraction": f.fraction,
                     "path": f.path.pattern if f.path else None, **f.opts} for f in self._faults]

    def take(self, path: str) -> Fault | None:
        """Return the fault to apply to a request on ``path`` (consuming one count), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining is None or (fault.path and not fault.path.search(path)):
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                self.injected[fault.kind] += 1
                return fault
            for fault in self._faults:
                if fault.remaining is not None or (fault.path and not fault.path.search(path)):
                    continue
                if fault.rng.random() < fault.fraction:
                    self.injected[fault.kind] += 1
                    return fault
        return None


# --------------------------------------------------------------------------- the app


class SandboxApp:
    """Base class of one provider emulator.

    Subclasses set :attr:`routes` (in ``__init__`` after calling super) and override the hooks:
    :meth:`authenticate`, :meth:`rate_limit_key`, :meth:`rate_limited_response`,
    :meth:`rate_limit_headers`, :meth:`idempotency_scope`, :meth:`fault_response`,
    :meth:`render_error`, :meth:`reset_state`, :meth:`dump_state`, :meth:`load_state`,
    :meth:`configure`.  ``BOOKKEEPER_ACTIONS`` names the methods reachable through
    ``POST /_sandbox/bookkeeper/<action>`` (JSON body = keyword arguments).
    """

    name = "sandbox"
    BOOKKEEPER_ACTIONS: tuple[str, ...] = ()
    IDEMPOTENT_METHODS = ("POST", "PUT", "PATCH", "DELETE")

    def __init__(self, clock: Callable[[], dt.datetime] | None = None,
                 limiter: RateLimiter | None = None, webhook: WebhookSender | None = None,
                 hang_seconds: float = 30.0):
        self.clock: Callable[[], dt.datetime] = clock or utcnow
        self.faults = FaultInjector()
        self.counters = Counters()
        self.webhook = webhook or WebhookSender()
        self.limiter = limiter or RateLimiter()
        self.idempotency = IdempotencyStore()
        self.lock = threading.RLock()
        self.hang_seconds = hang_seconds
        # Artificial service time of every provider call (benchmarks, concurrency tests).
        self.latency_seconds = 0.0
        # Set by SandboxServer.start(): the public base URL (e.g. for webhook resource URLs).
        self.base_url: str | None = None
        # Called (no arguments) after every request that may have changed the state; the
        # --state-dir persister sets it to schedule a save.
        self.on_change: Callable[[], None] | None = None
        self._routes: list[Route] = []

    # ---- routes

    @property
    def routes(self) -> list[Route]:
        """The provider routes (assigning tuples converts them to :class:`Route`)."""
        return self._routes

    @routes.setter
    def routes(self, specs: list) -> None:
        self._routes = [Route.of(spec) for spec in specs]

    def match(self, request: Request) -> Route | None:
        """Find the route for ``request`` and fill ``request.params``; None if no route."""
        path_matched = False
        for route in self._routes:
            found = route.regex.fullmatch(request.path)
            if not found:
                continue
            path_matched = True
            if route.method == request.method or (
                    request.method == "HEAD" and route.method == "GET"):
                request.params = {k: v for k, v in found.groupdict().items() if v is not None}
                request.route = route
                return route
        request.context["path_matched"] = path_matched
        return None

    # ---- the pipeline

    def handle(self, request: Request) -> Response:
        """Answer one request (control API, or the full provider pipeline)."""
        if request.path.startswith("/_sandbox/") or request.path == "/_sandbox":
            response = self._control(request)
        else:
            route = self.match(request)
            label = route.label if route else f"{request.method} <unrouted>"
            response = self._pipeline(request, route)
            self.counters.hit(label, response.action or response.status)
            response.label = label
        if self.on_change is not None and self.may_have_changed(request, response):
            self.on_change()
        return response

    @staticmethod
    def may_have_changed(request: Request, response: Response) -> bool:
        """Whether answering ``request`` may have changed the state: every method but GET
        and HEAD, and the GET redirects of the authorize pages (they issue a code)."""
        return request.method not in ("GET", "HEAD") or 300 <= response.status < 400

    def _pipeline(self, request: Request, route: Route | None) -> Response:
        fault = self.faults.take(request.path)
        if fault is not None and fault.kind not in ANSWER_FAULTS:
            return self._fault(fault, request)
        response = self._serve(request, route)
        if fault is not None:
            # a copy: the answer stored for idempotent replays stays the true one
            response = self.spoil_answer(fault.kind, request, response.copy(), fault.opts)
        return response

    def _serve(self, request: Request, route: Route | None) -> Response:
        if route is None:
            status = 405 if request.context.get("path_matched") else 404
            missing = SandboxError(status, "Not found", kind="not_found")
            return self._render_sandbox_error(request, missing)
        try:
            if route.auth:
                denied = self.authenticate(request)
                if denied is not None:
                    return denied
            key = self.rate_limit_key(request) if route.limited else None
            decision = None
            if key is not None:
                decision = self.limiter.acquire(key)
                if not decision.allowed:
                    return self.rate_limited_response(request, decision)
            try:
                if self.latency_seconds > 0:
                    time.sleep(self.latency_seconds)
                response = self._idempotent(request, route)
            finally:
                if key is not None:
                    self.limiter.release(key)
            if decision is not None:
                response.headers.update(self.rate_limit_headers(request, decision))
            return response
        except SandboxError as error:
            return self._render_sandbox_error(request, error)

    def _idempotent(self, request: Request, route: Route) -> Response:
        key = request.headers.get(self.idempotency_header) if route.idempotent else None
        if not key or request.method not in self.IDEMPOTENT_METHODS:
            return self._call(request, route)
        scope = self.idempotency_scope(request)
        with self.idempotency.lock(scope, key):
            stored = self.idempotency.get(scope, key)
            if stored is not None:
                self.on_idempotent_replay(request, stored)
                return stored
            # under the app lock: a state snapshot (dump) never holds what a request did
            # without the answer a replay of its key must give
            with self.lock:
                response = self._call(request, route)
                if self.should_store_idempotent(request, response):
                    self.idempotency.put(scope, key, response)
            return response

    def _call(self, request: Request, route: Route) -> Response:
        try:
            return route.handler(request)
        except SandboxError as error:
            return self._render_sandbox_error(request, error)

    def _render_sandbox_error(self, request: Request, error: SandboxError) -> Response:
        if error.body is not None:
            return Response(error.status, error.body, error.headers)
        response = self.render_error(request, error)
        response.headers.update(error.headers)
        return response

    def _fault(self, fault: Fault, request: Request) -> Response:
        if fault.kind == "hang":
            return Response(0, b"", action="hang",
                            hang_seconds=float(fault.opts.get("hang_seconds", self.hang_seconds)))
        if fault.kind == "reset":
            return Response(0, b"", action="reset")
        if fault.kind == "redirect":
            # a proxy or a moved service: a client that follows a 307/308 sends the same
            # body (a form with a refresh token, say) again, to ``location``
            query = urllib.parse.urlencode(request.query, doseq=True)
            here = (f"http://{request.headers.get('Host', '127.0.0.1')}{request.path}"
                    + (f"?{query}" if query else ""))
            return Response(int(fault.opts.get("status", 307)), b"",
                            {"Location": fault.opts.get("location") or here})
        return self.fault_response(fault.kind, request, fault.opts)

    # ---- hooks (override in providers)

    idempotency_header = "Idempotency-Key"

    def authenticate(self, request: Request) -> Response | None:
        """Return None when the request may proceed, else the provider's 401/403 answer."""
        return None

    def rate_limit_key(self, request: Request) -> str | None:
        """Return the key whose quota this request consumes (tenant/realm), or None."""
        return None

    def rate_limited_response(self, request: Request, decision: Decision) -> Response:
        """Return the provider's 429 answer for a refused ``decision``."""
        return Response(429, {"error": "rate limited", "problem": decision.problem},
                        {"Retry-After": str(decision.retry_after)})

    def rate_limit_headers(self, request: Request, decision: Decision) -> dict:
        """Return headers describing remaining quota, added to every limited answer."""
        return {}

    def idempotency_scope(self, request: Request) -> str:
        """Return the scope of idempotency keys (tenant/realm)."""
        return ""

    def should_store_idempotent(self, request: Request, response: Response) -> bool:
        """Decide whether an answer is kept for replay (default: everything but 5xx)."""
        return response.status < 500

    def on_idempotent_replay(self, request: Request, response: Response) -> None:
        """Adjust a replayed answer (e.g. add a provider header); default: nothing."""

    def fault_response(self, kind: str, request: Request, opts: dict) -> Response:
        """Return the answer for an injected HTTP fault (http500/503/429/401)."""
        status = int(kind[4:])
        headers = {"Retry-After": str(opts.get("retry_after", 1))} if status == 429 else {}
        return Response(status, {"error": kind}, headers)

    BAD_JSON_PAGE = ("<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
                     "<body><h1>Please try again later</h1></body></html>")

    def spoil_answer(self, kind: str, request: Request, response: Response,
                     opts: dict) -> Response:
        """Spoil the answer the provider gave (an ANSWER_FAULTS kind).

        ``bad_json`` replaces any answer by a 200 HTML page (a proxy's, a half-deployed
        server's); the others change a 200 JSON answer only (a refusal stays itself):
        ``no_access_token`` drops it from a token answer, ``no_ids`` and ``one_fewer`` go
        through the provider's :meth:`strip_ids` and :meth:`drop_one`."""
        if kind == "bad_json":
            return Response(200, self.BAD_JSON_PAGE.encode("utf-8"),
                            {"Content-Type": "text/html; charset=utf-8"})
        if kind == "empty_object" and response.status == 200:
            return Response(200, {})
        try:
            body = response.json()
        except ValueError:
            return response
        if response.status != 200 or not isinstance(body, dict):
            return response
        if kind == "no_access_token":
            body.pop("access_token", None)
        elif kind == "no_ids":
            self.strip_ids(body)
        elif kind == "one_fewer":
            self.drop_one(body)
        elif kind == "no_status":
            _strip_status(body)
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        return Response(200, body, headers)

    def strip_ids(self, body: dict) -> None:
        """Remove, in place, the ids of the objects a 200 JSON answer carries."""

    def drop_one(self, body: dict) -> None:
        """Remove, in place, the last object of a 200 JSON answer's list of objects."""

    def render_error(self, request: Request, error: SandboxError) -> Response:
        """Render a :class:`SandboxError` in the provider's error shape."""
        return Response(error.status, {"error": error.kind, "message": error.message})

    def reset_state(self) -> None:
        """Drop all provider state and re-seed."""

    def dump_state(self) -> dict:
        """Return provider state as JSON-serialisable data."""
        return {}

    def load_state(self, data: dict) -> None:
        """Replace provider state with ``data`` from :meth:`dump_state`."""

    # keys every dump_state() holds, and those each item of its lists holds (check_state)
    STATE_SHAPE: dict[str, Any] = {}

    def check_state(self, data: dict) -> None:
        """Raise ValueError unless ``data`` is a complete :meth:`dump` of this provider (a
        state file must be one; seeds may leave parts out, state files may not)."""
        shape = {**self.STATE_SHAPE, "settings": dict, "idempotency": list}
        _check_shape(data, shape, "the state")

    def dump_settings(self) -> dict:
        """Run-time settings kept with the state (webhook URL and key); providers extend it
        with theirs.  Rate limits, faults, hang and latency are per run, not kept."""
        return {"webhook_url": self.webhook.url, "webhook_key": self.webhook.key}

    def load_settings(self, settings: dict) -> None:
        """Apply :meth:`dump_settings` output (absent names keep their current value)."""
        if "webhook_url" in settings:
            self.webhook.url = settings["webhook_url"]
        if "webhook_key" in settings:
            self.webhook.key = settings["webhook_key"]

    def configure(self, **options: Any) -> dict:
        """Apply run-time options; returns the effective configuration.

        Base options: ``window_seconds``, ``day_seconds``, ``per_minute``, ``per_day``,
        ``concurrent``, ``webhook_url``, ``webhook_key``, ``hang_seconds``,
        ``latency_seconds`` and the webhook delivery ones (:mod:`.delivery`):
        ``webhook_timeout`` (seconds an answer may take), ``webhook_retry_delays`` (seconds
        between attempts; None restores the provider's schedule, [] means no retry),
        ``webhook_retry_scale`` (multiplies every retry delay and the give-up window) and
        ``webhook_enabled``.  Setting ``webhook_url`` (re-)enables the subscription; None
        removes it and drops what is queued.  Providers extend this (call super with the
        options they do not consume).
        """
        limiter_opts = {k: options.pop(k) for k in list(options)
                        if k in ("window_seconds", "day_seconds", "per_minute", "per_day",
                                 "concurrent")}
        self.limiter.configure(**limiter_opts)
        self._configure_webhook(options)
        if "hang_seconds" in options:
            self.hang_seconds = float(options.pop("hang_seconds"))
        if "latency_seconds" in options:
            self.latency_seconds = float(options.pop("latency_seconds"))
        if options:
            raise SandboxError(400, f"unknown config options: {sorted(options)}", kind="config")
        return self.config()

    def _configure_webhook(self, options: dict) -> None:
        sender = self.webhook
        if "webhook_url" in options:
            sender.url = options.pop("webhook_url") or None
            if sender.url is None:
                sender.clear()
            sender.enabled = True
        if "webhook_key" in options:
            sender.key = options.pop("webhook_key")
        if "webhook_timeout" in options:
            timeout = float(options.pop("webhook_timeout"))
            if timeout <= 0:
                raise SandboxError(400, "webhook_timeout must be positive", kind="config")
            sender.timeout = timeout
        if "webhook_retry_delays" in options:
            sender.set_retry_delays(options.pop("webhook_retry_delays"))
        if "webhook_retry_scale" in options:
            scale = float(options.pop("webhook_retry_scale"))
            if scale <= 0:
                raise SandboxError(400, "webhook_retry_scale must be positive (no retries: "
                                   "webhook_retry_delays=[])", kind="config")
            sender.retry_scale = scale
        if "webhook_enabled" in options:
            sender.enabled = bool(options.pop("webhook_enabled"))
            if not sender.enabled:
                sender.clear()

    def config(self) -> dict:
        """Return the effective run-time configuration (secrets excluded)."""
        lim = self.limiter
        return {"window_seconds": lim.window_seconds, "day_seconds": lim.day_seconds,
                "per_minute": lim.per_minute, "per_day": lim.per_day,
                "concurrent": lim.concurrent, "webhook_url": self.webhook.url,
                "webhook_timeout": self.webhook.timeout,
                "webhook_retry_delays": list(self.webhook.retry_delays),
                "webhook_retry_scale": self.webhook.retry_scale,
                "webhook_enabled": self.webhook.enabled,
                "hang_seconds": self.hang_seconds, "latency_seconds": self.latency_seconds}

    # ---- state

    def reset(self) -> None:
        """Reset provider state, quotas, stored idempotent answers, faults, counters, the
        webhooks not yet delivered and the record of attempts (the subscription is enabled
        again)."""
        with self.lock:
            self.reset_state()
            self.idempotency.reset()
        self.limiter.reset()
        self.faults.clear()
        self.counters.reset()
        self.webhook.clear(history=True)
        self.webhook.enabled = True

    def dump_json(self) -> str:
        """The whole state as one JSON text, taken under the app lock (a consistent
        snapshot): the provider's :meth:`dump_state` plus ``provider``, ``state_version``,
        ``settings`` (:meth:`dump_settings`) and ``idempotency`` (the stored answers)."""
        with self.lock:
            data = dict(self.dump_state())
            data.setdefault("provider", self.name)
            data["state_version"] = STATE_VERSION
            data["settings"] = self.dump_settings()
            data["idempotency"] = self.idempotency.dump()
            return json.dumps(data, default=str, separators=(",", ":"))

    def dump(self) -> dict:
        """Return the whole state as JSON-serialisable data (see :meth:`dump_json`)."""
        return json.loads(self.dump_json())

    def load(self, data: dict) -> None:
        """Load a state produced by :meth:`dump`: provider state, stored idempotent answers
        (replaced; none when ``data`` has none) and settings (those present)."""
        with self.lock:
            self.load_state(data)
            self.idempotency.load(data.get("idempotency") or [])
            self.load_settings(data.get("settings") or {})

    # ---- control API

    def _control(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p][1:]
        body = request.json() or {}
        method = request.method
        try:
            if parts == ["reset"] and method == "POST":
                self.reset()
                return Response(200, {"ok": True})
            if parts == ["dump"] and method == "GET":
                return Response(200, self.dump())
            if parts == ["load"] and method == "POST":
                self.load(body)
                return Response(200, {"ok": True})
            if parts == ["faults"]:
                return self._control_faults(method, body)
            if parts == ["counters"] and method == "GET":
                return Response(200, self.counters.snapshot())
            if parts == ["counters", "reset"] and method == "POST":
                self.counters.reset()
                return Response(200, {"ok": True})
            if parts == ["config"]:
                if method == "POST":
                    return Response(200, self.configure(**body))
                return Response(200, self.config())
            if len(parts) == 2 and parts[0] == "bookkeeper" and method == "POST":
                return self._control_bookkeeper(parts[1], body)
            if parts[:1] == ["webhooks"] and len(parts) <= 2:
                handled = self._control_webhooks(method, parts[1:], body)
                if handled is not None:
                    return handled
            return self.control_extra(request, parts, body) or Response(
                404, {"error": "unknown control endpoint"})
        except SandboxError as error:
            return Response(error.status, error.body or {"error": error.kind,
                                                         "message": error.message})
        except (TypeError, ValueError, KeyError) as error:
            return Response(400, {"error": "bad_request", "message": str(error)})

    def _control_webhooks(self, method: str, rest: list[str], body: dict) -> Response | None:
        # GET /_sandbox/webhooks: the sender's state and every attempt;
        # POST /_sandbox/webhooks/flush {"timeout"}: send the open batch, wait for the queue;
        # DELETE /_sandbox/webhooks: drop what is queued and forget the attempts
        if not rest and method == "GET":
            return Response(200, self.webhook.report())
        if not rest and method == "DELETE":
            self.webhook.clear(history=True)
            return Response(200, {"ok": True})
        if rest == ["flush"] and method == "POST":
            done = self.webhook.flush(float(body.get("timeout", 5.0)))
            return Response(200, {"ok": done, "pending": self.webhook.pending()})
        return None

    def control_extra(self, request: Request, parts: list[str], body: dict) -> Response | None:
        """Provider-specific control endpoints under ``/_sandbox/`` (None: not handled)."""
        return None

    def _control_faults(self, method: str, body: dict) -> Response:
        if method == "DELETE":
            self.faults.clear()
            return Response(200, {"ok": True})
        if method == "GET":
            return Response(200, {"faults": self.faults.pending()})
        if method != "POST":
            return Response(405, {"error": "method not allowed"})
        body = dict(body)
        kind = body.pop("kind")
        if "fraction" in body:
            self.faults.fraction(kind, float(body.pop("fraction")), body.pop("seed", 0), **body)
        else:
            self.faults.next(kind, int(body.pop("count", 1)), **body)
        return Response(200, {"faults": self.faults.pending()})

    def _control_bookkeeper(self, action: str, body: dict) -> Response:
        if action not in self.BOOKKEEPER_ACTIONS:
            return Response(404, {"error": "unknown bookkeeper action",
                                  "actions": list(self.BOOKKEEPER_ACTIONS)})
        result = getattr(self, action)(**body)
        return Response(200, json.loads(json.dumps(
            result if result is not None else {"ok": True}, default=str)))


# --------------------------------------------------------------------------- the server


def _check_shape(data: Any, shape: dict, where: str) -> None:
    # ``shape`` maps a key to its type, to a nested shape (a dict) or to ``[shape]`` (a list
    # whose items have that shape)
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not an object")
    for key, kind in shape.items():
        if key not in data:
            raise ValueError(f"{where} has no {key!r}")
        value = data[key]
        if isinstance(kind, dict):
            _check_shape(value, kind, f"{where}.{key}")
        elif isinstance(kind, list):
            if not isinstance(value, list):
                raise ValueError(f"{where}.{key} is not a list")
            for index, item in enumerate(value):
                _check_shape(item, kind[0], f"{where}.{key}[{index}]")
        elif not isinstance(value, kind):
            raise ValueError(f"{where}.{key} is not of type {kind.__name__}")


def _strip_status(body: Any, top: bool = True) -> None:
    """Fault ``no_status``: remove, in place, ``Status``/``status`` from every object of a
    JSON answer but the envelope itself (Xero's answers carry a request-level Status)."""
    if isinstance(body, dict):
        if not top:
            body.pop("Status", None)
            body.pop("status", None)
        for value in body.values():
            _strip_status(value, False)
    elif isinstance(body, list):
        for value in body:
            _strip_status(value, False)


def is_loopback(host: str) -> bool:
    """Return True when ``host`` names a loopback address (the only kind we bind)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    """Turns one HTTP exchange into a :class:`Request` and writes the app's answer."""

    protocol_version = "HTTP/1.1"
    server_version = "LedgerSandbox/1.0"
    # Headers and body go out in separate writes; without TCP_NODELAY the client's delayed
    # ACK adds ~40 ms to every keep-alive exchange.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet by default: request lines could carry tokens in query strings.
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _serve(self) -> None:
        server = self.server
        with server.activity:
            refused = server.stopping.is_set()
            if not refused:
                server.active += 1
        if refused:
            # stopping: nothing more is done (the final state save has to see every
            # request that was answered); a client retries after the restart
            self.close_connection = True
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            self._answer()
        finally:
            with server.activity:
                server.active -= 1
                server.activity.notify_all()

    def _answer(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            path=urllib.parse.unquote(split.path) or "/",
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers=Headers(self.headers.items()),
            body=body,
            client=self.client_address[0],
        )
        app: SandboxApp = self.server.app
        try:
            response = app.handle(request)
        except Exception as error:  # noqa: BLE001 - an emulator bug must not kill the server
            response = Response(500, {"error": "sandbox_internal_error", "message": repr(error)})
        if response.action == "hang":
            self.server.stopping.wait(response.hang_seconds)
            self._drop(linger=False)
            return
        if response.action == "reset":
            self._drop(linger=True)
            return
        payload = response.body_bytes()
        if response.label and self.command != "HEAD":
            app.counters.sent(response.label, len(payload))
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name not in ("content-length", "connection"):
                self.send_header(_title(name), str(value))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _drop(self, linger: bool) -> None:
        # SO_LINGER(on, 0) makes close() send RST: the client sees "connection reset by peer".
        self.close_connection = True
        try:
            if linger:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve


def _title(name: str) -> str:
    # Headers are stored lower-case; send them in the conventional capitalisation.
    special = {"www-authenticate": "WWW-Authenticate", "x-minlimit-remaining":
               "X-MinLimit-Remaining", "x-daylimit-remaining": "X-DayLimit-Remaining",
               "x-appminlimit-remaining": "X-AppMinLimit-Remaining"}
    return special.get(name, "-".join(part.capitalize() for part in name.split("-")))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()
        # requests being handled (not idle keep-alive connections), guarded by ``activity``
        self.active = 0
        self.activity = threading.Condition()


class SandboxServer:
    """Serves a :class:`SandboxApp` on loopback from a background thread.

    ``port=0`` picks a free port; :attr:`url` is the base URL.  Usable as a context manager.
    """

    def __init__(self, app: SandboxApp, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False, drain_seconds: float = 5.0):
        if not is_loopback(host):
            raise ValueError(f"the sandbox binds loopback only, not {host!r}")
        self.app = app
        self.host = host
        self.port = port
        self.verbose = verbose
        self.drain_seconds = drain_seconds
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8070``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns self."""
        httpd = _Server((self.host, self.port), _Handler)
        httpd.app = self.app
        httpd.verbose = self.verbose
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self.app.base_url = self.url
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.app.name}-sandbox", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Start and block until interrupted (used by the command line)."""
        self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving, wake hanging requests, close the socket and wait (up to
        ``drain_seconds``) for the requests being handled to finish.

        Once stopping, a further request on a kept-alive connection is answered 503 without
        being handled, so when this returns (drained) no request changes the state any more.
        """
        httpd = self._httpd
        if httpd is None:
            return
        with httpd.activity:
            httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        deadline = time.monotonic() + self.drain_seconds
        with httpd.activity:
            while httpd.active > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                httpd.activity.wait(left)
        self._httpd = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
