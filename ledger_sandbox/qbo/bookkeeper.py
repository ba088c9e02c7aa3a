"""Bookkeeper control actions: a person working in the QuickBooks company.

Reachable as ``POST /_sandbox/bookkeeper/<action>`` (JSON body = keyword arguments) and as
Python methods of :class:`~ledger_sandbox.qbo.app.QboSandbox`.  Each action goes through the
same entity rules as the API (so SyncTokens, balances and LinkedTxn move as they would) and
then fires the signed webhook for everything it changed.  ``realm_id`` defaults to the first
company.

How a QuickBooks bookkeeper does each thing:

- ``edit_contact``: edits the customer (a sparse update);
- ``apply_payment``: "Receive payment" against one invoice, full (default) or partial;
- ``receive_payment``: "Receive payment" from a customer across several invoices, an amount
  for each (one Line each), and what is left over kept as the customer's credit (the
  payment's UnappliedAmt: an overpayment, or alone a payment on account);
- ``delete_payment``: deletes the payment; the invoices' balances reopen;
- ``void_payment``: voids the payment (it stays, zeroed, "Voided" in its memo; its invoices'
  balances reopen), as the API's ``operation=update&include=void`` does;
- ``void_invoice``: voids the invoice (amounts zeroed, payments unlinked);
- ``issue_credit_note``: a Credit Memo for the customer, by default copying the invoice's lines
  (a full credit), or one line of ``amount`` with the "No VAT" code; with ``apply`` (default)
  it is applied to the invoice through a zero-amount Payment linking both, which is how a
  credit is applied in QuickBooks ("Receive payment" with the credit ticked);
- ``write_off``: QuickBooks' documented bad-debt procedure (help article "Write off bad debt
  in QuickBooks Online"): a Credit Memo on the "Bad Debt" item (income account "Bad Debts",
  an expense) for the open balance, with no VAT, applied to the invoice;
- ``void_credit_note``: voids the credit memo (it stays, zeroed, "Voided" in its memo), as
  the API's ``operation=void`` does; credit it had applied is unapplied (the payments that
  applied it lose its line and as much of their invoice lines: those invoices reopen).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from . import errors
from .money import dec, num, ref_value

CONTACT_SHORTCUTS = {
    "email": ("PrimaryEmailAddr", lambda v: {"Address": v}),
    "phone": ("PrimaryPhone", lambda v: {"FreeFormNumber": v}),
    "display_name": ("DisplayName", lambda v: v),
    "company_name": ("CompanyName", lambda v: v),
    "notes": ("Notes", lambda v: v),
    "active": ("Active", lambda v: bool(v)),
}


class BookkeeperMixin:
    """The actions; mixed into QboSandbox (uses its ledgers, lock and webhook sender)."""

    BOOKKEEPER_ACTIONS = ("edit_contact", "apply_payment", "receive_payment", "delete_payment",
                          "void_payment", "void_invoice", "issue_credit_note", "write_off",
                          "void_credit_note")

    def _bookkeep(self, realm_id: str | None, work: Any) -> Any:
        with self.lock:
            realm_id = str(realm_id or self.default_realm_id)
            ledger = self.ledgers.get(realm_id)
            if ledger is None:
                raise errors.not_found("Realm", realm_id)
            ledger.events.clear()
            try:
                result = work(ledger)
            except errors.QboFault as fault:
                # The control API answers with the Fault body and its HTTP status.
                fault.body = errors.fault_body(fault.fault_type, fault.errors, self.now())
                raise
            finally:
                self._notify(realm_id, ledger)
                ledger.events.clear()
            return result

    def edit_contact(self, customer_id: str, realm_id: str | None = None,
                     fields: dict | None = None, **shortcuts: Any) -> dict:
        """Change a customer: ``fields`` (QuickBooks properties) and/or shortcuts (email,
        phone, display_name, company_name, notes, active)."""
        changes = dict(fields or {})
        for key, value in shortcuts.items():
            if key not in CONTACT_SHORTCUTS:
                raise TypeError(f"unknown contact field {key!r}")
            prop, convert = CONTACT_SHORTCUTS[key]
            changes[prop] = convert(value)

        def work(ledger: Any) -> dict:
            current = ledger.read("Customer", customer_id)
            return ledger.update("Customer", {**changes, "Id": current["Id"],
                                              "SyncToken": current["SyncToken"], "sparse": True})
        return self._bookkeep(realm_id, work)

    def apply_payment(self, invoice_id: str, amount: Any = None, realm_id: str | None = None,
                      txn_date: str | None = None, reference: str | None = None) -> dict:
        """Receive a payment for one invoice: its whole balance, or ``amount``."""
        return self.receive_payment(lines={invoice_id: amount}, realm_id=realm_id,
                                    txn_date=txn_date, reference=reference)

    def receive_payment(self, customer_id: str | None = None, lines: dict | None = None,
                        unapplied: Any = 0, realm_id: str | None = None,
                        txn_date: str | None = None, reference: str | None = None,
                        account_id: str | None = None, memo: str | None = None) -> dict:
        """Receive one payment from a customer: ``lines`` {invoice Id: amount applied to it
        (None: its whole open balance)}, one Line each in that order, and ``unapplied`` more
        left as the customer's credit. TotalAmt is their sum. The customer defaults to the
        first invoice's; ``account_id`` is the DepositToAccountRef (none: QuickBooks'
        Undeposited Funds), ``reference`` the PaymentRefNum, ``memo`` the PrivateNote."""
        def work(ledger: Any) -> dict:
            customer, body_lines = customer_id, []
            for invoice_id, amount in (lines or {}).items():
                invoice = ledger.read("Invoice", invoice_id)
                customer = customer or ref_value(invoice["CustomerRef"])
                value = dec(invoice["Balance"]) if amount is None else dec(amount)
                body_lines.append({"Amount": num(value), "LinkedTxn": [
                    {"TxnId": invoice["Id"], "TxnType": "Invoice"}]})
            if not customer:
                raise TypeError("receive_payment needs customer_id or lines")
            total = sum((dec(line["Amount"]) for line in body_lines), dec(unapplied))
            body: dict[str, Any] = {"CustomerRef": {"value": str(customer)},
                                    "TotalAmt": num(total), "Line": body_lines}
            if txn_date:
                body["TxnDate"] = txn_date
            if reference:
                body["PaymentRefNum"] = reference
            if account_id:
                body["DepositToAccountRef"] = {"value": str(account_id)}
            if memo:
                body["PrivateNote"] = memo
            return ledger.create("Payment", body)
        return self._bookkeep(realm_id, work)

    def delete_payment(self, payment_id: str, realm_id: str | None = None) -> dict:
        """Delete a payment (its invoices' balances reopen)."""
        def work(ledger: Any) -> dict:
            current = ledger.read("Payment", payment_id)
            return ledger.delete("Payment", {"Id": current["Id"],
                                             "SyncToken": current["SyncToken"]})
        return self._bookkeep(realm_id, work)

    def void_payment(self, payment_id: str, realm_id: str | None = None) -> dict:
        """Void a payment (it stays, zeroed; its invoices' balances reopen)."""
        def work(ledger: Any) -> dict:
            current = ledger.read("Payment", payment_id)
            return ledger.void("Payment", {"Id": current["Id"],
                                           "SyncToken": current["SyncToken"], "sparse": True})
        return self._bookkeep(realm_id, work)

    def void_invoice(self, invoice_id: str, realm_id: str | None = None) -> dict:
        """Void an invoice."""
        def work(ledger: Any) -> dict:
            current = ledger.read("Invoice", invoice_id)
            return ledger.void("Invoice", {"Id": current["Id"],
                                           "SyncToken": current["SyncToken"]})
        return self._bookkeep(realm_id, work)

    def issue_credit_note(self, invoice_id: str | None = None, customer_id: str | None = None,
                          amount: Any = None, apply: bool = True, item_id: str | None = None,
                          realm_id: str | None = None, memo: str | None = None) -> dict:
        """Create a credit memo (full credit of the invoice by default) and apply it."""
        def work(ledger: Any) -> dict:
            invoice = ledger.read("Invoice", invoice_id) if invoice_id else None
            customer = customer_id or (ref_value(invoice["CustomerRef"]) if invoice else None)
            if not customer:
                raise TypeError("issue_credit_note needs invoice_id or customer_id")
            if amount is None and invoice is not None:
                lines = [{k: v for k, v in line.items() if k not in ("Id", "LineNum")}
                         for line in invoice["Line"]
                         if line.get("DetailType") != "SubTotalLineDetail"]
            elif amount is not None:
                lines = [self._single_line(ledger, dec(amount), item_id or
                                           self._item_id(ledger, "Services"))]
            else:
                raise TypeError("issue_credit_note needs amount when no invoice is given")
            body: dict[str, Any] = {"CustomerRef": {"value": customer}, "Line": lines}
            if invoice is not None:
                body["GlobalTaxCalculation"] = invoice.get("GlobalTaxCalculation",
                                                           "TaxExcluded")
            if memo:
                body["PrivateNote"] = memo
            memo_record = ledger.create("CreditMemo", body)
            result = {"CreditMemo": memo_record}
            if apply and invoice is not None:
                result["Payment"] = self._apply_credit(ledger, invoice["Id"], memo_record["Id"])
                result["CreditMemo"] = ledger.read("CreditMemo", memo_record["Id"])
            return result
        return self._bookkeep(realm_id, work)

    def write_off(self, invoice_id: str, amount: Any = None,
                  realm_id: str | None = None) -> dict:
        """Write off an invoice's open balance (or ``amount``) as a bad debt."""
        def work(ledger: Any) -> dict:
            invoice = ledger.read("Invoice", invoice_id)
            value = dec(amount) if amount is not None else dec(invoice["Balance"])
            if value <= 0:
                raise errors.business("Nothing to write off: the invoice has no open balance.")
            line = self._single_line(ledger, value, self._item_id(ledger, "Bad Debt"))
            memo = ledger.create("CreditMemo", {
                "CustomerRef": {"value": ref_value(invoice["CustomerRef"])},
                "Line": [line], "PrivateNote": f"Bad debt write-off of invoice {invoice_id}"})
            payment = self._apply_credit(ledger, invoice["Id"], memo["Id"], value)
            return {"CreditMemo": ledger.read("CreditMemo", memo["Id"]), "Payment": payment}
        return self._bookkeep(realm_id, work)

    def void_credit_note(self, memo_id: str, realm_id: str | None = None) -> dict:
        """Void a credit memo (it stays, zeroed; the credit it applied is unapplied)."""
        def work(ledger: Any) -> dict:
            current = ledger.read("CreditMemo", memo_id)
            return ledger.void("CreditMemo", {"Id": current["Id"],
                                              "SyncToken": current["SyncToken"]})
        return self._bookkeep(realm_id, work)

    # ---- helpers

    @staticmethod
    def _item_id(ledger: Any, name: str) -> str:
        for item in ledger.realm.all("Item"):
            if item.get("Name") == name:
                return item["Id"]
        raise errors.invalid_reference("ItemRef", name)

    @staticmethod
    def _no_tax_code(ledger: Any) -> dict | None:
        for code in ledger.realm.all("TaxCode"):
            if not (code.get("SalesTaxRateList") or {}).get("TaxRateDetail"):
                return {"value": code["Id"]}
        return None

    def _single_line(self, ledger: Any, amount: Decimal, item_id: str) -> dict:
        detail: dict[str, Any] = {"ItemRef": {"value": item_id}}
        no_tax = self._no_tax_code(ledger)
        if no_tax:
            detail["TaxCodeRef"] = no_tax
        return {"Amount": num(amount), "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": detail}

    @staticmethod
    def _apply_credit(ledger: Any, invoice_id: str, memo_id: str,
                      amount: Decimal | None = None) -> dict:
        invoice = ledger.read("Invoice", invoice_id)
        memo = ledger.read("CreditMemo", memo_id)
        value = min(dec(invoice["Balance"]), dec(memo["RemainingCredit"]))
        if amount is not None:
            value = min(value, amount)
        if value <= 0:
            raise errors.business("The invoice has no open balance to apply the credit to.")
        return ledger.create("Payment", {
            "CustomerRef": {"value": ref_value(invoice["CustomerRef"])}, "TotalAmt": 0,
            "Line": [
                {"Amount": num(value), "LinkedTxn": [{"TxnId": invoice_id,
                                                      "TxnType": "Invoice"}]},
                {"Amount": num(value), "LinkedTxn": [{"TxnId": memo_id,
                                                      "TxnType": "CreditMemo"}]},
            ]})
