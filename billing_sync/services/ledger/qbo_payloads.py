"""Provider-neutral push values -> QuickBooks Online v3 JSON (pure functions, no HTTP).

Each function takes the ``values`` dict of a PushItem (see ``base.PushItem`` and the push
contract) and returns the entity body a ``BatchItemRequest`` carries. The choices that are
QuickBooks' own, and why:

- a line discount becomes a discounted ``UnitPrice`` with ``Amount`` = the net line total:
  QuickBooks has no per-line discount percent, and its single transaction-level discount
  line would spread one rate over lines whose tax codes differ;
- tracking ``Class:<id>`` goes on the line (``ClassRef``); ``Department:<id>`` is a
  transaction-level ``DepartmentRef`` in QuickBooks (the first one wins);
- QuickBooks has no draft invoices: ``approved`` is not sent (every document is);
- the reference (proposal) is the customer-visible ``CustomerMemo``;
- updates are sparse (``"sparse": true``): only the properties we own change, so what a
  bookkeeper added in QuickBooks (a memo, an e-mail CC, ...) survives our next push;
- a credit note's allocation is a Payment of 0 linking the CreditMemo and the Invoice (how
  QuickBooks applies a credit; its "automatically apply credits" setting may be off).
"""

import hashlib
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ..contacts import _MASK as TAX_MASK  # how a ledger hides a tax id: one definition
from ..webhooks import MalformedDelivery, WebhookEvent, digest_id, text
from .base import CreditLine, given_id
from .errors import cap

TOTAL_DIGITS = 2
UNIT_PRICE_DIGITS = 7  # QuickBooks keeps unit prices to 7 decimals; amounts to cents
DOC_NUMBER_MAX = 21  # QuickBooks' DocNumber and PaymentRefNum length
NAME_MAX = 500
REQUEST_ID_MAX = 36  # Intuit's requestid limit on /batch (50 on single-entity calls)
NON_TAXABLE = "NON"  # QuickBooks' tax code of a line that carries no tax

class PayloadError(ValueError):
    """The values cannot become a QuickBooks body (caught per item: that item fails)."""


def money(value):
    """A float rounded to cents (QuickBooks' amounts)."""
    return round(float(value or 0.0), TOTAL_DIGITS)


def ref(value, name=None):
    """A ReferenceType, or None for an empty id."""
    if value in (None, "", False):
        return None
    out = {"value": str(value)}
    if name:
        out["name"] = name
    return out


def display_name(name):
    """A Customer DisplayName QuickBooks accepts: ``:`` separates sub-customers in its fully
    qualified names and tabs/newlines are refused, so they are replaced; the name is trimmed
    to QuickBooks' length. Used for creating and for matching, so both agree."""
    text = " ".join(str(name or "").replace(":", "-").split())
    return text[:NAME_MAX]


def quote(value):
    """A single-quoted string literal of Intuit's query language."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def select_in(entity, prop, values, also="", max_results=1000):
    """``SELECT * FROM entity WHERE prop IN (...)``: every value goes through quote(); the
    entity, the property and ``also`` are our own constants, never user input."""
    listed = ", ".join(quote(v) for v in values)
    where = f"{prop} IN ({listed})" + (f" AND {also}" if also else "")
    return f"SELECT * FROM {entity} WHERE {where} MAXRESULTS {max_results}"  # noqa: S608


def request_id(key, *parts):
    """The ``requestid`` for an idempotency key (and a sub-step of the same push).

    Deterministic, so a retry sends the same id; short enough for /batch (36 characters):
    a longer key is hashed.
    """
    text = ":".join([key, *[str(p) for p in parts if p not in (None, "")]])
    if len(text) <= REQUEST_ID_MAX:
        return text
    return "bs-" + hashlib.sha256(text.encode()).hexdigest()[: REQUEST_ID_MAX - 3]


def _clean(body):
    """Drop None values (QuickBooks reads an absent property as "not given")."""
    return {k: v for k, v in body.items() if v is not None}


def _envelope(body, ledger_id, version):
    if ledger_id:
        if version in (None, ""):
            raise PayloadError("An update needs the object's SyncToken.")
        body.update({"Id": str(ledger_id), "SyncToken": str(version), "sparse": True})
    return body


# --------------------------------------------------------------------------- contacts
def customer(values, ledger_id=None, version=None):
    """A Customer body from contact values. An update (sparse) sends a field cleared in
    Odoo as empty, so that QuickBooks clears it too (a sparse update leaves alone what it
    does not name): the ledger then holds what was synced, the base inbound sync compares
    with."""
    name = display_name(values.get("name"))
    if not name and not (ledger_id and "name" not in values):
        raise PayloadError("The customer has no name.")
    # what an update sends for an empty value: "" (clears it); a creation: nothing. An
    # update leaves alone what ``values`` does not name (a group the ledger owns)
    empty = "" if ledger_id else None

    def given(key):
        return key in values if ledger_id else bool(values.get(key))

    address = _clean({
        "Line1": values.get("street") or empty,
        "Line2": values.get("street2") or empty,
        "City": values.get("city") or empty,
        "PostalCode": values.get("zip") or empty,
        "CountrySubDivisionCode": values.get("state") or empty,
        "Country": values.get("country_code") or empty,
    }) if any(given(k) for k in ("street", "street2", "city", "zip", "state",
                                 "country_code")) else None
    body = _clean({
        "DisplayName": name or None,
        "CompanyName": name if name and values.get("is_company") else None,
        "PrimaryEmailAddr": {"Address": values.get("email") or empty}
        if given("email") else None,
        "PrimaryPhone": {"FreeFormNumber": values.get("phone") or empty}
        if given("phone") else None,
        "BillAddr": address or None,
        "SalesTermRef": ref(values.get("term_ref")),
        "PrimaryTaxIdentifier": values.get("tax_id") or None,
        "CurrencyRef": ref(values.get("currency")),
    })
    return _envelope(body, ledger_id, version)


# what a customer's values read back from QuickBooks hold: what ``customer`` sends, less
# what it only writes (is_company, term_ref, currency, which inbound sync does not compare)
CUSTOMER_KEYS = ("name", "email", "phone", "tax_id", "street", "street2", "city", "zip",
                 "state", "country_code")
# what QuickBooks appends to the DisplayName of a customer it makes inactive (its way of
# "deleting" one, which frees the name): its mark, not a rename
DELETED_SUFFIX = " (deleted)"


def _read(value):
    """A read property's text as QuickBooks holds it (``customer`` sends Odoo's as it is),
    None when empty or blank."""
    if value is None or not str(value).strip():
        return None
    return str(value)


def customer_values(row):
    """The neutral values of a Customer read from QuickBooks (a query's row): the inverse
    of ``customer``, key by key (CUSTOMER_KEYS). ``name`` is the DisplayName QuickBooks
    holds (what ``display_name`` made of Odoo's name: compare it with that), less the
    " (deleted)" QuickBooks appends when it makes a customer inactive; the address is the
    BillAddr, the phone PrimaryPhone's FreeFormNumber. Empty is None.

    ``tax_id`` is there only when QuickBooks answers PrimaryTaxIdentifier in clear:
    it answers it masked ("XXXXXX1234"), which says neither the value nor that it
    changed, and it leaves it out where its company has none (or does not keep it), which
    says nothing either, so the key is absent then (a value the ledger does not let be
    read), never None."""
    row = row if isinstance(row, dict) else {}
    address = row.get("BillAddr") if isinstance(row.get("BillAddr"), dict) else {}

    def part(prop, key):
        found = row.get(prop)
        return _read(found.get(key)) if isinstance(found, dict) else None

    name = _read(row.get("DisplayName"))
    if name and row.get("Active") is False and name.endswith(DELETED_SUFFIX):
        name = _read(name[:-len(DELETED_SUFFIX)])
    values = {
        "name": name,
        "email": part("PrimaryEmailAddr", "Address"),
        "phone": part("PrimaryPhone", "FreeFormNumber"),
        "street": _read(address.get("Line1")),
        "street2": _read(address.get("Line2")),
        "city": _read(address.get("City")),
        "zip": _read(address.get("PostalCode")),
        "state": _read(address.get("CountrySubDivisionCode")),
        "country_code": _read(address.get("Country")),
    }
    tax_id = _read(row.get("PrimaryTaxIdentifier"))
    if tax_id and not TAX_MASK.match(tax_id):
        values["tax_id"] = tax_id
    return {key: values[key] for key in CUSTOMER_KEYS if key in values}


def utc_time(cursor):
    """A changed_contacts cursor (``YYYY-MM-DDTHH:MM:SSZ``) as the dateTime QuickBooks
    reads in CDC's ``changedSince`` and in a query, with its offset
    (``YYYY-MM-DDTHH:MM:SS+00:00``, the form of Intuit's examples): without one, QuickBooks
    would read it in the company's time zone."""
    return cursor[:-1] + "+00:00" if cursor and cursor.endswith("Z") else cursor


# what a query of changes adds for an entity: a name list answers active entries only
# unless the query asks about Active
CHANGED_ALSO = {"Customer": "Active IN (true, false)"}


def changed_since(entity, since=None, start=1, max_results=1000):
    """The query of the ``entity`` objects changed at or after ``since`` (a cursor; None:
    every one), inactive customers included, oldest change first, ``max_results`` from
    ``start`` (1-based). ``entity`` is our own constant; ``since`` is a cursor change_cursor
    made, quoted all the same."""
    conditions = [CHANGED_ALSO[entity]] if entity in CHANGED_ALSO else []
    if since:
        conditions.append(f"MetaData.LastUpdatedTime >= {quote(utc_time(since))}")
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    return (f"SELECT * FROM {entity} {where}"  # noqa: S608
            f"ORDERBY MetaData.LastUpdatedTime STARTPOSITION {int(start)} "
            f"MAXRESULTS {int(max_results)}")


def changed_customers(since=None, start=1, max_results=1000):
    """The query of the customers changed at or after ``since`` (see changed_since)."""
    return changed_since("Customer", since, start, max_results)


def is_deleted(row):
    """True for what a CDC answer lists for a deleted (or merged away) object:
    ``{"Id", "status": "Deleted", ...}`` instead of the entity."""
    return isinstance(row, dict) and str(row.get("status") or "").lower() == "deleted"


# --------------------------------------------------------------------------- sales forms
def tracking_refs(tracking):
    """(ClassRef or None, DepartmentRef or None) from neutral tracking entries."""
    class_ref = department_ref = None
    for entry in tracking or []:
        entity, _, entity_id = str(entry.get("ledger_id") or "").partition(":")
        if entity == "Class" and class_ref is None:
            class_ref = ref(entity_id)
        elif entity == "Department" and department_ref is None:
            department_ref = ref(entity_id)
    return class_ref, department_ref


def sales_line(line):
    """A SalesItemLine from a neutral line (net amount, discount folded into the price)."""
    quantity = float(line.get("quantity") or 0.0)
    total = money(line.get("line_total"))
    unit_price = float(line.get("unit_price") or 0.0)
    discount = float(line.get("discount") or 0.0)
    if discount:
        unit_price = unit_price * (1 - discount / 100.0)
    if quantity:
        # Amount must equal Qty x UnitPrice in QuickBooks: derive the price from the net
        # total so a rounded Odoo subtotal never disagrees with it.
        unit_price = total / quantity
    class_ref, _department = tracking_refs(line.get("tracking"))
    tax_code = line.get("tax_ref")
    if not tax_code and "tax_amount" in line:
        # an untaxed Odoo line: say so, or QuickBooks applies the item's default code
        tax_code = NON_TAXABLE
    detail = _clean({
        "ItemRef": ref(line.get("item_ref")),
        "Qty": quantity or None,
        "UnitPrice": round(unit_price, UNIT_PRICE_DIGITS),
        "TaxCodeRef": ref(tax_code),
        "ClassRef": class_ref,
        "ItemAccountRef": ref(line.get("account_ref")),
    })
    return _clean({
        "DetailType": "SalesItemLineDetail",
        "Amount": total,
        "Description": line.get("description") or None,
        "SalesItemLineDetail": detail,
    })


def sales_form(values, ledger_id=None, version=None):
    """An Invoice or CreditMemo body (same shape) from invoice/credit note values."""
    if not values.get("contact_ref"):
        raise PayloadError("The customer is not in QuickBooks yet (no contact reference).")
    lines = values.get("lines") or []
    if not lines:
        raise PayloadError("The document has no lines.")
    department = None
    for line in lines:
        department = department or tracking_refs(line.get("tracking"))[1]
    number = values.get("number") or None
    if number and len(number) > DOC_NUMBER_MAX:
        raise PayloadError(f"QuickBooks takes document numbers of at most {DOC_NUMBER_MAX} "
                           f"characters; {number!r} is longer.")
    reference = values.get("reference")
    body = _clean({
        "CustomerRef": ref(values["contact_ref"]),
        "DocNumber": number,
        "TxnDate": values.get("date") or None,
        "DueDate": values.get("due_date") or None,
        "SalesTermRef": ref(values.get("term_ref")),
        "CurrencyRef": ref(values.get("currency")),
        "ExchangeRate": values.get("currency_rate") or None,
        "DepartmentRef": department,
        "CustomerMemo": {"value": str(reference)[:1000]} if reference else None,
        # line amounts are Odoo's net amounts; the tax is Odoo's own total, sent as the
        # transaction's tax (QuickBooks' override), so its rounding never differs
        "GlobalTaxCalculation": "TaxExcluded",
        "TxnTaxDetail": ({"TotalTax": money(values["amount_tax"])}
                         if values.get("amount_tax") is not None
                         and all("tax_amount" in ln for ln in lines) else None),
        "Line": [sales_line(line) for line in lines],
    })
    return _envelope(body, ledger_id, version)


# --------------------------------------------------------------------------- payments
def payment(values, customer_ref, ledger_id=None, version=None, balances=None):
    """A Payment applied to the invoices of ``values["allocations"]``: one Line per invoice
    (LinkedTxn), TotalAmt their sum, in the invoices' currency at the payment's rate.

    ``balances`` ({invoice id: open Balance in QuickBooks}) caps each line: QuickBooks
    refuses to apply more than an invoice's balance. Returns (body, [lines capped])."""
    allocations = values.get("allocations")
    if allocations is None and values.get("invoice_ref"):
        allocations = [{"invoice_ref": values["invoice_ref"], "amount": values.get("amount"),
                        "currency": values.get("currency"),
                        "currency_rate": values.get("currency_rate")}]
    if not allocations:
        raise PayloadError("The payment applies to no invoice.")
    if not customer_ref:
        raise PayloadError(f"QuickBooks has no invoice {allocations[0].get('invoice_ref')}.")
    currencies = {a.get("currency") for a in allocations}
    if len(currencies) > 1:
        raise PayloadError("A QuickBooks payment is in one currency; this one pays invoices in "
                           f"{', '.join(sorted(c or '?' for c in currencies))}: register one "
                           "payment per currency.")
    lines, capped = [], []
    for alloc in allocations:
        invoice_id = str(alloc.get("invoice_ref") or "")
        if not invoice_id:
            raise PayloadError("The invoice is not in QuickBooks yet (no invoice reference).")
        amount = money(alloc.get("amount"))
        if balances is not None and invoice_id in balances and amount > balances[invoice_id]:
            capped.append((alloc, amount, balances[invoice_id]))
            amount = money(balances[invoice_id])
        if amount > 0:
            lines.append({"Amount": amount,
                          "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]})
    total = money(sum(line["Amount"] for line in lines))
    if total <= 0:
        raise PayloadError("A payment needs a positive amount: its invoices have nothing "
                           "left open in QuickBooks.")
    reference = values.get("reference") or None
    first = allocations[0]
    body = _clean({
        "CustomerRef": ref(customer_ref),
        "TotalAmt": total,
        "TxnDate": values.get("date") or None,
        "DepositToAccountRef": ref(values.get("bank_account_ref")),
        "PaymentRefNum": reference[:DOC_NUMBER_MAX] if reference else None,
        "PrivateNote": reference,
        "CurrencyRef": ref(first.get("currency") or values.get("currency")),
        "ExchangeRate": first.get("currency_rate") or None,
        "Line": lines,
    })
    return _envelope(body, ledger_id, version), capped


def credit_application(customer_ref, memo_id, invoice_id, amount, date=None, note=None,
                       currency=None, rate=None):
    """A zero Payment applying ``amount`` of credit memo ``memo_id`` to invoice ``invoice_id``
    (QuickBooks' way of allocating a credit: the payment's lines cancel out), in the
    documents' currency."""
    amount = money(amount)
    return _clean({
        "CustomerRef": ref(customer_ref),
        "TotalAmt": 0,
        "TxnDate": date or None,
        "PrivateNote": note,
        "CurrencyRef": ref(currency),
        "ExchangeRate": rate or None,
        "Line": [
            {"Amount": amount, "LinkedTxn": [{"TxnId": str(invoice_id), "TxnType": "Invoice"}]},
            {"Amount": amount, "LinkedTxn": [{"TxnId": str(memo_id), "TxnType": "CreditMemo"}]},
        ],
    })


def void(ledger_id, version):
    """The body of ``operation=void`` on an Invoice."""
    if not ledger_id:
        raise PayloadError("Nothing to void: the invoice has no QuickBooks id.")
    return _envelope({}, ledger_id, version)


# --------------------------------------------------------------------------- edits after sync
CREDIT_LINE_DETAIL = ("ItemRef", "Qty", "UnitPrice", "TaxCodeRef", "ClassRef",
                      "ItemAccountRef", "ServiceDate")


def is_voided(txn):
    """True for an invoice, a credit memo or a payment QuickBooks voided: it keeps it, its
    amounts zeroed, and injects "Voided" into its PrivateNote, before any text it had. (A
    memo merely mentioning a void, on a zero credit application say, is not one.)"""
    txn = txn if isinstance(txn, dict) else {}
    return (money(txn.get("TotalAmt")) == 0
            and str(txn.get("PrivateNote") or "").strip().lower().startswith("voided"))


def settled(invoice):
    """What payments, credits or a deposit settled of ``invoice`` (a read Invoice): 0.0 for
    one nothing was applied to. QuickBooks changes or voids such an invoice without a word
    (the payments become unapplied credit), so it is credited, never edited in place."""
    invoice = invoice or {}
    done = money(money(invoice.get("TotalAmt")) - money(invoice.get("Balance")))
    linked = any(t.get("TxnType") in ("Payment", "CreditMemo", "ReceivePayment")
                 for t in invoice.get("LinkedTxn") or [])
    return done if done > 0 else (0.01 if linked else 0.0)


def credit_memo_for(invoice, note=None):
    """A CreditMemo crediting the whole of ``invoice`` (an Invoice read from QuickBooks):
    same customer, currency, lines, items, tax codes and classes, so the same total."""
    lines = []
    for line in invoice.get("Line") or []:
        if line.get("DetailType") != "SalesItemLineDetail":
            continue  # subtotal lines are QuickBooks' own
        detail = line.get("SalesItemLineDetail") or {}
        lines.append(_clean({
            "DetailType": "SalesItemLineDetail",
            "Amount": money(line.get("Amount")),
            "Description": line.get("Description") or None,
            "SalesItemLineDetail": _clean({k: detail.get(k) for k in CREDIT_LINE_DETAIL}),
        }))
    if not lines:
        raise PayloadError(f"QuickBooks sent invoice {invoice.get('DocNumber')} without lines: "
                           "no credit memo can copy them.")
    detail = invoice.get("TxnTaxDetail") or {}
    tax = detail.get("TxnTaxCodeRef")
    # the invoice's own tax, sent as it was (Odoo's, as an override): recomputed by
    # QuickBooks it could differ by a cent and leave that cent open on the invoice
    tax_detail = ({"TxnTaxCodeRef": tax} if tax else
                  {"TotalTax": money(detail.get("TotalTax"))} if detail.get("TotalTax") else None)
    return _clean({
        "CustomerRef": invoice.get("CustomerRef"),
        "CurrencyRef": invoice.get("CurrencyRef"),
        "ExchangeRate": invoice.get("ExchangeRate"),
        "DepartmentRef": invoice.get("DepartmentRef"),
        "GlobalTaxCalculation": invoice.get("GlobalTaxCalculation"),
        "TxnTaxDetail": tax_detail,
        "PrivateNote": note,
        "Line": lines,
    })


# --------------------------------------------------------------------------- read back
CENTS = Decimal("0.01")


def read_amount(value, what="an amount"):
    """A QuickBooks amount read back as a Decimal to cents (``Decimal(str(value))``: a
    float's own digits, never its binary expansion). ValueError for a missing one or one
    that is no number: the answer is not what Intuit documents."""
    if value is None or value == "" or isinstance(value, bool):
        raise ValueError(f"{what} is missing")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} is not a number ({cap(str(value), 40)!r})") from None
    if not number.is_finite():
        raise ValueError(f"{what} is not a number ({cap(str(value), 40)!r})")
    return number.quantize(CENTS, rounding=ROUND_HALF_UP)


def _ref_id(value):
    """The id of a ReferenceType (``{"value": ..., "name": ...}``), None without one."""
    return given_id(value.get("value")) if isinstance(value, dict) else None


def _listed(value):
    """The dicts of a repeated property (absent: none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def payment_values(row):
    """The neutral values of a customer Payment read from QuickBooks (the keyword arguments
    of base.PaymentState but its ledger_id and updated_at).

    ``allocations``: {invoice Id: Amount} of each Line linking an Invoice (lines for the same
    invoice added up), in QuickBooks' order. ``credits``: {credit memo Id: Amount} of each
    Line linking a CreditMemo (added up per memo), in QuickBooks' order: credit used, not
    cash, so never in TotalAmt (QuickBooks applies a credit memo by a Payment of TotalAmt 0
    whose invoice line is matched by its credit memo line); ``total`` stays TotalAmt, so
    sum(allocations) + unapplied = total + sum(credits). A line linking anything else (a
    journal entry) is skipped. ``unapplied``: UnappliedAmt (0 when absent). ``account_id``:
    DepositToAccountRef (None when absent: QuickBooks put it in Undeposited Funds);
    QuickBooks' reference names no account code. ``reference``: PaymentRefNum. ``deleted``:
    voided (it stays, zeroed, "Voided" in its memo: it pays nothing; its zeroed lines are
    no allocation and use no credit). ValueError for an answer of another shape: a missing
    TotalAmt, an amount that is no number, a line applied to several invoices or credit
    memos at once, or to an invoice and a credit memo at once (it could not say how much
    each)."""
    row = row if isinstance(row, dict) else {}
    voided = is_voided(row)
    allocations, credits = {}, {}
    for line in [] if voided else _listed(row.get("Line")):
        linked = _listed(line.get("LinkedTxn"))
        invoices = {given_id(t.get("TxnId")) for t in linked
                    if t.get("TxnType") == "Invoice" and given_id(t.get("TxnId"))}
        memos = {given_id(t.get("TxnId")) for t in linked
                 if t.get("TxnType") == "CreditMemo" and given_id(t.get("TxnId"))}
        if not invoices and not memos:
            continue  # a journal entry's credit (or nothing): neither an invoice nor a memo
        if len(invoices) + len(memos) > 1:
            raise ValueError("a payment line is applied to several invoices or credit memos "
                             "at once")
        (target,) = invoices or memos
        into = allocations if invoices else credits
        applied = read_amount(line.get("Amount"), "a payment line's Amount")
        into[target] = into.get(target, Decimal("0.00")) + applied
    unapplied = row.get("UnappliedAmt")
    date = _read(row.get("TxnDate"))
    return {
        "contact_id": _ref_id(row.get("CustomerRef")),
        "date": date[:10] if date else None,
        "total": read_amount(row.get("TotalAmt"), "the payment's TotalAmt"),
        "allocations": allocations,
        "unapplied": read_amount(0 if unapplied in (None, "") else unapplied,
                            "the payment's UnappliedAmt"),
        "currency": _ref_id(row.get("CurrencyRef")),
        "account_id": _ref_id(row.get("DepositToAccountRef")),
        "account_code": None,
        "reference": _read(row.get("PaymentRefNum")),
        "deleted": voided,
        "credits": credits,
    }


def invoice_values(row):
    """The neutral values of an Invoice read from QuickBooks (the keyword arguments of
    base.InvoiceState but its ledger_id and updated_at).

    ``status``: "voided" (QuickBooks keeps it zeroed, "Voided" in its memo), "paid" (Balance
    0 of a positive TotalAmt), else "open" (QuickBooks has no draft invoices); ``total`` and
    ``amount_due``: TotalAmt and Balance; ``payment_ids``: the Payments its LinkedTxn lists
    (credit applications, zero Payments, included: they are Payments to QuickBooks), in its
    order; ``number``: DocNumber. ValueError for an answer of another shape (no TotalAmt or
    Balance, an amount that is no number)."""
    row = row if isinstance(row, dict) else {}
    total = read_amount(row.get("TotalAmt"), "the invoice's TotalAmt")
    due = read_amount(row.get("Balance"), "the invoice's Balance")
    status = ("voided" if is_voided(row) else
              "paid" if due == 0 and total > 0 else "open")
    payments = [given_id(t.get("TxnId")) for t in _listed(row.get("LinkedTxn"))
                if t.get("TxnType") == "Payment" and given_id(t.get("TxnId"))]
    return {"status": status, "total": total, "amount_due": due,
            "payment_ids": tuple(dict.fromkeys(payments)), "number": _read(row.get("DocNumber"))}


# what a CreditMemo says is left of its credit, the first present wins: RemainingCredit is
# the one Intuit documents as "the total credit amount still available to apply" (XSD);
# Balance ("reflecting any payments made against the transaction") only stands in for it
REMAINING_CREDIT = ("RemainingCredit", "Balance")


def credit_line(line):
    """The CreditLine of a credit memo's SalesItemLineDetail line (see
    credit_note_values); ValueError for an Amount that is missing or no number."""
    detail = line.get("SalesItemLineDetail")
    detail = detail if isinstance(detail, dict) else {}
    return CreditLine(description=_read(line.get("Description")),
                      net=read_amount(line.get("Amount"), "a credit memo line's Amount"),
                      tax=Decimal("0.00"), item_id=_ref_id(detail.get("ItemRef")),
                      tax_ref=_ref_id(detail.get("TaxCodeRef")))


def credit_note_values(row):
    """The neutral values of a CreditMemo read from QuickBooks (the keyword arguments of
    base.CreditNoteState but its ledger_id and updated_at).

    ``total``: TotalAmt; ``tax``: TxnTaxDetail.TotalTax (0 when absent); ``remaining``: the
    credit not applied yet, RemainingCredit (Balance where QuickBooks sends no
    RemainingCredit: see REMAINING_CREDIT). ``status``: "voided" (QuickBooks keeps it
    zeroed, "Voided" in its memo: is_voided, as for invoices), "paid" (nothing left of a
    positive TotalAmt: all of it applied), else "open". ``allocations``: none: QuickBooks
    applies a credit memo through a Payment (PaymentState.credits says which and how much).

    ``lines``: one CreditLine per SalesItemLineDetail line, in QuickBooks' order (its
    SubTotalLineDetail line, discount and description-only lines are left out):
    ``description`` Description, ``item_id`` ItemRef, ``tax_ref`` TaxCodeRef, no account
    (QuickBooks names an item, whose account is its own), ``tax`` 0: QuickBooks keeps the
    tax on the transaction (TxnTaxDetail), never per line. ``net`` is the line's Amount,
    which is net of tax, except under GlobalTaxCalculation "TaxInclusive": then Amount
    includes the line's tax, and QuickBooks does not say the line's share (its TaxLines
    are per rate, over the lines' sum, rounded once), so ``net`` is Amount as it is, tax
    included, and the tax is only in ``tax`` (the transaction's): such lines add up to
    ``total``, not to ``total`` - ``tax``.

    ``date``: TxnDate; ``number``: DocNumber; ``reference``: PrivateNote (None when empty);
    ``currency``: CurrencyRef. ValueError for an answer of another shape (no TotalAmt, no
    remaining credit, an amount that is no number)."""
    row = row if isinstance(row, dict) else {}
    total = read_amount(row.get("TotalAmt"), "the credit memo's TotalAmt")
    tax_detail = row.get("TxnTaxDetail") if isinstance(row.get("TxnTaxDetail"), dict) else {}
    tax = tax_detail.get("TotalTax")
    tax = read_amount(0 if tax in (None, "") else tax, "the credit memo's TotalTax")
    left = next((row[prop] for prop in REMAINING_CREDIT if row.get(prop) not in (None, "")),
                None)
    remaining = read_amount(left, "the credit memo's RemainingCredit")
    status = ("voided" if is_voided(row) else
              "paid" if remaining == 0 and total > 0 else "open")
    lines = tuple(credit_line(line) for line in _listed(row.get("Line"))
                  if line.get("DetailType") == "SalesItemLineDetail")
    date = _read(row.get("TxnDate"))
    return {"contact_id": _ref_id(row.get("CustomerRef")), "status": status, "total": total,
            "tax": tax, "remaining": remaining, "lines": lines, "allocations": {},
            "date": date[:10] if date else None, "number": _read(row.get("DocNumber")),
            "reference": _read(row.get("PrivateNote")),
            "currency": _ref_id(row.get("CurrencyRef"))}


# --------------------------------------------------------------------------- answers
def fault_text(fault):
    """(one readable sentence, [details]) of a batch item's or a call's Fault."""
    errors = (fault if isinstance(fault, dict) else {}).get("Error") or []
    # QuickBooks' own words, capped: a Detail can quote a whole request back
    details = [{"code": cap(e.get("code", ""), 20), "message": cap(e.get("Message", "")),
                "detail": cap(e.get("Detail", "")), "element": cap(e.get("element", ""), 80)}
               for e in errors if isinstance(e, dict)]
    parts = []
    for d in details:
        text = d["detail"] or d["message"]
        if d["message"] and d["detail"] and d["message"] not in d["detail"]:
            text = f"{d['message']}: {d['detail']}"
        parts.append(text + (f" [{d['element']}]" if d["element"] else "")
                     + (f" (code {d['code']})" if d["code"] else ""))
    return "; ".join(parts) or "QuickBooks refused the object.", details


def fault_codes(fault):
    """The error codes of a Fault, as strings."""
    return {str(e.get("code", "")) for e in
            (fault if isinstance(fault, dict) else {}).get("Error") or [] if isinstance(e, dict)}


# -- Webhooks ---------------------------------------------------------------------------
# the entities whose changes reach Odoo, by the name Intuit gives them
WEBHOOK_KINDS = {"customer": "contact", "invoice": "invoice", "creditmemo": "credit_note",
                 "payment": "payment"}
# CloudEvents' past tense (qbo.invoice.updated.v1) and the legacy operations
WEBHOOK_CHANGES = {"created": "create", "updated": "update", "deleted": "delete",
                   "voided": "void", "merged": "merge", "create": "create",
                   "update": "update", "delete": "delete", "void": "void", "merge": "merge"}


def webhook_events(payload):
    """The WebhookEvents of a verified delivery: the CloudEvents array Intuit sends since
    the legacy format was retired (``[{"specversion", "id", "type":
    "qbo.invoice.updated.v1", "time", "intuitentityid", "intuitaccountid"}]``, events of
    several realms in one delivery), or the legacy ``{"eventNotifications": [{"realmId",
    "dataChangeEvent": {"entities": [{"name", "id", "operation", "lastUpdated"}]}}]}``
    (its events carry no id: a digest stands for it). Entities Odoo does not read back
    (accounts, items...) are left out; another shape is MalformedDelivery."""

    if isinstance(payload, list):
        return [event for event in map(_cloud_event, payload) if event]
    if isinstance(payload, dict) and isinstance(payload.get("eventNotifications"), list):
        return [event for notification in payload["eventNotifications"]
                for event in _legacy_events(notification)]
    raise MalformedDelivery("a QuickBooks delivery is a list of CloudEvents (or an object "
                            "with eventNotifications)")


def _cloud_event(event):

    if not isinstance(event, dict):
        raise MalformedDelivery("a CloudEvent is an object")
    parts = text(event.get("type"), "type", 200).split(".")
    if len(parts) < 3 or parts[0] != "qbo":
        raise MalformedDelivery("a QuickBooks event type reads qbo.<entity>.<change>.v1")
    kind, change = WEBHOOK_KINDS.get(parts[1].lower()), WEBHOOK_CHANGES.get(parts[2].lower())
    if not kind or not change:
        return None
    return WebhookEvent(org_id=text(event.get("intuitaccountid"), "intuitaccountid"),
                        kind=kind, ledger_id=text(event.get("intuitentityid"), "intuitentityid"),
                        change=change, event_id=text(event.get("id"), "id", 200),
                        occurred_at=event.get("time") if isinstance(event.get("time"), str)
                        else None)


def _legacy_events(notification):

    if not isinstance(notification, dict):
        raise MalformedDelivery("an event notification is an object")
    realm = text(notification.get("realmId"), "realmId")
    entities = (notification.get("dataChangeEvent") or {}).get("entities")
    if not isinstance(entities, list):
        raise MalformedDelivery("a notification's dataChangeEvent has an entities list")
    out = []
    for entity in entities:
        if not isinstance(entity, dict):
            raise MalformedDelivery("an entity of a notification is an object")
        kind = WEBHOOK_KINDS.get(str(entity.get("name") or "").lower())
        change = WEBHOOK_CHANGES.get(str(entity.get("operation") or "").lower())
        if not kind or not change:
            continue
        ledger_id = text(entity.get("id"), "id")
        when = entity.get("lastUpdated") if isinstance(entity.get("lastUpdated"), str) else ""
        out.append(WebhookEvent(org_id=realm, kind=kind, ledger_id=ledger_id, change=change,
                                event_id=digest_id("qbo", realm, kind, ledger_id, change, when),
                                occurred_at=when or None))
    return out
