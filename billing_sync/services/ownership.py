"""Who owns which field of a record synced both ways, and what a change from the ledger
does to it: plain Python, no ORM.

Each link keeps the values last synced (both directions). A change is then a comparison
of three values: what was synced (``base``), what Odoo holds now, what the ledger holds
now. Only one side moved: that side's value is the news. Both moved to different
values: a conflict, which the group's policy decides (and which is written down). Without
a base (a contact matched to an existing ledger contact), nobody can tell who moved: the
policy decides, and "last writer" compares the two sides' clocks.
"""

from dataclasses import dataclass

# the neutral contact values that travel both ways, by group of fields an administrator
# sets a policy for (the ledger owns, Odoo owns, or the last writer wins)
CONTACT_GROUPS = {
    "name": ("name",),
    "email": ("email",),
    "phone": ("phone",),
    "tax_id": ("tax_id",),
    "address": ("street", "street2", "city", "zip", "state", "country_code"),
}
CONTACT_KEYS = tuple(key for keys in CONTACT_GROUPS.values() for key in keys)
POLICIES = ("last", "ledger", "odoo")


@dataclass(frozen=True)
class Decision:
    """What happens to one group of fields: ``winner`` "ledger" (Odoo takes the ledger's
    values) or "odoo" (the ledger is sent Odoo's); ``conflict``: both sides changed it
    since the last sync, to different values (a person may want to look)."""

    group: str
    winner: str
    conflict: bool
    base: dict | None
    odoo: dict
    ledger: dict


def normal(value):
    """Values compared as a person would: surrounding spaces and empty values ignored."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _pick(values, keys):
    return {key: normal((values or {}).get(key)) for key in keys}


def decide(base, odoo, ledger, policies, ledger_is_newer):
    """The Decisions for the groups whose values differ between ``odoo`` and ``ledger``
    (dicts of CONTACT_KEYS; a key absent from ``ledger`` is one it cannot be read from,
    and is left out). ``base``: the values last synced (None: unknown); ``policies``:
    {group: "ledger" | "odoo" | "last"}, "last" by default; ``ledger_is_newer``: whether
    the ledger's copy changed after Odoo's (for "last")."""
    decisions = []
    for group, keys in CONTACT_GROUPS.items():
        keys = tuple(key for key in keys if key in ledger)
        if not keys:
            continue
        mine, theirs = _pick(odoo, keys), _pick(ledger, keys)
        if mine == theirs:
            continue
        before = _pick(base, keys) if base is not None else None
        odoo_moved = before is None or mine != before
        ledger_moved = before is None or theirs != before
        policy = policies.get(group) or "last"
        if policy in ("ledger", "odoo"):
            winner = policy
        elif odoo_moved and ledger_moved:
            winner = "ledger" if ledger_is_newer else "odoo"
        else:
            winner = "ledger" if ledger_moved else "odoo"
        decisions.append(Decision(group=group, winner=winner,
                                  conflict=before is not None and odoo_moved and ledger_moved,
                                  base=before, odoo=mine, ledger=theirs))
    return decisions
