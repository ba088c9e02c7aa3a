"""Entity rules of the emulated QuickBooks Online company: create, read, update, delete, void.

What QuickBooks does and this module reproduces (Intuit API reference pages of each entity,
https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/<entity>):

- Ids are assigned per entity type; ``SyncToken`` starts at "0" and grows by one on every
  change; an update or delete with another SyncToken gets Fault 5010 (Stale Object Error);
- updates are full (absent writable properties are cleared) or sparse (``"sparse": true``:
  only the properties sent change); read-only properties sent back (MetaData, TotalAmt,
  Balance, FullyQualifiedName, ...) are ignored; an unknown property is Fault 2010;
- python-quickbooks sends ``""`` for unset typed properties: read as "not given";
- names are unique per list (Item/Account/Class/Department/Term Name, case-insensitively):
  Fault 6240; Customers, Vendors and Employees share one DisplayName namespace (a customer
  cannot take a vendor's or an employee's name, and the other way round); a Customer or Vendor
  made inactive gets " (deleted)" appended to its DisplayName as QuickBooks does, which frees
  the name;
- references (CustomerRef, ItemRef, TaxCodeRef, ClassRef, ...) must name live entities
  (Fault 2500) and are returned with the referenced entity's ``name``;
- Invoice/CreditMemo amounts come from :mod:`ledger_sandbox.qbo.money`; Invoice.Balance =
  TotalAmt - Deposit - payments applied; CreditMemo.RemainingCredit (= Balance) = TotalAmt -
  credit applied through payments; Payment.UnappliedAmt = TotalAmt - applied to invoices +
  applied from credit memos; applying or un-applying a payment updates the invoice (Balance,
  LinkedTxn, SyncToken, LastUpdatedTime) as QuickBooks does;
- delete exists for Invoice, Payment and CreditMemo (list entities are made inactive
  instead); a deleted transaction is gone (read: Fault 610; a query leaves it out; CDC lists
  it as ``{"Id", "status": "Deleted"}``); void for Invoice and CreditMemo
  (``operation=void``) and Payment (``operation=update&include=void``): it stays, amounts
  zeroed (an invoice's or a credit memo's Balance too, a credit memo's RemainingCredit, a
  payment's lines kept at Amount 0 and its UnappliedAmt 0) and "Voided" is injected into
  PrivateNote, "prepended to existing text if present" (Intuit's words; the separator is not
  documented: "Voided - <text>", as answers quoted by integrators show); deleting or voiding
  an invoice unlinks the payments applied to it (they become unapplied credit), deleting or
  voiding a credit memo unapplies its credit (the payments applying it lose its line and as
  much of their invoice lines, so those invoices reopen), deleting or voiding a payment
  unapplies it from its invoices and credit memos (their Balance / RemainingCredit reopens,
  their LinkedTxn drops it).
Every change is recorded in ``events`` as (entity, Id, operation) for webhooks.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from . import errors
from .fields import ENTITY_FIELDS, TYPED_FIELDS
from .money import cents, compute_sales_form, dec, num, ref_value
from .store import Realm

CREATABLE = ("Customer", "Vendor", "Employee", "Invoice", "Payment", "CreditMemo", "Item",
             "CompanyCurrency",
             "Account", "Class", "Department", "Term")
DELETABLE = ("Invoice", "Payment", "CreditMemo")
VOIDABLE = ("Invoice", "Payment", "CreditMemo")
NAME_FIELD = {"Customer": "DisplayName", "Vendor": "DisplayName", "Employee": "DisplayName",
              "Item": "Name", "Account": "Name", "Class": "Name", "Department": "Name",
              "Term": "Name"}
# QuickBooks' names lists: one DisplayName namespace across the three (Intuit error 6240).
SHARED_NAMES = ("Customer", "Vendor", "Employee")
ENVELOPE = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "status"})
# Properties the server computes; values sent by clients are ignored.
COMPUTED = {
    "Customer": {"Balance", "BalanceWithJobs", "FullyQualifiedName", "Level", "OverDueBalance",
                 "TotalRevenue", "TotalExpense"},
    "Invoice": {"TotalAmt", "HomeTotalAmt", "Balance", "HomeBalance", "LinkedTxn",
                "InvoiceLink", "EInvoiceStatus"},
    "CreditMemo": {"TotalAmt", "HomeTotalAmt", "Balance", "HomeBalance", "RemainingCredit",
                   "LinkedTxn"},
    "Payment": {"UnappliedAmt"},
    "Vendor": {"Balance", "FullyQualifiedName"},
    "Employee": {"FullyQualifiedName"},
    "Item": {"FullyQualifiedName", "Level"},
    "Account": {"FullyQualifiedName", "CurrentBalance", "CurrentBalanceWithSubAccounts",
                "Classification"},
    "Class": {"FullyQualifiedName"},
    "Department": {"FullyQualifiedName"},
}
# Extra properties python-quickbooks sends that the XSD does not list.
SDK_EXTRAS = {"Payment": {"TaxExemptionRef"}}
TOP_REFS = {
    "CustomerRef": "Customer", "SalesTermRef": "Term", "ClassRef": "Class",
    "DepartmentRef": "Department", "DepositToAccountRef": "Account", "ARAccountRef": "Account",
    "IncomeAccountRef": "Account", "ExpenseAccountRef": "Account", "AssetAccountRef": "Account",
    "DefaultTaxCodeRef": "TaxCode", "SalesTaxCodeRef": "TaxCode",
}
LINE_REFS = {"ItemRef": "Item", "ClassRef": "Class", "TaxCodeRef": "TaxCode",
             "DiscountAccountRef": "Account", "ItemAccountRef": "Account"}
ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset", "Other Current Asset": "Asset", "Fixed Asset": "Asset",
    "Other Asset": "Asset", "Accounts Receivable": "Asset", "Equity": "Equity",
    "Expense": "Expense", "Other Expense": "Expense", "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability", "Credit Card": "Liability", "Long Term Liability": "Liability",
    "Other Current Liability": "Liability", "Income": "Revenue", "Other Income": "Revenue",
}
DELETED_SUFFIX = " (deleted)"
# what QuickBooks injects into the PrivateNote of a transaction it voids
VOIDED = "Voided"
# QuickBooks' answer (Fault 6000) to a foreign-currency transaction while multicurrency is off
MULTICURRENCY_OFF = ("Multicurrency is not enabled for this company: transactions are in its "
                     "home currency {home}, not {code}. Turn on multicurrency in QuickBooks "
                     "(Settings > Account and settings > Advanced > Currency) to use another "
                     "one.")
CURRENCY_NAMES = {"AUD": "Australian Dollar", "CAD": "Canadian Dollar", "EUR": "Euro",
                  "GBP": "British Pound Sterling", "USD": "United States Dollar"}


def _name_key(value: Any) -> str:
    return " ".join(str(value or "").split()).lower()


def _public(record: dict) -> dict:
    """A copy without the emulator's private ``_`` keys."""
    return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}


class Ledger:
    """Applies QuickBooks' rules to one :class:`Realm`; ``events`` collects what changed."""

    # the cleaned body of the write being applied (what the caller sent, not what is stored)
    _sent: dict | None = None

    def __init__(self, realm: Realm, clock: Callable[[], dt.datetime]):
        self.realm = realm
        self.clock = clock
        self.events: list[tuple[str, str, str]] = []
        self._leaving: str | None = None  # "Type/Id" being deleted/voided: not refreshed
        # "Invoice/12" or "CreditMemo/3" -> {payment Id: amount applied}
        self.applied: dict[str, dict[str, Decimal]] = {}
        for payment in realm.all("Payment"):
            for key, amount in self._applications(payment).items():
                self.applied.setdefault(key, {})[payment["Id"]] = amount

    # ------------------------------------------------------------------ reading

    def read(self, entity: str, entity_id: Any) -> dict:
        """A rendered entity or Fault 610."""
        record = self.realm.get(entity, entity_id)
        if record is None:
            raise errors.not_found(entity, str(entity_id))
        return self.render(entity, record)

    def records(self, entity: str) -> list[dict]:
        """Every live entity of a type, rendered."""
        return [self.render(entity, r) for r in self.realm.all(entity)]

    def render(self, entity: str, record: dict) -> dict:
        """What the API returns for a stored record (computed customer balances added)."""
        out = _public(record)
        if entity == "Customer":
            balance = self._customer_balance(record["Id"])
            out["Balance"] = num(balance)
            out["BalanceWithJobs"] = num(balance)
        return out

    def _customer_balance(self, customer_id: str) -> Decimal:
        total = Decimal(0)
        for inv in self.realm.entities["Invoice"].values():
            if ref_value(inv.get("CustomerRef")) == customer_id:
                total += dec(inv.get("Balance"))
        for memo in self.realm.entities["CreditMemo"].values():
            if ref_value(memo.get("CustomerRef")) == customer_id:
                total -= dec(memo.get("RemainingCredit"))
        for pay in self.realm.entities["Payment"].values():
            if ref_value(pay.get("CustomerRef")) == customer_id:
                total -= dec(pay.get("UnappliedAmt"))
        return cents(total)

    # ------------------------------------------------------------------ writing

    def create(self, entity: str, body: Any) -> dict:
        """Create an entity from a request body."""
        if entity not in CREATABLE:
            raise errors.unsupported("Create", entity)
        fields = self._clean(entity, body)
        self._sent = fields
        record: dict[str, Any] = {"Id": self.realm.new_id(entity), "domain": "QBO",
                                  "sparse": False, **fields}
        try:
            self._finish(entity, record, None)
        except errors.QboFault:
            # Give the Id back: a refused create must not leave a gap a retry would notice.
            self.realm.next_id[entity] -= 1
            raise
        self.realm.put(entity, record, self.clock(), created=True)
        self._after_write(entity, record, None)
        self.events.append((entity, record["Id"], "Create"))
        return self.render(entity, record)

    def update(self, entity: str, body: Any) -> dict:
        """Full or sparse update, guarded by SyncToken."""
        if entity not in CREATABLE:
            raise errors.unsupported("Update", entity)
        current = self._current(entity, body)
        if current.get("_voided"):
            raise errors.business(f"This {entity} has been voided and cannot be changed.")
        fields = self._clean(entity, body)
        self._sent = fields
        sparse = str(body.get("sparse")).lower() == "true"
        if sparse:
            record = copy.deepcopy(current)
            record.update(fields)
        else:
            keep = {k: v for k, v in current.items()
                    if k in ENVELOPE or k.startswith("_") or k in COMPUTED.get(entity, ())}
            record = {**copy.deepcopy(keep), **fields, "domain": "QBO", "sparse": False}
            record.pop("_tax_override", None)  # a full update states the tax anew
        self._finish(entity, record, current)
        event = "Update"
        self.realm.put(entity, record, self.clock(), created=False)
        self._after_write(entity, record, current)
        self.events.append((entity, record["Id"], event))
        return self.render(entity, record)

    def delete(self, entity: str, body: Any) -> dict:
        """Delete a transaction (``operation=delete``); list entities cannot be deleted."""
        if entity not in DELETABLE:
            raise errors.unsupported("Delete", entity)
        current = self._current(entity, body)
        self._unlink(entity, current)
        tomb = self.realm.remove(entity, current["Id"], self.clock())
        self.events.append((entity, current["Id"], "Delete"))
        return {"status": "Deleted", "domain": "QBO", "Id": tomb["Id"]}

    def void(self, entity: str, body: Any) -> dict:
        """Void an Invoice or a CreditMemo (``operation=void``) or a Payment
        (``include=void``)."""
        if entity not in VOIDABLE:
            raise errors.unsupported("Void", entity)
        current = self._current(entity, body)
        if current.get("_voided"):
            return self.render(entity, current)
        self._unlink(entity, current)
        record = copy.deepcopy(self.realm.get(entity, current["Id"]))
        record["_voided"] = True
        note = str(record.get("PrivateNote") or "").strip()
        record["PrivateNote"] = f"{VOIDED} - {note}" if note else VOIDED
        for line in record.get("Line") or []:
            line["Amount"] = 0
        record["TotalAmt"] = 0
        record["HomeTotalAmt"] = 0
        if entity in ("Invoice", "CreditMemo"):
            record["LinkedTxn"] = [ln for ln in record.get("LinkedTxn") or []
                                   if ln.get("TxnType") != "Payment"]
            record["Balance"] = 0
            record["HomeBalance"] = 0
            record["TxnTaxDetail"] = {**(record.get("TxnTaxDetail") or {}), "TotalTax": 0,
                                      "TaxLine": []}
            if entity == "CreditMemo":
                record["RemainingCredit"] = 0
        else:
            record["UnappliedAmt"] = 0
        self.realm.put(entity, record, self.clock(), created=False)
        self.events.append((entity, record["Id"], "Void"))
        return self.render(entity, record)

    # ------------------------------------------------------------------ helpers: input

    def _current(self, entity: str, body: Any) -> dict:
        if not isinstance(body, dict):
            raise errors.bad_request(f"Request body is not a {entity} object")
        entity_id = body.get("Id")
        if entity_id in (None, ""):
            raise errors.required("Id")
        current = self.realm.get(entity, str(entity_id))
        if current is None:
            raise errors.not_found(entity, str(entity_id))
        token = body.get("SyncToken")
        if token in (None, ""):
            raise errors.required("SyncToken")
        if str(token) != str(current.get("SyncToken")):
            raise errors.stale(entity, current["Id"])
        return current

    def _clean(self, entity: str, body: Any) -> dict:
        if not isinstance(body, dict):
            raise errors.bad_request(f"Request body is not a {entity} object")
        allowed = ENTITY_FIELDS[entity] | ENVELOPE | SDK_EXTRAS.get(entity, set())
        out: dict[str, Any] = {}
        for key, value in body.items():
            if key not in allowed:
                raise errors.invalid_property(
                    f'Property Name:Unrecognized field "{key}" (class '
                    f"com.intuit.schema.finance.v3.{entity}), not marked as ignorable "
                    "specified is unsupported or invalid", key)
            if key in ENVELOPE or key in COMPUTED.get(entity, ()):
                continue
            if value is None or (value == "" and key in TYPED_FIELDS):
                continue
            out[key] = copy.deepcopy(value)
        return out

    # ------------------------------------------------------------------ helpers: rules

    def _finish(self, entity: str, record: dict, current: dict | None) -> None:
        """Defaults, reference checks, computed amounts and name uniqueness."""
        getattr(self, f"_finish_{entity.lower()}")(record, current)
        self._check_refs(entity, record)
        name_field = NAME_FIELD.get(entity)
        if name_field:
            self._check_unique(entity, record, name_field)

    def _today(self) -> str:
        return self.clock().date().isoformat()

    def _check_date(self, record: dict, key: str) -> None:
        value = record.get(key)
        if value is None:
            return
        try:
            dt.date.fromisoformat(str(value)[:10])
        except ValueError as exc:
            raise errors.invalid_property(f"Invalid date {value!r} for {key}", key) from exc

    def _display_name(self, record: dict, current: dict | None, deleted_suffix: bool) -> str:
        """DisplayName of a names-list entity: given, or built from the person's name parts."""
        record.setdefault("Active", True)
        if not record.get("DisplayName"):
            parts = [record.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName",
                                             "Suffix")]
            derived = " ".join(str(p) for p in parts if p)
            if not derived:
                raise errors.required("DisplayName")
            record["DisplayName"] = derived
        name = str(record["DisplayName"])
        was_active = current is None or current.get("Active", True) is not False
        inactive = record.get("Active") is False
        if deleted_suffix and inactive and was_active and not name.endswith(DELETED_SUFFIX):
            name += DELETED_SUFFIX
        elif deleted_suffix and not inactive and name.endswith(DELETED_SUFFIX):
            name = name[: -len(DELETED_SUFFIX)]
        record["DisplayName"] = name
        record["FullyQualifiedName"] = name
        record.setdefault("PrintOnCheckName", name)
        return name

    def _finish_customer(self, record: dict, current: dict | None) -> None:
        self._display_name(record, current, deleted_suffix=True)
        record.setdefault("Job", False)
        record.setdefault("BillWithParent", False)
        record.setdefault("CurrencyRef", {"value": self.realm.currency})
        record.setdefault("PreferredDeliveryMethod", "Print")
        self._check_date(record, "OpenBalanceDate")

    def _finish_vendor(self, record: dict, current: dict | None) -> None:
        # Minimal: enough to hold a name in the shared namespace (no bills are emulated).
        self._display_name(record, current, deleted_suffix=True)
        record["Balance"] = 0
        record.setdefault("Vendor1099", False)
        record.setdefault("CurrencyRef", {"value": self.realm.currency})
        self._check_date(record, "OpenBalanceDate")

    def _finish_employee(self, record: dict, current: dict | None) -> None:
        # Inactive employees keep their name (no "(deleted)" suffix is documented for them).
        self._display_name(record, current, deleted_suffix=False)
        record.setdefault("BillableTime", False)
        for key in ("BirthDate", "HiredDate", "ReleasedDate"):
            self._check_date(record, key)

    def _finish_item(self, record: dict, current: dict | None) -> None:
        if not record.get("Name"):
            raise errors.required("Name")
        record.setdefault("Active", True)
        record.setdefault("Type", "Service")
        if record["Type"] not in ("Service", "NonInventory", "Inventory", "Category", "Group"):
            raise errors.invalid_property(f"Invalid Type {record['Type']!r}", "Type")
        if record["Type"] in ("Service", "NonInventory") and not ref_value(
                record.get("IncomeAccountRef")):
            raise errors.required("IncomeAccountRef")
        record["FullyQualifiedName"] = record["Name"]
        record.setdefault("Taxable", False)
        record.setdefault("UnitPrice", 0)
        record.setdefault("TrackQtyOnHand", False)

    def _finish_account(self, record: dict, current: dict | None) -> None:
        if not record.get("Name"):
            raise errors.required("Name")
        if not record.get("AccountType"):
            raise errors.required("AccountType")
        classification = ACCOUNT_CLASSIFICATION.get(record["AccountType"])
        if classification is None:
            raise errors.invalid_property(f"Invalid AccountType {record['AccountType']!r}",
                                          "AccountType")
        record["Classification"] = classification
        record.setdefault("Active", True)
        record.setdefault("SubAccount", False)
        record["FullyQualifiedName"] = record["Name"]
        record.setdefault("CurrentBalance", 0)
        record.setdefault("CurrentBalanceWithSubAccounts", 0)
        record.setdefault("CurrencyRef", {"value": self.realm.currency})

    def _finish_class(self, record: dict, current: dict | None) -> None:
        self._finish_simple(record, "SubClass")

    def _finish_department(self, record: dict, current: dict | None) -> None:
        self._finish_simple(record, "SubDepartment")

    def _finish_simple(self, record: dict, sub_flag: str) -> None:
        if not record.get("Name"):
            raise errors.required("Name")
        record.setdefault("Active", True)
        record.setdefault(sub_flag, False)
        record["FullyQualifiedName"] = record["Name"]

    def _finish_companycurrency(self, record: dict, current: dict | None) -> None:
        if not self.realm.multicurrency:
            raise errors.business(MULTICURRENCY_OFF.format(home=self.realm.currency,
                                                           code=record.get("Code")))
        code = str(record.get("Code") or "").upper()
        if len(code) != 3 or not code.isalpha():
            raise errors.required("Code")
        if code == self.realm.currency or any(
                c["Code"] == code and c["Id"] != record["Id"]
                for c in self.realm.entities["CompanyCurrency"].values()):
            raise errors.business(f"The currency {code} is already in the currency list.",
                                  "Code")
        record["Code"] = code
        record.setdefault("Name", code)
        record.setdefault("Active", True)

    # ------------------------------------------------------------------ currencies

    def currency_enabled(self, code: str) -> bool:
        """The home currency, or an active CompanyCurrency with multicurrency on."""
        if code == self.realm.currency:
            return True
        return self.realm.multicurrency and any(
            c["Code"] == code and c.get("Active", True) is not False
            for c in self.realm.entities["CompanyCurrency"].values())

    def _check_currency(self, record: dict) -> None:
        """CurrencyRef defaults to the home currency; another one needs multicurrency and
        the currency in the list. ExchangeRate (home units per foreign unit) is the one
        sent, or the day rate, 1 for the home currency."""
        record.setdefault("CurrencyRef", {"value": self.realm.currency})
        code = ref_value(record["CurrencyRef"]) or self.realm.currency
        if code != self.realm.currency and not self.realm.multicurrency:
            raise errors.business(MULTICURRENCY_OFF.format(home=self.realm.currency,
                                                           code=code), "CurrencyRef")
        if not self.currency_enabled(code):
            raise errors.business(
                f"The currency {code} is not in the company's currency list. Add it in "
                "QuickBooks (Settings > Currencies) first.", "CurrencyRef")
        record["CurrencyRef"] = {"value": code, "name": CURRENCY_NAMES.get(code, code)}
        if code == self.realm.currency:
            record["ExchangeRate"] = 1
            return
        rate = dec(record.get("ExchangeRate")) or dec(self.realm.exchange_rates.get(code, 1))
        if rate <= 0:
            raise errors.invalid_property("ExchangeRate must be greater than zero",
                                          "ExchangeRate")
        record["ExchangeRate"] = num(rate)

    def _payment_currency(self, record: dict) -> None:
        """A payment is in the currency of what it applies (its customer's): default to
        that of its first linked transaction, and refuse a mix."""
        if not ref_value(record.get("CurrencyRef")):
            for line in record.get("Line") or []:
                linked = (line.get("LinkedTxn") or [{}])[0] if isinstance(line, dict) else {}
                target = self.realm.get(str(linked.get("TxnType")), linked.get("TxnId")) \
                    if linked.get("TxnType") in ("Invoice", "CreditMemo") else None
                if target is not None:
                    record["CurrencyRef"] = dict(target.get("CurrencyRef") or {})
                    break
        self._check_currency(record)
        code = record["CurrencyRef"]["value"]
        for line in record.get("Line") or []:
            linked = (line.get("LinkedTxn") or [{}])[0] if isinstance(line, dict) else {}
            if linked.get("TxnType") not in ("Invoice", "CreditMemo"):
                continue
            target = self.realm.get(linked["TxnType"], linked.get("TxnId"))
            other = ref_value((target or {}).get("CurrencyRef")) or self.realm.currency
            if target is not None and other != code:
                raise errors.business(
                    f"The payment is in {code} but {linked['TxnType']} {linked.get('TxnId')} "
                    f"is in {other}: a payment applies transactions of its own currency.",
                    "CurrencyRef")

    @staticmethod
    def _home(record: dict, amount: Any) -> float | int:
        """``amount`` of a transaction in the home currency (at its ExchangeRate)."""
        return num(cents(dec(amount) * (dec(record.get("ExchangeRate")) or Decimal(1))))

    def _finish_term(self, record: dict, current: dict | None) -> None:
        if not record.get("Name"):
            raise errors.required("Name")
        record.setdefault("Active", True)
        record.setdefault("Type", "STANDARD")
        if record["Type"] == "STANDARD":
            record.setdefault("DueDays", 0)

    def _finish_invoice(self, record: dict, current: dict | None) -> None:
        self._finish_sales_form("Invoice", record, current)
        paid = sum(self.applied.get(f"Invoice/{record['Id']}", {}).values(), Decimal(0))
        total = dec(record["TotalAmt"]) - dec(record.get("Deposit"))
        if total < paid:
            raise errors.business(
                f"The invoice total ({num(total)}) is less than the payments applied to it "
                f"({num(paid)}). Unapply the payments first.", "TotalAmt")
        record["Balance"] = num(total - paid)
        record["HomeBalance"] = self._home(record, record["Balance"])
        record.setdefault("Deposit", 0)
        record.setdefault("LinkedTxn", [])
        record.setdefault("EmailStatus", "NotSet")
        record.setdefault("PrintStatus", "NotSet")
        record.setdefault("AllowIPNPayment", False)
        record.setdefault("AllowOnlinePayment", False)
        record.setdefault("AllowOnlineCreditCardPayment", False)
        record.setdefault("AllowOnlineACHPayment", False)
        self._check_date(record, "DueDate")
        if "DueDate" not in record:
            record["DueDate"] = self._due_date(record)

    def _finish_creditmemo(self, record: dict, current: dict | None) -> None:
        self._finish_sales_form("CreditMemo", record, current)
        used = sum(self.applied.get(f"CreditMemo/{record['Id']}", {}).values(), Decimal(0))
        total = dec(record["TotalAmt"])
        if total < used:
            raise errors.business(
                f"The credit memo total ({num(total)}) is less than the credit already applied "
                f"({num(used)}).", "TotalAmt")
        record["RemainingCredit"] = num(total - used)
        record["Balance"] = record["RemainingCredit"]
        record["HomeBalance"] = self._home(record, record["Balance"])
        record.setdefault("LinkedTxn", [])
        record.setdefault("EmailStatus", "NotSet")
        record.setdefault("PrintStatus", "NotSet")

    def _finish_sales_form(self, entity: str, record: dict, current: dict | None) -> None:
        if not ref_value(record.get("CustomerRef")):
            raise errors.required("CustomerRef")
        lines = [ln for ln in record.get("Line") or []
                 if isinstance(ln, dict) and ln.get("DetailType") != "SubTotalLineDetail"]
        if not lines:
            raise errors.required("Line")
        for line in lines:
            kind = line.get("DetailType")
            if kind not in ("SalesItemLineDetail", "DiscountLineDetail", "DescriptionOnly",
                            "GroupLineDetail"):
                raise errors.invalid_property(f"Invalid Line DetailType {kind!r}", "DetailType")
            if kind == "SalesItemLineDetail":
                detail = line.setdefault("SalesItemLineDetail", {})
                if not ref_value(detail.get("ItemRef")):
                    # QuickBooks falls back to the company's default "Services" item.
                    detail["ItemRef"] = {"value": self._default_item_id()}
                for key in ("ServiceDate",):
                    if detail.get(key) == "":
                        detail.pop(key)
        record["Line"] = lines
        self._check_date(record, "TxnDate")
        record.setdefault("TxnDate", self._today())
        if not record.get("DocNumber") and current is None:
            record["DocNumber"] = self.realm.new_doc_number(entity)
        self._check_currency(record)
        record.setdefault("GlobalTaxCalculation", "TaxExcluded")
        if record["GlobalTaxCalculation"] not in ("TaxExcluded", "TaxInclusive", "NotApplicable"):
            raise errors.invalid_property("Invalid GlobalTaxCalculation",
                                          "GlobalTaxCalculation")
        detail = record.get("TxnTaxDetail") or {}
        self._check_refs_in(detail, {"TxnTaxCodeRef": "TaxCode"})
        # A TotalTax sent alone overrides the tax. A write that sends a TxnTaxDetail
        # decides anew (a client echoing a read-back object sends its TaxLines too, and one
        # naming the transaction's tax code asks for that code's computation); a sparse
        # update that sends none keeps the override it had.
        sent = self._sent or {}
        if "TxnTaxDetail" in sent:
            record.pop("_tax_override", None)
            detail = sent["TxnTaxDetail"] if isinstance(sent["TxnTaxDetail"], dict) else {}
            if detail.get("TotalTax") not in (None, "") and not detail.get("TaxLine") \
                    and not detail.get("TxnTaxCodeRef"):
                record["_tax_override"] = detail["TotalTax"]
        if not self.realm.using_sales_tax:
            record.pop("_tax_override", None)
            record.pop("TxnTaxDetail", None)
        compute_sales_form(record, self._tax_rates_of, taxed=self.realm.using_sales_tax)
        record["HomeTotalAmt"] = self._home(record, record["TotalAmt"])

    def _default_item_id(self) -> str:
        for item in self.realm.all("Item"):
            if item.get("Name") == "Services" and item.get("Active", True):
                return item["Id"]
        items = self.realm.all("Item")
        if not items:
            raise errors.required("ItemRef")
        return items[0]["Id"]

    def _due_date(self, record: dict) -> str:
        txn_date = dt.date.fromisoformat(str(record["TxnDate"])[:10])
        term_id = ref_value(record.get("SalesTermRef"))
        if term_id is None:
            customer = self.realm.get("Customer", ref_value(record.get("CustomerRef")))
            term_id = ref_value((customer or {}).get("SalesTermRef"))
        term = self.realm.get("Term", term_id) if term_id else None
        days = int(dec((term or {}).get("DueDays")))
        return (txn_date + dt.timedelta(days=days)).isoformat()

    def _tax_rates_of(self, code_id: str) -> list[tuple[str, str, Decimal]] | None:
        code = self.realm.get("TaxCode", code_id)
        if code is None:
            return None
        rates = []
        for detail in (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []:
            rate = self.realm.get("TaxRate", ref_value(detail.get("TaxRateRef")))
            if rate is not None:
                rates.append((rate["Id"], rate.get("Name", ""), dec(rate.get("RateValue"))))
        return rates

    def _finish_payment(self, record: dict, current: dict | None) -> None:
        if not ref_value(record.get("CustomerRef")):
            raise errors.required("CustomerRef")
        if "TotalAmt" not in record:
            raise errors.required("TotalAmt")
        total = cents(dec(record["TotalAmt"]))
        if total < 0:
            raise errors.business("The payment amount cannot be negative.", "TotalAmt")
        record["TotalAmt"] = num(total)
        self._check_date(record, "TxnDate")
        record.setdefault("TxnDate", self._today())
        self._payment_currency(record)
        record.setdefault("ProcessPayment", False)
        lines = record.get("Line") or []
        if not isinstance(lines, list):
            raise errors.invalid_property("Line must be a list", "Line")
        customer = ref_value(record["CustomerRef"])
        net = Decimal(0)
        previous = self._applications(current) if current else {}
        for line in lines:
            amount = cents(dec(line.get("Amount")))
            if amount <= 0:
                raise errors.business("Each payment line needs a positive Amount.", "Amount")
            line["Amount"] = num(amount)
            linked = line.get("LinkedTxn") or []
            if len(linked) != 1 or not isinstance(linked[0], dict):
                raise errors.required("LinkedTxn")
            txn_type, txn_id = linked[0].get("TxnType"), str(linked[0].get("TxnId") or "")
            if txn_type not in ("Invoice", "CreditMemo"):
                raise errors.invalid_property(f"Unsupported LinkedTxn TxnType {txn_type!r}",
                                              "TxnType")
            target = self.realm.get(txn_type, txn_id)
            if target is None:
                raise errors.invalid_reference("LinkedTxn", txn_id)
            if ref_value(target.get("CustomerRef")) != customer:
                raise errors.business(
                    f"{txn_type} {txn_id} belongs to another customer than the payment.",
                    "LinkedTxn")
            key = f"{txn_type}/{txn_id}"
            field = "Balance" if txn_type == "Invoice" else "RemainingCredit"
            open_amount = dec(target.get(field)) + previous.get(key, Decimal(0))
            if amount > open_amount:
                raise errors.business(
                    f"The amount applied to {txn_type} {txn_id} ({num(amount)}) exceeds its "
                    f"open balance ({num(open_amount)}).", "Amount")
            previous[key] = previous.get(key, Decimal(0)) - amount  # guards repeated lines
            linked[0]["TxnId"] = txn_id
            linked[0].pop("TxnLineId", None)
            net += amount if txn_type == "Invoice" else -amount
        if net > total:
            raise errors.business(
                f"The amounts applied ({num(net)}) exceed the payment amount ({num(total)}).",
                "TotalAmt")
        record["Line"] = lines
        record["UnappliedAmt"] = num(total - net)

    def _check_refs(self, entity: str, record: dict) -> None:
        self._check_refs_in(record, TOP_REFS, entity)
        for line in record.get("Line") or []:
            if not isinstance(line, dict):
                continue
            for key in ("SalesItemLineDetail", "DiscountLineDetail", "DescriptionLineDetail"):
                if isinstance(line.get(key), dict):
                    self._check_refs_in(line[key], LINE_REFS)

    def _check_refs_in(self, holder: dict, refs: dict[str, str], entity: str = "") -> None:
        for key, target_type in refs.items():
            ref = holder.get(key)
            if ref is None:
                continue
            value = ref_value(ref)
            if value is None:
                holder.pop(key)
                continue
            if target_type == "TaxCode" and value in ("TAX", "NON"):
                holder[key] = {"value": value}
                continue
            target = self.realm.get(target_type, value)
            if target is None or (target.get("Active") is False and target_type != entity):
                raise errors.invalid_reference(key, value)
            name = target.get(NAME_FIELD.get(target_type, "Name"))
            holder[key] = {"value": value, **({"name": name} if name else {})}

    def _check_unique(self, entity: str, record: dict, field: str) -> None:
        key = _name_key(record.get(field))
        lists = SHARED_NAMES if entity in SHARED_NAMES else (entity,)
        for kind in lists:
            for other in self.realm.entities[kind].values():
                if (kind, other["Id"]) != (entity, record["Id"]) and _name_key(
                        other.get(NAME_FIELD[kind])) == key:
                    raise errors.duplicate_name(other["Id"])

    # ------------------------------------------------------------------ payments and links

    @staticmethod
    def _applications(payment: dict | None) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        if not payment or payment.get("_voided"):
            return out
        for line in payment.get("Line") or []:
            linked = (line.get("LinkedTxn") or [{}])[0]
            key = f"{linked.get('TxnType')}/{linked.get('TxnId')}"
            out[key] = out.get(key, Decimal(0)) + cents(dec(line.get("Amount")))
        return out

    def _after_write(self, entity: str, record: dict, current: dict | None) -> None:
        if entity != "Payment":
            return
        before = self._applications(current)
        after = self._applications(record)
        for key in set(before) | set(after):
            bucket = self.applied.setdefault(key, {})
            if key in after:
                bucket[record["Id"]] = after[key]
            else:
                bucket.pop(record["Id"], None)
            if before.get(key) != after.get(key) and key != self._leaving:
                txn_type, txn_id = key.split("/", 1)
                self._refresh_linked(txn_type, txn_id)

    def _refresh_linked(self, txn_type: str, txn_id: str) -> None:
        """Recompute an invoice's/credit memo's balance and LinkedTxn after a payment change."""
        target = self.realm.get(txn_type, txn_id)
        if target is None:
            return
        target = copy.deepcopy(target)
        bucket = self.applied.get(f"{txn_type}/{txn_id}", {})
        used = sum(bucket.values(), Decimal(0))
        if txn_type == "Invoice":
            if not target.get("_voided"):
                balance = dec(target.get("TotalAmt")) - dec(target.get("Deposit")) - used
                target["Balance"] = num(balance)
                target["HomeBalance"] = self._home(target, target["Balance"])
        else:
            target["RemainingCredit"] = num(dec(target.get("TotalAmt")) - used)
            target["Balance"] = target["RemainingCredit"]
        others = [ln for ln in target.get("LinkedTxn") or [] if ln.get("TxnType") != "Payment"]
        target["LinkedTxn"] = others + [{"TxnId": pid, "TxnType": "Payment"}
                                        for pid in sorted(bucket, key=int)]
        self.realm.put(txn_type, target, self.clock(), created=False)
        self.events.append((txn_type, txn_id, "Update"))

    @staticmethod
    def _unapply_credit(payment: dict, credit: Decimal) -> None:
        """Take ``credit`` (a credit memo's, unapplied) off ``payment``'s invoice lines, the
        last first; a line left at 0 goes (a payment line needs a positive Amount)."""
        lines = payment.get("Line") or []
        for line in reversed(lines):
            if credit <= 0:
                break
            if (line.get("LinkedTxn") or [{}])[0].get("TxnType") != "Invoice":
                continue
            taken = min(credit, cents(dec(line.get("Amount"))))
            line["Amount"] = num(cents(dec(line.get("Amount"))) - taken)
            credit -= taken
        payment["Line"] = [ln for ln in lines if dec(ln.get("Amount")) > 0]

    def _unlink(self, entity: str, current: dict) -> None:
        """Before deleting/voiding: undo a payment's effects, or detach payments from a txn."""
        if entity == "Payment":
            record = copy.deepcopy(current)
            record["Line"] = []
            self._after_write("Payment", record, current)
            return
        self._leaving = f"{entity}/{current['Id']}"
        try:
            self._detach_payments(entity, current)
        finally:
            self._leaving = None
        self.applied.pop(f"{entity}/{current['Id']}", None)

    def _detach_payments(self, entity: str, current: dict) -> None:
        """Take ``current`` (an Invoice or a CreditMemo being deleted or voided) out of the
        payments applying it. An invoice's payments keep their money as unapplied credit.
        A credit memo's credit is unapplied from what it paid: as much is taken off the
        payment's invoice lines (the last first), so its own money and UnappliedAmt stay
        and those invoices reopen (a zero payment that only applied the memo is left with
        no lines)."""
        bucket = dict(self.applied.get(f"{entity}/{current['Id']}", {}))
        for payment_id in sorted(bucket, key=int):
            payment = copy.deepcopy(self.realm.get("Payment", payment_id))
            if payment is None:
                continue
            before = copy.deepcopy(payment)
            payment["Line"] = [
                ln for ln in payment.get("Line") or []
                if (ln.get("LinkedTxn") or [{}])[0].get("TxnId") != current["Id"]
                or (ln.get("LinkedTxn") or [{}])[0].get("TxnType") != entity
            ]
            if entity == "CreditMemo":
                self._unapply_credit(payment, bucket[payment_id])
            net = sum((cents(dec(ln["Amount"])) *
                       (1 if ln["LinkedTxn"][0]["TxnType"] == "Invoice" else -1)
                       for ln in payment["Line"]), Decimal(0))
            payment["UnappliedAmt"] = num(dec(payment.get("TotalAmt")) - net)
            self.realm.put("Payment", payment, self.clock(), created=False)
            self.events.append(("Payment", payment_id, "Update"))
            self._after_write("Payment", payment, before)
