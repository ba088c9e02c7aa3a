"""Provider-neutral push values -> xero-python models (pure functions, no HTTP).

The adapter (xero.py) sends what these build and reads back what Xero answers;
everything Xero-specific about the *shape* of a contact, invoice, credit note,
allocation or payment lives here, so it can be tested without a server.

A value the SDK or Xero can never accept (an unknown currency, a missing
contact) raises PayloadError: the adapter turns it into a refusal of that one
item and leaves it out of the request.
"""

import datetime

from xero_python.accounting import (
    Account,
    Address,
    Allocation,
    Allocations,
    Bill,
    Contact,
    Contacts,
    CreditNote,
    CreditNotes,
    CurrencyCode,
    Invoice,
    Invoices,
    LineAmountTypes,
    LineItem,
    LineItemTracking,
    Payment,
    Payments,
    PaymentTerm,
    PaymentTermType,
    Phone,
)

# Xero reads line prices with four decimals only when asked (?unitdp=4); Odoo's
# unit prices may carry more than two, so every document request asks for four.
UNITDP = 4
# Longest ``where`` text one GET Contacts carries; longer candidate lists are split
# over several requests (Xero documents no limit; URLs of ~8 kB pass its gateway).
MAX_WHERE_CHARS = 6000


class PayloadError(ValueError):
    """These values cannot become a Xero object; ``messages`` say why."""

    def __init__(self, *messages):
        super().__init__(" ".join(messages))
        self.messages = list(messages)


# --------------------------------------------------------------------------- helpers
def _money(value):
    return round(float(value or 0.0), 2)


def _date(value, what):
    if not value:
        return None
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise PayloadError(f"{what} '{value}' is not a date (YYYY-MM-DD).") from None


def _currency(code):
    if not code:
        return None
    try:
        return CurrencyCode(code)
    except ValueError:
        raise PayloadError(f"Xero does not know the currency {code!r}.") from None


def _text(value):
    value = (value or "").strip() if isinstance(value, str) else value
    return value or None


def payment_terms(term_ref, days=None):
    """Xero's sales PaymentTerm for a term reference.

    Xero has no list of terms: a term is a day number and a type. The ledger
    reference is the type ("DAYSAFTERBILLDATE"), optionally with the day after a
    colon ("DAYSAFTERBILLDATE:30"); ``days`` (values["term_days"]) may supply it.
    Without a day Xero cannot store the term, so None (the contact keeps its own).
    """
    if not term_ref:
        return None
    kind, _sep, day = str(term_ref).partition(":")
    day = day or days
    if day in (None, ""):
        return None
    try:
        term_type = PaymentTermType(kind.strip().upper())
        day = int(day)
    except ValueError:
        raise PayloadError(f"{term_ref!r} is not a Xero payment term (type[:day]).") from None
    return PaymentTerm(sales=Bill(day=day, type=term_type))


# --------------------------------------------------------------------------- contacts
def contact(values, ledger_id=None):
    """A Contact for POST /Contacts (create, or update when ``ledger_id`` is set)."""
    name = _text(values.get("name"))
    if not name:
        raise PayloadError("A Xero contact needs a name.")
    blank = "" if ledger_id else None  # an update clears what Odoo cleared
    address_fields = {
        "address_line1": _text(values.get("street")),
        "address_line2": _text(values.get("street2")),
        "city": _text(values.get("city")),
        "postal_code": _text(values.get("zip")),
        "region": _text(values.get("state")),
        "country": _text(values.get("country_code")),
    }
    addresses = None
    if any(address_fields.values()) or ledger_id:
        # POBOX is the postal/billing address Xero prints on invoices
        addresses = [Address(address_type="POBOX",
                             **{k: v if v is not None else blank
                                for k, v in address_fields.items()})]
    phone = _text(values.get("phone"))
    phones = [Phone(phone_type="DEFAULT", phone_number=phone or blank)] \
        if (phone or ledger_id) else None
    return Contact(
        contact_id=ledger_id or None,
        name=name,
        email_address=_text(values.get("email")) or blank,
        tax_number=_text(values.get("tax_id")) or blank,
        addresses=addresses,
        phones=phones,
        default_currency=_currency(values.get("currency")),
        payment_terms=payment_terms(values.get("term_ref"), values.get("term_days")),
    )


# --------------------------------------------------------------------------- documents
def line_item(line):
    """A LineItem (Exclusive amounts: unit price net of tax, discount in percent)."""
    tracking = []
    for ref in line.get("tracking") or []:
        if ref.get("category") and ref.get("option"):
            tracking.append(LineItemTracking(name=ref["category"], option=ref["option"]))
        elif ref.get("ledger_id"):
            tracking.append(LineItemTracking(tracking_option_id=ref["ledger_id"],
                                             name=ref.get("category")))
    if len(tracking) > 2:
        raise PayloadError("Xero takes at most two tracking categories per line.")
    discount = float(line.get("discount") or 0.0)
    account_code = _text(line.get("account_code"))
    return LineItem(
        description=_text(line.get("description")) or "-",
        quantity=float(line.get("quantity") if line.get("quantity") is not None else 1.0),
        unit_amount=round(float(line.get("unit_price") or 0.0), UNITDP),
        item_code=_text(line.get("item_code")),
        account_code=account_code,
        account_id=None if account_code else _text(line.get("account_ref")),
        tax_type=_text(line.get("tax_ref")) or _text(line.get("tax_code")),
        discount_rate=discount or None,
        tracking=tracking or None,
    )


def _document_fields(values):
    if not values.get("contact_ref"):
        raise PayloadError("The customer is not in Xero yet (no contact reference).")
    lines = values.get("lines") or []
    if not lines:
        raise PayloadError("Xero refuses a document without lines.")
    return {
        "contact": Contact(contact_id=values["contact_ref"]),
        "date": _date(values.get("date"), "Date"),
        "line_amount_types": LineAmountTypes("Exclusive"),
        "line_items": [line_item(ln) for ln in lines],
        "reference": _text(values.get("reference")),
        "currency_code": _currency(values.get("currency")),
        "status": values.get("status") or "AUTHORISED",
    }


def invoice(values, ledger_id=None):
    """An ACCREC Invoice for POST /Invoices (update when ``ledger_id`` is set)."""
    return Invoice(type="ACCREC", invoice_id=ledger_id or None,
                   invoice_number=_text(values.get("number")),
                   due_date=_date(values.get("due_date") or values.get("date"), "Due date"),
                   **_document_fields(values))


def credit_note(values, ledger_id=None):
    """An ACCRECCREDIT CreditNote for POST /CreditNotes (allocations go separately)."""
    return CreditNote(type="ACCRECCREDIT", credit_note_id=ledger_id or None,
                      credit_note_number=_text(values.get("number")),
                      **_document_fields(values))


def allocations(values, already=()):
    """Allocations (body of PUT CreditNotes/{id}/Allocations) of a credit note to its
    invoices, or None when there is nothing to allocate; skips invoices in ``already``
    (ids the credit note is allocated to in Xero: a re-push never allocates twice)."""
    done = {str(x).lower() for x in already}
    out = []
    for alloc in values.get("allocations") or []:
        invoice_id = alloc.get("invoice_ref")
        if not invoice_id or str(invoice_id).lower() in done or _money(alloc.get("amount")) <= 0:
            continue
        out.append(Allocation(invoice=Invoice(invoice_id=invoice_id),
                              amount=_money(alloc["amount"]),
                              date=_date(alloc.get("date") or values.get("date"), "Date")))
    return Allocations(allocations=out) if out else None


def void_invoice(ledger_id):
    """The one-field update that voids an AUTHORISED invoice (POST /Invoices)."""
    if not ledger_id:
        raise PayloadError("The invoice is not in Xero: nothing to void.")
    return Invoice(invoice_id=ledger_id, status="VOIDED")


# --------------------------------------------------------------------------- payments
def payment(values):
    """A Payment against an invoice for PUT /Payments (Xero payments are never edited)."""
    if not values.get("invoice_ref"):
        raise PayloadError("The invoice is not in Xero yet (no invoice reference).")
    account_id = _text(values.get("bank_account_ref"))
    code = _text(values.get("bank_account_code"))
    if not account_id and not code:
        raise PayloadError("No Xero bank account for this payment.")
    amount = _money(values.get("amount"))
    if amount <= 0:
        raise PayloadError("A Xero payment must be for more than zero.")
    return Payment(invoice=Invoice(invoice_id=values["invoice_ref"]),
                   account=Account(account_id=account_id) if account_id else Account(code=code),
                   amount=amount, date=_date(values.get("date"), "Date"),
                   reference=_text(values.get("reference")))


# --------------------------------------------------------------------------- envelopes
BUILDERS = {
    "contact": lambda item: contact(item.values, item.ledger_id),
    "invoice": lambda item: invoice(item.values, item.ledger_id),
    "credit_note": lambda item: credit_note(item.values, item.ledger_id),
    "payment": lambda item: payment(item.values),
    "void_invoice": lambda item: void_invoice(item.ledger_id),
}


def build(item):
    """The SDK model of one PushItem (PayloadError when it cannot be one)."""
    try:
        return BUILDERS[item.kind](item)
    except PayloadError:
        raise
    except (ValueError, TypeError) as exc:  # the SDK's own model checks
        raise PayloadError(f"Cannot send this to Xero: {exc}") from exc


def envelope(kind, models):
    """The request body wrapping ``models`` for ``kind``."""
    if kind == "contact":
        return Contacts(contacts=models)
    if kind in ("invoice", "void_invoice"):
        return Invoices(invoices=models)
    if kind == "credit_note":
        return CreditNotes(credit_notes=models)
    if kind == "payment":
        return Payments(payments=models)
    raise ValueError(f"unknown push kind {kind!r}")


# --------------------------------------------------------------------------- matching
def _quote(value):
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


def _terms(candidate):
    terms = []
    if _text(candidate.get("tax_id")):
        terms.append(f"TaxNumber=={_quote(candidate['tax_id'].strip())}")
    if _text(candidate.get("email")):
        terms.append(f"EmailAddress=={_quote(candidate['email'].strip())}")
    if _text(candidate.get("name")):
        terms.append(f"Name=={_quote(candidate['name'].strip())}")
    return terms


def where_clauses(candidates, limit=MAX_WHERE_CHARS):
    """``where`` filters OR-ing every candidate's tax id, email and name, each at most
    ``limit`` characters: one GET Contacts per filter finds every possible match."""
    clauses, current = [], []
    for candidate in candidates:
        for term in dict.fromkeys(_terms(candidate)):
            if current and len(" OR ".join([*current, term])) > limit:
                clauses.append(" OR ".join(current))
                current = []
            current.append(term)
    if current:
        clauses.append(" OR ".join(current))
    return clauses


def _norm(value):
    return " ".join(str(value or "").split()).casefold()


def match_contacts(candidates, contacts):
    """{candidate key: ContactID} matching tax id, then email, then exact name.

    ``contacts`` are dicts with ContactID, TaxNumber, EmailAddress, Name (the
    answer to the where filters); comparisons ignore case and spacing, as Xero's do.
    """
    by = {"tax_id": {}, "email": {}, "name": {}}
    for found in contacts:
        for field, attr in (("tax_id", "TaxNumber"), ("email", "EmailAddress"),
                            ("name", "Name")):
            value = _norm(found.get(attr))
            if value:
                by[field].setdefault(value, found["ContactID"])
    matches = {}
    for candidate in candidates:
        for field in ("tax_id", "email", "name"):
            value = _norm(candidate.get(field))
            if value and value in by[field]:
                matches[candidate["key"]] = by[field][value]
                break
    return matches
