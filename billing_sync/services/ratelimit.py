"""Pacing calls to one ledger organisation under its published limits.

Each worker process keeps one Pacer per organisation. It spaces calls so that
no sliding window (a minute, a day) is exceeded and at most ``concurrent``
calls run at once, and it trusts the ledger over itself: when a response says
fewer calls remain than it believed, it slows down, and a 429's Retry-After
blocks the organisation for that long. A 429 after that is a bug, not a plan.
"""

import collections
import threading
import time


class Pacer:
    """Client-side limiter for one ledger organisation."""

    def __init__(self, per_minute=None, per_day=None, concurrent=None, window_seconds=60.0,
                 day_seconds=86400.0, safety=1.0, margin=None, per_second=None,
                 clock=time.monotonic, sleep=time.sleep):
        self.per_minute = per_minute and max(1, int(per_minute * safety))
        self.per_day = per_day and max(1, int(per_day * safety))
        self.window = window_seconds
        # the ledger stamps a call when it arrives, a little after we counted it:
        # wait this much longer than our own window says
        self.margin = window_seconds * 0.02 if margin is None else margin
        self.day = day_seconds
        self.clock = clock
        self.sleep = sleep
        # QuickBooks also counts per second (a sixtieth of the minute here)
        self.per_second = per_second
        self.second = window_seconds / 60.0
        self._second_calls = collections.deque()
        self._calls = collections.deque()
        self._day_calls = collections.deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrent) if concurrent else None
        self.waited = 0.0

    def _prune(self, now):
        while self._second_calls and self._second_calls[0] <= now - self.second:
            self._second_calls.popleft()
        while self._calls and self._calls[0] <= now - self.window:
            self._calls.popleft()
        while self._day_calls and self._day_calls[0] <= now - self.day:
            self._day_calls.popleft()

    def _wait_for(self, now):
        waits = [self._blocked_until - now]
        if self.per_minute and len(self._calls) >= self.per_minute:
            waits.append(self._calls[len(self._calls) - self.per_minute] + self.window - now)
        if self.per_second and len(self._second_calls) >= self.per_second:
            waits.append(self._second_calls[len(self._second_calls) - self.per_second]
                         + self.second - now)
        if self.per_day and len(self._day_calls) >= self.per_day:
            waits.append(self._day_calls[len(self._day_calls) - self.per_day] + self.day - now)
        wait = max(waits)
        return wait + self.margin if wait > 0 else wait

    def acquire(self):
        """Block until one more call is allowed, then count it."""
        if self._slots:
            self._slots.acquire()
        while True:
            with self._lock:
                now = self.clock()
                self._prune(now)
                wait = self._wait_for(now)
                if wait <= 0:
                    self._calls.append(now)
                    self._day_calls.append(now)
                    self._second_calls.append(now)
                    return
            self.waited += wait
            self.sleep(wait)

    def release(self):
        if self._slots:
            self._slots.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def observe(self, minute_remaining=None, day_remaining=None):
        """Align with what the ledger says is left (e.g. other apps share the quota)."""
        with self._lock:
            now = self.clock()
            self._prune(now)
            if minute_remaining is not None and self.per_minute:
                # pretend the calls we do not know about happened now
                missing = self.per_minute - minute_remaining - len(self._calls)
                self._calls.extend([now] * max(0, missing))
            if day_remaining is not None and self.per_day:
                missing = self.per_day - day_remaining - len(self._day_calls)
                self._day_calls.extend([now] * max(0, missing))

    def block(self, seconds):
        """The ledger answered 429: nothing goes out for ``seconds``."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self.clock() + seconds)
