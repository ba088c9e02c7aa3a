"""Which ledger contact is an Odoo partner, and the name a new one gets (pure functions).

Both adapters find candidate contacts their own way (Xero filters on tax number, email
and name; QuickBooks queries e-mails and display names), then call :func:`match_contacts`
with plain rows, so that the decision is the same for both ledgers:

- a tax id match wins over everything;
- then the billing email, then the exact name;
- a ledger contact whose tax id or email CONTRADICTS the partner's (both have a value
  and they differ) is never taken on a weaker ground: two clients called "Smith & Co"
  with different tax ids or emails are two contacts, never one.

A partner that matches nothing is created; when a ledger contact that is not it
already holds its name (ledger contact names are unique), it is created under
:func:`distinct_name` instead of being merged or held.
"""

import re

# The shorter of the ledgers' contact name limits (Xero Contact.Name: 255; QuickBooks
# DisplayName: 500): a distinct name never gets cut by either.
NAME_MAX = 255
DEFAULT_SUFFIX = " (%(ref)s)"
SUFFIX_PLACEHOLDERS = ("%(ref)s", "%(id)s")

# How ledgers hide all but the end of a tax id (QuickBooks returns PrimaryTaxIdentifier
# as e.g. "XXXXXX1234"): a masked value can contradict, never confirm.
_MASK = re.compile(r"^(?:[*\u2022\u25cf]+|X{3,})", re.IGNORECASE)


class ContactMatches(dict):
    """{candidate key: ledger contact id}, plus ``name_holders``: {candidate key: ledger
    contact ids (sorted) that bear the candidate's name}; any of them that is not the
    candidate's own contact means a new contact needs a distinct name."""

    def __init__(self, matches=(), name_holders=None):
        super().__init__(matches)
        self.name_holders = dict(name_holders or {})


def norm_name(value):
    """A name as ledgers compare them: spacing collapsed, case ignored."""
    return " ".join(str(value or "").split()).casefold()


def norm_email(value):
    return str(value or "").strip().casefold()


def norm_tax(value):
    """A tax id without spaces, dots, dashes or case ("BE 0477.472.701" = "be0477472701")."""
    return "".join(ch for ch in str(value or "").upper() if ch.isalnum())


def tax_relation(partner_tax, ledger_tax):
    """"same", "differs", or None (one side empty, or a masked value whose visible end
    agrees: it cannot prove identity, and contradicts nothing)."""
    mine = norm_tax(partner_tax)
    raw = str(ledger_tax or "").strip()
    if not mine or not raw:
        return None
    mask = _MASK.match(raw)
    if mask:
        tail = norm_tax(raw[mask.end():])
        if not tail:
            return None
        return None if mine.endswith(tail) else "differs"
    theirs = norm_tax(raw)
    if not theirs:
        return None
    return "same" if mine == theirs else "differs"


def _relation(mine, theirs):
    if not mine or not theirs:
        return None
    return "same" if mine == theirs else "differs"


def _id_order(value):
    """Numeric ids in number order (QuickBooks: the oldest first), others as text."""
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def match_contact(candidate, rows):
    """The id of the row that is ``candidate``, or None.

    ``candidate``: dict with tax_id, email, name. ``rows``: dicts with id, tax_id, email,
    name (names already in the ledger's own form, e.g. QuickBooks' display name). Among
    several rows at the same level, the one agreeing on more of the other fields wins,
    then the lowest id: the answer never depends on the order the ledger listed them.
    """
    email, name = norm_email(candidate.get("email")), norm_name(candidate.get("name"))
    best = {}
    for row in rows:
        tax = tax_relation(candidate.get("tax_id"), row.get("tax_id"))
        mail = _relation(email, norm_email(row.get("email")))
        same_name = _relation(name, norm_name(row.get("name")))
        if tax == "same":
            level = 0
        elif tax == "differs" or mail == "differs":
            continue  # contradicts the partner: not a match on any weaker ground
        elif mail == "same":
            level = 1
        elif same_name == "same":
            level = 2
        else:
            continue
        agree = [tax, mail, same_name].count("same")
        rank = (level, -agree, _id_order(row["id"]))
        if level not in best or rank < best[level][0]:
            best[level] = (rank, str(row["id"]))
    return best[min(best)][1] if best else None


def match_contacts(candidates, rows):
    """ContactMatches of ``candidates`` (dicts with key, tax_id, email, name) among
    ``rows`` (see :func:`match_contact`)."""
    rows = [r for r in rows if r.get("id")]
    by_name = {}
    for row in rows:
        by_name.setdefault(norm_name(row.get("name")), set()).add(str(row["id"]))
    matches, holders = {}, {}
    for candidate in candidates:
        key = candidate.get("key")
        if not key:
            continue
        found = match_contact(candidate, rows)
        if found:
            matches[key] = found
        name = norm_name(candidate.get("name"))
        if name and by_name.get(name):
            holders[key] = sorted(by_name[name], key=_id_order)
    return ContactMatches(matches, holders)


def check_suffix(suffix):
    """The error message for a suffix that cannot make names distinct, else None."""
    if not suffix or not any(p in suffix for p in SUFFIX_PLACEHOLDERS):
        return ("The suffix must contain %(ref)s (the partner's reference, or its id when "
                "it has none) or %(id)s, so that two clients of the same name get different "
                "names.")
    bare = suffix
    for token in (*SUFFIX_PLACEHOLDERS, "%%"):
        bare = bare.replace(token, "")
    # nothing but the placeholders themselves: "%(ref)999999999s" would build a
    # gigabyte-wide name
    if "%" in bare:
        return ("The suffix may only use %(ref)s and %(id)s, e.g. \" (%(ref)s)\"; write %% "
                "for a percent sign.")
    if len(suffix) > 60:
        return "The suffix is too long (60 characters at most)."
    return None


def distinct_name(name, suffix, ref=None, partner_id=None, max_length=NAME_MAX):
    """``name`` with the suffix (e.g. "Smith & Co (P00042)"), within ``max_length``:
    the name is shortened, never the suffix. A suffix :func:`check_suffix` refuses is
    replaced by the default one."""
    if check_suffix(suffix):
        suffix = DEFAULT_SUFFIX
    tail = suffix % {"ref": str(ref or partner_id or ""), "id": str(partner_id or "")}
    base = " ".join(str(name or "").split())
    return base[:max(0, max_length - len(tail))].rstrip() + tail
