"""Turn what a ledger said into what the person reading it should do."""

import re

# (pattern in the ledger's message, what to do) -- first match wins
_HINTS = [
    (r"tax", "Check the tax mapping of this connection (Configuration › Mappings › Taxes) "
             "and the taxes on the lines."),
    (r"account code|accountcode|account.*(not valid|invalid|archived)",
     "Map the product (or its category) to a revenue account the ledger accepts, or set the "
     "connection's default revenue account."),
    (r"item", "Map the product to an item that exists and is active in the ledger."),
    (r"tracking|class|department", "Check the tracking mapping: the option may be archived "
                                   "in the ledger."),
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


def hint_for(message):
    """A short instruction for a ledger's refusal ``message`` (the message stays shown too)."""
    text = (message or "").lower()
    for pattern, hint in _HINTS:
        if re.search(pattern, text):
            return hint
    return "Correct the record in Odoo as the ledger's message says; the change is sent again."
