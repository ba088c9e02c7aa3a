"""Turn what a ledger said into what the person reading it should do.

Only for the ledger's own refusals: a problem the engine finds itself (an unmapped tax, a
mapping whose ledger code is archived) already has a sentence naming the Odoo mapping to
fix, and that sentence is the hint.
"""

import re

# Names the ledger quotes back ('Tax', "North", “Region”) are the user's words, not the
# ledger's: a tracking option called "Tax" must not read as a tax problem. A quote inside
# a word (can't) is an apostrophe, not an opening quote.
_QUOTED = re.compile(r"(?<!\w)'[^']*'(?!\w)|\"[^\"]*\"|“[^”]*”|‘[^’]*’")

# (pattern in the ledger's message, what to do) -- first match wins; tracking comes first
# because its messages also name what the option is used with
_HINTS = [
    (r"\btracking\b|\bclass(ref)?\b|\bdepartment(ref)?\b",
     "Check the tracking mapping (analytic accounts, sales teams): the option may be archived "
     "in the ledger; map it to an active one and refresh the reference data."),
    (r"\btax", "Check the tax mapping of this connection (Configuration › Mappings › Taxes) "
               "and the taxes on the lines."),
    (r"account ?code|account.*(not valid|invalid|archived)",
     "Map the product (or its category) to a revenue account the ledger accepts, or set the "
     "connection's default revenue account."),
    (r"\bitem", "Map the product to an item that exists and is active in the ledger."),
    (r"(contact|customer|name).*(exists|duplicate|already)|duplicate name",
     "A contact with this name already exists in the ledger: give the partner a distinct "
     "name, or link it by its tax id or billing email."),
    (r"lock|period|closing date|closed", "The date falls in a period the ledger has locked: "
                                         "use a later date or ask the bookkeeper to reopen it."),
    (r"payment|paid|allocat|credit", "The ledger refused to change a document that has "
                                     "payments or allocations: record the change as a credit "
                                     "note instead."),
    (r"currency", "Enable this currency in the ledger, or invoice in the ledger's currency."),
    (r"email", "Fix the partner's billing email address."),
]


def strip_quoted(message):
    """``message`` without the names it quotes (the ledger's words only), lower case."""
    return _QUOTED.sub("''", message or "").lower()


def hint_for(message):
    """A short instruction for a ledger's refusal ``message`` (the message stays shown too)."""
    text = strip_quoted(message)
    for pattern, hint in _HINTS:
        if re.search(pattern, text):
            return hint
    return "Correct the record in Odoo as the ledger's message says; the change is sent again."
