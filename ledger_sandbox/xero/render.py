"""Render stored records as Xero Accounting API JSON.

``x-is-msdate`` fields become ``/Date(ms+0000)/`` with their ``…String`` companions, nested
references (Contact, Payments, CreditNotes, Overpayments, Allocations) take the compact shapes
Xero embeds,
and internal bookkeeping keys (``PaymentIDs``, ``InvoiceID`` on allocations…) are dropped.
"""

from __future__ import annotations

import copy
import uuid

from .dates import date_string, ms_date, ms_datetime, utc_string
from .ledger import Ledger


def envelope(ledger_clock, key: str, records: list, **extra) -> dict:
    """Wrap records the way every Accounting API answer is wrapped."""
    body = {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": "billing_sync sandbox",
            "DateTimeUTC": ms_datetime(ledger_clock()), key: records}
    body.update(extra)
    return body


def _dates(out: dict, *keys: str) -> None:
    for key in keys:
        if key in out:
            value = out[key]
            out[key] = ms_date(value)
            if key in ("Date", "DueDate"):
                out[f"{key}String"] = date_string(value)
            if out[key] is None:
                del out[key]


def _stamp(out: dict) -> None:
    if out.get("UpdatedDateUTC"):
        raw = out["UpdatedDateUTC"]
        out["UpdatedDateUTC"] = ms_datetime(raw)


def organisation(ledger: Ledger) -> dict:
    """The organisation as GET /Organisation returns it (lock dates only when set)."""
    out = copy.deepcopy(ledger.organisation)
    _dates(out, "PeriodLockDate", "EndOfYearLockDate")
    return out


def contact(ledger: Ledger, record: dict) -> dict:
    """A contact as GET /Contacts returns it."""
    out = copy.deepcopy(record)
    _stamp(out)
    return out


def contact_ref(ledger: Ledger, contact_id: str) -> dict:
    """The contact summary embedded in invoices and credit notes."""
    record = ledger.contacts.get(contact_id) or {"ContactID": contact_id, "Name": ""}
    out = {k: record.get(k) for k in ("ContactID", "ContactNumber", "Name", "ContactStatus",
                                      "EmailAddress", "IsCustomer", "IsSupplier")
           if record.get(k) is not None}
    out["HasValidationErrors"] = False
    return out


def _lines(lines: list[dict]) -> list[dict]:
    return copy.deepcopy(lines)


def invoice(ledger: Ledger, record: dict, with_lines: bool = True,
            summary: bool = False) -> dict:
    """An ACCREC invoice as GET /Invoices returns it."""
    out = {k: copy.deepcopy(v) for k, v in record.items()
           if k not in ("PaymentIDs", "Allocations", "LineItems")}
    out["Contact"] = contact_ref(ledger, record["Contact"]["ContactID"])
    _dates(out, "Date", "DueDate", "ExpectedPaymentDate", "FullyPaidOnDate")
    _stamp(out)
    if summary:
        return {k: v for k, v in out.items()
                if k not in ("Payments", "CreditNotes", "Overpayments")}
    # Unpaged lists carry an empty LineItems array, as Xero's do.
    out["LineItems"] = _lines(record.get("LineItems", [])) if with_lines else []
    out["Payments"] = [
        payment_ref(ledger.payments[pid]) for pid in record.get("PaymentIDs", [])
        if ledger.payments[pid]["Status"] != "DELETED"]
    allocations = record.get("Allocations", [])
    out["CreditNotes"] = [_credit_applied(ledger, a) for a in allocations
                          if a.get("CreditNoteID")]
    out["Prepayments"] = []
    out["Overpayments"] = [_overpayment_applied(ledger, a) for a in allocations
                           if a.get("OverpaymentID")]
    out["HasErrors"] = False
    return out


def payment_ref(record: dict) -> dict:
    """The payment summary embedded in an invoice."""
    return {"PaymentID": record["PaymentID"], "Date": ms_date(record["Date"]),
            "Amount": record["Amount"], "Reference": record.get("Reference", ""),
            "CurrencyRate": record.get("CurrencyRate", 1.0), "HasAccount": True,
            "HasValidationErrors": False}


def _credit_applied(ledger: Ledger, allocation: dict) -> dict:
    note = ledger.credit_notes[allocation["CreditNoteID"]]
    return {"CreditNoteID": note["CreditNoteID"], "CreditNoteNumber": note["CreditNoteNumber"],
            "ID": note["CreditNoteID"], "AppliedAmount": allocation["Amount"],
            "DateString": date_string(allocation["Date"]), "Date": ms_date(allocation["Date"]),
            "Total": note["Total"], "HasErrors": False}


def _overpayment_applied(ledger: Ledger, allocation: dict) -> dict:
    # One allocation of an overpayment as an invoice lists it (Overpayment with the
    # AppliedAmount xero_accounting.yaml gives it for this): one entry per allocation.
    record = ledger.overpayments[allocation["OverpaymentID"]]
    return {"OverpaymentID": record["OverpaymentID"], "ID": record["OverpaymentID"],
            "Type": record["Type"], "AppliedAmount": allocation["Amount"],
            "DateString": date_string(allocation["Date"]), "Date": ms_date(allocation["Date"]),
            "Total": record["Total"], "RemainingCredit": record["RemainingCredit"],
            "Reference": record.get("Reference", ""), "CurrencyCode": record["CurrencyCode"],
            "Status": record["Status"], "LineItems": [], "Allocations": [], "Payments": [],
            "HasAttachments": False}


def credit_note(ledger: Ledger, record: dict, with_lines: bool = True) -> dict:
    """An ACCRECCREDIT credit note as GET /CreditNotes returns it."""
    out = {k: copy.deepcopy(v) for k, v in record.items()
           if k not in ("Allocations", "LineItems")}
    out["Contact"] = contact_ref(ledger, record["Contact"]["ContactID"])
    _dates(out, "Date", "DueDate", "FullyPaidOnDate")
    _stamp(out)
    out["LineItems"] = _lines(record.get("LineItems", [])) if with_lines else []
    out["Allocations"] = [allocation(ledger, a) for a in record.get("Allocations", [])]
    out["Payments"] = []
    out["HasErrors"] = False
    return out


def allocation(ledger: Ledger, record: dict) -> dict:
    """A credit-note or overpayment allocation with its invoice reference."""
    invoice_rec = ledger.invoices.get(record["InvoiceID"], {})
    out = {"AllocationID": record["AllocationID"], "Amount": record["Amount"],
           "Date": ms_date(record["Date"]), "IsDeleted": record.get("IsDeleted", False),
           "Invoice": {"InvoiceID": record["InvoiceID"],
                       "InvoiceNumber": invoice_rec.get("InvoiceNumber"),
                       "Type": "ACCREC"}}
    note = ledger.credit_notes.get(record.get("CreditNoteID") or "")
    overpayment = ledger.overpayments.get(record.get("OverpaymentID") or "")
    if overpayment:
        out["Overpayment"] = {"OverpaymentID": overpayment["OverpaymentID"],
                              "ID": overpayment["OverpaymentID"], "LineItems": []}
    if note:
        out["CreditNote"] = {"CreditNoteID": note["CreditNoteID"],
                             "CreditNoteNumber": note["CreditNoteNumber"],
                             "Type": "ACCRECCREDIT"}
    return out


def payment(ledger: Ledger, record: dict) -> dict:
    """A payment as GET /Payments returns it."""
    invoice_rec = ledger.invoices[record["InvoiceID"]]
    account = ledger.accounts[record["AccountID"]]
    out = {k: v for k, v in record.items() if k not in ("InvoiceID", "AccountID")}
    out["Date"] = ms_date(record["Date"])
    _stamp(out)
    out["UpdatedDateUTCString"] = utc_string(record["UpdatedDateUTC"])
    out["Account"] = {"AccountID": account["AccountID"], "Code": account["Code"]}
    out["Invoice"] = {"InvoiceID": invoice_rec["InvoiceID"],
                      "InvoiceNumber": invoice_rec["InvoiceNumber"], "Type": "ACCREC",
                      "Contact": contact_ref(ledger, invoice_rec["Contact"]["ContactID"]),
                      "CurrencyCode": invoice_rec["CurrencyCode"]}
    out["HasAccount"] = True
    out["HasValidationErrors"] = False
    return out


# stored on an overpayment for its bank transaction, not shown on the Overpayment itself
_BANK_KEYS = ("BankTransactionID", "BankAccount", "IsReconciled")


def overpayment(ledger: Ledger, record: dict, with_lines: bool = True) -> dict:
    """A RECEIVE-OVERPAYMENT as GET /Overpayments returns it (xero_accounting.yaml
    Overpayment: no bank account; line items on a paged list or a single GET)."""
    out = {k: copy.deepcopy(v) for k, v in record.items()
           if k not in ("Allocations", "LineItems", *_BANK_KEYS)}
    out["ID"] = record["OverpaymentID"]
    out["Contact"] = contact_ref(ledger, record["Contact"]["ContactID"])
    _dates(out, "Date")
    _stamp(out)
    out["UpdatedDateUTCString"] = utc_string(record["UpdatedDateUTC"])
    out["LineItems"] = _lines(record.get("LineItems", [])) if with_lines else []
    out["Allocations"] = [allocation(ledger, a) for a in record.get("Allocations", [])]
    out["Payments"] = []
    return out


def bank_transaction(ledger: Ledger, record: dict) -> dict:
    """The RECEIVE-OVERPAYMENT bank transaction that made the overpayment ``record`` (the
    answer of PUT /BankTransactions; Status VOIDED once the overpayment is)."""
    account = ledger.accounts[record["BankAccount"]["AccountID"]]
    out = {
        "BankTransactionID": record["BankTransactionID"],
        "BankAccount": {"AccountID": account["AccountID"], "Code": account["Code"],
                        "Name": account["Name"]},
        "Type": record["Type"], "IsReconciled": record.get("IsReconciled", False),
        "OverpaymentID": record["OverpaymentID"], "HasAttachments": False,
        "Contact": contact_ref(ledger, record["Contact"]["ContactID"]),
        "Date": record["Date"],
        "Status": "VOIDED" if record["Status"] == "VOIDED" else "AUTHORISED",
        "LineAmountTypes": record["LineAmountTypes"],
        "LineItems": _lines(record.get("LineItems", [])),
        "SubTotal": record["SubTotal"], "TotalTax": record["TotalTax"],
        "Total": record["Total"], "UpdatedDateUTC": record["UpdatedDateUTC"],
        "CurrencyCode": record["CurrencyCode"], "CurrencyRate": record["CurrencyRate"],
        "Reference": record.get("Reference", ""),
    }
    _dates(out, "Date")
    _stamp(out)
    return out


def plain(record: dict) -> dict:
    """Items, accounts, tax rates, tracking categories: stored shape plus ms timestamps."""
    out = copy.deepcopy(record)
    _stamp(out)
    return out
