"""The order one Odoo payment is matched with a ledger payment's invoices in
(services/payments.py), alone: each invoice gets exactly the ledger's part, or the split is
refused."""

from decimal import Decimal

import pytest

from odoo.addons.billing_sync.services.payments import (
    InexactAllocation,
    OverAllocated,
    matching_order,
    money,
)


def test_invoices_paid_in_full_come_before_the_one_paid_in_part():
    order = matching_order({"A": 40, "B": 100, "C": 250}, {"A": 90, "B": 100, "C": 250})
    assert order == ["B", "C", "A"]


def test_credit_left_over_with_only_full_payments_is_exact():
    assert matching_order({"A": 100}, {"A": 100}, Decimal("50")) == ["A"]


def test_amounts_compare_to_the_cent_whatever_their_type():
    assert matching_order({"A": 0.1 + 0.2}, {"A": Decimal("0.30")}) == ["A"]
    assert money(12.345) == Decimal("12.35"), "half up, as Odoo rounds money"


@pytest.mark.parametrize("allocations,open_amounts,unapplied", [
    ({"A": 40, "B": 60}, {"A": 100, "B": 100}, 0),      # two paid in part
    ({"A": 40}, {"A": 100}, 10),                        # part paid, credit left over
])
def test_splits_one_payment_cannot_match_are_refused(allocations, open_amounts, unapplied):
    with pytest.raises(InexactAllocation):
        matching_order(allocations, open_amounts, Decimal(unapplied))


def test_more_than_odoo_has_open_is_refused_with_both_amounts():
    with pytest.raises(OverAllocated) as caught:
        matching_order({"A": 120}, {"A": 100})
    assert (caught.value.key, caught.value.applied, caught.value.open_amount) == (
        "A", Decimal("120.00"), Decimal("100.00"))


def test_nothing_applied_is_left_out():
    assert matching_order({"A": 0, "B": 10}, {"A": 5, "B": 10}) == ["B"]
