"""Xero sandbox: organisation lock dates and the required line Description, through xero-python.

Xero refuses to post (create approved, edit, void) a document, a payment or an allocation dated
on or before the organisation's period or end of year lock date; drafts are not posted and may
still be saved.  A line of an approved document needs a Description unless its item supplies
one.  Both refusals are ordinary ValidationExceptions, so summarizeErrors=false flags only the
offending element.
"""

import datetime as dt
from decimal import Decimal

import pytest
import requests
from xero_python.accounting import (
    Account,
    Allocation,
    Allocations,
    Contact,
    Contacts,
    CreditNote,
    CreditNotes,
    Invoice,
    Invoices,
    LineItem,
    Payment,
    PaymentDelete,
)
from xero_python.exceptions import AccountingBadRequestException

PERIOD_LOCKED = ("The document date cannot be before the period lock date, currently set at "
                 "31-Mar-2024")
YEAR_LOCKED = ("The document date cannot be before the end of year lock date, currently set at "
               "31-Mar-2023")
NO_DESCRIPTION = "The description field is mandatory for each line item."


def _contact(xero, name="Lock Test Ltd"):
    return xero.accounting.create_contacts(
        xero.tenant_id, Contacts(contacts=[Contact(name=name)])).contacts[0]


def _invoice(contact_id, day, status="AUTHORISED", description="Advisory", **line):
    line = {"quantity": 1, "unit_amount": 100, "account_code": "210", "tax_type": "OUTPUT2",
            **line}
    if description is not None:
        line["description"] = description
    return Invoice(type="ACCREC", contact=Contact(contact_id=contact_id), date=day,
                   due_date=day + dt.timedelta(days=30), status=status,
                   line_items=[LineItem(**line)])


def _create(xero, *invoices, **kwargs):
    return xero.accounting.create_invoices(xero.tenant_id, Invoices(invoices=list(invoices)),
                                           **kwargs).invoices


def _lock(xero, **dates):
    """Set lock dates through the control API, as a test or the demo would."""
    answer = requests.post(xero.server.url + "/_sandbox/config", json=dates, timeout=5)
    assert answer.status_code == 200, answer.text


def test_lock_dates_are_set_through_the_control_api_and_shown_on_the_organisation(xero):
    org = xero.accounting.get_organisations(xero.tenant_id).organisations[0]
    assert org.period_lock_date is None and org.end_of_year_lock_date is None
    _lock(xero, period_lock_date="2024-03-31", end_of_year_lock_date="2023-03-31")
    org = xero.accounting.get_organisations(xero.tenant_id).organisations[0]
    assert (org.period_lock_date, org.end_of_year_lock_date) == (dt.date(2024, 3, 31),
                                                                 dt.date(2023, 3, 31))
    raw = requests.get(xero.server.url + "/api.xro/2.0/Organisation", headers={
        "Authorization": "Bearer " + xero.token["access_token"],
        "xero-tenant-id": xero.tenant_id, "Accept": "application/json"}, timeout=5).json()
    assert raw["Organisations"][0]["PeriodLockDate"] == "/Date(1711843200000+0000)/"
    _lock(xero, period_lock_date=None)
    org = xero.accounting.get_organisations(xero.tenant_id).organisations[0]
    assert org.period_lock_date is None and org.end_of_year_lock_date == dt.date(2023, 3, 31)
    bad = requests.post(xero.server.url + "/_sandbox/config",
                        json={"period_lock_date": "31/03/2024"}, timeout=5)
    assert bad.status_code == 400


def test_approved_documents_on_or_before_the_lock_date_are_refused(xero):
    contact = _contact(xero).contact_id
    _lock(xero, period_lock_date="2024-03-31", end_of_year_lock_date="2023-03-31")
    with pytest.raises(AccountingBadRequestException) as caught:
        _create(xero, _invoice(contact, dt.date(2024, 3, 31)))  # on the lock date: locked
    assert caught.value.error_data["Type"] == "ValidationException"
    assert caught.value.reason == PERIOD_LOCKED
    with pytest.raises(AccountingBadRequestException) as caught:
        _create(xero, _invoice(contact, dt.date(2023, 1, 10)))
    messages = [m["Message"] for m in caught.value.error_data["Elements"][0]["ValidationErrors"]]
    assert messages == [PERIOD_LOCKED, YEAR_LOCKED]
    assert _create(xero, _invoice(contact, dt.date(2024, 4, 1)))[0].status == "AUTHORISED"
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_credit_notes(xero.tenant_id, CreditNotes(credit_notes=[CreditNote(
            type="ACCRECCREDIT", contact=Contact(contact_id=contact), status="AUTHORISED",
            date=dt.date(2024, 2, 1), line_items=[LineItem(
                description="goodwill", quantity=1, unit_amount=10, account_code="210")])]))
    assert caught.value.reason == PERIOD_LOCKED
    assert xero.accounting.get_invoices(xero.tenant_id).invoices[0].date == dt.date(2024, 4, 1)


def test_drafts_may_be_saved_in_a_locked_period_but_not_approved(xero):
    tenant = xero.tenant_id
    contact = _contact(xero).contact_id
    _lock(xero, period_lock_date="2024-03-31")
    (draft,) = _create(xero, _invoice(contact, dt.date(2024, 3, 15), status="DRAFT"))
    assert draft.status == "DRAFT"
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.update_invoice(tenant, draft.invoice_id,
                                       Invoices(invoices=[Invoice(status="AUTHORISED")]))
    assert caught.value.reason == PERIOD_LOCKED
    assert xero.accounting.get_invoice(tenant, draft.invoice_id).invoices[0].status == "DRAFT"
    moved = xero.accounting.update_invoice(tenant, draft.invoice_id, Invoices(invoices=[
        Invoice(date=dt.date(2024, 4, 2), status="AUTHORISED")])).invoices[0]
    assert (moved.status, moved.date) == ("AUTHORISED", dt.date(2024, 4, 2))
    with pytest.raises(AccountingBadRequestException) as caught:  # nor moved back into it
        xero.accounting.update_invoice(tenant, draft.invoice_id,
                                       Invoices(invoices=[Invoice(date=dt.date(2024, 3, 30))]))
    assert caught.value.reason == PERIOD_LOCKED


def test_posted_documents_in_a_locked_period_cannot_be_edited_voided_paid_or_allocated(xero):
    tenant = xero.tenant_id
    contact = _contact(xero).contact_id
    (invoice,) = _create(xero, _invoice(contact, dt.date(2024, 3, 10)))
    note = xero.accounting.create_credit_notes(tenant, CreditNotes(credit_notes=[CreditNote(
        type="ACCRECCREDIT", contact=Contact(contact_id=contact), status="AUTHORISED",
        date=dt.date(2024, 3, 10), line_items=[LineItem(
            description="goodwill", quantity=1, unit_amount=10, account_code="210",
            tax_type="OUTPUT2")])])).credit_notes[0]
    paid = xero.accounting.create_payment(tenant, Payment(
        invoice=Invoice(invoice_id=invoice.invoice_id), account=Account(code="090"),
        amount=15, date=dt.date(2024, 3, 20))).payments[0]
    _lock(xero, period_lock_date="2024-03-31")  # the bookkeeper closes March afterwards

    with pytest.raises(AccountingBadRequestException) as caught:  # even a Reference
        xero.accounting.update_invoice(tenant, invoice.invoice_id,
                                       Invoices(invoices=[Invoice(reference="late edit")]))
    assert caught.value.reason == PERIOD_LOCKED
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_payment(tenant, Payment(
            invoice=Invoice(invoice_id=invoice.invoice_id), account=Account(code="090"),
            amount=10, date=dt.date(2024, 3, 31)))
    assert caught.value.reason == PERIOD_LOCKED
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.delete_payment(tenant, paid.payment_id, PaymentDelete())
    assert caught.value.reason == PERIOD_LOCKED
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_credit_note_allocation(tenant, note.credit_note_id, Allocations(
            allocations=[Allocation(invoice=Invoice(invoice_id=invoice.invoice_id), amount=5,
                                    date=dt.date(2024, 3, 25))]))
    assert caught.value.reason == PERIOD_LOCKED
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.update_credit_note(tenant, note.credit_note_id, CreditNotes(
            credit_notes=[CreditNote(reference="late")]))
    assert caught.value.reason == PERIOD_LOCKED

    # In an open period the same invoice still takes payments and allocations.
    later = xero.accounting.create_payment(tenant, Payment(
        invoice=Invoice(invoice_id=invoice.invoice_id), account=Account(code="090"),
        amount=10, date=dt.date(2024, 4, 1))).payments[0]
    assert later.payment_id
    xero.accounting.create_credit_note_allocation(tenant, note.credit_note_id, Allocations(
        allocations=[Allocation(invoice=Invoice(invoice_id=invoice.invoice_id), amount=5,
                                date=dt.date(2024, 4, 1))]))
    after = xero.accounting.get_invoice(tenant, invoice.invoice_id).invoices[0]
    assert (after.reference, after.status, after.amount_paid, after.amount_credited) == (
        "", "AUTHORISED", Decimal("25.0"), Decimal("5.0"))


def test_unlocked_void_is_still_allowed_and_lock_applies_per_element(xero):
    tenant = xero.tenant_id
    contact = _contact(xero).contact_id
    (old,) = _create(xero, _invoice(contact, dt.date(2024, 3, 10)))
    _lock(xero, end_of_year_lock_date="2024-03-31")
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.update_invoice(tenant, old.invoice_id,
                                       Invoices(invoices=[Invoice(status="VOIDED")]))
    assert caught.value.reason == ("The document date cannot be before the end of year lock "
                                   "date, currently set at 31-Mar-2024")
    mixed = _create(xero, _invoice(contact, dt.date(2024, 4, 5)),
                    _invoice(contact, dt.date(2024, 3, 5)), summarize_errors=False)
    assert [i.status_attribute_string for i in mixed] == ["OK", "ERROR"]
    assert mixed[1].validation_errors[0].message.startswith(
        "The document date cannot be before the end of year lock date")
    assert mixed[0].invoice_id and mixed[1].invoice_id is None
    voided = xero.accounting.update_invoice(tenant, mixed[0].invoice_id,
                                            Invoices(invoices=[Invoice(status="VOIDED")]))
    assert voided.invoices[0].status == "VOIDED"


def test_approved_line_needs_a_description_unless_its_item_has_one(xero):
    tenant = xero.tenant_id
    contact = _contact(xero).contact_id
    day = dt.date(2024, 5, 1)
    for missing in (None, "", "   "):
        with pytest.raises(AccountingBadRequestException) as caught:
            _create(xero, _invoice(contact, day, description=missing))
        assert caught.value.reason == NO_DESCRIPTION
    (from_item,) = _create(xero, _invoice(contact, day, description=None, item_code="RETAINER"))
    assert from_item.line_items[0].description == "Monthly advisory retainer"
    mixed = _create(xero, _invoice(contact, day), _invoice(contact, day, description=None),
                    summarize_errors=False)
    assert [i.status_attribute_string for i in mixed] == ["OK", "ERROR"]
    assert [e.message for e in mixed[1].validation_errors] == [NO_DESCRIPTION]
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.create_credit_notes(tenant, CreditNotes(credit_notes=[CreditNote(
            type="ACCRECCREDIT", contact=Contact(contact_id=contact), status="AUTHORISED",
            line_items=[LineItem(quantity=1, unit_amount=10, account_code="210")])]))
    assert caught.value.reason == NO_DESCRIPTION


def test_a_draft_without_description_is_kept_but_cannot_be_approved(xero):
    tenant = xero.tenant_id
    contact = _contact(xero).contact_id
    (draft,) = _create(xero, _invoice(contact, dt.date(2024, 5, 1), status="DRAFT",
                                      description=None))
    assert draft.status == "DRAFT" and not draft.line_items[0].description
    with pytest.raises(AccountingBadRequestException) as caught:
        xero.accounting.update_invoice(tenant, draft.invoice_id,
                                       Invoices(invoices=[Invoice(status="AUTHORISED")]))
    assert caught.value.reason == NO_DESCRIPTION
    approved = xero.accounting.update_invoice(tenant, draft.invoice_id, Invoices(invoices=[
        Invoice(status="AUTHORISED", line_items=[LineItem(
            description="Advisory", quantity=1, unit_amount=100, account_code="210",
            tax_type="OUTPUT2")])])).invoices[0]
    assert approved.status == "AUTHORISED"
