"""Default seed of the Xero sandbox: one organisation and one registered OAuth2 app.

IDs are deterministic (uuid5 of a name) so that a demo configuration stays valid across
restarts.  The chart of accounts and tax rates follow a New Zealand Xero demo company
(GST 15 %, tax types OUTPUT2/INPUT2/NONE/ZERORATED as in Xero's TaxType enum).
"""

from __future__ import annotations

import uuid

NAMESPACE = uuid.UUID("6f1f2a4e-6a0b-4d51-9b1e-2b7f0c9d5e11")

DEFAULT_CLIENT_ID = "SANDBOXXEROCLIENTID0000000000000"
DEFAULT_CLIENT_SECRET = "sandbox-xero-client-secret-not-for-production"  # noqa: S105 - public sandbox default
DEFAULT_WEBHOOK_KEY = "sandbox-xero-webhook-key"
DEFAULT_SCOPES = (
    "openid profile email offline_access accounting.transactions accounting.contacts "
    "accounting.settings"
)


def sid(name: str) -> str:
    """Deterministic UUID string for a seed object name."""
    return str(uuid.uuid5(NAMESPACE, name))


def _account(code, name, acc_type, tax_type="NONE", **extra):
    account = {
        "AccountID": sid(f"account:{code}"), "Code": code, "Name": name, "Type": acc_type,
        "TaxType": tax_type, "Status": "ACTIVE", "Class": _CLASS[acc_type],
        "EnablePaymentsToAccount": False, "ShowInExpenseClaims": False,
        "ReportingCode": "", "HasAttachments": False,
    }
    account.update(extra)
    return account


_CLASS = {"BANK": "ASSET", "CURRENT": "ASSET", "REVENUE": "REVENUE", "SALES": "REVENUE",
          "OTHERINCOME": "REVENUE", "EXPENSE": "EXPENSE", "OVERHEADS": "EXPENSE",
          "DIRECTCOSTS": "EXPENSE", "CURRLIAB": "LIABILITY", "EQUITY": "EQUITY"}


def default_tenant(name: str = "Sandbox Professional Services Ltd") -> dict:
    """Return the seed data of one organisation (a tenant), in the store's shape."""
    tenant_id = sid(f"tenant:{name}")
    bank = _account("090", "Business Bank Account", "BANK", BankAccountNumber="0101234567890",
                    BankAccountType="BANK", CurrencyCode="NZD")
    accounts = [
        bank,
        _account("091", "Business Savings Account", "BANK", BankAccountNumber="0101234567891",
                 BankAccountType="BANK", CurrencyCode="NZD"),
        _account("200", "Sales", "REVENUE", "OUTPUT2"),
        _account("210", "Consulting Fees", "REVENUE", "OUTPUT2"),
        _account("220", "Retainer Income", "REVENUE", "OUTPUT2"),
        _account("260", "Other Revenue", "REVENUE", "OUTPUT2"),
        _account("310", "Cost of Goods Sold", "DIRECTCOSTS", "INPUT2"),
        _account("404", "Bank Fees", "EXPENSE", "NONE"),
        _account("429", "General Expenses", "EXPENSE", "INPUT2"),
        # Bookkeepers write off bad debts with a credit note coded here (Xero Central).
        _account("485", "Bad Debts", "EXPENSE", "NONE"),
        # Small balances are also written off as a "payment" from an expense account that
        # has "Enable payments to this account" ticked.
        _account("486", "Write-offs", "EXPENSE", "NONE", EnablePaymentsToAccount=True),
        _account("610", "Accounts Receivable", "CURRENT", "NONE", SystemAccount="DEBTORS"),
        _account("820", "GST", "CURRLIAB", "NONE", SystemAccount="GST"),
        _account("960", "Retained Earnings", "EQUITY", "NONE", SystemAccount="RETAINEDEARNINGS"),
    ]
    tax_rates = [
        _tax("15% GST on Income", "OUTPUT2", "15", income=True),
        _tax("15% GST on Expenses", "INPUT2", "15", income=False),
        _tax("No GST", "NONE", "0", income=True, expense=True),
        _tax("Zero Rated", "ZERORATED", "0", income=True),
        _tax("GST Exempt Income", "EXEMPTOUTPUT", "0", income=True),
    ]
    items = [
        _item("CONSULT-HR", "Consulting hour", "Senior consultant, per hour", "180.00", "210"),
        _item("RETAINER", "Monthly retainer", "Monthly advisory retainer", "2500.00", "220"),
        _item("DEPOSIT", "Engagement deposit", "Deposit on accepted proposal", "1000.00", "200"),
    ]
    tracking = [
        _tracking("Department", ["Advisory", "Audit", "Tax"]),
        _tracking("Region", ["North", "South"]),
    ]
    organisation = {
        "OrganisationID": tenant_id, "APIKey": "", "Name": name, "LegalName": name,
        "PaysTax": True, "Version": "NZ", "OrganisationType": "COMPANY",
        "BaseCurrency": "NZD", "CountryCode": "NZ", "IsDemoCompany": False,
        "OrganisationStatus": "ACTIVE", "TaxNumber": "101-112-303",
        "FinancialYearEndDay": 31, "FinancialYearEndMonth": 3,
        "SalesTaxBasis": "INVOICE", "SalesTaxPeriod": "TWOMONTHS",
        "DefaultSalesTax": "Tax Exclusive", "DefaultPurchasesTax": "Tax Inclusive",
        "LineOfBusiness": "Professional services", "Timezone": "NEWZEALANDSTANDARDTIME",
        "OrganisationEntityType": "COMPANY", "ShortCode": "!sbx01", "Class": "STANDARD",
        "Edition": "BUSINESS", "Addresses": [], "Phones": [], "ExternalLinks": [],
        "PaymentTerms": {"Sales": {"Day": 20, "Type": "OFFOLLOWINGMONTH"}},
    }
    return {
        "tenant_id": tenant_id, "organisation": organisation, "accounts": accounts,
        "tax_rates": tax_rates, "items": items, "tracking_categories": tracking,
        "contacts": [], "invoices": [], "credit_notes": [], "payments": [],
        "overpayments": [], "invoice_seq": 0, "credit_note_seq": 0,
    }


def _tax(name, tax_type, rate, income=False, expense=False):
    return {
        "Name": name, "TaxType": tax_type, "Status": "ACTIVE",
        "ReportTaxType": "OUTPUT" if income else "INPUT",
        "CanApplyToAssets": True, "CanApplyToEquity": True, "CanApplyToExpenses": expense
        or not income, "CanApplyToLiabilities": True, "CanApplyToRevenue": income,
        "DisplayTaxRate": float(rate), "EffectiveRate": float(rate),
        "TaxComponents": [{"Name": "GST", "Rate": float(rate), "IsCompound": False,
                           "IsNonRecoverable": False}],
    }


def _item(code, name, description, price, account):
    return {
        "ItemID": sid(f"item:{code}"), "Code": code, "Name": name, "Description": description,
        "IsSold": True, "IsPurchased": False, "IsTrackedAsInventory": False,
        "SalesDetails": {"UnitPrice": float(price), "AccountCode": account,
                         "TaxType": "OUTPUT2"},
        "PurchaseDetails": {},
    }


def _tracking(name, options):
    return {
        "TrackingCategoryID": sid(f"tracking:{name}"), "Name": name, "Status": "ACTIVE",
        "Options": [{"TrackingOptionID": sid(f"tracking:{name}:{opt}"), "Name": opt,
                     "Status": "ACTIVE", "HasValidationErrors": False,
                     "IsDeleted": False, "IsArchived": False, "IsActive": True}
                    for opt in options],
    }


def default_client(client_id: str = DEFAULT_CLIENT_ID,
                   client_secret: str = DEFAULT_CLIENT_SECRET) -> dict:
    """The registered OAuth2 app; empty ``redirect_uris`` accepts any loopback redirect."""
    return {"client_id": client_id, "client_secret": client_secret, "redirect_uris": [],
            "name": "billing_sync (sandbox)"}
