"""Planning of an engagement's billing schedule, without the ORM.

Everything here is calendar and money arithmetic on plain ``datetime.date`` and
``decimal.Decimal`` values, so that it can be tested without a database and
reused by the models (which only turn the results into records and invoices).

Two ways to cut a retainer into periods:

* anchored (no proration): every period starts on the start date's day of the
  month, ``interval`` months after the previous one, clamped to the month's
  last day (31 Jan, 29 Feb 2028, 31 Mar, ...). Every period is billed in full.
* calendar (proration of a partial first period): periods follow the calendar
  (months; quarters starting in January, April, July, October; years starting
  on 1 January). A start date inside a period makes a partial first period,
  billed for the share of its days that the engagement covers.
"""

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

INTERVAL_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}
INVOICE_RULES = ("period_start", "day_of_month")
# A schedule is planned in full at acceptance; this bounds a typo such as an
# end date in 2205 rather than a real engagement.
MAX_PERIODS = 600


class PlanningError(ValueError):
    """The terms cannot be turned into a schedule (the message says why)."""


@dataclass(frozen=True)
class Period:
    """One billing period of a retainer.

    ``days`` is how many days of the period the engagement covers and
    ``full_days`` how many days the whole period has; their ratio is the share
    of the recurring amount billed for it (1 for a full period).
    """

    index: int
    start: date
    end: date
    invoice_date: date
    days: int
    full_days: int

    @property
    def key(self):
        """Stable identity of the period inside its schedule (survives re-planning)."""
        return f"period:{self.start.isoformat()}"

    @property
    def is_partial(self):
        return self.days != self.full_days

    @property
    def ratio(self):
        """Share of a full period covered, as an exact ``Decimal``."""
        return Decimal(self.days) / Decimal(self.full_days)


def last_day_of_month(year, month):
    """Last day (28 to 31) of ``month`` in ``year``."""
    return calendar.monthrange(year, month)[1]


def add_months(day, months, anchor_day=None):
    """``day`` moved by ``months`` months, on ``anchor_day`` (default: ``day.day``).

    The day is clamped to the length of the target month, so anchoring on the
    31st gives 29 Feb in a leap year and 30 Apr, and goes back to the 31st in
    the months that have one.
    """
    anchor_day = anchor_day or day.day
    month_index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(anchor_day, last_day_of_month(year, month)))


def calendar_period_start(day, interval):
    """First day of the calendar period (month, quarter, year) holding ``day``."""
    months = _interval_months(interval)
    first_month = ((day.month - 1) // months) * months + 1
    return date(day.year, first_month, 1)


def invoice_date_for(period_start, rule="period_start", invoice_day=1):
    """Invoice date of a period starting on ``period_start``.

    ``period_start``: invoiced on the period's first day.
    ``day_of_month``: invoiced on the first ``invoice_day`` of a month falling on
    or after the period's start, clamped to the month's end (day 31 gives 29
    Feb 2028, 30 Apr, ...); so a period that starts after that day of its own
    month is invoiced on that day of the next month.
    """
    if rule == "period_start":
        return period_start
    if rule != "day_of_month":
        raise PlanningError(f"unknown invoice date rule {rule!r}")
    if not 1 <= (invoice_day or 0) <= 31:
        raise PlanningError("the invoice day must be between 1 and 31")
    candidate = date(
        period_start.year,
        period_start.month,
        min(invoice_day, last_day_of_month(period_start.year, period_start.month)),
    )
    if candidate < period_start:
        candidate = add_months(candidate, 1, anchor_day=invoice_day)
    return candidate


def plan_periods(
    start,
    interval="monthly",
    *,
    end=None,
    count=None,
    invoice_rule="period_start",
    invoice_day=1,
    prorate_first=False,
):
    """The billing periods of a retainer, in order.

    :param date start: first day of the engagement
    :param str interval: ``monthly``, ``quarterly`` or ``yearly``
    :param date end: last day of the engagement (inclusive); periods start on
        or before it, the last one is cut at it (and prorated when
        ``prorate_first`` is set, since periods then follow the calendar)
    :param int count: number of periods, a partial first period included;
        exactly one of ``end`` and ``count`` is required
    :param str invoice_rule: ``period_start`` or ``day_of_month``
    :param int invoice_day: the day of the month for ``day_of_month``
    :param bool prorate_first: calendar periods, the first one prorated, rather
        than periods anchored on the start date
    :rtype: list[Period]
    """
    months = _interval_months(interval)
    if not start:
        raise PlanningError("a retainer needs a start date")
    if bool(end) == bool(count):
        raise PlanningError("a retainer needs either an end date or a number of periods")
    if end and end < start:
        raise PlanningError("the end date is before the start date")
    if count is not None and not 0 < count <= MAX_PERIODS:
        raise PlanningError(f"the number of periods must be between 1 and {MAX_PERIODS}")

    periods = []
    index = 0
    natural_start = calendar_period_start(start, interval) if prorate_first else start
    while True:
        # every bound is computed from the first one, never from the previous
        # period, so that a 31st stays the 31st after a short month
        full_start = add_months(natural_start, index * months, anchor_day=natural_start.day)
        full_end = add_months(
            natural_start, (index + 1) * months, anchor_day=natural_start.day
        ) - timedelta(days=1)
        p_start = max(start, full_start)
        if end and p_start > end:
            break
        p_end = min(full_end, end) if end else full_end
        full_days = (full_end - full_start).days + 1
        # anchored periods are billed in full, a short last one included
        days = (p_end - p_start).days + 1 if prorate_first else full_days
        periods.append(
            Period(
                index=index,
                start=p_start,
                end=p_end,
                invoice_date=invoice_date_for(p_start, invoice_rule, invoice_day),
                days=days,
                full_days=full_days,
            )
        )
        index += 1
        if count and index >= count:
            break
        if index >= MAX_PERIODS:
            raise PlanningError(f"more than {MAX_PERIODS} periods: check the end date")
    return periods


def round_money(amount, digits=2):
    """``amount`` rounded half-up to ``digits`` decimals, as a Decimal."""
    quantum = Decimal(1).scaleb(-digits)
    return Decimal(str(amount)).quantize(quantum, rounding=ROUND_HALF_UP)


def prorate(amount, period, digits=2):
    """The share of ``amount`` billed for ``period``, rounded to ``digits``."""
    return round_money(Decimal(str(amount)) * period.ratio, digits)


def percent_of(total, percent, digits=2):
    """``percent`` % of ``total``, rounded to ``digits``."""
    return round_money(Decimal(str(total)) * Decimal(str(percent)) / 100, digits)


def final_amount(fixed_fee_total, deposit, milestones, digits=2):
    """What the final invoice bills: the fixed-fee lines less the deposit and
    the milestones (which Odoo bills as down payments and deducts from it).

    A negative result means more was billed in advance than the fixed fees:
    Odoo then turns the final invoice into a credit note.
    """
    total = Decimal(str(fixed_fee_total)) - Decimal(str(deposit))
    total -= sum((Decimal(str(m)) for m in milestones), Decimal(0))
    return round_money(total, digits)


def uncovered_periods(periods, covered_until):
    """The periods that start after ``covered_until``.

    When terms change after some periods were invoiced, a new plan must not
    bill again days an invoice already covers, even when its periods are cut
    differently (a new start date, another interval).
    """
    if not covered_until:
        return list(periods)
    return [p for p in periods if p.start > covered_until]


def _interval_months(interval):
    try:
        return INTERVAL_MONTHS[interval]
    except KeyError:
        raise PlanningError(f"unknown interval {interval!r}") from None
