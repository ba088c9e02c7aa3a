"""Xero Accounting API emulation driven only through xero-python's AccountingApi."""

import datetime as dt
import json
from decimal import Decimal

import pytest
import requests
from xero_python.accounting import (
    Account,
    Allocation,
    Allocations,
    BankTransaction,
    BankTransactions,
    Contact,
    Contacts,
    CreditNote,
    CreditNotes,
    Invoice,
    Invoices,
    Item,
    Items,
    LineAmountTypes,
    LineItem,
    LineItemTracking,
    Payment,
    PaymentDelete,
    Payments,
    TrackingCategory,
    TrackingOption,
)
from xero_python.exceptions import AccountingBadRequestException, NotFoundException


def make_contact(xero, name="Acme Ltd", email="billing@acme.test"):
    """Create one contact through the SDK and return it."""
    made = xero.accounting.create_contacts(
        xero.tenant_id, Contacts(contacts=[Contact(name=name, email_address=email)]))
    return made.contacts[0]


def make_invoice(xero, contact_id, status="AUTHORISED", lines=None, **fields):
    """Create one ACCREC invoice through the SDK and return it."""
    fields.setdefault("date", dt.date(2024, 3, 1))
    invoice = Invoice(type="ACCREC", contact=Contact(contact_id=contact_id),
                      due_date=dt.date(2024, 3, 31), status=status,
                      line_items=lines or [LineItem(description="Advisory", quantity=2,
                                                    unit_amount=100, account_code="210",
                                                    tax_type="OUTPUT2")], **fields)
    return xero.accounting.create_invoices(xero.tenant_id, Invoices(invoices=[invoice])).invoices[0]


def test_settings_reads(xero):
    tenant = xero.tenant_id
    org = xero.accounting.get_organisations(tenant).organisations[0]
    assert org.organisation_id == tenant and org.base_currency.value == "NZD"
    accounts = xero.accounting.get_accounts(tenant, where='Type=="BANK"').accounts
    assert {a.code for a in accounts} == {"090", "091"}
    ordered = xero.accounting.get_accounts(tenant, order="Code DESC").accounts
    assert ordered[0].code > ordered[-1].code
    rates = xero.accounting.get_tax_rates(tenant).tax_rates
    assert {"OUTPUT2", "NONE"} <= {r.tax_type for r in rates}
    items = xero.accounting.get_items(tenant, where='Code=="RETAINER"').items
    assert items[0].sales_details.unit_price == Decimal("2500.0")
    tracking = xero.accounting.get_tracking_categories(tenant).tracking_categories
    assert {t.name for t in tracking} == {"Department", "Region"}
    one = xero.accounting.get_tracking_category(tenant, tracking[0].tracking_category_id)
    assert len(one.tracking_categories[0].options) >= 2


def test_create_items_and_tracking(xero):
    tenant = xero.tenant_id
    made = xero.accounting.create_items(tenant, Items(items=[Item(code="AUDIT", name="Audit")]))
    assert made.items[0].item_id
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_items(tenant, Items(items=[Item(code="AUDIT", name="Again")]))
    assert "already exists" in caught.value.reason
    category = xero.accounting.get_tracking_categories(tenant).tracking_categories[0]
    option = xero.accounting.create_tracking_options(
        tenant, category.tracking_category_id, TrackingOption(name="Forensic"))
    assert option.options[0].name == "Forensic"
    with pytest.raises(AccountingBadRequestException):  # Xero: max two active categories
        xero.accounting.create_tracking_category(tenant, TrackingCategory(name="Third"))


def test_contacts_create_update_get_list_and_unique_name(xero):
    tenant = xero.tenant_id
    contact = make_contact(xero)
    assert contact.contact_status == "ACTIVE"
    assert isinstance(contact.updated_date_utc, dt.datetime)  # /Date(ms+0000)/ parsed
    updated = xero.accounting.update_contact(
        tenant, contact.contact_id, Contacts(contacts=[Contact(email_address="ap@acme.test")]))
    assert updated.contacts[0].email_address == "ap@acme.test"
    assert xero.accounting.get_contact(tenant, contact.contact_id).contacts[0].name == "Acme Ltd"
    make_contact(xero, "Globex")
    found = xero.accounting.get_contacts(tenant, where='Name.Contains("acme")').contacts
    assert [c.name for c in found] == ["Acme Ltd"]
    assert len(xero.accounting.get_contacts(tenant, i_ds=[contact.contact_id]).contacts) == 1
    assert [c.name for c in xero.accounting.get_contacts(tenant, search_term="glob").contacts] \
        == ["Globex"]
    with pytest.raises(AccountingBadRequestException) as caught:
        make_contact(xero, "ACME LTD")
    error = caught.value
    assert error.status == 400
    assert error.error_data["Type"] == "ValidationException"
    assert "already assigned to another contact" in error.reason
    with pytest.raises(AccountingBadRequestException) as caught:
        make_contact(xero, "Bad Email", "not-an-email")
    assert caught.value.reason == "Email address must be valid."
    with pytest.raises(NotFoundException):
        xero.accounting.get_contact(tenant, "00000000-0000-0000-0000-000000000000")


def test_invoice_totals_tax_rounded_per_line(xero):
    contact = make_contact(xero)
    lines = [LineItem(description="a", quantity=3, unit_amount=33.33, account_code="210",
                      tax_type="OUTPUT2"),
             LineItem(description="b", quantity=1, unit_amount=0.05, account_code="210",
                      tax_type="OUTPUT2"),
             LineItem(description="c", quantity=1, unit_amount=10, account_code="210",
                      tax_type="NONE", discount_rate=10)]
    invoice = make_invoice(xero, contact.contact_id, lines=lines)
    # 99.99 * 15% = 14.9985 -> 15.00; 0.05 * 15% = 0.0075 -> 0.01 (per line, then summed)
    assert [li.tax_amount for li in invoice.line_items] == [Decimal("15.0"), Decimal("0.01"),
                                                            Decimal("0.0")]
    assert invoice.sub_total == Decimal("109.04") and invoice.total_tax == Decimal("15.01")
    assert invoice.total == Decimal("124.05") and invoice.amount_due == Decimal("124.05")
    assert invoice.total_discount == Decimal("1.0")
    assert invoice.invoice_number == "INV-0001" and invoice.date == dt.date(2024, 3, 1)
    inclusive = make_invoice(xero, contact.contact_id, line_amount_types=LineAmountTypes.INCLUSIVE,
                             lines=[LineItem(description="i", quantity=1, unit_amount=115,
                                             account_code="210", tax_type="OUTPUT2")])
    assert (inclusive.sub_total, inclusive.total_tax, inclusive.total) == (
        Decimal("100.0"), Decimal("15.0"), Decimal("115.0"))


def test_invoice_line_tax_amount_sent_is_kept(xero):
    # "This value can be overriden if the calculated <TaxAmount> is not correct"
    contact = make_contact(xero)
    lines = [LineItem(description="a", quantity=1, unit_amount=0.05, account_code="210",
                      tax_type="OUTPUT2", tax_amount=0),
             LineItem(description="b", quantity=1, unit_amount=0.05, account_code="210",
                      tax_type="OUTPUT2")]
    invoice = make_invoice(xero, contact.contact_id, lines=lines)
    assert [li.tax_amount for li in invoice.line_items] == [Decimal("0.0"), Decimal("0.01")]
    assert (invoice.total_tax, invoice.total) == (Decimal("0.01"), Decimal("0.11"))


def test_invoice_validation_errors(xero):
    contact = make_contact(xero)
    cases = [
        ({"line_items": [LineItem(description="x", unit_amount=1, account_code="999")]},
         "Account code '999' is not a valid code for this document."),
        ({"line_items": [LineItem(description="x", unit_amount=1, account_code="210",
                                   tax_type="BOGUS")]},
         "The TaxType code 'BOGUS' does not exist or cannot be used for this type of "
         "transaction."),
        ({"line_items": [LineItem(description="x", unit_amount=1, account_code="210",
                                   tracking=[LineItemTracking(name="Department",
                                                              option="Nope")])]},
         "The tracking option 'Nope' does not exist for tracking category 'Department'."),
    ]
    for fields, message in cases:
        with pytest.raises(AccountingBadRequestException) as caught:
            xero.accounting.create_invoices(xero.tenant_id, Invoices(invoices=[Invoice(
                type="ACCREC", contact=Contact(contact_id=contact.contact_id),
                due_date=dt.date(2024, 4, 1), status="AUTHORISED", **fields)]))
        assert caught.value.reason == message
    make_invoice(xero, contact.contact_id, invoice_number="INV-DUP")
    with pytest.raises(AccountingBadRequestException) as caught:
        make_invoice(xero, contact.contact_id, invoice_number="INV-DUP")
    assert caught.value.reason == "Invoice # must be unique."


def test_invoice_tracking_and_item_defaults(xero):
    contact = make_contact(xero)
    invoice = make_invoice(xero, contact.contact_id, lines=[LineItem(
        item_code="RETAINER", quantity=1,
        tracking=[LineItemTracking(name="Department", option="Advisory")])])
    line = invoice.line_items[0]
    assert (line.account_code, line.tax_type, line.unit_amount) == ("220", "OUTPUT2",
                                                                    Decimal("2500.0"))
    assert line.tracking[0].option == "Advisory"


def test_invoice_update_status_and_void(xero):
    tenant = xero.tenant_id
    contact = make_contact(xero)
    draft = make_invoice(xero, contact.contact_id, status="DRAFT")
    changed = xero.accounting.update_invoice(tenant, draft.invoice_id, Invoices(invoices=[
        Invoice(reference="PO-7", status="AUTHORISED")])).invoices[0]
    assert (changed.reference, changed.status) == ("PO-7", "AUTHORISED")
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.update_invoice(tenant, draft.invoice_id,
                                       Invoices(invoices=[Invoice(status="DRAFT")]))
    assert "not of valid status" in caught.value.reason
    voided = xero.accounting.update_invoice(tenant, draft.invoice_id,
                                            Invoices(invoices=[Invoice(status="VOIDED")]))
    assert voided.invoices[0].status == "VOIDED"
    with pytest.raises(AccountingBadRequestException):
        xero.accounting.update_invoice(tenant, draft.invoice_id,
                                       Invoices(invoices=[Invoice(reference="late")]))


def test_invoice_filters_as_the_sdk_sends_them(xero, xero_clock):
    tenant = xero.tenant_id
    acme, globex = make_contact(xero), make_contact(xero, "Globex")
    first = make_invoice(xero, acme.contact_id, status="DRAFT")
    xero_clock.advance(minutes=5)
    cutoff = xero_clock.now
    second = make_invoice(xero, globex.contact_id, reference="Retainer March")
    third = make_invoice(xero, acme.contact_id, date=dt.date(2024, 3, 20))
    get = xero.accounting.get_invoices
    assert [i.invoice_id for i in get(tenant, statuses=["DRAFT"]).invoices] == [first.invoice_id]
    assert {i.invoice_id for i in get(tenant, i_ds=[first.invoice_id, third.invoice_id]).invoices} \
        == {first.invoice_id, third.invoice_id}
    assert len(get(tenant, contact_i_ds=[acme.contact_id]).invoices) == 2
    assert [i.invoice_number for i in get(tenant, invoice_numbers=["INV-0002"]).invoices] \
        == ["INV-0002"]
    where = f'Contact.ContactID==guid("{globex.contact_id}") AND Status=="AUTHORISED"'
    assert [i.invoice_id for i in get(tenant, where=where).invoices] == [second.invoice_id]
    assert len(get(tenant, where="AmountDue>=230 AND Date>=DateTime(2024,03,01)").invoices) == 3
    ordered = get(tenant, order="InvoiceNumber DESC").invoices
    assert [i.invoice_number for i in ordered] == ["INV-0003", "INV-0002", "INV-0001"]
    since = get(tenant, if_modified_since=cutoff).invoices
    assert {i.invoice_id for i in since} == {second.invoice_id, third.invoice_id}
    paged = get(tenant, page=2, page_size=2)
    assert len(paged.invoices) == 1 and paged.pagination.page_count == 2
    assert paged.invoices[0].line_items  # paged lists carry line items
    assert not get(tenant).invoices[0].line_items  # unpaged lists do not (as Xero)
    assert get(tenant, search_term="retainer").invoices[0].invoice_id == second.invoice_id
    with pytest.raises(AccountingBadRequestException) as caught:
        get(tenant, where="Status=")
    assert caught.value.error_data["Type"] == "QueryParseException"


def test_batch_create_summarize_errors_true_and_false(xero):
    tenant = xero.tenant_id
    contact = make_contact(xero)

    def batch():
        good = Invoice(type="ACCREC", contact=Contact(contact_id=contact.contact_id),
                       line_items=[LineItem(description="ok", unit_amount=10,
                                            account_code="210")])
        bad = Invoice(type="ACCREC", contact=Contact(contact_id=contact.contact_id),
                      line_items=[LineItem(description="bad", unit_amount=10,
                                           account_code="999")])
        return Invoices(invoices=[good, bad])

    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_invoices(tenant, batch())
    elements = caught.value.error_data["Elements"]
    assert len(elements) == 1 and elements[0]["HasErrors"] is True
    assert elements[0]["ValidationErrors"][0]["Message"].startswith("Account code '999'")
    mixed = xero.accounting.create_invoices(tenant, batch(), summarize_errors=False).invoices
    assert [i.status_attribute_string for i in mixed] == ["OK", "ERROR"]
    assert mixed[0].invoice_id and mixed[1].validation_errors[0].message
    # Valid elements of a summarized batch are saved too (Xero's behaviour).
    assert len(xero.accounting.get_invoices(tenant).invoices) == 2
    # Batch update via POST: update one by InvoiceID, create another.
    first = mixed[0]
    result = xero.accounting.update_or_create_invoices(tenant, Invoices(invoices=[
        Invoice(invoice_id=first.invoice_id, reference="updated"),
        Invoice(type="ACCREC", contact=Contact(name="New By Name"),
                line_items=[LineItem(description="n", unit_amount=5, account_code="210")]),
    ]), summarize_errors=False).invoices
    assert result[0].reference == "updated" and result[1].contact.name == "New By Name"
    assert xero.accounting.get_contacts(tenant, where='Name=="New By Name"').contacts


def test_payments_partial_full_delete_and_locked_edits(xero):
    tenant = xero.tenant_id
    invoice = make_invoice(xero, make_contact(xero).contact_id)  # total 230.00
    partial = xero.accounting.create_payment(tenant, Payment(
        invoice=Invoice(invoice_id=invoice.invoice_id), account=Account(code="090"),
        amount=30, date=dt.date(2024, 3, 5), reference="part")).payments[0]
    after = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices[0]
    assert (after.amount_paid, after.amount_due, after.status) == (
        Decimal("30.0"), Decimal("200.0"), "AUTHORISED")
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.update_invoice(tenant, invoice.invoice_id, Invoices(invoices=[Invoice(
            line_items=[LineItem(description="changed", unit_amount=1, account_code="210")])]))
    assert caught.value.reason == ("This document cannot be edited as it has a payment or "
                                   "credit note allocated to it.")
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_payment(tenant, Payment(
            invoice=Invoice(invoice_id=invoice.invoice_id), account=Account(code="090"),
            amount=500))
    assert "exceeds the amount outstanding" in caught.value.reason
    with pytest.raises(AccountingBadRequestException):
        xero.accounting.create_payment(tenant, Payment(
            invoice=Invoice(invoice_id=invoice.invoice_id), account=Account(code="200"),
            amount=1))
    full = xero.accounting.create_payments(tenant, Payments(payments=[Payment(
        invoice=Invoice(invoice_id=invoice.invoice_id), account=Account(code="090"),
        amount=200, date=dt.date(2024, 3, 9))])).payments[0]
    paid = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices[0]
    assert (paid.status, paid.amount_due, paid.fully_paid_on_date) == (
        "PAID", Decimal("0.0"), dt.date(2024, 3, 9))
    assert len(xero.accounting.get_payments(tenant, where='Reference=="part"').payments) == 1
    deleted = xero.accounting.delete_payment(tenant, full.payment_id, PaymentDelete())
    assert deleted.payments[0].status == "DELETED"
    reopened = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices[0]
    assert (reopened.status, reopened.amount_due) == ("AUTHORISED", Decimal("200.0"))
    assert [p.payment_id for p in reopened.payments] == [partial.payment_id]


def test_credit_note_allocation(xero):
    tenant = xero.tenant_id
    contact = make_contact(xero)
    invoice = make_invoice(xero, contact.contact_id)  # 230.00
    note = xero.accounting.create_credit_notes(tenant, CreditNotes(credit_notes=[CreditNote(
        type="ACCRECCREDIT", contact=Contact(contact_id=contact.contact_id), status="AUTHORISED",
        line_items=[LineItem(description="goodwill", quantity=1, unit_amount=40,
                             account_code="210", tax_type="OUTPUT2")])])).credit_notes[0]
    assert note.total == Decimal("46.0") and note.remaining_credit == Decimal("46.0")
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_credit_note_allocation(tenant, note.credit_note_id, Allocations(
            allocations=[Allocation(invoice=Invoice(invoice_id=invoice.invoice_id), amount=50,
                                    date=dt.date(2024, 3, 2))]))
    assert "remaining credit" in caught.value.reason
    made = xero.accounting.create_credit_note_allocation(
        tenant, note.credit_note_id, Allocations(allocations=[Allocation(
            invoice=Invoice(invoice_id=invoice.invoice_id), amount=46,
            date=dt.date(2024, 3, 2))]))
    assert made.allocations[0].amount == Decimal("46.0")
    after = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices[0]
    assert (after.amount_credited, after.amount_due) == (Decimal("46.0"), Decimal("184.0"))
    assert after.credit_notes[0].credit_note_id == note.credit_note_id
    spent = xero.accounting.get_credit_note(tenant, note.credit_note_id).credit_notes[0]
    assert (spent.status, spent.remaining_credit) == ("PAID", Decimal("0.0"))
    listed = xero.accounting.get_credit_notes(tenant, where='Status=="PAID"').credit_notes
    assert [c.credit_note_id for c in listed] == [note.credit_note_id]


# --------------------------------------------------------------------------- overpayments
def make_overpayment(xero, contact_id, amount, key=None, **fields):
    """A RECEIVE-OVERPAYMENT bank transaction (bank 090, one NoTax line) made through the SDK,
    as Xero's API makes an overpayment; the answered BankTransaction."""
    fields.setdefault("date", dt.date(2024, 3, 5))
    transaction = BankTransaction(
        type="RECEIVE-OVERPAYMENT", contact=Contact(contact_id=contact_id),
        bank_account=Account(code="090"), line_amount_types=LineAmountTypes("NoTax"),
        line_items=[LineItem(description="Paid twice", line_amount=amount)], **fields)
    options = {"idempotency_key": key} if key else {}
    return xero.accounting.create_bank_transactions(
        xero.tenant_id, BankTransactions(bank_transactions=[transaction]),
        **options).bank_transactions[0]


def allocate(xero, overpayment_id, invoice_id, amount, day=dt.date(2024, 3, 6)):
    """PUT Overpayments/{id}/Allocations of one allocation; the answered Allocation."""
    return xero.accounting.create_overpayment_allocations(
        xero.tenant_id, overpayment_id, Allocations(allocations=[Allocation(
            invoice=Invoice(invoice_id=invoice_id), amount=amount, date=day)])).allocations[0]


def test_overpayment_made_through_bank_transactions(xero_sandbox, xero):
    tenant = xero.tenant_id
    contact = make_contact(xero)
    made = make_overpayment(xero, contact.contact_id, 150, reference="REF1", key="op-1")
    assert (made.type, made.status, made.total) == ("RECEIVE-OVERPAYMENT", "AUTHORISED",
                                                    Decimal("150.0"))
    assert made.bank_account.code == "090" and made.bank_transaction_id
    # the line goes to Accounts Receivable, without tax, whatever was sent
    line = made.line_items[0]
    assert (line.account_code, line.tax_type, line.line_amount, line.tax_amount) == (
        "610", "NONE", Decimal("150.0"), Decimal("0.0"))
    # replayed under its key: the same answer, nothing made twice
    again = make_overpayment(xero, contact.contact_id, 150, reference="REF1", key="op-1")
    assert again.overpayment_id == made.overpayment_id
    assert len(xero_sandbox.app.ledger().overpayments) == 1

    (overpayment,) = xero.accounting.get_overpayment(tenant, made.overpayment_id).overpayments
    assert (overpayment.type, overpayment.status, overpayment.total,
            overpayment.remaining_credit, overpayment.reference) == (
        "RECEIVE-OVERPAYMENT", "AUTHORISED", Decimal("150.0"), Decimal("150.0"), "REF1")
    assert (overpayment.contact.contact_id, overpayment.date) == (contact.contact_id,
                                                                  dt.date(2024, 3, 5))
    assert overpayment.line_amount_types == LineAmountTypes("NoTax")
    assert len(overpayment.line_items) == 1 and overpayment.allocations == []
    (transaction,) = xero.accounting.get_bank_transaction(
        tenant, made.bank_transaction_id).bank_transactions
    assert transaction.overpayment_id == made.overpayment_id
    # the API updates no overpayment (nor voids it): a bookkeeper does, in Xero
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.update_bank_transaction(
            tenant, made.bank_transaction_id, BankTransactions(bank_transactions=[
                BankTransaction(type="RECEIVE-OVERPAYMENT", status="DELETED",
                                bank_account=Account(code="090"), line_items=[])]))
    assert "cannot be updated" in caught.value.body.decode()
    with pytest.raises(NotFoundException):
        xero.accounting.get_overpayment(tenant, made.bank_transaction_id[:8] + "-nope")


@pytest.mark.parametrize("change, words", [
    ({"type": "RECEIVE"}, "RECEIVE-OVERPAYMENT bank transactions only"),
    ({"type": "SPEND-OVERPAYMENT"}, "RECEIVE-OVERPAYMENT bank transactions only"),
    ({"line_amount_types": LineAmountTypes("Exclusive")}, "LineAmountTypes must be NoTax"),
    ({"bank_account": Account(code="200")}, "not a bank account"),
    ({"line_items": [LineItem(description="a", line_amount=1),
                     LineItem(description="b", line_amount=2)]}, "single line item"),
    ({"line_items": [LineItem(description="none", line_amount=0)]}, "greater than zero"),
    ({"line_items": [LineItem(item_code="RETAINER", line_amount=5)]}, "ItemCode"),
])
def test_bank_transactions_refused(xero, change, words):
    contact = make_contact(xero)
    fields = {"type": "RECEIVE-OVERPAYMENT", "contact": Contact(contact_id=contact.contact_id),
              "bank_account": Account(code="090"),
              "line_amount_types": LineAmountTypes("NoTax"),
              "line_items": [LineItem(description="x", line_amount=10)], **change}
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_bank_transactions(xero.tenant_id, BankTransactions(
            bank_transactions=[BankTransaction(**fields)]))
    assert words in caught.value.body.decode()


def test_bank_transactions_summarize_errors_false_saves_the_valid_ones(xero):
    contact = make_contact(xero)
    good = BankTransaction(type="RECEIVE-OVERPAYMENT", contact=Contact(
        contact_id=contact.contact_id), bank_account=Account(code="091"),
        line_items=[LineItem(description="x", line_amount=10)])
    bad = BankTransaction(type="SPEND", contact=Contact(contact_id=contact.contact_id),
                          bank_account=Account(code="090"),
                          line_items=[LineItem(description="x", line_amount=10)])
    answer = xero.accounting.create_bank_transactions(
        xero.tenant_id, BankTransactions(bank_transactions=[good, bad]),
        summarize_errors=False).bank_transactions
    assert [a.status_attribute_string for a in answer] == ["OK", "ERROR"]
    assert answer[0].overpayment_id and answer[1].validation_errors
    # no LineAmountTypes sent: NoTax, as every overpayment
    (made,) = xero.accounting.get_overpayment(xero.tenant_id,
                                              answer[0].overpayment_id).overpayments
    assert made.line_amount_types == LineAmountTypes("NoTax") and made.total == Decimal("10.0")


def test_overpayment_allocations(xero_sandbox, xero, xero_clock):
    app, tenant = xero_sandbox.app, xero.tenant_id
    contact = make_contact(xero)
    invoice = make_invoice(xero, contact.contact_id)                     # 230.00
    second = make_invoice(xero, contact.contact_id)                      # 230.00
    made = make_overpayment(xero, contact.contact_id, 300)
    other = make_invoice(xero, make_contact(xero, "Other Ltd", "x@other.test").contact_id)
    for target, amount, words in (
            (invoice, 250, "greater than amount outstanding"),
            (other, 10, "same contact"),
            (second, 0, "greater than zero")):
        with pytest.raises(AccountingBadRequestException) as caught:
            allocate(xero, made.overpayment_id, target.invoice_id, amount)
        assert words in caught.value.body.decode()
    xero_clock.advance(minutes=1)
    done = allocate(xero, made.overpayment_id, invoice.invoice_id, 230)
    assert done.amount == Decimal("230.0") and done.allocation_id
    assert (done.invoice.invoice_id, done.overpayment.overpayment_id) == (
        invoice.invoice_id, made.overpayment_id)
    # the invoice: paid, its AmountCredited, the overpayment in its Overpayments
    (paid,) = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices
    assert (paid.status, paid.amount_due, paid.amount_credited, paid.amount_paid) == (
        "PAID", Decimal("0.0"), Decimal("230.0"), Decimal("0.0"))
    (listed,) = paid.overpayments
    assert (listed.overpayment_id, listed.applied_amount) == (made.overpayment_id,
                                                              Decimal("230.0"))
    assert paid.payments == [] and paid.credit_notes == []
    (overpayment,) = xero.accounting.get_overpayment(tenant, made.overpayment_id).overpayments
    assert (overpayment.status, overpayment.remaining_credit) == ("AUTHORISED",
                                                                  Decimal("70.0"))
    assert [a.invoice.invoice_id for a in overpayment.allocations] == [invoice.invoice_id]
    # both moved: the overpayment's and the invoice's UpdatedDateUTC
    ledger = app.ledger()
    stamp = ledger.overpayments[made.overpayment_id]["UpdatedDateUTC"]
    assert stamp == ledger.invoices[invoice.invoice_id]["UpdatedDateUTC"] == ledger.now()
    with pytest.raises(AccountingBadRequestException) as caught:  # paid off already
        allocate(xero, made.overpayment_id, invoice.invoice_id, 1)
    assert "already been paid off" in caught.value.body.decode()
    with pytest.raises(AccountingBadRequestException) as caught:
        allocate(xero, made.overpayment_id, second.invoice_id, 80)
    assert "remaining credit" in caught.value.body.decode()
    # an invoice an overpayment is allocated to is locked as a paid one is
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.update_invoice(tenant, invoice.invoice_id, Invoices(invoices=[
            Invoice(status="VOIDED")]))
    assert "allocated" in caught.value.body.decode()

    # the rest of its credit: PAID
    allocate(xero, made.overpayment_id, second.invoice_id, 70)
    (spent,) = xero.accounting.get_overpayment(tenant, made.overpayment_id).overpayments
    assert (spent.status, spent.remaining_credit) == ("PAID", Decimal("0.0"))
    # an allocation removed: the credit is back, the invoice due again
    xero.accounting.delete_overpayment_allocations(tenant, made.overpayment_id,
                                                   done.allocation_id)
    (back,) = xero.accounting.get_overpayment(tenant, made.overpayment_id).overpayments
    assert (back.status, back.remaining_credit) == ("AUTHORISED", Decimal("230.0"))
    (due,) = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices
    assert (due.status, due.amount_due, due.overpayments) == ("AUTHORISED", Decimal("230.0"),
                                                              [])


def test_overpayment_allocation_fires_an_invoice_webhook(xero_sandbox, xero, xero_webhooks):
    app = xero_sandbox.app
    contact = make_contact(xero)
    invoice = make_invoice(xero, contact.contact_id)
    made = make_overpayment(xero, contact.contact_id, 300)
    app.webhook.flush(3.0)
    xero_webhooks.received.clear()
    allocate(xero, made.overpayment_id, invoice.invoice_id, 230)
    app.webhook.flush(3.0)
    events = [(e["eventCategory"], e["eventType"], e["resourceId"])
              for body, _headers, _ok in xero_webhooks.received
              for e in json.loads(body)["events"]]
    assert events == [("INVOICE", "UPDATE", invoice.invoice_id)]


def test_get_overpayments_filters_as_xero_does(xero_sandbox, xero, xero_clock):
    tenant = xero.tenant_id
    contact = make_contact(xero)
    invoice = make_invoice(xero, contact.contact_id)
    old = make_overpayment(xero, contact.contact_id, 10, reference="first").overpayment_id
    xero_clock.advance(seconds=10)
    new = make_overpayment(xero, contact.contact_id, 20, reference="second").overpayment_id
    xero_clock.advance(seconds=10)
    allocate(xero, old, invoice.invoice_id, 10)  # now the latest change, and PAID

    def listed(**options):
        return [o.overpayment_id for o in xero.accounting.get_overpayments(
            tenant, **options).overpayments]

    assert listed(where=f'OverpaymentID==Guid("{new.upper()}")') == [new]
    assert set(listed(where=f'OverpaymentID==Guid("{new}") OR OverpaymentID==guid("{old}")')
               ) == {new, old}
    assert listed(where='Type=="SPEND-OVERPAYMENT"') == []
    assert listed(where='Status=="PAID"') == [old]
    assert listed(order="UpdatedDateUTC ASC") == [new, old]
    assert listed(order="UpdatedDateUTC DESC") == [old, new]
    assert listed(references=["second"]) == [new]
    stamp = xero_sandbox.app.ledger().overpayments[new]["UpdatedDateUTC"]
    since = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).replace(tzinfo=None)
    assert listed(if_modified_since=since, order="UpdatedDateUTC ASC") == [new, old]
    assert listed(if_modified_since=since + dt.timedelta(seconds=1)) == [old]
    assert listed(if_modified_since=since + dt.timedelta(seconds=11)) == []
    # line items only on a paged list (and a single GET); allocations either way
    unpaged = xero.accounting.get_overpayments(tenant, where=f'OverpaymentID==Guid("{old}")')
    paged = xero.accounting.get_overpayments(tenant, where=f'OverpaymentID==Guid("{old}")',
                                             page=1)
    assert unpaged.overpayments[0].line_items == []
    assert len(paged.overpayments[0].line_items) == 1 and paged.pagination.item_count == 1
    assert [a.amount for a in unpaged.overpayments[0].allocations] == [Decimal("10.0")]


def test_bookkeeper_overpayments_over_the_control_api(xero_sandbox, xero):
    app, tenant = xero_sandbox.app, xero.tenant_id
    contact = make_contact(xero)
    invoice = make_invoice(xero, contact.contact_id)                     # 230.00
    second = make_invoice(xero, contact.contact_id)
    url = f"{xero_sandbox.url}/_sandbox/bookkeeper"
    received = requests.post(f"{url}/receive_overpayment", json={
        "contact_id": contact.contact_id, "amount": 250, "date": "2024-03-10",
        "allocations": {invoice.invoice_id: 230}}, timeout=5)
    assert received.status_code == 200, received.text
    body = received.json()
    assert (body["Type"], body["Status"], body["Total"], body["RemainingCredit"]) == (
        "RECEIVE-OVERPAYMENT", "AUTHORISED", 250.0, 20.0)
    overpayment_id = body["OverpaymentID"]
    assert [a["Invoice"]["InvoiceID"] for a in body["Allocations"]] == [invoice.invoice_id]
    (paid,) = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices
    assert (paid.status, [o.overpayment_id for o in paid.overpayments]) == (
        "PAID", [overpayment_id])
    more = requests.post(f"{url}/allocate_overpayment", json={
        "overpayment_id": overpayment_id, "invoice_id": second.invoice_id, "amount": 20},
        timeout=5)
    assert more.status_code == 200 and more.json()["Status"] == "PAID"
    # voided only once nothing is allocated from it
    refused = requests.post(f"{url}/void_overpayment", json={
        "overpayment_id": overpayment_id}, timeout=5)
    assert refused.status_code == 400 and "allocated" in refused.text
    voided = requests.post(f"{url}/void_overpayment", json={
        "overpayment_id": overpayment_id, "remove_allocations": True}, timeout=5)
    assert voided.status_code == 200, voided.text
    assert (voided.json()["Status"], voided.json()["Allocations"]) == ("VOIDED", [])
    (due,) = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices
    assert (due.status, due.amount_due) == ("AUTHORISED", Decimal("230.0"))
    (listed,) = xero.accounting.get_overpayments(
        tenant, where=f'OverpaymentID==Guid("{overpayment_id}")').overpayments
    assert listed.status == "VOIDED"
    (transaction,) = xero.accounting.get_bank_transaction(
        tenant, app.ledger().overpayments[overpayment_id]["BankTransactionID"]
    ).bank_transactions
    assert transaction.status == "VOIDED"
    # an allocation the bookkeeper cannot make is refused as the API refuses it
    loose = app.receive_overpayment(contact.contact_id, 5)["OverpaymentID"]
    too_much = requests.post(f"{url}/allocate_overpayment", json={
        "overpayment_id": loose, "invoice_id": second.invoice_id, "amount": 6}, timeout=5)
    assert too_much.status_code == 400 and "remaining credit" in too_much.text
    # kept with the state: a dump loaded back holds the overpayments as they were
    dump = app.dump()
    assert {o["OverpaymentID"] for o in dump["tenants"][0]["overpayments"]} == {
        overpayment_id, loose}
    app.load(dump)
    assert app.ledger().overpayments[overpayment_id]["Status"] == "VOIDED"
    assert xero.accounting.get_overpayment(tenant, loose).overpayments[0].total == Decimal(
        "5.0")
