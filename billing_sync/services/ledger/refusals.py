"""What class of problem a ledger's refusal is (ERROR_CLASSES in errors.py), read once,
where the ledger's words arrive: the adapters' LedgerRejected. Hints, alerts and filters
then key off the class and its subject, never off the wording again.

Names the ledger quotes back ('Tax', "North", “Region”) are the user's words, not the
ledger's: a tracking option called "Tax" must not read as a tax problem. A quote inside a
word (can't) is an apostrophe, not an opening quote.
"""

import re

_QUOTED = re.compile(r"(?<!\w)'[^']*'(?!\w)|\"[^\"]*\"|“[^”]*”|‘[^’]*’")

# QuickBooks' Fault codes that say the class outright
_CODES = {
    "6240": ("duplicate", "contact"),  # Duplicate Name Exists Error
    "6140": ("duplicate", "document"),  # Duplicate Document Number Error
    "6210": ("locked_period", None),  # Account Period Closed
}

# (pattern in the ledger's words, (class, subject)) -- first match wins; tracking comes
# first because its messages also name what the option is used with
_PATTERNS = [
    (r"\btracking\b|\bclass(ref)?\b|\bdepartment(ref)?\b", ("mapping", "tracking")),
    (r"\btax", ("mapping", "tax")),
    (r"account ?code|account.*(not valid|invalid|archived)", ("mapping", "account")),
    (r"\bitem", ("mapping", "item")),
    (r"(contact|customer|name).*(exists|duplicate|already)|duplicate name",
     ("duplicate", "contact")),
    (r"lock|period|closing date|closed", ("locked_period", None)),
    (r"payment|paid|allocat|credit", ("validation", "payments")),
    (r"currency", ("currency", None)),
    (r"email", ("validation", "email")),
]


def strip_quoted(message):
    """``message`` without the names it quotes (the ledger's words only), lower case."""
    return _QUOTED.sub("''", message or "").lower()


def _words(detail):
    """The text of one of a ledger's messages (QuickBooks: a Fault Error dict)."""
    if isinstance(detail, dict):
        message = str(detail.get("Message") or detail.get("message") or "").strip()
        more = str(detail.get("Detail") or detail.get("detail") or "").strip()
        # QuickBooks' Detail usually repeats its Message first
        return more if more.startswith(message) else f"{message} {more}".strip()
    return str(detail or "")


def classify(details, text=None):
    """(error class, subject) of a refusal the ledger explained with ``details`` (its
    messages: text, or QuickBooks' Fault Error dicts with their ``code``, which say it
    outright) and ``text`` (its words as shown, else those of ``details``)."""
    for detail in details or ():
        code = str(detail.get("code") or "") if isinstance(detail, dict) else ""
        if code in _CODES:
            return _CODES[code]
    text = strip_quoted(text or " ".join(_words(d) for d in details or ()))
    for pattern, found in _PATTERNS:
        if re.search(pattern, text):
            return found
    return "validation", None
