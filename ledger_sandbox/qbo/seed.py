"""The default QuickBooks Online sandbox company and OAuth app.

One realm (a UK-style company: GBP, VAT codes on each line) with a chart of accounts (income,
A/R, a bank account, Undeposited Funds, Bad Debts, VAT control), VAT rates and codes, items
(including the "Bad Debt" item QuickBooks' help uses to write off a balance), classes,
departments and terms.  No customers or transactions.  The result is the JSON shape of
``QboSandbox.dump()``, so a ``--seed`` file is simply an edited dump.
"""

from __future__ import annotations

import datetime as dt

from .store import Realm

DEFAULT_REALM_ID = "9341453021781234"
DEFAULT_CLIENT_ID = "ABqbo-sandbox-client-id"
DEFAULT_CLIENT_SECRET = "qbo-sandbox-client-secret"  # noqa: S105 - public sandbox default
DEFAULT_VERIFIER_TOKEN = "qbo-sandbox-verifier-token"  # noqa: S105 - public sandbox default
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _ref(value: str, name: str) -> dict:
    return {"value": value, "name": name}


def default_realm(realm_id: str = DEFAULT_REALM_ID,
                  company_name: str = "Sandbox Professional Services Ltd") -> Realm:
    """Build the default company (all records stamped at :data:`EPOCH`)."""
    realm = Realm(realm_id, company_name, country="GB", currency="GBP")

    def add(entity: str, **fields: object) -> dict:
        record = {"Id": realm.new_id(entity), "domain": "QBO", "sparse": False, **fields}
        realm.put(entity, record, EPOCH, created=True)
        return record

    def account(name: str, acct_type: str, sub_type: str, classification: str,
                number: str) -> dict:
        return add("Account", Name=name, FullyQualifiedName=name, AccountType=acct_type,
                   AccountSubType=sub_type, Classification=classification, AcctNum=number,
                   Active=True, SubAccount=False, CurrentBalance=0,
                   CurrentBalanceWithSubAccounts=0, CurrencyRef={"value": "GBP"})

    sales = account("Sales", "Income", "SalesOfProductIncome", "Revenue", "4000")
    services = account("Services", "Income", "ServiceFeeIncome", "Revenue", "4010")
    account("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable", "Asset",
            "1100")
    account("Business Bank Account", "Bank", "Checking", "Asset", "1200")
    account("Undeposited Funds", "Other Current Asset", "UndepositedFunds", "Asset", "1210")
    bad_debts = account("Bad Debts", "Expense", "BadDebts", "Expense", "6900")
    account("Discounts given", "Income", "DiscountsRefundsGiven", "Revenue", "4900")
    account("VAT Control", "Other Current Liability", "GlobalTaxPayable", "Liability", "2200")

    rates = {}
    for name, value in (("20.0% S", 20), ("5.0% R", 5), ("0.0% Z", 0), ("Exempt", 0)):
        rates[name] = add("TaxRate", Name=name, Description=f"VAT {name}", Active=True,
                          RateValue=value, AgencyRef=_ref("1", "HM Revenue & Customs"),
                          SpecialTaxType="NONE", DisplayType="ReadOnly")
    for name, rate in (("20.0% S", "20.0% S"), ("5.0% R", "5.0% R"), ("0.0% Z", "0.0% Z"),
                       ("Exempt", "Exempt"), ("No VAT", None)):
        rate_list = {"TaxRateDetail": []}
        if rate:
            rate_list["TaxRateDetail"].append(
                {"TaxRateRef": _ref(rates[rate]["Id"], rate), "TaxTypeApplicable": "TaxOnAmount",
                 "TaxOrder": 0})
        add("TaxCode", Name=name, Description=f"VAT {name}", Active=True, Hidden=False,
            Taxable=rate is not None, TaxGroup=False, SalesTaxRateList=rate_list,
            PurchaseTaxRateList={"TaxRateDetail": []})

    for name, days in (("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30), ("Net 60", 60)):
        add("Term", Name=name, Active=True, Type="STANDARD", DueDays=days, DiscountDays=0,
            DiscountPercent=0)
    for name in ("Consulting", "Training"):
        add("Class", Name=name, FullyQualifiedName=name, Active=True, SubClass=False)
    for name in ("London", "Remote"):
        add("Department", Name=name, FullyQualifiedName=name, Active=True, SubDepartment=False)

    def item(name: str, income: dict, price: float, description: str) -> None:
        add("Item", Name=name, FullyQualifiedName=name, Description=description, Active=True,
            Type="Service", UnitPrice=price, Taxable=True, TrackQtyOnHand=False,
            IncomeAccountRef=_ref(income["Id"], income["Name"]))

    item("Services", services, 0, "General services")
    item("Consulting hours", services, 150, "Consulting, per hour")
    item("Monthly retainer", services, 2500, "Monthly retainer")
    item("Hardware", sales, 0, "Hardware resale")
    item("Bad Debt", bad_debts, 0, "Write-off of an uncollectable balance")
    return realm


def default_seed() -> dict:
    """The default seed in ``QboSandbox.dump()`` form."""
    return {
        "realms": [default_realm().dump()],
        "oauth": {"clients": {DEFAULT_CLIENT_ID: {"secret": DEFAULT_CLIENT_SECRET,
                                                  "redirect_uris": None,
                                                  "name": "billing_sync (sandbox)"}}},
    }
