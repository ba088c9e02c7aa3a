"""Top-level property names of the emulated QuickBooks Online entities.

Derived from Intuit's XSD (Finance.xsd, IntuitNamesTypes.xsd, IntuitBaseTypes.xsd of
github:intuit/QuickBooks-V3-Java-SDK, ipp-v3-java-data/src/main/xsd/): the element names of each
entity type including its base types. The query parser uses them to reject a property the entity
does not have (QueryValidationError), as the real query service does.
"""

# IntuitEntity: what every entity has
_ENTITY = (
    "Id", "SyncToken", "MetaData", "CustomField", "AttachableRef",
)
# Transaction (extends IntuitEntity)
_TRANSACTION = _ENTITY + (
    "DocNumber", "TxnDate", "DepartmentRef", "CurrencyRef", "ExchangeRate", "PrivateNote",
    "TxnStatus", "LinkedTxn", "Line", "TxnTaxDetail", "TxnSource", "TaxFormType", "TaxFormNum",
    "TransactionLocationType", "Tag", "TxnApprovalInfo", "RecurDataRef", "RecurringInfo",
    "ProjectRef", "TotalCostAmount", "HomeTotalCostAmount",
)
# SalesTransaction (extends Transaction): Invoice, CreditMemo
_SALES = _TRANSACTION + (
    "AutoDocNumber", "CustomerRef", "CustomerMemo", "BillAddr", "ShipAddr", "FreeFormAddress",
    "ShipFromAddr", "RemitToRef", "ClassRef", "SalesTermRef", "DueDate", "SalesRepRef",
    "PONumber", "FOB", "ShipMethodRef", "ShipDate", "TrackingNum", "GlobalTaxCalculation",
    "TotalAmt", "HomeTotalAmt", "ApplyTaxAfterDiscount", "ShippingTaxIncludedInTotalTax",
    "TemplateRef", "PrintStatus", "EmailStatus", "BillEmail", "BillEmailCc", "BillEmailBcc",
    "ARAccountRef", "Balance", "HomeBalance", "FinanceCharge", "PaymentMethodRef",
    "PaymentRefNum", "PaymentType", "CheckPayment", "CreditCardPayment", "DepositToAccountRef",
    "DeliveryInfo", "DiscountRate", "DiscountAmt", "GovtTxnRefIdentifier", "TaxExemptionRef",
)

# NameBase (extends IntuitEntity): Vendor, Employee (Customer lists the same names itself)
_NAME_BASE = _ENTITY + (
    "IntuitId", "Organization", "Title", "GivenName", "MiddleName", "FamilyName", "Suffix",
    "FullyQualifiedName", "CompanyName", "DisplayName", "PrintOnCheckName", "UserId", "Active",
    "V4IDPseudonym", "PrimaryPhone", "AlternatePhone", "Mobile", "Fax", "PrimaryEmailAddr",
    "WebAddr", "OtherContactInfo", "DefaultTaxCodeRef",
)

ENTITY_FIELDS: dict[str, frozenset[str]] = {
    "Customer": frozenset(
        _ENTITY + (
            "IntuitId", "Organization", "Title", "GivenName", "MiddleName",
            "FamilyName", "Suffix", "FullyQualifiedName", "CompanyName", "DisplayName",
            "PrintOnCheckName", "UserId", "Active", "V4IDPseudonym", "PrimaryPhone",
            "AlternatePhone", "Mobile", "Fax", "PrimaryEmailAddr", "WebAddr",
            "OtherContactInfo", "DefaultTaxCodeRef", "Taxable", "BillAddr", "ShipAddr",
            "OtherAddr", "ContactName", "AltContactName", "Notes", "Job",
            "BillWithParent", "RootCustomerRef", "ParentRef", "Level",
            "CustomerTypeRef", "SalesTermRef", "SalesRepRef", "TaxGroupCodeRef",
            "TaxRateRef", "PaymentMethodRef", "CCDetail", "PriceLevelRef", "Balance",
            "OpenBalanceDate", "BalanceWithJobs", "CreditLimit", "AcctNum",
            "CurrencyRef", "OverDueBalance", "TotalRevenue", "TotalExpense",
            "PreferredDeliveryMethod", "ResaleNum", "JobInfo", "TDSEnabled",
            "CustomerEx", "SecondaryTaxIdentifier", "ARAccountRef",
            "PrimaryTaxIdentifier", "TaxExemptionReasonId", "IsProject",
            "BusinessNumber", "GSTIN", "GSTRegistrationType", "IsCISContractor",
            "ClientCompanyId", "ClientEntityId", "Source", "TaxRegime",
        )
    ),
    "Invoice": frozenset(
        _SALES + (
            "Deposit", "AllowIPNPayment", "AllowOnlinePayment",
            "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment",
            "AllowOnlinePayPalPayment", "EInvoiceStatus", "ECloudStatusTimeStamp",
            "CfdiUse", "Exportation", "GlobalInfo", "invoiceStatus", "callToAction",
            "invoiceStatusLog", "InvoiceEx", "LessCIS", "InvoiceLink",
            "PaymentDetailsMessage", "ConvenienceFeeDetail", "InvoiceLinkSecurityCode",
            "InvoiceLinkExpiryDate", "AutoPayEligible", "SchedulePayEligible",
            "ScheduledPaymentId", "GratuityEnabled", "FinancingProductType",
            "SubscriptionPaymentsSetting",
        )
    ),
    "CompanyCurrency": frozenset(_ENTITY + ("Code", "Name", "Active")),
    "Payment": frozenset(
        _TRANSACTION + (
            "CustomerRef", "RemitToRef", "ARAccountRef", "DepositToAccountRef",
            "PaymentMethodRef", "PaymentRefNum", "PaymentType", "CheckPayment",
            "CreditCardPayment", "TotalAmt", "UnappliedAmt", "ProcessPayment",
            "PaymentEx",
        )
    ),
    "CreditMemo": frozenset(
        _SALES + (
            "RemainingCredit", "InvoiceRef", "CreditMemoEx",
        )
    ),
    "Item": frozenset(
        _ENTITY + (
            "Name", "Sku", "Description", "Active", "SubItem", "ParentRef", "Level",
            "FullyQualifiedName", "Taxable", "SalesTaxIncluded", "PercentBased",
            "UnitPrice", "RatePercent", "Type", "PaymentMethodRef", "UOMSetRef",
            "IncomeAccountRef", "PurchaseDesc", "PurchaseTaxIncluded", "PurchaseCost",
            "ExpenseAccountRef", "COGSAccountRef", "AssetAccountRef", "PrefVendorRef",
            "AvgCost", "TrackQtyOnHand", "QtyOnHand", "QtyOnPurchaseOrder",
            "QtyOnSalesOrder", "ReorderPoint", "ManPartNum", "DepositToAccountRef",
            "SalesTaxCodeRef", "PurchaseTaxCodeRef", "InvStartDate", "BuildPoint",
            "PrintGroupedItems", "SpecialItem", "SpecialItemType", "ItemGroupDetail",
            "ItemAssemblyDetail", "AbatementRate", "ReverseChargeRate", "ServiceType",
            "ItemCategoryType", "ItemEx", "TaxClassificationRef", "UQCDisplayText",
            "UQCId", "ClassRef", "Source", "DeferredRevenue",
        )
    ),
    "Account": frozenset(
        _ENTITY + (
            "Name", "SubAccount", "ParentRef", "Description", "FullyQualifiedName",
            "AccountAlias", "TxnLocationType", "Active", "Classification",
            "AccountType", "AccountSubType", "AccountPurposes", "AcctNum",
            "AcctNumExtn", "BankNum", "OpeningBalance", "OpeningBalanceDate",
            "CurrentBalance", "CurrentBalanceWithSubAccounts", "CurrencyRef",
            "TaxAccount", "TaxCodeRef", "OnlineBankingEnabled", "FIName",
            "JournalCodeRef", "AccountEx",
        )
    ),
    "TaxCode": frozenset(
        _ENTITY + (
            "Name", "Description", "Active", "Hidden", "Taxable", "TaxGroup",
            "SalesTaxRateList", "PurchaseTaxRateList", "AdjustmentTaxRateList",
            "TaxCodeEx", "TaxCodeConfigType",
        )
    ),
    "TaxRate": frozenset(
        _ENTITY + (
            "Name", "Description", "Active", "RateValue", "AgencyRef",
            "TaxReturnLineRef", "EffectiveTaxRate", "SpecialTaxType", "DisplayType",
            "TaxRateEx", "OriginalTaxRate",
        )
    ),
    "Class": frozenset(
        _ENTITY + (
            "Name", "SubClass", "ParentRef", "FullyQualifiedName", "Active", "ClassEx",
        )
    ),
    "Department": frozenset(
        _ENTITY + (
            "Name", "SubDepartment", "ParentRef", "FullyQualifiedName", "Active",
            "DepartmentEx", "Address",
        )
    ),
    "Vendor": frozenset(
        _NAME_BASE + (
            "ContactName", "AltContactName", "Notes", "BillAddr", "ShipAddr", "OtherAddr",
            "TaxCountry", "TaxIdentifier", "TaxIdEffectiveDate", "BusinessNumber", "ParentRef",
            "VendorTypeRef", "TermRef", "PrefillAccountRef", "Balance", "BillRate",
            "OpenBalanceDate", "CreditLimit", "AcctNum", "Vendor1099", "T4AEligible",
            "T5018Eligible", "CurrencyRef", "TDSEnabled", "TDSEntityTypeId", "TDSSectionTypeId",
            "TDSOverrideThreshold", "TaxReportingBasis", "APAccountRef", "VendorEx", "GSTIN",
            "GSTRegistrationType", "IsSubContractor", "SubcontractorType", "CISRate", "HasTPAR",
            "VendorPaymentBankDetail", "Source", "CostRate",
        )
    ),
    "Employee": frozenset(
        _NAME_BASE + (
            "EmployeeType", "EmployeeNumber", "SSN", "PrimaryAddr", "OtherAddr", "BillableTime",
            "BillRate", "BirthDate", "Gender", "HiredDate", "ReleasedDate", "UseTimeEntry",
            "EmployeeEx", "CostRate", "Notes",
        )
    ),
    "Term": frozenset(
        _ENTITY + (
            "Name", "Active", "Type", "DiscountPercent", "DueDays", "DiscountDays",
            "DayOfMonthDue", "DueNextMonthDays", "DiscountDayOfMonth", "SalesTermEx",
        )
    ),
}


# Properties typed date/dateTime/decimal/int/boolean in the XSD: python-quickbooks sends "" for
# unset ones, which QuickBooks reads as "not given".
TYPED_FIELDS: frozenset[str] = frozenset(
    (
        "AbatementRate", "Active", "AllowIPNPayment", "AllowOnlineACHPayment",
        "AllowOnlineCreditCardPayment", "AllowOnlinePayPalPayment", "AllowOnlinePayment",
        "ApplyTaxAfterDiscount", "AutoDocNumber", "AutoPayEligible", "AvgCost", "Balance",
        "BalanceWithJobs", "BillWithParent", "BuildPoint", "CfdiUse", "CreditLimit",
        "CurrentBalance", "CurrentBalanceWithSubAccounts", "DayOfMonthDue", "DeferredRevenue",
        "Deposit", "DiscountAmt", "DiscountDayOfMonth", "DiscountDays", "DiscountPercent",
        "DiscountRate", "DueDate", "DueDays", "DueNextMonthDays", "ECloudStatusTimeStamp",
        "ExchangeRate", "FinanceCharge", "FreeFormAddress", "GratuityEnabled", "Hidden",
        "HomeBalance", "HomeTotalAmt", "HomeTotalCostAmount", "InvStartDate",
        "InvoiceLinkExpiryDate", "IsCISContractor", "IsProject", "Job", "LessCIS", "Level",
        "OnlineBankingEnabled", "OpenBalanceDate", "OpeningBalance", "OpeningBalanceDate",
        "Organization", "OverDueBalance", "PercentBased", "PrintGroupedItems", "ProcessPayment",
        "PurchaseCost", "PurchaseTaxIncluded", "QtyOnHand", "QtyOnPurchaseOrder",
        "QtyOnSalesOrder", "RatePercent", "RateValue", "RemainingCredit", "ReorderPoint",
        "ReverseChargeRate", "SalesTaxIncluded", "SchedulePayEligible", "ShipDate",
        "ShippingTaxIncludedInTotalTax", "SpecialItem", "SubAccount", "SubClass", "SubDepartment",
        "SubItem", "TDSEnabled", "TaxAccount", "TaxGroup", "Taxable", "TotalAmt",
        "TotalCostAmount", "TotalExpense", "TotalRevenue", "TrackQtyOnHand", "TxnDate",
        "UnappliedAmt", "UnitPrice",
        # Vendor and Employee (NameBase)
        "BillableTime", "BillRate", "BirthDate", "CostRate", "HasTPAR", "HiredDate",
        "IsSubContractor", "ReleasedDate", "T4AEligible", "T5018Eligible", "TaxIdEffectiveDate",
        "TDSEntityTypeId", "TDSOverrideThreshold", "TDSSectionTypeId", "Vendor1099",
    )
)
