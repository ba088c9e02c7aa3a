"""Turn what went wrong into what the person reading it should do: one hint per error
class and subject (services/ledger/refusals.py reads them from the ledger's words once).

Only for the ledger's own refusals: a problem the engine finds itself (an unmapped tax, a
mapping whose ledger code is archived) already has a sentence naming the Odoo mapping to
fix, and that sentence is the hint.
"""

from .ledger.refusals import classify

_HINTS = {
    ("mapping", "tracking"):
        "Check the tracking mapping (analytic accounts, sales teams): the option may be "
        "archived in the ledger; map it to an active one and refresh the reference data.",
    ("mapping", "tax"): "Check the tax mapping of this connection (Configuration › Mappings › "
                        "Taxes) and the taxes on the lines.",
    ("mapping", "account"):
        "Map the product (or its category) to a revenue account the ledger accepts, or set "
        "the connection's default revenue account.",
    ("mapping", "item"): "Map the product to an item that exists and is active in the ledger.",
    ("mapping", None): "Fix the mapping the message names (Billing Sync › Configuration › "
                       "Mappings): what it stopped goes again by itself once it is saved.",
    ("mismatch", None): "Compare the document in the ledger with Odoo's; correct the side "
                        "that is wrong, then Retry.",
    ("duplicate", "contact"):
        "A contact with this name already exists in the ledger: give the partner a distinct "
        "name, or link it by its tax id or billing email.",
    ("duplicate", "document"):
        "A document with this number already exists in the ledger: check it there; Retry "
        "links it when it is this one.",
    ("locked_period", None): "The date falls in a period the ledger has locked: use a later "
                             "date or ask the bookkeeper to reopen it.",
    ("validation", "payments"):
        "The ledger refused to change a document that has payments or allocations: record "
        "the change as a credit note instead.",
    ("currency", None): "Enable this currency in the ledger, or invoice in the ledger's "
                        "currency.",
    ("validation", "email"): "Fix the partner's billing email address.",
    ("authentication", None): "Reconnect the ledger (Billing Sync › Connections › Connect).",
    ("rate_limit", None): "Nothing to do: it goes again when the ledger's rate limit allows.",
    ("network", None): "Nothing to do: it goes again shortly; if it keeps failing, check the "
                       "ledger's status page.",
    ("answer", None): "Nothing to do: it goes again under the same idempotency key, so "
                      "nothing is created twice.",
}
_DEFAULT = "Correct the record in Odoo as the ledger's message says; the change is sent again."


def hint_of(error_class, subject=None):
    """The instruction for a problem of ``error_class`` (and ``subject``)."""
    return _HINTS.get((error_class, subject)) or _HINTS.get((error_class, None)) or _DEFAULT


def hint_for(message):
    """A short instruction for a ledger's refusal ``message`` (the message stays shown too)."""
    return hint_of(*classify([message]))
