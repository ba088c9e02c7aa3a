"""One Xero organisation's accounting state and the rules Xero applies to it.

Stored records use Xero's field names; dates are kept as ISO strings (``YYYY-MM-DD`` for
``x-is-msdate`` fields, ISO timestamps for ``UpdatedDateUTC``) and converted to Xero's
``/Date(ms+0000)/`` form only when rendered (see :mod:`.render`).  Money is stored as floats
with two decimals and computed with :class:`~decimal.Decimal`.

Rules follow developer.xero.com/documentation/api/accounting/* (invoices, contacts,
creditnotes, payments, overpayments, items): per-line tax rounded to 2 dp, totals summed from
lines, AmountDue/AmountPaid/AmountCredited maintained by payments and by credit-note and
overpayment allocations (an invoice's ``Allocations`` hold both, told apart by their
``CreditNoteID`` / ``OverpaymentID``), status
transitions DRAFT/SUBMITTED/AUTHORISED/PAID/VOIDED/DELETED, unique contact names, unique invoice
numbers.  Every change appends ``(category, CREATE|UPDATE, id)`` to :attr:`Ledger.changes`,
which the app turns into webhook events.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import uuid
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .dates import iso_datetime, parse_date

CENT = Decimal("0.01")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
INVOICE_CREATE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
LOCKED_MESSAGE = (
    "This document cannot be edited as it has a payment or credit note allocated to it."
)
# Statuses of documents posted to the ledger: a lock date protects them.  Drafts are not
# posted, so Xero saves (and deletes) them in a locked period but will not approve them
# (FYI Docs: "The invoice will sync to Xero as a draft ... unable to Approve").
POSTED_STATUSES = ("AUTHORISED", "PAID", "VOIDED")
LOCK_DATES = (("PeriodLockDate", "period lock date"),
              ("EndOfYearLockDate", "end of year lock date"))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DESCRIPTION_REQUIRED = "The description field is mandatory for each line item."
# Descriptions GET /Currencies shows for the codes the sandbox is usually asked about.
CURRENCY_NAMES = {"AUD": "Australian Dollar", "CAD": "Canadian Dollar", "CHF": "Swiss Franc",
                  "EUR": "Euro", "GBP": "British Pound", "NZD": "New Zealand Dollar",
                  "USD": "United States Dollar"}
# Header fields Xero lets a bookkeeper change on an invoice that already has payments.
EDITABLE_WHEN_PAID = {"Reference", "DueDate", "ExpectedPaymentDate", "SentToContact", "Url",
                      "InvoiceID", "InvoiceNumber", "Type", "Status"}


class Invalid(Exception):
    """Validation failure of one element; ``messages`` become Xero ValidationErrors."""

    def __init__(self, *messages: str):
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class NotFound(Exception):
    """The addressed resource does not exist (Xero answers 404)."""


def D(value: Any) -> Decimal:  # noqa: N802 - reads like the Decimal constructor it wraps
    """Decimal from a JSON number/str without binary float artefacts."""
    if value is None or value == "":
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"'{value}' is not a valid number") from None


def money(value: Decimal) -> float:
    """Round half away from zero to cents (Xero's rounding) and return a JSON float."""
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def new_id() -> str:
    """A fresh Xero-style GUID."""
    return str(uuid.uuid4())


def _lookup(mapping: dict, key: str | None) -> Any:
    return mapping.get(str(key).lower()) if key else None


class Ledger:
    """State and business rules of one tenant (organisation)."""

    def __init__(self, data: dict, clock):
        self.clock = clock
        self.tenant_id: str = data["tenant_id"]
        self.organisation: dict = data["organisation"]
        self.accounts = {a["AccountID"]: a for a in data["accounts"]}
        self.tax_rates = {t["TaxType"]: t for t in data["tax_rates"]}
        self.items = {i["ItemID"]: i for i in data["items"]}
        self.tracking = {t["TrackingCategoryID"]: t for t in data["tracking_categories"]}
        self.contacts = {c["ContactID"]: c for c in data["contacts"]}
        self.invoices = {i["InvoiceID"]: i for i in data["invoices"]}
        self.credit_notes = {c["CreditNoteID"]: c for c in data["credit_notes"]}
        self.payments = {p["PaymentID"]: p for p in data["payments"]}
        # RECEIVE-OVERPAYMENTs (made by PUT /BankTransactions; older state files have none)
        self.overpayments = {o["OverpaymentID"]: o for o in data.get("overpayments", [])}
        self.invoice_seq: int = data.get("invoice_seq", 0)
        self.credit_note_seq: int = data.get("credit_note_seq", 0)
        # currencies the organisation subscribed to besides its base currency, and the
        # rate (units per base unit) used when a document or payment sends none, as Xero
        # then takes its daily XE.com rate
        self.currencies: list[str] = list(data.get("currencies", []))
        self.currency_rates: dict[str, float] = dict(data.get("currency_rates", {}))
        self.changes: list[tuple[str, str, str]] = []

    # ------------------------------------------------------------------ state

    def dump(self) -> dict:
        """Return this tenant's state in the seed shape."""
        return copy.deepcopy({
            "tenant_id": self.tenant_id, "organisation": self.organisation,
            "accounts": list(self.accounts.values()),
            "tax_rates": list(self.tax_rates.values()), "items": list(self.items.values()),
            "tracking_categories": list(self.tracking.values()),
            "contacts": list(self.contacts.values()), "invoices": list(self.invoices.values()),
            "credit_notes": list(self.credit_notes.values()),
            "payments": list(self.payments.values()),
            "overpayments": list(self.overpayments.values()),
            "invoice_seq": self.invoice_seq, "credit_note_seq": self.credit_note_seq,
            "currencies": self.currencies, "currency_rates": self.currency_rates,
        })

    def now(self) -> str:
        """Current timestamp in store form."""
        return iso_datetime(self.clock())

    def today(self) -> str:
        """Current date (UTC) in store form."""
        return self.clock().date().isoformat()

    def _changed(self, category: str, event: str, resource_id: str) -> None:
        self.changes.append((category, event, resource_id))

    # ------------------------------------------------------------------ lock dates

    def lock_errors(self, day: dt.date | str | None) -> list[str]:
        """Xero's messages for a transaction dated on or before a lock date ([] if open).

        The API acts as a standard user, so the period lock date binds it as well as the end
        of year lock date (only advisers may post between the two, and only in Xero itself).
        """
        if not day:
            return []
        day = day if isinstance(day, str) else day.isoformat()
        messages = []
        for key, label in LOCK_DATES:
            lock = self.organisation.get(key)
            if lock and day[:10] <= lock[:10]:
                year, month, dom = (int(p) for p in lock[:10].split("-"))
                messages.append(f"The document date cannot be before the {label}, currently "
                                f"set at {dom:02d}-{MONTHS[month - 1]}-{year}")
        return messages

    def _lock_refusal(self, before: dict, after: dict) -> list[str]:
        # A change is refused when the document was, or would become, posted in a locked period.
        messages: list[str] = []
        for state in (before, after):
            if state.get("Status") in POSTED_STATUSES:
                messages += [m for m in self.lock_errors(state.get("Date")) if m not in messages]
        return messages

    # ------------------------------------------------------------------ lookups

    def account_by_code(self, code: str | None) -> dict | None:
        """Find an account by Code (case-insensitive)."""
        index = {a["Code"].lower(): a for a in self.accounts.values() if a.get("Code")}
        return _lookup(index, code)

    def find_account(self, ref: dict | None) -> dict | None:
        """Resolve ``{"AccountID"}`` or ``{"Code"}``."""
        ref = ref or {}
        if ref.get("AccountID"):
            return self.accounts.get(ref["AccountID"])
        return self.account_by_code(ref.get("Code"))

    def item_by_code(self, code: str | None) -> dict | None:
        """Find an item by Code (case-insensitive)."""
        return _lookup({i["Code"].lower(): i for i in self.items.values()}, code)

    def contact_by_name(self, name: str | None, exclude: str | None = None) -> dict | None:
        """Active contact with this exact name (case-insensitive), ignoring ``exclude``."""
        if not name:
            return None
        wanted = name.strip().lower()
        for contact in self.contacts.values():
            if (contact["ContactID"] != exclude and contact.get("ContactStatus") == "ACTIVE"
                    and contact["Name"].strip().lower() == wanted):
                return contact
        return None

    def get(self, kind: str, key: str) -> dict:
        """Return a record by ID (or number/code where Xero allows it) or raise NotFound."""
        table = {"contacts": self.contacts, "invoices": self.invoices,
                 "credit_notes": self.credit_notes, "payments": self.payments,
                 "overpayments": self.overpayments,
                 "items": self.items, "accounts": self.accounts,
                 "tracking": self.tracking}[kind]
        found = table.get(key) or table.get(str(key).lower())
        if found is None:
            lowered = str(key).lower()
            alt = {"contacts": "ContactNumber", "invoices": "InvoiceNumber",
                   "credit_notes": "CreditNoteNumber", "items": "Code"}.get(kind)
            found = next((r for r in table.values()
                          if alt and str(r.get(alt, "")).lower() == lowered), None)
            found = found or next((r for r in table.values()
                                   if lowered in {str(v).lower() for k, v in r.items()
                                                  if k.endswith("ID")}), None)
        if found is None:
            raise NotFound(key)
        return found

    # ------------------------------------------------------------------ contacts

    def upsert_contact(self, data: dict, contact_id: str | None = None) -> dict:
        """Create or update a contact (POST/PUT /Contacts rules)."""
        if not isinstance(data, dict):
            raise Invalid("A contact must be an object")
        contact_id = contact_id or data.get("ContactID")
        existing = None
        if contact_id:
            existing = self.contacts.get(contact_id)
            if existing is None:
                raise Invalid(f"The contact with ContactID {contact_id} could not be found.")
        elif data.get("ContactNumber"):
            existing = next((c for c in self.contacts.values()
                             if c.get("ContactNumber") == data["ContactNumber"]), None)
        name = data.get("Name", existing["Name"] if existing else None)
        errors = []
        if not name or not str(name).strip():
            errors.append("The contact name must be specified.")
        elif self.contact_by_name(name, exclude=existing["ContactID"] if existing else None):
            errors.append(f"The contact name {name} is already assigned to another contact. "
                          "The contact name must be unique across all active contacts.")
        email = data.get("EmailAddress")
        if email and not EMAIL.match(email):
            errors.append("Email address must be valid.")
        status = data.get("ContactStatus")
        if status and status not in ("ACTIVE", "ARCHIVED"):
            errors.append(f"ContactStatus '{status}' is not valid.")
        if errors:
            raise Invalid(*errors)
        allowed = {"ContactNumber", "AccountNumber", "ContactStatus", "Name", "FirstName",
                   "LastName", "CompanyNumber", "EmailAddress", "BankAccountDetails",
                   "TaxNumber", "AccountsReceivableTaxType", "AccountsPayableTaxType",
                   "Addresses", "Phones", "IsSupplier", "IsCustomer", "DefaultCurrency",
                   "ContactPersons", "SalesDefaultAccountCode", "PaymentTerms", "Website",
                   "SalesTrackingCategories", "Discount", "ContactGroups"}
        fields = {k: v for k, v in data.items() if k in allowed}
        if existing is not None:
            changed = {k: v for k, v in fields.items() if existing.get(k) != v}
            if changed:
                existing.update(changed)
                existing["UpdatedDateUTC"] = self.now()
                self._changed("CONTACT", "UPDATE", existing["ContactID"])
                self._propagate_contact(existing)
            return existing
        contact = {
            "ContactID": new_id(), "ContactStatus": "ACTIVE", "Name": str(name).strip(),
            "EmailAddress": "", "Addresses": [], "Phones": [], "ContactPersons": [],
            "IsSupplier": False, "IsCustomer": False, "HasAttachments": False,
            "HasValidationErrors": False,
        }
        contact.update(fields)
        contact["Name"] = str(name).strip()
        contact["UpdatedDateUTC"] = self.now()
        self.contacts[contact["ContactID"]] = contact
        self._changed("CONTACT", "CREATE", contact["ContactID"])
        return contact

    def _propagate_contact(self, contact: dict) -> None:
        # Documents embed the contact's name; keep it in step as Xero shows the current name.
        for doc in list(self.invoices.values()) + list(self.credit_notes.values()):
            if doc["Contact"]["ContactID"] == contact["ContactID"]:
                doc["Contact"]["Name"] = contact["Name"]

    def _resolve_contact(self, ref: Any, errors: list[str]) -> dict | None:
        if not isinstance(ref, dict) or not (ref.get("ContactID") or ref.get("Name")
                                             or ref.get("ContactNumber")):
            errors.append("A Contact must be specified for this type of transaction")
            return None
        if ref.get("ContactID"):
            contact = self.contacts.get(ref["ContactID"])
            if contact is None:
                errors.append(f"The contact with ContactID {ref['ContactID']} could not be "
                              "found.")
            return contact
        if ref.get("ContactNumber"):
            found = next((c for c in self.contacts.values()
                          if c.get("ContactNumber") == ref["ContactNumber"]), None)
            if found:
                return found
        # Xero matches on Name and creates the contact when no active one has that name.
        found = self.contact_by_name(ref.get("Name"))
        if found:
            return found
        if not ref.get("Name"):
            errors.append("A Contact must be specified for this type of transaction")
            return None
        return self.upsert_contact({k: v for k, v in ref.items() if k != "ContactID"})

    # ------------------------------------------------------------------ lines & totals

    def _line(self, raw: dict, amounts: str, unitdp: int, errors: list[str],
              need_account: bool) -> dict:
        line = {"LineItemID": raw.get("LineItemID") or new_id()}
        item = None
        if raw.get("ItemCode"):
            item = self.item_by_code(raw["ItemCode"])
            if item is None:
                errors.append(f"Item code '{raw['ItemCode']}' is not valid")
            else:
                line["ItemCode"] = item["Code"]
                line["Item"] = {"ItemID": item["ItemID"], "Name": item["Name"],
                                "Code": item["Code"]}
        sales = (item or {}).get("SalesDetails") or {}
        line["Description"] = raw.get("Description") or (item or {}).get("Description") or ""
        if need_account and not str(line["Description"]).strip():
            # Xero accepts such a line on a draft and refuses it on approval (Xero-Net #198).
            errors.append(DESCRIPTION_REQUIRED)
        quantity = D(raw["Quantity"]) if raw.get("Quantity") is not None else Decimal(1)
        unit = raw.get("UnitAmount", sales.get("UnitPrice"))
        discount = D(raw.get("DiscountRate")) if raw.get("DiscountRate") is not None else None
        account_code = raw.get("AccountCode") or sales.get("AccountCode")
        if raw.get("AccountID") and not raw.get("AccountCode"):
            account = self.accounts.get(raw["AccountID"])
            account_code = account["Code"] if account else None
            if account is None:
                errors.append(f"Account ID '{raw['AccountID']}' is not valid")
        account = self.account_by_code(account_code) if account_code else None
        if account_code and (account is None or account["Status"] != "ACTIVE"
                             or account["Type"] == "BANK"):
            errors.append(f"Account code '{account_code}' is not a valid code for this "
                          "document.")
        elif not account_code and need_account:
            errors.append("Account code must be specified for each line item before the "
                          "document can be approved.")
        if account_code:
            line["AccountCode"] = account["Code"] if account else account_code
            if account:
                line["AccountID"] = account["AccountID"]
        tax_type = raw.get("TaxType") or sales.get("TaxType") or (account or {}).get("TaxType")
        if amounts == "NoTax":
            tax_type = tax_type or "NONE"
        rate = Decimal(0)
        if tax_type:
            tax = self.tax_rates.get(tax_type)
            if tax is None or tax["Status"] != "ACTIVE":
                errors.append(f"The TaxType code '{tax_type}' does not exist or cannot be "
                              "used for this type of transaction.")
            else:
                rate = D(tax["EffectiveRate"])
            line["TaxType"] = tax_type
        places = Decimal(1).scaleb(-unitdp)
        if unit is None and raw.get("LineAmount") is not None:
            # Xero derives UnitAmount when only LineAmount is sent.
            unit_amount = (D(raw["LineAmount"]) / quantity) if quantity else Decimal(0)
        else:
            unit_amount = D(unit)
        unit_amount = unit_amount.quantize(places, rounding=ROUND_HALF_UP)
        gross = quantity * unit_amount
        line_amount = gross * (1 - discount / 100) if discount is not None else gross
        line_amount = line_amount.quantize(CENT, rounding=ROUND_HALF_UP)
        if raw.get("LineAmount") is not None and unit is not None and D(
                raw["LineAmount"]).quantize(CENT) != line_amount:
            errors.append(f"The line total {D(raw['LineAmount']):.2f} does not match the "
                          f"expected line total {line_amount:.2f}")
        if amounts == "NoTax":
            tax_amount = Decimal(0)
        elif raw.get("TaxAmount") is not None and tax_type:
            # "This value can be overriden if the calculated TaxAmount is not correct"
            # (Accounting API, LineItems): a sent TaxAmount is kept as sent.
            tax_amount = D(raw["TaxAmount"])
        elif amounts == "Inclusive":
            tax_amount = line_amount * rate / (100 + rate)
        else:
            tax_amount = line_amount * rate / 100
        # Xero rounds tax on each line, then sums the rounded line taxes.
        tax_amount = tax_amount.quantize(CENT, rounding=ROUND_HALF_UP)
        line.update({"Quantity": float(quantity), "UnitAmount": float(unit_amount),
                     "LineAmount": money(line_amount), "TaxAmount": money(tax_amount)})
        if discount is not None:
            line["DiscountRate"] = float(discount)
            line["DiscountAmount"] = money(gross - line_amount)
        line["Tracking"] = self._tracking_refs(raw.get("Tracking") or [], errors)
        return line

    def _tracking_refs(self, refs: list, errors: list[str]) -> list[dict]:
        out = []
        if len(refs) > 2:
            errors.append("A maximum of two tracking categories can be used on a line item.")
        for ref in refs:
            category = (self.tracking.get(ref.get("TrackingCategoryID"))
                        if ref.get("TrackingCategoryID") else next(
                            (t for t in self.tracking.values()
                             if t["Name"].lower() == str(ref.get("Name", "")).lower()), None))
            if category is None:
                label = ref.get("Name") or ref.get("TrackingCategoryID")
                errors.append(f"The tracking category '{label}' does not exist.")
                continue
            wanted = ref.get("TrackingOptionID")
            option = next((o for o in category["Options"]
                           if (wanted and o["TrackingOptionID"] == wanted) or (
                               not wanted and o["Name"].lower()
                               == str(ref.get("Option", "")).lower())), None)
            if option is None or option["Status"] != "ACTIVE":
                errors.append(f"The tracking option '{ref.get('Option') or wanted}' does not "
                              f"exist for tracking category '{category['Name']}'.")
                continue
            out.append({"TrackingCategoryID": category["TrackingCategoryID"],
                        "TrackingOptionID": option["TrackingOptionID"],
                        "Name": category["Name"], "Option": option["Name"]})
        return out

    @staticmethod
    def _totals(doc: dict) -> None:
        lines = doc.get("LineItems") or []
        line_sum = sum((D(li["LineAmount"]) for li in lines), Decimal(0))
        tax = sum((D(li["TaxAmount"]) for li in lines), Decimal(0))
        sub_total = line_sum - tax if doc["LineAmountTypes"] == "Inclusive" else line_sum
        doc["SubTotal"] = money(sub_total)
        doc["TotalTax"] = money(tax)
        doc["Total"] = money(sub_total + tax)
        discount = sum((D(li.get("DiscountAmount", 0)) for li in lines), Decimal(0))
        doc["TotalDiscount"] = money(discount)
        doc["IsDiscounted"] = discount != 0

    def _document_fields(self, raw: dict, existing: dict | None, unitdp: int,
                         errors: list[str], need_account: bool) -> dict:
        fields: dict = {}
        if "Contact" in raw or existing is None:
            contact = self._resolve_contact(raw.get("Contact"), errors)
            if contact is not None:
                fields["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
        amounts = raw.get("LineAmountTypes") or (existing or {}).get("LineAmountTypes") \
            or "Exclusive"
        if amounts not in ("Exclusive", "Inclusive", "NoTax"):
            errors.append(f"LineAmountTypes '{amounts}' is not valid.")
            amounts = "Exclusive"
        fields["LineAmountTypes"] = amounts
        for key in ("Date", "DueDate", "ExpectedPaymentDate"):
            if key in raw:
                try:
                    day = parse_date(raw[key])
                except ValueError:
                    errors.append(f"{key} '{raw[key]}' is not a valid date.")
                    continue
                fields[key] = day.isoformat() if day else None
        for key in ("Reference", "Url", "SentToContact", "BrandingThemeID"):
            if key in raw:
                fields[key] = raw[key]
        if raw.get("CurrencyCode") or existing is None:
            fields.update(self._currency_fields(raw, (existing or {}).get("CurrencyCode"),
                                                errors))
        if "LineItems" in raw or existing is None or "LineAmountTypes" in raw:
            source = raw.get("LineItems")
            if source is None:
                source = (existing or {}).get("LineItems") or []
            fields["LineItems"] = [self._line(li, amounts, unitdp, errors, need_account)
                                   for li in source]
        elif need_account:
            for li in (existing or {}).get("LineItems", []):
                if not li.get("AccountCode"):
                    errors.append("Account code must be specified for each line item before "
                                  "the document can be approved.")
                    break
            if any(not str(li.get("Description") or "").strip()
                   for li in (existing or {}).get("LineItems", [])):
                errors.append(DESCRIPTION_REQUIRED)
        return fields

    # ------------------------------------------------------------------ currencies

    def enabled_currencies(self) -> list[str]:
        """The base currency, then the currencies the organisation subscribed to."""
        base = self.organisation["BaseCurrency"]
        return [base] + [c for c in self.currencies if c != base]

    def add_currency(self, raw: dict) -> dict:
        """PUT /Currencies: subscribe the organisation to a currency."""
        code = str((raw or {}).get("Code") or "").strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise Invalid("A currency code must be provided.")
        if code not in self.enabled_currencies():
            self.currencies.append(code)
        return {"Code": code, "Description": CURRENCY_NAMES.get(code, code)}

    def rate_for(self, code: str, sent: Any) -> float:
        """The CurrencyRate of a foreign-currency document or payment: the one sent, or
        the organisation's day rate for the currency."""
        if sent not in (None, "", 0):
            rate = D(sent)
            if rate <= 0:
                raise Invalid("The currency rate must be greater than zero.")
            return float(rate)
        return float(self.currency_rates.get(code, 1.0))

    def _currency_fields(self, raw: dict, current: str | None, errors: list[str]) -> dict:
        code = raw.get("CurrencyCode") or current or self.organisation["BaseCurrency"]
        if code not in self.enabled_currencies():
            errors.append(f"Organisation is not subscribed to currency {code}")
            return {}
        if code == self.organisation["BaseCurrency"]:
            return {"CurrencyCode": code, "CurrencyRate": 1.0}
        try:
            return {"CurrencyCode": code, "CurrencyRate": self.rate_for(code,
                                                                        raw.get("CurrencyRate"))}
        except Invalid as error:
            errors.extend(error.messages)
            return {}

    # ------------------------------------------------------------------ invoices

    def upsert_invoice(self, raw: dict, invoice_id: str | None = None, unitdp: int = 2,
                       create_only: bool = False) -> dict:
        """Create or update an ACCREC invoice, enforcing Xero's validation rules."""
        if not isinstance(raw, dict):
            raise Invalid("An invoice must be an object")
        invoice_id = invoice_id or raw.get("InvoiceID")
        existing = None
        if invoice_id:
            existing = self.invoices.get(invoice_id)
            if existing is None:
                raise Invalid(f"Invoice with InvoiceID {invoice_id} could not be found.")
        elif raw.get("InvoiceNumber") and not create_only:
            existing = next((i for i in self.invoices.values()
                             if i.get("InvoiceNumber") == raw["InvoiceNumber"]), None)
        if existing is not None and create_only and raw.get("InvoiceID"):
            existing = None
        errors: list[str] = []
        inv_type = raw.get("Type") or (existing or {}).get("Type")
        if inv_type != "ACCREC":
            errors.append("Invoice Type must be ACCREC (only sales invoices are emulated)."
                          if inv_type else "Invoice Type must be specified.")
        if existing is None:
            return self._create_invoice(raw, unitdp, errors)
        return self._update_invoice(existing, raw, unitdp, errors)

    def _create_invoice(self, raw: dict, unitdp: int, errors: list[str]) -> dict:
        status = raw.get("Status") or "DRAFT"
        if status not in INVOICE_CREATE_STATUSES:
            errors.append(f"Invoice Status '{status}' is not valid for a new invoice; use "
                          "DRAFT, SUBMITTED or AUTHORISED.")
        number = raw.get("InvoiceNumber")
        if number and any(i.get("InvoiceNumber", "").lower() == number.lower()
                          for i in self.invoices.values() if i["Status"] != "DELETED"):
            errors.append("Invoice # must be unique.")
        fields = self._document_fields(raw, None, unitdp, errors, status == "AUTHORISED")
        fields.setdefault("Date", self.today())
        if status == "AUTHORISED" and not fields.get("DueDate"):
            errors.append("Due Date is required for an approved invoice.")
        if fields.get("DueDate") and fields.get("Date") and fields["DueDate"] < fields["Date"]:
            errors.append("Due Date must be on or after the invoice Date.")
        if status in POSTED_STATUSES:
            errors.extend(self.lock_errors(fields.get("Date")))
        if errors:
            raise Invalid(*errors)
        if not number:
            self.invoice_seq += 1
            number = f"INV-{self.invoice_seq:04d}"
        invoice = {
            "Type": "ACCREC", "InvoiceID": new_id(), "InvoiceNumber": number,
            "Reference": "", "Status": status, "CurrencyCode":
            self.organisation["BaseCurrency"], "CurrencyRate": 1.0, "SentToContact": False,
            "HasAttachments": False, "AmountPaid": 0.0, "AmountCredited": 0.0,
            "PaymentIDs": [], "Allocations": [], "FullyPaidOnDate": None,
        }
        invoice.update(fields)
        self._totals(invoice)
        invoice["AmountDue"] = invoice["Total"]
        invoice["UpdatedDateUTC"] = self.now()
        self.invoices[invoice["InvoiceID"]] = invoice
        self._mark_customer(invoice["Contact"]["ContactID"])
        self._changed("INVOICE", "CREATE", invoice["InvoiceID"])
        return invoice

    def _mark_customer(self, contact_id: str) -> None:
        contact = self.contacts.get(contact_id)
        if contact and not contact.get("IsCustomer"):
            # Xero derives IsCustomer from the existence of sales documents.
            contact["IsCustomer"] = True

    def _update_invoice(self, invoice: dict, raw: dict, unitdp: int,
                        errors: list[str]) -> dict:
        status = raw.get("Status") or invoice["Status"]
        current = invoice["Status"]
        if current in ("VOIDED", "DELETED"):
            raise Invalid("Invoice not of valid status for modification")
        if raw.get("InvoiceNumber") and raw["InvoiceNumber"] != invoice["InvoiceNumber"] and any(
                i.get("InvoiceNumber", "").lower() == raw["InvoiceNumber"].lower()
                for i in self.invoices.values() if i["InvoiceID"] != invoice["InvoiceID"]):
            errors.append("Invoice # must be unique.")
        # a deleted payment no longer counts: Xero voids an invoice once its payments
        # are removed (its documented way to void a paid invoice)
        has_money = bool(invoice["Allocations"] or any(
            self.payments[pid]["Status"] != "DELETED" for pid in invoice["PaymentIDs"]))
        if has_money and self._financial_change(invoice, raw, unitdp):
            raise Invalid(LOCKED_MESSAGE)
        if status != current:
            errors.extend(self._transition_errors(invoice, status))
        if has_money and status in ("VOIDED", "DELETED"):
            raise Invalid(LOCKED_MESSAGE)
        fields = self._document_fields(raw, invoice, unitdp, errors,
                                       status == "AUTHORISED") if not has_money else {
            k: v for k, v in self._document_fields(raw, invoice, unitdp, [], False).items()
            if k in EDITABLE_WHEN_PAID}
        merged_due = fields.get("DueDate", invoice.get("DueDate"))
        if status == "AUTHORISED" and not merged_due:
            errors.append("Due Date is required for an approved invoice.")
        if errors:
            raise Invalid(*errors)
        before = copy.deepcopy(invoice)
        invoice.update(fields)
        if raw.get("InvoiceNumber"):
            invoice["InvoiceNumber"] = raw["InvoiceNumber"]
        invoice["Status"] = status if status != "PAID" else current
        self._totals(invoice)
        self._recompute_due(invoice)
        if invoice != before:
            locked = self._lock_refusal(before, invoice)
            if locked:
                invoice.clear()
                invoice.update(before)
                raise Invalid(*locked)
            invoice["UpdatedDateUTC"] = self.now()
            self._changed("INVOICE", "UPDATE", invoice["InvoiceID"])
        return invoice

    def _financial_change(self, invoice: dict, raw: dict, unitdp: int) -> bool:
        # Resending identical data is not an edit; anything touching amounts, lines, contact
        # or date is refused once money is applied (Xero's LOCKED_MESSAGE).
        for key, value in raw.items():
            if key in EDITABLE_WHEN_PAID or key in ("ValidationErrors", "Warnings",
                                                    "StatusAttributeString", "HasErrors"):
                continue
            if key == "Contact":
                if isinstance(value, dict) and value.get("ContactID") not in (
                        None, invoice["Contact"]["ContactID"]):
                    return True
                continue
            if key == "LineItems":
                probe: list[str] = []
                lines = [self._line(li, raw.get("LineAmountTypes", invoice["LineAmountTypes"]),
                                    unitdp, probe, False) for li in value or []]
                strip = ("LineItemID",)
                if [{k: v for k, v in li.items() if k not in strip} for li in lines] != [
                        {k: v for k, v in li.items() if k not in strip}
                        for li in invoice["LineItems"]]:
                    return True
                continue
            if key in ("Date",):
                day = parse_date(value)
                if (day.isoformat() if day else None) != invoice.get("Date"):
                    return True
                continue
            if key in invoice and invoice[key] != value and key not in (
                    "SubTotal", "Total", "TotalTax", "AmountDue", "AmountPaid",
                    "AmountCredited", "UpdatedDateUTC", "Payments", "CreditNotes"):
                return True
        return False

    @staticmethod
    def _transition_errors(doc: dict, new: str) -> list[str]:
        current = doc["Status"]
        allowed = {
            "DRAFT": {"SUBMITTED", "AUTHORISED", "DELETED"},
            "SUBMITTED": {"DRAFT", "AUTHORISED", "DELETED"},
            "AUTHORISED": {"VOIDED"},
            "PAID": set(),
        }.get(current, set())
        if new == "PAID":
            return ["Status PAID cannot be set directly; apply payments to the invoice."]
        if new not in allowed:
            return [f"Invoice not of valid status for modification ({current} to {new})."]
        return []

    def _recompute_due(self, doc: dict) -> None:
        total = D(doc["Total"])
        paid = D(doc.get("AmountPaid", 0))
        credited = D(doc.get("AmountCredited", 0))
        doc["AmountDue"] = money(total - paid - credited)

    def void_invoice(self, invoice_id: str) -> dict:
        """Set an invoice VOIDED (AUTHORISED only, without payments or allocations)."""
        invoice = self.get("invoices", invoice_id)
        return self.upsert_invoice({"Status": "VOIDED"}, invoice["InvoiceID"])

    # ------------------------------------------------------------------ payments

    def create_payment(self, raw: dict) -> dict:
        """Apply a payment to an AUTHORISED invoice (full or partial)."""
        if not isinstance(raw, dict):
            raise Invalid("A payment must be an object")
        errors: list[str] = []
        ref = raw.get("Invoice") or {}
        invoice = None
        if ref.get("InvoiceID"):
            invoice = self.invoices.get(ref["InvoiceID"])
        elif ref.get("InvoiceNumber") or raw.get("InvoiceNumber"):
            number = ref.get("InvoiceNumber") or raw.get("InvoiceNumber")
            invoice = next((i for i in self.invoices.values()
                            if i["InvoiceNumber"] == number), None)
        if invoice is None:
            errors.append("Invoice could not be found." if ref or raw.get("InvoiceNumber")
                          else "An Invoice or CreditNote must be specified for the payment.")
        account = self.find_account(raw.get("Account") or (
            {"Code": raw["Code"]} if raw.get("Code") else None))
        if account is None:
            errors.append("Account could not be found.")
        elif account["Type"] != "BANK" and not account.get("EnablePaymentsToAccount"):
            errors.append(f"Account code '{account['Code']}' is not a bank account and does "
                          "not allow payments.")
        amount = D(raw.get("Amount"))
        if amount <= 0:
            errors.append("Payment amount must be greater than zero.")
        if invoice is not None:
            if invoice["Status"] != "AUTHORISED":
                errors.append("Payments can only be made against AUTHORISED documents.")
            elif amount > D(invoice["AmountDue"]):
                errors.append("Payment amount exceeds the amount outstanding on this document.")
        try:
            day = parse_date(raw.get("Date")) or self.clock().date()
        except ValueError:
            errors.append(f"Date '{raw.get('Date')}' is not a valid date.")
            day = self.clock().date()
        errors.extend(self.lock_errors(day))
        # Amount is in the invoice's currency; a foreign one converts to the (base
        # currency) bank account at the payment's own rate
        rate = 1.0
        if invoice is not None and invoice["CurrencyCode"] != self.organisation["BaseCurrency"]:
            try:
                rate = self.rate_for(invoice["CurrencyCode"], raw.get("CurrencyRate"))
            except Invalid as error:
                errors.extend(error.messages)
        if errors:
            raise Invalid(*errors)
        payment = {
            "PaymentID": new_id(), "Date": day.isoformat(), "Amount": money(amount),
            "BankAmount": money(amount / D(rate)), "CurrencyRate": rate,
            "Reference": raw.get("Reference", ""), "IsReconciled": bool(
                raw.get("IsReconciled", False)), "Status": "AUTHORISED",
            "PaymentType": "ACCRECPAYMENT", "AccountID": account["AccountID"],
            "InvoiceID": invoice["InvoiceID"], "UpdatedDateUTC": self.now(),
        }
        self.payments[payment["PaymentID"]] = payment
        invoice["PaymentIDs"].append(payment["PaymentID"])
        invoice["AmountPaid"] = money(D(invoice["AmountPaid"]) + amount)
        self._settle(invoice, day.isoformat())
        return payment

    def _settle(self, invoice: dict, on_date: str | None) -> None:
        self._recompute_due(invoice)
        if D(invoice["AmountDue"]) == 0 and invoice["Status"] == "AUTHORISED":
            invoice["Status"] = "PAID"
            invoice["FullyPaidOnDate"] = on_date
        elif D(invoice["AmountDue"]) > 0 and invoice["Status"] == "PAID":
            invoice["Status"] = "AUTHORISED"
            invoice["FullyPaidOnDate"] = None
        invoice["UpdatedDateUTC"] = self.now()
        self._changed("INVOICE", "UPDATE", invoice["InvoiceID"])

    def delete_payment(self, payment_id: str) -> dict:
        """Mark a payment DELETED and restore the invoice's outstanding amount."""
        payment = self.get("payments", payment_id)
        if payment["Status"] == "DELETED":
            raise Invalid("This payment has already been deleted.")
        locked = self.lock_errors(payment["Date"])
        if locked:
            raise Invalid(*locked)
        payment["Status"] = "DELETED"
        payment["UpdatedDateUTC"] = self.now()
        invoice = self.invoices[payment["InvoiceID"]]
        invoice["AmountPaid"] = money(D(invoice["AmountPaid"]) - D(payment["Amount"]))
        self._settle(invoice, None)
        return payment

    # ------------------------------------------------------------------ credit notes

    def upsert_credit_note(self, raw: dict, credit_note_id: str | None = None,
                           unitdp: int = 2) -> dict:
        """Create or update an ACCRECCREDIT credit note."""
        if not isinstance(raw, dict):
            raise Invalid("A credit note must be an object")
        credit_note_id = credit_note_id or raw.get("CreditNoteID")
        errors: list[str] = []
        cn_type = raw.get("Type")
        existing = self.credit_notes.get(credit_note_id) if credit_note_id else None
        if credit_note_id and existing is None:
            raise Invalid(f"Credit note with CreditNoteID {credit_note_id} could not be found.")
        if existing is None and cn_type != "ACCRECCREDIT":
            errors.append("Credit note Type must be ACCRECCREDIT (only sales credit notes are "
                          "emulated).")
        if existing is not None:
            return self._update_credit_note(existing, raw, unitdp, errors)
        status = raw.get("Status") or "DRAFT"
        if status not in INVOICE_CREATE_STATUSES:
            errors.append(f"Credit note Status '{status}' is not valid for a new credit note.")
        fields = self._document_fields(raw, None, unitdp, errors, status == "AUTHORISED")
        # "If the Date element is not specified then it will default to the current date"
        # (a Date sent as null too: the bookkeeper's credit notes send one)
        fields["Date"] = fields.get("Date") or self.today()
        if status in POSTED_STATUSES:
            errors.extend(self.lock_errors(fields["Date"]))
        if errors:
            raise Invalid(*errors)
        number = raw.get("CreditNoteNumber")
        if not number:
            self.credit_note_seq += 1
            number = f"CN-{self.credit_note_seq:04d}"
        note = {"Type": "ACCRECCREDIT", "CreditNoteID": new_id(), "CreditNoteNumber": number,
                "Reference": "", "Status": status, "CurrencyCode":
                self.organisation["BaseCurrency"], "CurrencyRate": 1.0, "SentToContact": False,
                "HasAttachments": False, "Allocations": [], "FullyPaidOnDate": None}
        note.update(fields)
        self._totals(note)
        note["RemainingCredit"] = note["Total"]
        note["UpdatedDateUTC"] = self.now()
        self.credit_notes[note["CreditNoteID"]] = note
        self._changed("CREDITNOTE", "CREATE", note["CreditNoteID"])
        return note

    def _update_credit_note(self, note: dict, raw: dict, unitdp: int,
                            errors: list[str]) -> dict:
        if note["Status"] in ("VOIDED", "DELETED"):
            raise Invalid("Credit note not of valid status for modification")
        status = raw.get("Status") or note["Status"]
        if note["Allocations"] and (status in ("VOIDED", "DELETED") or "LineItems" in raw):
            raise Invalid(LOCKED_MESSAGE)
        if status != note["Status"]:
            errors.extend(self._transition_errors(note, status))
        fields = self._document_fields(raw, note, unitdp, errors, status == "AUTHORISED")
        if errors:
            raise Invalid(*errors)
        before = copy.deepcopy(note)
        note.update(fields)
        note["Status"] = status
        self._totals(note)
        allocated = sum((D(a["Amount"]) for a in note["Allocations"]), Decimal(0))
        note["RemainingCredit"] = money(D(note["Total"]) - allocated)
        if note != before:
            locked = self._lock_refusal(before, note)
            if locked:
                note.clear()
                note.update(before)
                raise Invalid(*locked)
            note["UpdatedDateUTC"] = self.now()
            self._changed("CREDITNOTE", "UPDATE", note["CreditNoteID"])
        return note

    def _allocated_invoice(self, raw: dict | None) -> dict | None:
        """The invoice an allocation's ``Invoice`` names (by id, else by number)."""
        ref = (raw or {}).get("Invoice") or {}
        if ref.get("InvoiceID"):
            return self.invoices.get(ref["InvoiceID"])
        return next((i for i in self.invoices.values()
                     if ref.get("InvoiceNumber") and i["InvoiceNumber"] == ref["InvoiceNumber"]),
                    None)

    def _allocate(self, source: dict, id_key: str, invoice: dict, amount: Any,
                  raw: dict | None, errors: list[str], category: str | None = None) -> dict:
        """Allocate ``amount`` of a credit ``source`` (a credit note or an overpayment,
        named by ``id_key``) to ``invoice``, after the checks both share (``errors``: the
        caller's own); ``category``: the webhook category the source's change publishes
        (credit notes), with the date it was fully used."""
        if amount <= 0:
            errors.append("Allocation amount must be greater than zero.")
        elif amount > D(source["RemainingCredit"]):
            errors.append("The amount allocated cannot exceed the remaining credit.")
        try:
            day = parse_date((raw or {}).get("Date")) or self.clock().date()
        except ValueError:
            errors.append("Allocation Date is not a valid date.")
            day = self.clock().date()
        errors.extend(self.lock_errors(day))
        if errors:
            raise Invalid(*errors)
        allocation = {"AllocationID": new_id(), "Amount": money(amount),
                      "Date": day.isoformat(), "InvoiceID": invoice["InvoiceID"],
                      id_key: source[id_key], "IsDeleted": False}
        source["Allocations"].append(allocation)
        source["RemainingCredit"] = money(D(source["RemainingCredit"]) - amount)
        if D(source["RemainingCredit"]) == 0:
            source["Status"] = "PAID"
            if category:
                source["FullyPaidOnDate"] = day.isoformat()
        source["UpdatedDateUTC"] = self.now()
        if category:
            self._changed(category, "UPDATE", source[id_key])
        invoice["Allocations"].append(allocation)
        invoice["AmountCredited"] = money(D(invoice["AmountCredited"]) + amount)
        self._settle(invoice, day.isoformat())
        return allocation

    def _unallocate(self, source: dict, id_key: str, allocation_id: str,
                    category: str | None = None) -> dict:
        """Remove allocation ``allocation_id`` of a credit ``source`` (see _allocate): the
        credit comes back (a PAID source is AUTHORISED again) and the invoice is due again.
        Refused in a locked period."""
        allocation = next((a for a in source["Allocations"]
                           if a["AllocationID"] == allocation_id), None)
        if allocation is None:
            raise NotFound(allocation_id)
        locked = self.lock_errors(allocation["Date"])
        if locked:
            raise Invalid(*locked)
        source["Allocations"].remove(allocation)
        invoice = self.invoices[allocation["InvoiceID"]]
        invoice["Allocations"] = [a for a in invoice["Allocations"]
                                  if a["AllocationID"] != allocation_id]
        source["RemainingCredit"] = money(D(source["RemainingCredit"])
                                          + D(allocation["Amount"]))
        if source["Status"] == "PAID":
            source["Status"] = "AUTHORISED"
            if category:
                source["FullyPaidOnDate"] = None
        source["UpdatedDateUTC"] = self.now()
        if category:
            self._changed(category, "UPDATE", source[id_key])
        invoice["AmountCredited"] = money(D(invoice["AmountCredited"]) - D(allocation["Amount"]))
        self._settle(invoice, None)
        return dict(allocation, IsDeleted=True)

    def allocate_credit_note(self, credit_note_id: str, raw: dict) -> dict:
        """Allocate part of a credit note to an invoice of the same contact."""
        note = self.get("credit_notes", credit_note_id)
        errors: list[str] = []
        invoice = self._allocated_invoice(raw)
        amount = D((raw or {}).get("Amount"))
        if note["Status"] != "AUTHORISED":
            errors.append("Only AUTHORISED credit notes can be allocated.")
        if invoice is None:
            errors.append("Invoice could not be found.")
        else:
            if invoice["Status"] != "AUTHORISED":
                errors.append("Credit notes can only be allocated to AUTHORISED invoices.")
            if invoice["Contact"]["ContactID"] != note["Contact"]["ContactID"]:
                errors.append("The credit note and the invoice must belong to the same "
                              "contact.")
            if amount > D(invoice["AmountDue"]):
                errors.append("The amount allocated cannot exceed the amount due on the "
                              "invoice.")
        return self._allocate(note, "CreditNoteID", invoice, amount, raw, errors,
                              category="CREDITNOTE")

    def delete_allocation(self, credit_note_id: str, allocation_id: str) -> dict:
        """Remove a credit-note allocation, restoring credit and the invoice balance."""
        return self._unallocate(self.get("credit_notes", credit_note_id), "CreditNoteID",
                                allocation_id, category="CREDITNOTE")

    def void_credit_note(self, credit_note_id: str, remove_allocations: bool = False) -> dict:
        """Set an AUTHORISED credit note VOIDED (POST /CreditNotes ``{"Status": "VOIDED"}``).

        Xero voids only an approved credit note that is allocated to nothing; one with
        allocations is refused (LOCKED_MESSAGE) until they are removed, which
        ``remove_allocations`` does first, one by one, as a bookkeeper does in Xero (each
        restores its invoice's amount due, and a PAID credit note is AUTHORISED again)."""
        note = self.get("credit_notes", credit_note_id)
        if remove_allocations and note["Allocations"]:
            locked = self.lock_errors(note.get("Date"))
            if locked:  # the void would be refused: nothing is removed either
                raise Invalid(*locked)
            for allocation in list(note["Allocations"]):
                self.delete_allocation(note["CreditNoteID"], allocation["AllocationID"])
        return self.upsert_credit_note({"Status": "VOIDED"}, note["CreditNoteID"])

    # ------------------------------------------------------------------ overpayments

    def receivables_account(self) -> dict | None:
        """The Accounts Receivable control account (SystemAccount DEBTORS)."""
        return next((a for a in self.accounts.values()
                     if a.get("SystemAccount") == "DEBTORS"), None)

    def create_bank_transaction(self, raw: dict, unitdp: int = 2) -> dict:
        """PUT /BankTransactions of Type RECEIVE-OVERPAYMENT: the Overpayment it makes.

        Xero creates overpayments through BankTransactions ("Create Overpayments using the
        BankTransactions endpoint"): a contact, a bank account and a single line whose
        amount is the overpayment, coded by Xero to Accounts Receivable and without tax
        (LineAmountTypes NoTax).  The overpayment is AUTHORISED with all of its Total as
        RemainingCredit.  The bank transaction is kept on the overpayment record
        (``BankTransactionID``, ``BankAccount``, ``IsReconciled``): the sandbox has no other
        kind of bank transaction, and refuses the other Types."""
        if not isinstance(raw, dict):
            raise Invalid("A bank transaction must be an object")
        if raw.get("BankTransactionID"):
            raise Invalid("An overpayment cannot be updated through the API (the sandbox "
                          "emulates creating RECEIVE-OVERPAYMENT bank transactions only).")
        kind = raw.get("Type")
        if kind != "RECEIVE-OVERPAYMENT":
            raise Invalid(f"Bank transaction Type '{kind}' is not emulated: the sandbox "
                          "creates RECEIVE-OVERPAYMENT bank transactions only."
                          if kind else "Bank transaction Type must be specified.")
        errors: list[str] = []
        contact = self._resolve_contact(raw.get("Contact"), errors)
        account = self.find_account(raw.get("BankAccount"))
        if account is None:
            errors.append("A valid BankAccount must be specified." if raw.get("BankAccount")
                          else "A BankAccount must be specified.")
        elif account["Type"] != "BANK" or account["Status"] != "ACTIVE":
            errors.append(f"Account code '{account['Code']}' is not a bank account.")
        amounts = raw.get("LineAmountTypes") or "NoTax"
        if amounts != "NoTax":
            errors.append("Overpayments do not have tax: LineAmountTypes must be NoTax.")
        status = raw.get("Status") or "AUTHORISED"
        if status != "AUTHORISED":
            errors.append(f"Bank transaction Status '{status}' is not valid for a new "
                          "overpayment.")
        lines = raw.get("LineItems") or []
        if len(lines) != 1 or not isinstance(lines[0], dict):
            errors.append("An overpayment must have a single line item.")
            line = None
        elif lines[0].get("ItemCode"):
            errors.append("ItemCode can only be present when the Bank Transaction Type is "
                          "SPEND or RECEIVE.")
            line = None
        else:
            # Xero codes the line to Accounts Receivable, with no tax, whatever is sent
            receivable = self.receivables_account() or {}
            sent = {k: v for k, v in lines[0].items()
                    if k not in ("AccountCode", "AccountID", "TaxType", "TaxAmount")}
            line = self._line(sent, "NoTax", unitdp, errors, False)
            if receivable:
                line["AccountCode"] = receivable["Code"]
                line["AccountID"] = receivable["AccountID"]
            line["TaxType"] = "NONE"
            if D(line["LineAmount"]) <= 0:
                errors.append("The overpayment amount must be greater than zero.")
        try:
            day = parse_date(raw.get("Date")) or self.clock().date()
        except ValueError:
            errors.append(f"Date '{raw.get('Date')}' is not a valid date.")
            day = self.clock().date()
        errors.extend(self.lock_errors(day))
        currency = self._currency_fields(raw, None, errors)
        if errors:
            raise Invalid(*errors)
        record = {
            "OverpaymentID": new_id(), "Type": "RECEIVE-OVERPAYMENT",
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": day.isoformat(), "Status": "AUTHORISED", "LineAmountTypes": "NoTax",
            "LineItems": [line], "Reference": raw.get("Reference") or "",
            "Allocations": [], "HasAttachments": False,
            "BankTransactionID": new_id(),
            "BankAccount": {"AccountID": account["AccountID"]},
            "IsReconciled": bool(raw.get("IsReconciled", False)),
        }
        record.update(currency)
        self._totals(record)
        record["RemainingCredit"] = record["Total"]
        record["UpdatedDateUTC"] = self.now()
        self.overpayments[record["OverpaymentID"]] = record
        self._mark_customer(contact["ContactID"])
        return record

    def allocate_overpayment(self, overpayment_id: str, raw: dict) -> dict:
        """PUT /Overpayments/{id}/Allocations: apply part of an overpayment's credit to an
        AUTHORISED invoice of the same contact and currency (the invoice's AmountCredited,
        as Xero counts overpayments there; PAID when nothing is due)."""
        overpayment = self.get("overpayments", overpayment_id)
        errors: list[str] = []
        invoice = self._allocated_invoice(raw)
        amount = D((raw or {}).get("Amount"))
        if overpayment["Status"] != "AUTHORISED":
            errors.append("Only AUTHORISED overpayments can be allocated.")
        if invoice is None:
            errors.append("Invoice could not be found.")
        else:
            if invoice["Status"] == "PAID":
                errors.append("The invoice you are trying to allocate to has already been "
                              "paid off")
            elif invoice["Status"] != "AUTHORISED":
                errors.append("Overpayments can only be allocated to AUTHORISED invoices.")
            elif amount > D(invoice["AmountDue"]):
                errors.append("Overpayment cannot be allocated as amount is greater than "
                              "amount outstanding")
            if invoice["Contact"]["ContactID"] != overpayment["Contact"]["ContactID"]:
                errors.append("The overpayment and the invoice must belong to the same "
                              "contact.")
            if invoice["CurrencyCode"] != overpayment["CurrencyCode"]:
                errors.append("The overpayment and the invoice must be in the same "
                              "currency.")
        return self._allocate(overpayment, "OverpaymentID", invoice, amount, raw, errors)

    def delete_overpayment_allocation(self, overpayment_id: str, allocation_id: str) -> dict:
        """DELETE /Overpayments/{id}/Allocations/{allocationId}: the credit comes back (a PAID
        overpayment is AUTHORISED again) and the invoice is due again."""
        return self._unallocate(self.get("overpayments", overpayment_id), "OverpaymentID",
                                allocation_id)

    def void_overpayment(self, overpayment_id: str, remove_allocations: bool = False) -> dict:
        """A bookkeeper voids an overpayment in Xero (the API cannot: it updates no
        overpayment).  Like a credit note, only one allocated to nothing; with
        ``remove_allocations`` each allocation is removed first (its invoice is due again).
        Refused in a locked period (nothing is removed then)."""
        overpayment = self.get("overpayments", overpayment_id)
        if overpayment["Status"] == "VOIDED":
            raise Invalid("This overpayment has already been voided.")
        locked = self.lock_errors(overpayment["Date"])
        if locked:
            raise Invalid(*locked)
        if overpayment["Allocations"] and not remove_allocations:
            raise Invalid(LOCKED_MESSAGE)
        for allocation in list(overpayment["Allocations"]):
            self.delete_overpayment_allocation(overpayment_id, allocation["AllocationID"])
        overpayment["Status"] = "VOIDED"
        overpayment["UpdatedDateUTC"] = self.now()
        return overpayment

    # ------------------------------------------------------------------ items & tracking

    def upsert_item(self, raw: dict, create_only: bool = False) -> dict:
        """Create or update an item identified by ItemID or Code."""
        if not isinstance(raw, dict):
            raise Invalid("An item must be an object")
        existing = self.items.get(raw.get("ItemID")) if raw.get("ItemID") else None
        if raw.get("ItemID") and existing is None:
            raise Invalid(f"Item with ItemID {raw['ItemID']} could not be found.")
        by_code = self.item_by_code(raw.get("Code"))
        if existing is None and by_code is not None:
            if create_only:
                raise Invalid(f"Item code '{raw['Code']}' already exists.")
            existing = by_code
        errors = []
        if existing is None and not raw.get("Code"):
            errors.append("Item code must be specified.")
        sales = raw.get("SalesDetails") or {}
        if sales.get("AccountCode") and self.account_by_code(sales["AccountCode"]) is None:
            errors.append(f"Account code '{sales['AccountCode']}' is not valid.")
        if sales.get("TaxType") and sales["TaxType"] not in self.tax_rates:
            errors.append(f"The TaxType code '{sales['TaxType']}' does not exist.")
        if errors:
            raise Invalid(*errors)
        allowed = {"Code", "Name", "Description", "IsSold", "IsPurchased", "SalesDetails",
                   "PurchaseDetails", "PurchaseDescription", "InventoryAssetAccountCode"}
        fields = {k: v for k, v in raw.items() if k in allowed}
        if existing is not None:
            existing.update(fields)
            existing["UpdatedDateUTC"] = self.now()
            return existing
        item = {"ItemID": new_id(), "Name": raw.get("Name") or raw["Code"], "Description": "",
                "IsSold": True, "IsPurchased": False, "IsTrackedAsInventory": False,
                "SalesDetails": {}, "PurchaseDetails": {}}
        item.update(fields)
        item["UpdatedDateUTC"] = self.now()
        self.items[item["ItemID"]] = item
        return item

    def create_tracking_category(self, raw: dict) -> dict:
        """Create a tracking category (Xero allows at most two active ones)."""
        name = (raw or {}).get("Name")
        if not name:
            raise Invalid("Tracking category name must be specified.")
        active = [t for t in self.tracking.values() if t["Status"] == "ACTIVE"]
        if any(t["Name"].lower() == name.lower() for t in self.tracking.values()):
            raise Invalid("Tracking category name must be unique.")
        if len(active) >= 2:
            raise Invalid("You can only have 2 active tracking categories.")
        category = {"TrackingCategoryID": new_id(), "Name": name, "Status": "ACTIVE",
                    "Options": []}
        self.tracking[category["TrackingCategoryID"]] = category
        return category

    def create_tracking_option(self, category_id: str, raw: dict) -> dict:
        """Add an option to a tracking category (names unique within the category)."""
        category = self.get("tracking", category_id)
        name = (raw or {}).get("Name")
        if not name:
            raise Invalid("Tracking option name must be specified.")
        if any(o["Name"].lower() == name.lower() for o in category["Options"]):
            raise Invalid("Tracking option name must be unique.")
        option = {"TrackingOptionID": new_id(), "Name": name, "Status": "ACTIVE",
                  "HasValidationErrors": False, "IsDeleted": False, "IsArchived": False,
                  "IsActive": True}
        category["Options"].append(option)
        return option

    def restamp(self, record: dict, when: dt.datetime) -> None:
        """Force a record's UpdatedDateUTC (used by tests of If-Modified-Since)."""
        record["UpdatedDateUTC"] = iso_datetime(when)
