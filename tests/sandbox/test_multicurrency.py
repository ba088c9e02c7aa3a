"""Multi-currency in both emulators (issue 15), through the real SDKs and the adapters.

Xero: an organisation has a base currency and the currencies it subscribed to (GET/PUT
/Currencies); a foreign document or payment carries CurrencyRate (units per base unit;
the organisation's day rate when none is sent); a payment's Amount is in the invoice's
currency. QuickBooks: Preferences.CurrencyPrefs (home currency, MultiCurrencyEnabled),
the CompanyCurrency list, CurrencyRef + ExchangeRate (home units per foreign unit).
"""

import pytest
from qbo_support import QboPush
from xero_python.accounting import Currency, CurrencyCode
from xero_support import XeroPush

from billing_sync.services.ledger.base import PushItem


def _contact(name):
    return {"name": name, "email": None, "phone": None, "tax_id": None, "street": None,
            "street2": None, "city": None, "zip": None, "state": None, "country_code": None,
            "is_company": True, "term_ref": None, "currency": None}


def _customer(push, name="Euro Client Ltd"):
    (result,) = push.push("contact", [PushItem(f"res.partner,{name}", "contact",
                                               _contact(name))], f"c-{name}")
    assert result.ok, result.error
    return result.ledger_id


def _document(contact_id, number, price, currency, rate=None, tax=None, account_code=None):
    line = {"description": "Advisory", "quantity": 1.0, "unit_price": price, "discount": 0.0,
            "item_ref": None, "item_code": None, "account_ref": None,
            "account_code": account_code, "tax_ref": tax, "tracking": [], "line_total": price}
    return {"number": number, "date": "2026-03-02", "due_date": "2026-04-01",
            "currency": currency, "currency_rate": rate, "contact_ref": contact_id,
            "reference": None, "status": "AUTHORISED", "term_ref": None, "lines": [line],
            "amount_untaxed": price, "amount_tax": 0.0, "amount_total": price}


def _payment(allocations, **values):
    return {"allocations": allocations, "invoice_ref": allocations[0]["invoice_ref"],
            "date": "2026-03-10", "bank_account_ref": None, "bank_account_code": "090",
            "reference": "PBNK1/2026/00001", **values}


# --------------------------------------------------------------------------- Xero
@pytest.fixture
def xero_push(xero_sandbox):
    return XeroPush(xero_sandbox)


def _currencies(push):
    return {r.ledger_id for r in push.adapter.reference_data(push.token, push.tenant_id)
            if r.kind == "currency"}


def test_xero_currencies_are_listed_and_subscribed_to(xero_push):
    assert _currencies(xero_push) == {"NZD"}              # the base currency alone
    api = xero_push.adapter._accounting(xero_push.token)
    made = api.create_currency(xero_push.tenant_id, Currency(code=CurrencyCode.EUR))
    assert made.currencies[0].description == "Euro"
    assert _currencies(xero_push) == {"NZD", "EUR"}
    assert xero_push.api_requests()["PUT Currencies"] == 1


def test_xero_refuses_a_currency_the_organisation_has_not(xero_push):
    contact_id = _customer(xero_push)
    (result,) = xero_push.push("invoice", [PushItem("account.move,1", "invoice", _document(
        contact_id, "INV/EUR/1", 100.0, "EUR", account_code="200", tax="NONE"))], "eur-1")
    assert not result.ok
    assert "Organisation is not subscribed to currency EUR" in result.error.message
    assert not xero_push.ledger().invoices


def test_xero_foreign_invoice_and_payments_carry_their_rates(xero_push):
    xero_push.app.configure(currencies=["EUR"], currency_rates={"EUR": 0.6})
    contact_id = _customer(xero_push)
    sent, day = xero_push.push("invoice", [
        PushItem("account.move,1", "invoice", _document(
            contact_id, "INV/EUR/1", 1000.0, "EUR", rate=1.25, account_code="200",
            tax="NONE")),
        PushItem("account.move,2", "invoice", _document(
            contact_id, "INV/EUR/2", 500.0, "EUR", account_code="200", tax="NONE")),
    ], "eur-inv")
    assert sent.ok and day.ok, (sent.error, day.error)
    invoices = xero_push.ledger().invoices
    # Odoo's 1.25 USD per EUR is Xero's 0.8 EUR per base unit; without a rate, the day's
    assert (invoices[sent.ledger_id]["CurrencyCode"], invoices[sent.ledger_id]["CurrencyRate"]) \
        == ("EUR", 0.8)
    assert invoices[day.ledger_id]["CurrencyRate"] == 0.6

    # one payment of two invoices: one Xero payment each, in the invoices' currency
    xero_push.reset_counters()
    (paid,) = xero_push.push("payment", [PushItem("account.payment,1", "payment", _payment([
        {"invoice_ref": sent.ledger_id, "amount": 400.0, "currency": "EUR",
         "currency_rate": 1.25},
        {"invoice_ref": day.ledger_id, "amount": 500.0, "currency": "EUR",
         "currency_rate": 1.25}]))], "eur-pay")
    assert paid.ok and not paid.incomplete, paid.error
    assert xero_push.api_requests() == {"PUT Payments": 1}
    assert set(paid.parts) == {sent.ledger_id, day.ledger_id}
    assert invoices[sent.ledger_id]["AmountDue"] == 600.0
    assert invoices[day.ledger_id]["Status"] == "PAID"
    payment = xero_push.ledger().payments[paid.parts[sent.ledger_id]]
    assert (payment["Amount"], payment["CurrencyRate"], payment["BankAmount"]) == \
        (400.0, 0.8, 500.0)


# --------------------------------------------------------------------------- QuickBooks
@pytest.fixture
def qbo_push(qbo_sandbox):
    return QboPush(qbo_sandbox)


def _qbo_currencies(push):
    return {r.ledger_id: r.active for r in push.adapter.reference_data(push.token, push.realm)
            if r.kind == "currency"}


def test_qbo_preferences_and_currency_list(qbo_push):
    assert _qbo_currencies(qbo_push) == {"GBP": True}     # multicurrency is off by default
    qbo_push.app.configure(multicurrency=True, currencies=["EUR", "USD"])
    assert _qbo_currencies(qbo_push) == {"GBP": True, "EUR": True, "USD": True}
    qbo_push.app.configure(currencies=["EUR"])            # USD made inactive
    assert _qbo_currencies(qbo_push) == {"GBP": True, "EUR": True}


def test_qbo_refuses_a_foreign_currency_without_multicurrency(qbo_push):
    customer_id = _customer(qbo_push)
    (result,) = qbo_push.push("invoice", [PushItem("account.move,1", "invoice", _document(
        customer_id, "INV-EUR-1", 100.0, "EUR"))], "eur-1")
    assert not result.ok
    assert "(code 6000)" in result.error.message and "EUR" in result.error.message
    assert not qbo_push.ledger().all("Invoice")


def test_qbo_foreign_invoice_and_payment_at_their_rate(qbo_push):
    qbo_push.app.configure(multicurrency=True, currencies=["EUR"],
                           exchange_rates={"EUR": 0.9})
    customer_id = _customer(qbo_push)
    first, second = qbo_push.push("invoice", [
        PushItem("account.move,1", "invoice", _document(customer_id, "INV-EUR-1", 1000.0,
                                                        "EUR", rate=1.25)),
        PushItem("account.move,2", "invoice", _document(customer_id, "INV-EUR-2", 200.0,
                                                        "EUR")),
    ], "eur-inv")
    assert first.ok and second.ok, (first.error, second.error)
    stored = qbo_push.ledger().get("Invoice", first.ledger_id)
    assert (stored["CurrencyRef"]["value"], stored["ExchangeRate"]) == ("EUR", 1.25)
    assert stored["HomeTotalAmt"] == 1250 and stored["HomeBalance"] == 1250
    assert qbo_push.ledger().get("Invoice", second.ledger_id)["ExchangeRate"] == 0.9

    # one payment, one line per invoice, capped at what is open on the second
    (paid,) = qbo_push.push("payment", [PushItem("account.payment,1", "payment", _payment([
        {"invoice_ref": first.ledger_id, "amount": 400.0, "currency": "EUR",
         "currency_rate": 1.25},
        {"invoice_ref": second.ledger_id, "amount": 250.0, "currency": "EUR",
         "currency_rate": 1.25}], contact_ref=customer_id))], "eur-pay")
    assert paid.ok and paid.incomplete and "250.00" in str(paid.error)
    payment = qbo_push.ledger().get("Payment", paid.ledger_id)
    assert (payment["TotalAmt"], payment["CurrencyRef"]["value"], payment["ExchangeRate"]) == \
        (600, "EUR", 1.25)
    assert qbo_push.ledger().get("Invoice", first.ledger_id)["Balance"] == 600
    assert qbo_push.ledger().get("Invoice", second.ledger_id)["Balance"] == 0

    # a payment in the home currency cannot apply a EUR invoice
    (mixed,) = qbo_push.push("payment", [PushItem("account.payment,2", "payment", _payment([
        {"invoice_ref": first.ledger_id, "amount": 10.0, "currency": "GBP"}],
        contact_ref=customer_id))], "gbp-pay")
    assert not mixed.ok and "a payment applies transactions of its own currency" in \
        mixed.error.message
