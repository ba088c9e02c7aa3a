"""Provider-neutral push values -> xero-python models (pure functions, no HTTP).

The adapter (xero.py) sends what these build and reads back what Xero answers;
everything Xero-specific about the *shape* of a contact, invoice, credit note,
allocation or payment lives here, so it can be tested without a server.

A value the SDK or Xero can never accept (an unknown currency, a missing
contact) raises PayloadError: the adapter turns it into a refusal of that one
item and leaves it out of the request.
"""

import datetime
import re
from decimal import ROUND_HALF_UP, Decimal

from xero_python.accounting import (
    Account,
    Address,
    Allocation,
    Allocations,
    Bill,
    Contact,
    CreditNote,
    CurrencyCode,
    Invoice,
    LineAmountTypes,
    LineItem,
    LineItemTracking,
    Payment,
    PaymentDelete,
    PaymentTerm,
    PaymentTermType,
    Phone,
)

from .. import contacts as neutral
from ..webhooks import MalformedDelivery, WebhookEvent, digest_id, text
from .base import CreditLine, given_id

# Xero reads line prices with four decimals only when asked (?unitdp=4); Odoo's
# unit prices may carry more than two, so every document request asks for four.
UNITDP = 4
# decimals of a CurrencyRate sent to Xero
RATE_DIGITS = 10
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
    """A Contact for POST /Contacts (create, or update when ``ledger_id`` is set). An
    update leaves alone what ``values`` does not name (a group of fields the ledger owns,
    see services/ownership.py) and clears what it names empty."""
    name = _text(values.get("name"))
    if not name and not (ledger_id and "name" not in values):
        raise PayloadError("A Xero contact needs a name.")
    blank = "" if ledger_id else None  # an update clears what Odoo cleared

    def given(key):
        # an update sends a key ``values`` names (empty: cleared), a creation what is set
        return key in values if ledger_id else bool(_text(values.get(key)))

    address_fields = {
        "address_line1": _text(values.get("street")),
        "address_line2": _text(values.get("street2")),
        "city": _text(values.get("city")),
        "postal_code": _text(values.get("zip")),
        "region": _text(values.get("state")),
        "country": _text(values.get("country_code")),
    }
    addresses = None
    if any(given(k) for k in ("street", "street2", "city", "zip", "state", "country_code")):
        # POBOX is the postal/billing address Xero prints on invoices
        addresses = [Address(address_type="POBOX",
                             **{k: v if v is not None else blank
                                for k, v in address_fields.items()})]
    phone = _text(values.get("phone"))
    phones = [Phone(phone_type="DEFAULT", phone_number=phone or blank)] \
        if given("phone") else None
    return Contact(
        contact_id=ledger_id or None,
        name=name,
        email_address=(_text(values.get("email")) or blank) if given("email") else None,
        tax_number=(_text(values.get("tax_id")) or blank) if given("tax_id") else None,
        addresses=addresses,
        phones=phones,
        default_currency=_currency(values.get("currency")),
        payment_terms=payment_terms(values.get("term_ref"), values.get("term_days")),
    )


# what a contact's values read back from Xero hold: what ``contact`` sends, less what it
# only writes (is_company, term_ref, currency, which inbound sync does not compare)
CONTACT_KEYS = ("name", "email", "phone", "tax_id", "street", "street2", "city", "zip",
                "state", "country_code")


def _kind(value):
    return str(getattr(value, "value", value) or "").strip().upper()


def _join(*parts):
    return " ".join(t for t in (_text(p) for p in parts) if t) or None


def contact_values(contact):
    """The neutral values of a Contact read from Xero (GET Contacts): the inverse of
    ``contact``, key by key (CONTACT_KEYS). The address is the POBOX one (the one
    ``contact`` writes), the phone the DEFAULT one, its area and country codes before the
    number when a bookkeeper typed them apart (``contact`` sends the number whole, so
    they are empty for what Odoo sent); ``country_code`` is Address.Country as Xero
    holds it (Odoo sends the ISO code; Xero's own screens write a country's name).
    Empty is None."""
    address = next((a for a in getattr(contact, "addresses", None) or []
                    if _kind(a.address_type) == "POBOX"), None)
    phone = next((p for p in getattr(contact, "phones", None) or []
                  if _kind(p.phone_type) == "DEFAULT"), None)

    def line(attribute):
        return _text(getattr(address, attribute, None)) if address is not None else None

    return {
        "name": _text(contact.name),
        "email": _text(contact.email_address),
        "phone": _join(phone.phone_country_code, phone.phone_area_code, phone.phone_number)
        if phone is not None else None,
        "tax_id": _text(contact.tax_number),
        "street": line("address_line1"),
        "street2": line("address_line2"),
        "city": line("city"),
        "zip": line("postal_code"),
        "state": line("region"),
        "country_code": line("country"),
    }


# GET Contacts', Payments', Invoices' and CreditNotes' order for listing changes: oldest
# change first, so that a cursor taken from the last object listed leaves nothing unlisted
# before it
CHANGES_ORDER = "UpdatedDateUTC ASC"
# GET Invoices' filter for the sales invoices (ACCREC): bills are no business of inbound sync
SALES_INVOICES = 'Type=="ACCREC"'
# GET CreditNotes' filter for the sales credit notes (ACCRECCREDIT), not the suppliers'
SALES_CREDIT_NOTES = 'Type=="ACCRECCREDIT"'
# GET Overpayments' filter for the customers' overpayments, not those to suppliers
CUSTOMER_OVERPAYMENTS = 'Type=="RECEIVE-OVERPAYMENT"'


def modified_since(cursor):
    """The If-Modified-Since of a GET list (Contacts, Payments, Invoices, CreditNotes) for a
    cursor
    (``YYYY-MM-DDTHH:MM:SSZ``): a naive datetime in UTC, which xero-python sends as
    ``YYYY-MM-DDTHH:MM:SS``, the form Xero documents for the header (a UTC time); None
    for None (no header: every object)."""
    if not cursor:
        return None
    return datetime.datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- documents
# Xero keeps every amount to the cent and rounds half up (LineAmount, TaxAmount, totals).
CENT = Decimal("0.01")
NO_TAX = "NONE"
ROUNDING_DESCRIPTION = "Rounding adjustment"


def _dec(value):
    return Decimal(str(value or 0))


def _cents(value):
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------- read back
# Invoice.Status -> InvoiceState.status (base.InvoiceState); the SDK refuses any other
INVOICE_STATUSES = {"AUTHORISED": "open", "PAID": "paid", "VOIDED": "voided",
                    "DELETED": "deleted", "DRAFT": "draft", "SUBMITTED": "draft"}


def amount(value):
    """A Xero amount (the SDK's float) as a Decimal to the cent; None counts as 0."""
    return _cents(_dec(value))


def _day(value):
    """A Xero date (the SDK's date or datetime, or ISO text) as ``YYYY-MM-DD``."""
    if isinstance(value, datetime.date):  # a datetime is one too
        return value.isoformat()[:10]
    text = _text(str(value)) if value is not None else None
    return text[:10] if text else None


def id_filter(field, ids):
    """The ``where`` of a GET list naming ``ids`` (GUIDs) by their ``field``, for the lists
    Xero gives no IDs parameter (GET Payments, GET CreditNotes, GET Overpayments):
    ``PaymentID==Guid("...") OR ...``."""
    return " OR ".join(f'{field}==Guid("{guid}")' for guid in ids)


def is_customer_payment(payment):
    """Whether a Payment read from Xero is a customer's payment of a sales invoice: its
    Invoice's Type ACCREC (or, without one, PaymentType ACCRECPAYMENT). Bill payments,
    credit note refunds and overpayment/prepayment payments are not."""
    kind = _kind(getattr(getattr(payment, "invoice", None), "type", None))
    if kind:
        return kind == "ACCREC"
    return _kind(getattr(payment, "payment_type", None)) == "ACCRECPAYMENT"


def payment_values(payment):
    """What a customer Payment read from Xero (GET Payments) says, as PaymentState's fields
    but ``ledger_id`` and ``updated_at``. A Xero payment pays exactly one invoice, in the
    invoice's currency: ``allocations`` {its InvoiceID: Amount}, nothing unapplied;
    ``deleted`` for Status DELETED (Xero still lists a deleted payment)."""
    invoice = getattr(payment, "invoice", None)
    contact = getattr(invoice, "contact", None)
    account = getattr(payment, "account", None)
    total = amount(payment.amount)
    invoice_id = given_id(getattr(invoice, "invoice_id", None))
    return {
        "contact_id": given_id(getattr(contact, "contact_id", None)),
        "date": _day(payment.date),
        "total": total,
        "allocations": {invoice_id: total} if invoice_id else {},
        "unapplied": amount(0),
        "currency": _kind(getattr(invoice, "currency_code", None)) or None,
        "account_id": given_id(getattr(account, "account_id", None)),
        "account_code": _text(getattr(account, "code", None)),
        "reference": _text(payment.reference),
        "deleted": _kind(payment.status) == "DELETED",
    }


# Overpayment.Status that means it pays nothing any more (Xero's are AUTHORISED, PAID and
# VOIDED; DELETED, a bank transaction's, is taken as gone too should Xero ever say it)
OVERPAYMENT_GONE = ("VOIDED", "DELETED")


def is_customer_overpayment(overpayment):
    """Whether an Overpayment read from Xero is a customer's (Type RECEIVE-OVERPAYMENT), not
    one to a supplier (SPEND-OVERPAYMENT)."""
    return _kind(getattr(overpayment, "type", None)) == "RECEIVE-OVERPAYMENT"


def overpayment_values(overpayment):
    """What a customer Overpayment read from Xero (GET Overpayments) says, as PaymentState's
    fields but ``ledger_id`` and ``updated_at``: a client's payment beyond what was due.
    ``total`` is its Total, ``allocations`` {InvoiceID: amount} its Allocations summed per
    invoice (credit_allocations), ``unapplied`` its RemainingCredit (the client's credit);
    ``deleted`` for Status VOIDED (or DELETED). Xero's Overpayment names no bank account:
    ``account_id`` / ``account_code`` are read only when an answer carries one (None
    otherwise)."""
    account = getattr(overpayment, "bank_account", None)
    return {
        "contact_id": given_id(getattr(getattr(overpayment, "contact", None), "contact_id",
                                       None)),
        "date": _day(overpayment.date),
        "total": amount(overpayment.total),
        "allocations": credit_allocations(overpayment),
        "unapplied": amount(overpayment.remaining_credit),
        "currency": _kind(getattr(overpayment, "currency_code", None)) or None,
        "account_id": given_id(getattr(account, "account_id", None)),
        "account_code": _text(getattr(account, "code", None)),
        "reference": _text(overpayment.reference),
        "deleted": _kind(overpayment.status) in OVERPAYMENT_GONE,
    }


def is_sales_invoice(invoice):
    """Whether an Invoice read from Xero is a sales invoice (Type ACCREC), not a bill."""
    return _kind(getattr(invoice, "type", None)) == "ACCREC"


def invoice_values(invoice):
    """What a sales Invoice read from Xero (GET Invoices, paged: with its Payments) says, as
    InvoiceState's fields but ``ledger_id`` and ``updated_at``. ``status`` is None for an
    invoice without a Status. ``payment_ids``: its Payments' PaymentIDs in Xero's order
    (Xero leaves deleted payments out of the array; one said DELETED is left out too),
    then the OverpaymentIDs of its Overpayments (those allocated to it; read_payments reads
    them as payments), each once (one listed per allocation), a voided one left out."""
    payments = [p for p in getattr(invoice, "payments", None) or []
                if _kind(getattr(p, "status", None)) != "DELETED"]
    overpayments = [o for o in getattr(invoice, "overpayments", None) or []
                    if _kind(getattr(o, "status", None)) not in OVERPAYMENT_GONE]
    ids = [given_id(p.payment_id) for p in payments]
    ids += [given_id(o.overpayment_id) for o in overpayments]
    return {
        "status": INVOICE_STATUSES.get(_kind(invoice.status)),
        "total": amount(invoice.total),
        "amount_due": amount(invoice.amount_due),
        "payment_ids": tuple(dict.fromkeys(pid for pid in ids if pid)),
        "number": _text(invoice.invoice_number),
    }


# CreditNote.Status -> CreditNoteState.status: as an invoice's ("paid": all its credit used)
CREDIT_NOTE_STATUSES = INVOICE_STATUSES


def is_sales_credit_note(note):
    """Whether a CreditNote read from Xero is a sales credit note (Type ACCRECCREDIT), not a
    supplier's (ACCPAYCREDIT)."""
    return _kind(getattr(note, "type", None)) == "ACCRECCREDIT"


def credit_line(line, amount_types):
    """The CreditLine of one LineItem of a credit note whose LineAmountTypes is
    ``amount_types`` (``_kind``'s form): ``net`` is LineAmount less its TaxAmount when
    Inclusive, LineAmount otherwise; NoTax lines carry no tax. Xero names a line's item by
    its ItemCode only: ``item_id`` is None."""
    tax = amount(0) if amount_types == "NOTAX" else amount(getattr(line, "tax_amount", None))
    gross = amount(getattr(line, "line_amount", None))
    return CreditLine(
        description=_text(getattr(line, "description", None)),
        net=gross - tax if amount_types == "INCLUSIVE" else gross,
        tax=tax,
        account_id=given_id(getattr(line, "account_id", None)),
        account_code=_text(getattr(line, "account_code", None)),
        item_id=None,
        tax_ref=_text(getattr(line, "tax_type", None)),
    )


def credit_allocations(note):
    """{InvoiceID: amount} a CreditNote (or an Overpayment) read from Xero is allocated to,
    summed per invoice in Xero's order; an allocation said IsDeleted (or without its
    invoice) is left out."""
    out = {}
    for alloc in getattr(note, "allocations", None) or []:
        if getattr(alloc, "is_deleted", None):
            continue
        invoice_id = given_id(getattr(getattr(alloc, "invoice", None), "invoice_id", None))
        if invoice_id:
            out[invoice_id] = out.get(invoice_id, amount(0)) + amount(alloc.amount)
    return out


def credit_note_values(note):
    """What a sales CreditNote read from Xero (GET CreditNotes, paged: with its LineItems)
    says, as CreditNoteState's fields but ``ledger_id`` and ``updated_at``. ``status`` is
    None for a credit note without a Status; ``remaining`` is its RemainingCredit."""
    amount_types = _kind(getattr(note, "line_amount_types", None))
    return {
        "contact_id": given_id(getattr(getattr(note, "contact", None), "contact_id", None)),
        "status": CREDIT_NOTE_STATUSES.get(_kind(note.status)),
        "total": amount(note.total),
        "tax": amount(note.total_tax),
        "remaining": amount(note.remaining_credit),
        "lines": tuple(credit_line(line, amount_types) for line in note.line_items or []),
        "allocations": credit_allocations(note),
        "date": _day(note.date),
        "number": _text(note.credit_note_number),
        "reference": _text(note.reference),
        "currency": _kind(getattr(note, "currency_code", None)) or None,
    }


def line_amount_types(lines):
    """Inclusive when every taxed line's price includes its tax (Xero then shows the
    prices the client saw), Exclusive otherwise (Xero takes one type per document)."""
    taxed = [ln for ln in lines if ln.get("tax_ref") or ln.get("tax_code")]
    if taxed and all(ln.get("price_include") for ln in taxed):
        return "Inclusive"
    return "Exclusive"


def _line_prices(line, amount_types):
    """(quantity, unit amount, discount rate) to send for a neutral line.

    A tax-included price on an Exclusive document goes as its net unit price (Odoo's
    net amount over the quantity), since Xero cannot mix both on one document."""
    quantity = _dec(line.get("quantity") if line.get("quantity") is not None else 1)
    unit = _dec(line.get("unit_price"))
    discount = _dec(line.get("discount"))
    if amount_types == "Exclusive" and line.get("price_include") and "net" in line:
        unit = (_dec(line["net"]) / quantity) if quantity else _dec(line["net"])
        discount = Decimal(0)
    unit = unit.quantize(Decimal(1).scaleb(-UNITDP), rounding=ROUND_HALF_UP)
    return quantity, unit, discount


def ledger_line_amount(quantity, unit, discount):
    """Xero's LineAmount: Quantity x UnitAmount x (1 - DiscountRate / 100), to the cent."""
    return _cents(quantity * unit * (1 - discount / 100))


def rounding_adjustment(values):
    """What Xero's own arithmetic would miss of Odoo's total (Decimal, 0 when none): sent
    as a rounding line so that Xero's total equals Odoo's to the cent."""
    lines = values.get("lines") or []
    if values.get("amount_total") is None or not all("tax_amount" in ln for ln in lines):
        return Decimal(0)
    amount_types = line_amount_types(lines)
    total = sum((ledger_line_amount(*_line_prices(ln, amount_types)) for ln in lines),
                Decimal(0))
    if amount_types == "Exclusive":
        total += sum((_cents(_dec(ln["tax_amount"])) for ln in lines), Decimal(0))
    return _cents(_dec(values["amount_total"])) - total


def line_item(line, amount_types="Exclusive"):
    """A LineItem: Xero computes LineAmount from quantity, unit amount and discount; the
    tax of the line is sent as Odoo computed it (TaxAmount), so Xero's rounding never
    differs from Odoo's; an untaxed line says NONE, or Xero would take the item's or the
    account's default tax."""
    tracking = []
    for ref in line.get("tracking") or []:
        if ref.get("category") and ref.get("option"):
            tracking.append(LineItemTracking(name=ref["category"], option=ref["option"]))
        elif ref.get("ledger_id"):
            tracking.append(LineItemTracking(tracking_option_id=ref["ledger_id"],
                                             name=ref.get("category")))
    if len(tracking) > 2:
        raise PayloadError("Xero takes at most two tracking categories per line.")
    quantity, unit, discount = _line_prices(line, amount_types)
    account_code = _text(line.get("account_code"))
    explicit = "tax_amount" in line
    tax_type = _text(line.get("tax_ref")) or _text(line.get("tax_code"))
    if explicit and not tax_type:
        tax_type = NO_TAX
    return LineItem(
        description=_text(line.get("description")) or "-",
        quantity=float(quantity),
        unit_amount=float(unit),
        item_code=_text(line.get("item_code")),
        account_code=account_code,
        account_id=None if account_code else _text(line.get("account_ref")),
        tax_type=tax_type,
        tax_amount=float(_cents(_dec(line["tax_amount"]))) if explicit else None,
        discount_rate=float(discount) or None,
        tracking=tracking or None,
    )


def _rounding_line(values, amount):
    code = _text(values.get("rounding_account_code"))
    account_id = _text(values.get("rounding_account_ref"))
    if not code and not account_id:
        raise PayloadError(
            f"Xero's total would differ from Odoo's by {amount}: set a rounding account on "
            "the connection (Configuration › Ledger connections) so the difference can be "
            "booked as a rounding line.")
    return LineItem(description=ROUNDING_DESCRIPTION, quantity=1.0, unit_amount=float(amount),
                    account_code=code, account_id=None if code else account_id,
                    tax_type=NO_TAX, tax_amount=0.0)


def _document_fields(values):
    if not values.get("contact_ref"):
        raise PayloadError("The customer is not in Xero yet (no contact reference).")
    lines = values.get("lines") or []
    if not lines:
        raise PayloadError("Xero refuses a document without lines.")
    amount_types = line_amount_types(lines)
    line_items = [line_item(ln, amount_types) for ln in lines]
    adjustment = rounding_adjustment(values)
    if adjustment:
        line_items.append(_rounding_line(values, adjustment))
    return {
        "contact": Contact(contact_id=values["contact_ref"]),
        "date": _date(values.get("date"), "Date"),
        "line_amount_types": LineAmountTypes(amount_types),
        "line_items": line_items,
        "reference": _text(values.get("reference")),
        "currency_code": _currency(values.get("currency")),
        "currency_rate": xero_rate(values.get("currency_rate")),
        # an approved document is AUTHORISED in Xero (it has a number and is due), any
        # other a DRAFT
        "status": "AUTHORISED" if values.get("approved", True) else "DRAFT",
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


def allocations(values, already=None, due=None):
    """Allocations (body of PUT CreditNotes/{id}/Allocations) of a credit note to its
    invoices, or None when there is nothing left to allocate.

    ``already`` ({invoice id: amount allocated in Xero}) is deducted, so a re-push never
    allocates twice; ``due`` ({invoice id: Xero's AmountDue}) caps each amount, since
    Xero refuses an allocation above the invoice's amount due."""
    done = {str(k).lower(): _dec(v) for k, v in (already or {}).items()}
    dues = {str(k).lower(): _dec(v) for k, v in (due or {}).items()}
    out = []
    for alloc in values.get("allocations") or []:
        invoice_id = str(alloc.get("invoice_ref") or "").lower()
        amount = _dec(alloc.get("amount")) - done.get(invoice_id, Decimal(0))
        if invoice_id in dues:
            amount = min(amount, dues[invoice_id])
        if not invoice_id or _cents(amount) <= 0:
            continue
        out.append(Allocation(invoice=Invoice(invoice_id=alloc["invoice_ref"]),
                              amount=float(_cents(amount)),
                              date=_date(alloc.get("date") or values.get("date"), "Date")))
    return Allocations(allocations=out) if out else None


def void_invoice(ledger_id):
    """The one-field update that voids an AUTHORISED invoice (POST /Invoices)."""
    if not ledger_id:
        raise PayloadError("The invoice is not in Xero: nothing to void.")
    return Invoice(invoice_id=ledger_id, status="VOIDED")


# --------------------------------------------------------------------------- edits after sync
# Xero keeps ACCREC invoice numbers unique, voided invoices included: an invoice Odoo took
# back gives up its number (the replacement Odoo posts again carries it) for this one.
RETIRED_NUMBER = "{number} ({how} {short})"
NUMBER_MAX = 255


def retired_number(number, ledger_id, how="voided"):
    """The number an invoice keeps in Xero once retired: its own, marked, and made unique
    by its id (an invoice replaced twice leaves two retired copies)."""
    text = RETIRED_NUMBER.format(number=number or "", how=how, short=str(ledger_id)[:8])
    return text.strip()[:NUMBER_MAX]


def retire_invoice(ledger_id, status="VOIDED", number=None):
    """Void an AUTHORISED invoice (or delete a DRAFT/SUBMITTED one), renaming it in the same
    update (POST /Invoices)."""
    if not ledger_id:
        raise PayloadError("The invoice is not in Xero: nothing to void.")
    return Invoice(invoice_id=ledger_id, status=status, invoice_number=_text(number))


def rename_invoice(ledger_id, number):
    """The update that only renames an invoice (Xero allows it on a paid invoice too)."""
    return Invoice(invoice_id=ledger_id, invoice_number=_text(number))


def credit_for(invoice, reference=None, date=None):
    """An AUTHORISED ACCRECCREDIT CreditNote crediting the whole of ``invoice`` (an Invoice
    read from Xero, with its lines): same contact, currency, lines, accounts, tax types and
    tracking, so that Xero computes the same total."""
    lines = []
    for line in invoice.line_items or []:
        tracking = [LineItemTracking(name=t.name, option=t.option)
                    for t in line.tracking or [] if t.name and t.option]
        lines.append(LineItem(
            description=_text(line.description) or "-",
            quantity=line.quantity if line.quantity is not None else 1.0,
            unit_amount=line.unit_amount,
            item_code=_text(line.item_code),
            account_code=_text(line.account_code),
            account_id=None if _text(line.account_code) else line.account_id,
            tax_type=_text(line.tax_type),
            # the invoice's own tax, as sent: recomputed, it could differ by a cent
            tax_amount=line.tax_amount,
            discount_rate=line.discount_rate or None,
            tracking=tracking or None,
        ))
    if not lines:
        raise PayloadError(f"Xero sent invoice {invoice.invoice_number} without its lines: "
                           "no credit note can copy them.")
    return CreditNote(type="ACCRECCREDIT", status="AUTHORISED",
                      contact=Contact(contact_id=invoice.contact.contact_id),
                      date=_date(date, "Date"), line_amount_types=invoice.line_amount_types,
                      line_items=lines, reference=_text(reference),
                      currency_code=invoice.currency_code,
                      currency_rate=invoice.currency_rate)


def payment_delete():
    """The body of POST Payments/{id} that deletes (reverses) a payment."""
    return PaymentDelete(status="DELETED")


# --------------------------------------------------------------------------- payments
def xero_rate(rate):
    """Xero's CurrencyRate (document-currency units per base-currency unit) for a neutral
    rate (base-currency units per document unit, as Odoo and QuickBooks count it)."""
    if not rate:
        return None
    return round(1 / float(rate), RATE_DIGITS)


def payments(values, sent=()):
    """The Payments (PUT /Payments) of one Odoo payment: Xero applies a payment to one
    invoice, so one per allocation, its Amount in the invoice's currency with the rate
    of the payment; allocations to invoices in ``sent`` (ids) are in Xero already."""
    account_id = _text(values.get("bank_account_ref"))
    code = _text(values.get("bank_account_code"))
    if not account_id and not code:
        raise PayloadError("No Xero bank account for this payment.")
    done = {str(x).lower() for x in sent}
    out = []
    for alloc in payment_allocations(values):
        invoice_id = alloc.get("invoice_ref")
        if not invoice_id:
            raise PayloadError("The invoice is not in Xero yet (no invoice reference).")
        if str(invoice_id).lower() in done:
            continue
        amount = _money(alloc.get("amount"))
        if amount <= 0:
            raise PayloadError("A Xero payment must be for more than zero.")
        out.append(Payment(
            invoice=Invoice(invoice_id=invoice_id),
            account=Account(account_id=account_id) if account_id else Account(code=code),
            amount=amount, date=_date(values.get("date"), "Date"),
            currency_rate=xero_rate(alloc.get("currency_rate")),
            reference=_text(values.get("reference"))))
    return out


def payment_allocations(values):
    """The invoices a payment's values apply to (older values name a single invoice)."""
    if values.get("allocations") is not None:
        return values["allocations"]
    if not values.get("invoice_ref"):
        return []
    return [{"invoice_ref": values["invoice_ref"], "amount": values.get("amount"),
             "currency_rate": values.get("currency_rate")}]


def payment(values):
    """The first Payment of ``values`` (see payments)."""
    models = payments(values)
    if not models:
        raise PayloadError("The payment applies to no invoice.")
    return models[0]


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


def match_contacts(candidates, contacts):
    """ContactMatches ({candidate key: ContactID}, with ``name_holders``): tax number,
    then email, then exact name, a contact contradicting the candidate's tax number or
    email never being taken on a weaker ground (see services/contacts.py).

    ``contacts`` are dicts with ContactID, TaxNumber, EmailAddress, Name (the answer
    to the where filters); comparisons ignore case and spacing, as Xero's do.
    """
    rows = [{"id": found.get("ContactID"), "tax_id": found.get("TaxNumber"),
             "email": found.get("EmailAddress"), "name": found.get("Name")}
            for found in contacts]
    return neutral.match_contacts(candidates, rows)


# Xero's refusal of a second active contact with a name (ValidationErrors message:
# "The contact name X is already assigned to another contact. The contact name must
# be unique across all active contacts.")
_DUPLICATE_NAME = re.compile(r"already assigned to another contact|contact name must be unique",
                             re.IGNORECASE)


def is_duplicate_name(messages):
    """True when Xero's validation ``messages`` refuse a contact for its name only."""
    messages = [str(m) for m in messages or []]
    return bool(messages) and any(_DUPLICATE_NAME.search(m) for m in messages)


# -- Webhooks (xero-webhooks.yaml) ---------------------------------------------------------
# eventCategory: the kind it tells about (Xero sends no payment events: a payment shows as
# its invoice's UPDATE, and the pull reads payments)
WEBHOOK_KINDS = {"CONTACT": "contact", "INVOICE": "invoice", "CREDITNOTE": "credit_note"}


def webhook_events(payload):
    """The WebhookEvents of a verified delivery ``{"events": [...], "firstEventSequence",
    "lastEventSequence", "entropy"}``; none for the intent-to-receive check (no events).
    Events of other categories (subscriptions) are left out; a delivery of another shape
    is MalformedDelivery. Xero gives events no id: a digest of tenant, category, resource,
    type and date stands for it."""

    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise MalformedDelivery("a Xero delivery is an object with an events list")
    out = []
    for event in events:
        if not isinstance(event, dict):
            raise MalformedDelivery("a Xero event is an object")
        kind = WEBHOOK_KINDS.get(event.get("eventCategory"))
        if not kind:
            continue
        tenant = text(event.get("tenantId"), "tenantId")
        resource = text(event.get("resourceId"), "resourceId")
        change = text(event.get("eventType"), "eventType").lower()
        when = text(event.get("eventDateUtc"), "eventDateUtc")
        out.append(WebhookEvent(
            org_id=tenant, kind=kind, ledger_id=resource,
            change=change if change in ("create", "update") else "update",
            event_id=digest_id("xero", tenant, kind, resource, change, when),
            occurred_at=when))
    return out
