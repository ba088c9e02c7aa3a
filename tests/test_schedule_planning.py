"""The planning arithmetic of billing_sync.services.schedule, without a database."""

from datetime import date
from decimal import Decimal

import pytest

from odoo.addons.billing_sync.services import schedule


def _dates(periods, attr):
    return [getattr(p, attr) for p in periods]


def test_add_months_clamps_to_month_end_and_comes_back():
    jan31 = date(2028, 1, 31)
    assert schedule.add_months(jan31, 1) == date(2028, 2, 29)  # leap year
    assert schedule.add_months(jan31, 13) == date(2029, 2, 28)
    assert schedule.add_months(jan31, 2) == date(2028, 3, 31)
    assert schedule.add_months(jan31, 3) == date(2028, 4, 30)
    assert schedule.add_months(date(2027, 12, 15), 1) == date(2028, 1, 15)
    assert schedule.add_months(date(2028, 3, 31), -1) == date(2028, 2, 29)


def test_anchored_periods_keep_the_31st_after_short_months():
    periods = schedule.plan_periods(date(2028, 1, 31), "monthly", count=4)
    assert _dates(periods, "start") == [
        date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31), date(2028, 4, 30)
    ]
    assert _dates(periods, "end") == [
        date(2028, 2, 28), date(2028, 3, 30), date(2028, 4, 29), date(2028, 5, 30)
    ]
    assert all(not p.is_partial for p in periods)
    assert len({p.key for p in periods}) == 4


def test_calendar_periods_prorate_a_partial_first_month():
    periods = schedule.plan_periods(
        date(2027, 12, 17), "monthly", count=14, prorate_first=True,
        invoice_rule="day_of_month", invoice_day=31,
    )
    first = periods[0]
    assert (first.start, first.end, first.days, first.full_days) == (
        date(2027, 12, 17), date(2027, 12, 31), 15, 31)
    assert schedule.prorate(3100, first) == Decimal("1500.00")
    assert [p.is_partial for p in periods] == [True] + [False] * 13
    # day 31 means the month's last day: 29 Feb in 2028, 30 Apr, 28 Feb 2029 is not reached
    assert _dates(periods, "invoice_date")[:6] == [
        date(2027, 12, 31), date(2028, 1, 31), date(2028, 2, 29),
        date(2028, 3, 31), date(2028, 4, 30), date(2028, 5, 31),
    ]
    assert periods[-1].start == date(2029, 1, 1)
    assert periods[2].full_days == 29


def test_quarterly_and_yearly_calendar_periods_with_an_end_date():
    quarters = schedule.plan_periods(
        date(2028, 2, 10), "quarterly", end=date(2029, 3, 15), prorate_first=True)
    assert _dates(quarters, "start") == [
        date(2028, 2, 10), date(2028, 4, 1), date(2028, 7, 1), date(2028, 10, 1), date(2029, 1, 1)
    ]
    assert (quarters[0].days, quarters[0].full_days) == (51, 91)  # 2028 is a leap year
    assert (quarters[-1].end, quarters[-1].days, quarters[-1].full_days) == (
        date(2029, 3, 15), 74, 90)
    years = schedule.plan_periods(date(2028, 7, 1), "yearly", count=2, prorate_first=True)
    assert (years[0].days, years[0].full_days) == (184, 366)
    assert years[1].start == date(2029, 1, 1)


def test_invoice_day_after_a_late_start_moves_to_next_month():
    assert schedule.invoice_date_for(date(2028, 1, 20), "day_of_month", 5) == date(2028, 2, 5)
    assert schedule.invoice_date_for(date(2028, 1, 20), "day_of_month", 25) == date(2028, 1, 25)
    assert schedule.invoice_date_for(date(2028, 1, 20), "period_start") == date(2028, 1, 20)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "either an end date or a number of periods"),
    ({"count": 3, "end": date(2028, 6, 1)}, "either an end date or a number of periods"),
    ({"end": date(2027, 1, 1)}, "before the start date"),
    ({"count": 0}, "either an end date"),
    ({"count": 3, "invoice_rule": "day_of_month", "invoice_day": 32}, "between 1 and 31"),
    ({"count": 3, "interval": "weekly"}, "unknown interval"),
])
def test_incomplete_terms_are_refused_with_a_reason(kwargs, message):
    interval = kwargs.pop("interval", "monthly")
    with pytest.raises(schedule.PlanningError, match=message):
        schedule.plan_periods(date(2028, 1, 1), interval, **kwargs)


def test_money_helpers():
    assert schedule.percent_of(10000, 20) == Decimal("2000.00")
    assert schedule.percent_of(333.33, 33.33) == Decimal("111.10")
    # fixed fees less the deposit and the milestones; negative when overbilled in advance
    assert schedule.final_amount(10000, 2000, [3000, 2500]) == Decimal("2500.00")
    assert schedule.final_amount(0, 500, []) == Decimal("-500.00")


def test_uncovered_periods_never_overlap_what_was_invoiced():
    periods = schedule.plan_periods(date(2028, 1, 15), "monthly", count=4)
    assert schedule.uncovered_periods(periods, None) == periods
    kept = schedule.uncovered_periods(periods, date(2028, 2, 29))
    assert _dates(kept, "start") == [date(2028, 3, 15), date(2028, 4, 15)]
