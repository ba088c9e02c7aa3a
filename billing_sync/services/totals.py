"""Is what the ledger holds what Odoo holds? Pure comparisons of document figures.

A document earns "In the ledger" only when the ledger's own answer carries the same
total, tax and amount due as Odoo, to the smallest unit of the currency the ledger keeps
(the cent). Anything else is a mismatch that names both figures.
"""

FIGURES = (("total", "total"), ("tax", "tax"), ("amount_due", "amount due"))


def differences(odoo, ledger, digits=2):
    """[(label, odoo figure, ledger figure)] for every figure of ``odoo`` the ledger
    answered differently (or did not answer). ``odoo`` may leave a figure out (None) when
    it is not comparable at this time, e.g. the amount due of an invoice whose payments
    are still on their way."""
    half = 0.5 * 10 ** -digits
    out = []
    for key, label in FIGURES:
        expected = odoo.get(key)
        if expected is None:
            continue
        got = (ledger or {}).get(key)
        if got is None or abs(round(float(got), digits) - round(float(expected), digits)) >= half:
            out.append((label, round(float(expected), digits),
                        None if got is None else round(float(got), digits)))
    return out


def describe(diffs, ledger_name, currency=""):
    """One sentence naming both figures of each difference."""
    unit = f" {currency}" if currency else ""
    parts = [f"{label}: Odoo {odoo:.2f}{unit}, {ledger_name} "
             + ("gave none" if got is None else f"{got:.2f}{unit}")
             for label, odoo, got in diffs]
    return "; ".join(parts)


def spread(shares, target, digits=2):
    """``shares`` ({key: amount}) adjusted so that they add up to ``target``: the
    difference, in whole units of the currency's last digit, goes one unit at a time onto
    the largest shares first (so a cent lands where it changes the least). Keys keep their
    order; an empty ``shares`` cannot take a difference (returned as is)."""
    unit = 10 ** -digits
    out = {key: round(value, digits) for key, value in shares.items()}
    steps = round((round(target, digits) - round(sum(out.values()), digits)) / unit)
    if not out or not steps:
        return out
    order = sorted(out, key=lambda k: -abs(out[k]))
    sign = 1 if steps > 0 else -1
    for n in range(abs(steps)):
        key = order[n % len(order)]
        out[key] = round(out[key] + sign * unit, digits)
    return out
