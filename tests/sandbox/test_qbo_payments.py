"""QBO sandbox: payments linked to invoices (full, partial), credit memos, delete and void."""

import pytest
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects import CreditMemo, Customer, Invoice, Item, Payment, TaxCode
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.payment import PaymentLine


def _customer(qb, name):
    customer = Customer()
    customer.DisplayName = name
    return customer.save(qb=qb)


def _sales_line(qb, amount):
    line = SalesItemLine()
    line.Amount = amount
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = Item.filter(Name="Consulting hours", qb=qb)[0].to_ref()
    line.SalesItemLineDetail.TaxCodeRef = TaxCode.filter(Name="No VAT", qb=qb)[0].to_ref()
    return line


def _invoice(qb, customer, amount):
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line = [_sales_line(qb, amount)]
    return invoice.save(qb=qb)


def _payment(qb, customer, total, *applied):
    payment = Payment()
    payment.CustomerRef = customer.to_ref()
    payment.TotalAmt = total
    for txn, amount in applied:
        line = PaymentLine()
        line.Amount = amount
        line.LinkedTxn.append(txn.to_linked_txn())
        payment.Line.append(line)
    return payment.save(qb=qb)


def test_partial_then_full_payment_updates_invoice_balance(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Payer Ltd")
    invoice = _invoice(qb, customer, 500)
    first = _payment(qb, customer, 200, (invoice, 200))
    assert first.UnappliedAmt == 0
    after_first = Invoice.get(invoice.Id, qb=qb)
    assert after_first.Balance == 300 and after_first.SyncToken == "1"
    assert [(t.TxnId, t.TxnType) for t in after_first.LinkedTxn] == [(first.Id, "Payment")]
    assert Customer.get(customer.Id, qb=qb).Balance == 300
    second = _payment(qb, customer, 350, (after_first, 300))
    assert second.UnappliedAmt == 50  # the rest stays as unapplied credit
    assert Invoice.get(invoice.Id, qb=qb).Balance == 0
    assert Customer.get(customer.Id, qb=qb).Balance == -50


def test_payment_over_balance_or_total_is_refused(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Over Ltd")
    invoice = _invoice(qb, customer, 100)
    with pytest.raises(QuickbooksException) as over_balance:
        _payment(qb, customer, 150, (invoice, 150))
    assert over_balance.value.error_code == 6000
    with pytest.raises(QuickbooksException) as over_total:
        _payment(qb, customer, 50, (invoice, 80))
    assert over_total.value.error_code == 6000
    stranger = _customer(qb, "Stranger Ltd")
    with pytest.raises(QuickbooksException):
        _payment(qb, stranger, 10, (invoice, 10))
    assert Invoice.get(invoice.Id, qb=qb).Balance == 100


def test_payment_update_reapplies(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Reapply Ltd")
    invoice = _invoice(qb, customer, 100)
    payment = _payment(qb, customer, 100, (invoice, 100))
    payment.Line[0].Amount = 40
    updated = payment.save(qb=qb)
    assert updated.UnappliedAmt == 60 and updated.SyncToken == "1"
    assert Invoice.get(invoice.Id, qb=qb).Balance == 60


def test_payment_delete_and_void_reopen_the_invoice(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Reopen Ltd")
    invoice = _invoice(qb, customer, 100)
    payment = _payment(qb, customer, 100, (invoice, 100))
    assert Invoice.get(invoice.Id, qb=qb).Balance == 0
    payment.delete(qb=qb)
    reopened = Invoice.get(invoice.Id, qb=qb)
    assert reopened.Balance == 100 and reopened.LinkedTxn == []
    second = _payment(qb, customer, 100, (reopened, 60))
    second.void(qb=qb)
    voided = Payment.get(second.Id, qb=qb)
    assert voided.TotalAmt == 0 and voided.PrivateNote == "Voided"
    assert Invoice.get(invoice.Id, qb=qb).Balance == 100


def test_voiding_a_paid_invoice_unapplies_its_payment(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Unapply Ltd")
    invoice = _invoice(qb, customer, 80)
    payment = _payment(qb, customer, 80, (invoice, 80))
    Invoice.get(invoice.Id, qb=qb).void(qb=qb)
    detached = Payment.get(payment.Id, qb=qb)
    assert detached.Line == [] and detached.UnappliedAmt == 80


def test_credit_memo_applied_to_invoice_through_a_zero_payment(qbo):
    qb = qbo.qb
    customer = _customer(qb, "Credited Ltd")
    invoice = _invoice(qb, customer, 100)
    memo = CreditMemo()
    memo.CustomerRef = customer.to_ref()
    memo.Line = [_sales_line(qb, 30)]
    memo = memo.save(qb=qb)
    payment = _payment(qb, customer, 0, (invoice, 30), (memo, 30))
    assert payment.UnappliedAmt == 0
    assert Invoice.get(invoice.Id, qb=qb).Balance == 70
    used = CreditMemo.get(memo.Id, qb=qb)
    assert used.RemainingCredit == 0 and used.Balance == 0
    assert Customer.get(customer.Id, qb=qb).Balance == 70
