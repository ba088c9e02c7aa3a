"""Date formats Xero uses in JSON.

Fields marked ``x-is-msdate`` / ``x-is-msdate-time`` in xero_accounting.yaml are sent as
Microsoft JSON dates, ``/Date(1573603200000+0000)/``; Xero also returns ``DateString`` /
``UpdatedDateUTCString`` companions in ISO form.  Requests may carry either form (the SDK sends
``/Date(ms)/``; hand-written clients often send ``YYYY-MM-DD``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re

UTC = dt.timezone.utc
_MS = re.compile(r"^/Date\((-?\d+)([+-]\d{2,4})?\)/$")


def ms_date(value: dt.date | str | None) -> str | None:
    """Format a date (or ISO date string) as ``/Date(ms+0000)/`` at midnight UTC."""
    if value is None:
        return None
    day = dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value
    stamp = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"/Date({int(stamp.timestamp() * 1000)}+0000)/"


def ms_datetime(value: dt.datetime | str | None) -> str | None:
    """Format an aware datetime (or ISO string) as ``/Date(ms+0000)/``."""
    if value is None:
        return None
    moment = parse_datetime(value) if isinstance(value, str) else value
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def iso_datetime(value: dt.datetime) -> str:
    """Store form of a timestamp: ISO 8601 UTC with milliseconds."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_datetime(text: str) -> dt.datetime:
    """Parse ISO, RFC 1123 or ``/Date(ms)/`` text into an aware UTC datetime.

    A naive ISO value is taken as UTC (Xero documents If-Modified-Since in UTC).
    """
    text = text.strip()
    found = _MS.match(text)
    if found:
        return dt.datetime.fromtimestamp(int(found.group(1)) / 1000, tz=UTC)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_date(value: object) -> dt.date | None:
    """Parse a request date (``/Date(ms)/``, ``YYYY-MM-DD`` or ISO datetime); None if empty."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if _MS.match(text):
        return parse_datetime(text).date()
    return dt.date.fromisoformat(text[:10])


def date_string(value: str | None) -> str | None:
    """The ``DateString`` companion: ``YYYY-MM-DDT00:00:00``."""
    return f"{value[:10]}T00:00:00" if value else None


def utc_string(value: str | None) -> str | None:
    """The ``UpdatedDateUTCString`` companion: ``YYYY-MM-DDTHH:MM:SSZ``."""
    if not value:
        return None
    return parse_datetime(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_date(value: dt.datetime) -> str:
    """Webhook ``eventDateUtc`` form, e.g. ``2025-12-02T00:44:09.923`` (xero-webhooks.yaml)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
