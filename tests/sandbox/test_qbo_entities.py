"""QBO sandbox: create, read, update of every emulated entity through python-quickbooks."""

import pytest
from quickbooks.exceptions import (
    ObjectNotFoundException,
    QuickbooksException,
    UnsupportedException,
    ValidationException,
)
from quickbooks.objects import (
    Account,
    CreditMemo,
    Customer,
    Department,
    Invoice,
    Item,
    TaxCode,
    TaxRate,
    Term,
)
from quickbooks.objects.base import EmailAddress, Ref
from quickbooks.objects.detailline import (
    DiscountLine,
    DiscountLineDetail,
    SalesItemLine,
    SalesItemLineDetail,
)
from quickbooks.objects.trackingclass import Class


def _customer(qb, name="Acme Ltd", **fields):
    customer = Customer()
    customer.DisplayName = name
    for key, value in fields.items():
        setattr(customer, key, value)
    return customer.save(qb=qb)


def _tax_code(qb, name):
    return TaxCode.filter(Name=name, qb=qb)[0]


def _item(qb, name="Consulting hours"):
    return Item.filter(Name=name, qb=qb)[0]


def _line(qb, amount=0, qty=None, price=None, tax="20.0% S", item="Consulting hours"):
    line = SalesItemLine()
    line.Amount = amount
    detail = SalesItemLineDetail()
    detail.ItemRef = _item(qb, item).to_ref()
    if qty is not None:
        detail.Qty, detail.UnitPrice = qty, price
    if tax:
        detail.TaxCodeRef = _tax_code(qb, tax).to_ref()
    line.SalesItemLineDetail = detail
    return line


def _invoice(qb, customer, *lines, **fields):
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line = list(lines)
    for key, value in fields.items():
        setattr(invoice, key, value)
    return invoice.save(qb=qb)


def test_customer_create_read_sparse_and_full_update(qbo):
    qb = qbo.qb
    email = EmailAddress()
    email.Address = "billing@acme.test"
    created = _customer(qb, PrimaryEmailAddr=email, CompanyName="Acme")
    assert created.Id and created.SyncToken == "0" and created.Active is True
    assert created.FullyQualifiedName == "Acme Ltd" and created.MetaData["CreateTime"]
    read = Customer.get(created.Id, qb=qb)
    assert read.PrimaryEmailAddr.Address == "billing@acme.test"

    # python-quickbooks sends every attribute (unset ones as ""), so a sparse update is made
    # from the object read back, with sparse switched on.
    read.sparse = True
    read.Notes = "VIP"
    updated = read.save(qb=qb)
    assert updated.SyncToken == "1" and updated.Notes == "VIP"

    full = Customer.get(created.Id, qb=qb)
    full.PrimaryEmailAddr = None  # a full update clears what is not sent
    full.CompanyName = "Acme Holdings"
    saved = full.save(qb=qb)
    assert saved.SyncToken == "2" and saved.CompanyName == "Acme Holdings"
    assert saved.PrimaryEmailAddr is None and saved.DisplayName == "Acme Ltd"


def test_customer_display_name_derived_and_required(qbo):
    customer = Customer()
    customer.GivenName, customer.FamilyName = "Ada", "Lovelace"
    assert customer.save(qb=qbo.qb).DisplayName == "Ada Lovelace"
    with pytest.raises(ValidationException) as missing:
        Customer().save(qb=qbo.qb)
    assert missing.value.error_code == 2020


def test_duplicate_display_name_is_fault_6240(qbo):
    first = _customer(qbo.qb, "Duplicate Co")
    with pytest.raises(QuickbooksException) as duplicate:
        _customer(qbo.qb, "duplicate  co")
    assert duplicate.value.error_code == 6240
    assert duplicate.value.message == "Duplicate Name Exists Error"
    assert f"Id={first.Id}" in duplicate.value.detail


def test_stale_sync_token_is_fault_5010(qbo):
    customer = _customer(qbo.qb, "Stale Co")
    copy_a = Customer.get(customer.Id, qb=qbo.qb)
    copy_b = Customer.get(customer.Id, qb=qbo.qb)
    copy_a.Notes = "first writer"
    copy_a.save(qb=qbo.qb)
    copy_b.Notes = "second writer"
    with pytest.raises(QuickbooksException) as stale:
        copy_b.save(qb=qbo.qb)
    assert stale.value.error_code == 5010 and stale.value.message == "Stale Object Error"
    fresh = Customer.get(customer.Id, qb=qbo.qb)  # re-read, re-apply, retry
    fresh.Notes = "second writer"
    assert fresh.save(qb=qbo.qb).Notes == "second writer"


def test_missing_object_is_fault_610(qbo):
    with pytest.raises(ObjectNotFoundException) as missing:
        Invoice.get(999, qb=qbo.qb)
    assert missing.value.error_code == 610


def test_unknown_property_is_fault_2010(qbo):
    customer = Customer()
    customer.DisplayName = "Strict Co"
    customer.NoSuchField = "x"
    with pytest.raises(ValidationException) as invalid:
        customer.save(qb=qbo.qb)
    assert invalid.value.error_code == 2010 and "NoSuchField" in invalid.value.detail


def test_inactive_customer_gets_deleted_suffix_and_leaves_default_queries(qbo):
    customer = _customer(qbo.qb, "Gone Ltd")
    customer.Active = False
    saved = customer.save(qb=qbo.qb)
    assert saved.DisplayName == "Gone Ltd (deleted)"
    assert Customer.filter(DisplayName="Gone Ltd (deleted)", qb=qbo.qb) == []
    assert len(Customer.where("Active = false", qb=qbo.qb)) == 1
    assert _customer(qbo.qb, "Gone Ltd").Id != saved.Id  # the name is free again


def test_list_entities_create_and_update(qbo):
    qb = qbo.qb
    income = Account.filter(Name="Services", qb=qb)[0]
    item = Item()
    item.Name, item.Type, item.UnitPrice = "Workshop day", "Service", 900
    item.IncomeAccountRef = income.to_ref()
    item = item.save(qb=qb)
    assert item.FullyQualifiedName == "Workshop day" and item.IncomeAccountRef.name == "Services"

    account = Account()
    account.Name, account.AccountType, account.AccountSubType = "Savings", "Bank", "Savings"
    account = account.save(qb=qb)
    assert account.Classification == "Asset"

    tracking = Class()
    tracking.Name = "Audit"
    tracking = tracking.save(qb=qb)
    department = Department()
    department.Name = "Leeds"
    department = department.save(qb=qb)
    term = Term()
    term.Name, term.DueDays = "Net 45", 45
    term = term.save(qb=qb)
    term.DueDays = 40
    assert term.save(qb=qb).DueDays == 40
    assert {c.Name for c in Class.all(qb=qb)} >= {"Audit", "Consulting"}
    assert Department.get(department.Id, qb=qb).FullyQualifiedName == "Leeds"

    no_income = Item()
    no_income.Name, no_income.Type = "Orphan", "Service"
    with pytest.raises(ValidationException) as missing:
        no_income.save(qb=qb)
    assert missing.value.error_code == 2020


def test_tax_codes_and_rates_are_read_only_lists(qbo):
    qb = qbo.qb
    standard = _tax_code(qb, "20.0% S")
    rate_id = standard.SalesTaxRateList.TaxRateDetail[0].TaxRateRef.value
    assert TaxRate.get(rate_id, qb=qb).RateValue == 20
    assert {c.Name for c in TaxCode.all(qb=qb)} >= {"20.0% S", "0.0% Z", "No VAT"}


def test_invoice_amounts_tax_discount_and_due_date(qbo):
    qb = qbo.qb
    term = Term.filter(Name="Net 30", qb=qb)[0]
    customer = _customer(qb, "Taxed Ltd", SalesTermRef=term.to_ref())
    discount = DiscountLine()
    discount.DiscountLineDetail = DiscountLineDetail()
    discount.DiscountLineDetail.PercentBased = True
    discount.DiscountLineDetail.DiscountPercent = 10
    invoice = _invoice(qb, customer, _line(qb, qty=3, price="33.33"),
                       _line(qb, amount="10.05", tax="5.0% R"),
                       _line(qb, amount=50, tax="No VAT"), discount,
                       TxnDate="2026-03-01", ApplyTaxAfterDiscount=True)
    # Lines: 99.99 (20%), 10.05 (5%), 50 (no VAT) = 160.04; discount 10% = 16.00
    assert [line.Amount for line in invoice.Line] == [99.99, 10.05, 50, 16.0, 160.04]
    assert invoice.Line[-1].DetailType == "SubTotalLineDetail"
    # Tax per rate on the discounted net: 99.99*0.9 = 89.991 -> 18.00; 10.05*0.9 -> 0.45
    taxes = {t.TaxLineDetail.TaxPercent: t.Amount for t in invoice.TxnTaxDetail.TaxLine}
    assert taxes == {20: 18.0, 5: 0.45}
    assert invoice.TxnTaxDetail.TotalTax == 18.45
    assert invoice.TotalAmt == 162.49 == invoice.Balance  # 160.04 - 16.00 + 18.45
    assert invoice.DueDate == "2026-03-31" and invoice.DocNumber == "1001"
    assert invoice.CustomerRef.name == "Taxed Ltd"


def test_invoice_tax_inclusive_and_required_fields(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Gross Ltd")
    gross = _invoice(qb, customer, _line(qb, amount=120), GlobalTaxCalculation="TaxInclusive")
    assert gross.TotalAmt == 120 and gross.TxnTaxDetail.TotalTax == 20
    with pytest.raises(ValidationException) as no_lines:
        _invoice(qb, customer)
    assert no_lines.value.error_code == 2020 and "Line" in no_lines.value.detail
    bad_ref = Ref()
    bad_ref.value = "999"
    invoice = Invoice()
    invoice.CustomerRef = bad_ref
    invoice.Line = [_line(qb, amount=1)]
    with pytest.raises(ValidationException) as invalid:
        invoice.save(qb=qb)
    assert invalid.value.error_code == 2500


def test_invoice_sparse_update_and_full_update_recompute(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Update Ltd")
    invoice = _invoice(qb, customer, _line(qb, amount=100))
    assert invoice.TotalAmt == 120
    invoice.sparse = True
    invoice.PrivateNote = "PO 42"
    updated = invoice.save(qb=qb)
    assert updated.PrivateNote == "PO 42" and updated.TotalAmt == 120
    updated.Line = [_line(qb, amount=200, tax="0.0% Z")]
    full = updated.save(qb=qb)
    assert full.TotalAmt == 200 and full.SyncToken == "2" and full.DocNumber == invoice.DocNumber


def test_invoice_void_and_delete(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Void Ltd")
    invoice = _invoice(qb, customer, _line(qb, amount=100))
    invoice.void(qb=qb)
    voided = Invoice.get(invoice.Id, qb=qb)
    assert voided.TotalAmt == 0 and voided.Balance == 0 and voided.PrivateNote == "Voided"
    other = _invoice(qb, customer, _line(qb, amount=10))
    assert other.delete(qb=qb)["Invoice"]["status"] == "Deleted"
    with pytest.raises(ObjectNotFoundException):
        Invoice.get(other.Id, qb=qb)


def test_credit_memo_create_and_delete(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Credit Ltd")
    memo = CreditMemo()
    memo.CustomerRef = customer.to_ref()
    memo.Line = [_line(qb, amount=50)]
    memo = memo.save(qb=qb)
    assert memo.TotalAmt == 60 and memo.RemainingCredit == 60 and memo.Balance == 60
    assert Customer.get(customer.Id, qb=qb).Balance == -60
    memo.delete(qb=qb)
    assert CreditMemo.filter(qb=qb) == []


def test_unsupported_operations(qbo):
    customer = _customer(qbo.qb, "Undeletable Ltd")
    with pytest.raises(UnsupportedException) as unsupported:
        qbo.qb.delete_object("Customer", '{"Id": "%s", "SyncToken": "0"}' % customer.Id)
    assert unsupported.value.error_code == 500
    code = _tax_code(qbo.qb, "No VAT")
    with pytest.raises(UnsupportedException):
        qbo.qb.create_object("TaxCode", code.to_json())


def test_minorversion_is_accepted(qbo):
    qb = qbo.qb
    for version in (4, 65, 75, 999):
        qb.minorversion = version
        assert Customer.all(qb=qb) == []
    qb.minorversion = "abc"
    with pytest.raises(ValidationException) as invalid:
        Customer.all(qb=qb)
    assert invalid.value.error_code == 2010


def test_total_tax_sent_alone_overrides_the_computed_tax(qbo):
    from quickbooks.objects.tax import TxnTaxDetail

    qb = qbo.qb
    customer = _customer(qb, "Override Ltd")
    detail = TxnTaxDetail()
    detail.TotalTax = 20.01
    detail.TaxLine = []
    invoice = _invoice(qb, customer, _line(qb, amount=100), TxnTaxDetail=detail)
    # 20% of 100 is 20.00; the transaction says 20.01 (its own rounding)
    assert invoice.TxnTaxDetail.TotalTax == 20.01 and invoice.TotalAmt == 120.01
    tax_line = invoice.TxnTaxDetail.TaxLine[0]
    assert tax_line.Amount == 20.01
    # a sparse update that does not speak of tax keeps it
    invoice.sparse = True
    invoice.TxnTaxDetail = None
    invoice.PrivateNote = "PO 7"
    kept = invoice.save(qb=qb)
    assert kept.TxnTaxDetail.TotalTax == 20.01 and kept.TotalAmt == 120.01
    # a company with sales tax off ignores the tax detail and computes none
    qbo.server.app.realms[qb.company_id].using_sales_tax = False
    untaxed = _invoice(qb, customer, _line(qb, amount=100), TxnTaxDetail=detail)
    assert untaxed.TxnTaxDetail.TotalTax == 0 and untaxed.TotalAmt == 100


def test_us_style_tax_placeholders(qbo):
    from quickbooks.objects.tax import TxnTaxDetail

    qb = qbo.qb
    customer = _customer(qb, "US Style Inc")
    taxed, untaxed = _line(qb, amount=100, tax=None), _line(qb, amount=50, tax=None)
    taxed.SalesItemLineDetail.TaxCodeRef = Ref()
    taxed.SalesItemLineDetail.TaxCodeRef.value = "TAX"
    untaxed.SalesItemLineDetail.TaxCodeRef = Ref()
    untaxed.SalesItemLineDetail.TaxCodeRef.value = "NON"
    detail = TxnTaxDetail()
    detail.TxnTaxCodeRef = _tax_code(qb, "5.0% R").to_ref()
    invoice = _invoice(qb, customer, taxed, untaxed, TxnTaxDetail=detail)
    assert invoice.TxnTaxDetail.TotalTax == 5 and invoice.TotalAmt == 155
    assert invoice.TxnTaxDetail.TxnTaxCodeRef.name == "5.0% R"
