"""When to try a failed job again: exponential backoff with full jitter, capped."""

import random

BASE_SECONDS = 30
CAP_SECONDS = 6 * 3600
MAX_ATTEMPTS = 8


def retry_delay(attempts, retry_after=None, rng=random):
    """Seconds to wait before attempt number ``attempts + 1``.

    ``retry_after`` (a 429's Retry-After) is a floor: the ledger said when.
    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter")
    spreads the retries of many jobs that failed together.
    """
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** max(0, attempts - 1))
    delay = rng.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0)


def is_dead(attempts, max_attempts=MAX_ATTEMPTS):
    """A job that failed this many times stops retrying and waits for a person."""
    return attempts >= max_attempts
