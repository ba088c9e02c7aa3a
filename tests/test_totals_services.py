"""Plain tests (no database) of the totals comparison, Xero's line arithmetic and the
idempotency key of a new attempt."""

from decimal import Decimal

from odoo.addons.billing_sync.services.idempotency import batch_key
from odoo.addons.billing_sync.services.ledger import qbo_payloads, xero_payloads
from odoo.addons.billing_sync.services.totals import describe, differences


def test_differences_name_both_figures_and_skip_what_is_not_comparable():
    odoo = {"total": 115.0, "tax": 15.0, "amount_due": None}
    assert differences(odoo, {"total": 115.0, "tax": 15.0, "amount_due": 3}) == []
    diffs = differences(odoo, {"total": 115.01, "tax": 15.01})
    assert diffs == [("total", 115.0, 115.01), ("tax", 15.0, 15.01)]
    text = describe(diffs, "Xero (Demo)", "EUR")
    assert "Odoo 115.00 EUR" in text and "Xero (Demo) 115.01 EUR" in text
    assert differences({"total": 10.0}, {}) == [("total", 10.0, None)]


def _line(**values):
    base = {"quantity": 1, "unit_price": 0, "discount": 0, "tax_ref": "OUTPUT2",
            "price_include": False, "net": 0, "tax_amount": 0}
    return {**base, **values}


def test_xero_inclusive_document_needs_a_rounding_line_for_odoos_global_cent():
    # Odoo, rounding globally: 2 x 21.53 incl. 21% -> untaxed 35.58 + tax 7.47 = 43.05,
    # while Xero's Inclusive document totals the gross line amounts: 43.06
    lines = [_line(unit_price=21.53, price_include=True, net=17.79, tax_amount=3.73),
             _line(unit_price=21.53, price_include=True, net=17.79, tax_amount=3.74)]
    values = {"lines": lines, "amount_total": 43.05}
    assert xero_payloads.line_amount_types(lines) == "Inclusive"
    assert xero_payloads.rounding_adjustment(values) == Decimal("-0.01")


def test_xero_exclusive_document_with_explicit_tax_needs_no_adjustment():
    lines = [_line(unit_price=10.0049, quantity=3, discount=7.5, net=27.76, tax_amount=4.16),
             _line(unit_price=45.5, tax_ref=None, net=45.5, tax_amount=0)]
    values = {"lines": lines, "amount_total": 77.42}
    assert xero_payloads.line_amount_types(lines) == "Exclusive"
    assert xero_payloads.rounding_adjustment(values) == 0
    items = [xero_payloads.line_item(ln) for ln in lines]
    assert (items[0].tax_amount, items[1].tax_type, items[1].tax_amount) == (4.16, "NONE", 0)


def test_xero_mixed_document_sends_included_prices_net():
    lines = [_line(unit_price=23.0, price_include=True, net=20.0, tax_amount=3.0, quantity=2),
             _line(unit_price=10.0, net=10.0, tax_amount=1.5)]
    assert xero_payloads.line_amount_types(lines) == "Exclusive"
    item = xero_payloads.line_item(lines[0], "Exclusive")
    assert (item.unit_amount, item.discount_rate) == (10.0, None)


def test_qbo_sends_odoos_net_lines_and_its_total_tax():
    values = {"contact_ref": "7", "amount_tax": 4.16, "lines": [
        _line(unit_price=10.0049, quantity=3, discount=7.5, net=27.76, tax_amount=4.16,
              line_total=27.76),
        _line(unit_price=45.5, tax_ref=None, net=45.5, tax_amount=0, line_total=45.5)]}
    body = qbo_payloads.sales_form(values)
    assert body["TxnTaxDetail"] == {"TotalTax": 4.16}
    assert [ln["Amount"] for ln in body["Line"]] == [27.76, 45.5]
    assert body["Line"][1]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "NON"}


def test_a_new_attempt_gets_a_new_key():
    first = batch_key("db", 1, "invoice", [1, 2], attempt="a")
    assert first == batch_key("db", 1, "invoice", [2, 1], attempt="a")
    assert first != batch_key("db", 1, "invoice", [1, 2], attempt="b")
    assert len(first) <= 64


def test_spread_moves_the_posted_cents_onto_the_largest_shares():
    from odoo.addons.billing_sync.services.totals import spread

    shares = {1: 0.01, 2: 8.77, 3: 212.99, 4: 1.49}
    assert spread(shares, 223.25) == {1: 0.01, 2: 8.77, 3: 212.98, 4: 1.49}
    assert spread(shares, 223.24) == {1: 0.01, 2: 8.76, 3: 212.98, 4: 1.49}
    assert spread({1: 1.0, 2: 1.0}, 2.01) == {1: 1.01, 2: 1.0}
    assert spread({1: 10.0}, 10.0) == {1: 10.0}
    assert spread({1: 7.0, 2: 3.0}, 11, digits=0) == {1: 8.0, 2: 3.0}
    assert spread({}, 1.0) == {}
