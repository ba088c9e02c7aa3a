"""Ledger payments taken into Odoo, as plain Python: in which order one Odoo payment is
matched with the invoices a ledger payment pays, so that each gets exactly its part.

Odoo matches a payment with an invoice for as much as both still have open (the smaller
of the two). One Odoo payment therefore gives each invoice exactly what the ledger
applied when the invoices paid in full come first and at most one invoice is paid in part,
last, with nothing left over for the customer's credit: it then takes what remains. Any
other shape (two invoices paid in part, or one paid in part while some of the payment is
left over) cannot be matched exactly by one payment: the caller says so rather than book
a different split.
"""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


class InexactAllocation(ValueError):
    """The ledger's split of a payment cannot be matched exactly by one Odoo payment."""


class OverAllocated(ValueError):
    """The ledger applies more to an invoice than Odoo has open on it."""

    def __init__(self, key, applied, open_amount):
        super().__init__(key)
        self.key, self.applied, self.open_amount = key, applied, open_amount


def money(value):
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def matching_order(allocations, open_amounts, unapplied=Decimal(0)):
    """The keys of ``allocations`` ({key: amount the ledger applies}) in the order to match
    them, given ``open_amounts`` ({key: what Odoo has open on it}) and ``unapplied`` (what
    the payment keeps as credit). OverAllocated for an allocation above its open amount;
    InexactAllocation when no order gives each its exact part (see the module)."""
    full, partial = [], []
    for key, amount in allocations.items():
        applied, open_amount = money(amount), money(open_amounts[key])
        if applied <= 0:
            continue
        if applied > open_amount:
            raise OverAllocated(key, applied, open_amount)
        (full if applied == open_amount else partial).append(key)
    if len(partial) > 1 or (partial and money(unapplied) > 0):
        raise InexactAllocation(partial)
    return full + partial
