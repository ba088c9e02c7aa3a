"""Amounts of sales forms (Invoice, CreditMemo): line amounts, discount, tax, total.

Deterministic rules (documented in the README):

- every amount is a Decimal rounded to cents, half-up (ROUND_HALF_UP);
- a SalesItemLine's Amount is taken as sent; when it is 0/absent and Qty and UnitPrice are
  given, Amount = round(Qty * UnitPrice);
- a DiscountLine is either an Amount or ``PercentBased`` with ``DiscountPercent`` of the
  subtotal of the item lines;
- tax: each SalesItemLine's ``SalesItemLineDetail.TaxCodeRef`` names a TaxCode (by Id), or
  the US-style placeholders ``TAX``/``NON``; ``TAX`` uses the transaction's
  ``TxnTaxDetail.TxnTaxCodeRef``.  The TaxCode's ``SalesTaxRateList`` gives TaxRates
  (``RateValue`` in percent).  Tax is computed once per TaxRate on the summed net amount of
  the lines that carry it ("global" rounding: QuickBooks rounds each TaxLine, not each
  line) and a discount is spread over taxable lines only when ``ApplyTaxAfterDiscount``;
- a ``TxnTaxDetail.TotalTax`` sent alone (no TaxLine, no TxnTaxCodeRef) overrides the
  computed tax (the difference goes on the largest TaxLine); a company with sales tax off
  (``Realm.using_sales_tax``, Preferences.TaxPrefs.UsingSalesTax) computes no tax;
- ``GlobalTaxCalculation``: ``TaxExcluded`` (default) adds tax to the lines,
  ``TaxInclusive`` takes line amounts as gross and extracts tax (rate / (100 + rate)),
  ``NotApplicable`` computes no tax;
- TotalAmt = lines - discount + tax (TaxExcluded) or lines - discount (TaxInclusive).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")


def dec(value: Any) -> Decimal:
    """Read a JSON number/string as a Decimal ("" and None are 0)."""
    if value is None or value == "" or isinstance(value, bool):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def cents(value: Decimal) -> Decimal:
    """Round to cents, half-up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def num(value: Decimal) -> float | int:
    """A Decimal as the JSON number QuickBooks prints (100 -> 100, 10.5 -> 10.5)."""
    value = cents(value)
    return int(value) if value == value.to_integral_value() else float(value)


def ref_value(ref: Any) -> str | None:
    """The ``value`` of a ReferenceType (or None)."""
    if isinstance(ref, dict):
        value = ref.get("value")
        return str(value) if value not in (None, "") else None
    return None


def compute_sales_form(
    txn: dict,
    tax_rates_of: Callable[[str], list[tuple[str, str, Decimal]] | None],
    taxed: bool = True,
) -> None:
    """Fill Line amounts, the SubTotalLine, TxnTaxDetail and TotalAmt of an Invoice/CreditMemo.

    ``tax_rates_of(tax_code_id)`` returns ``[(rate_id, rate_name, percent), ...]`` or None for
    an unknown code (the caller validated references before).
    """
    lines = [ln for ln in txn.get("Line") or [] if ln.get("DetailType") != "SubTotalLineDetail"]
    mode = txn.get("GlobalTaxCalculation") or "TaxExcluded"
    txn_code = ref_value((txn.get("TxnTaxDetail") or {}).get("TxnTaxCodeRef"))
    item_total = Decimal(0)
    taxable: list[tuple[Decimal, list[tuple[str, str, Decimal]]]] = []
    for number, line in enumerate(lines, start=1):
        line["LineNum"] = number
        line.setdefault("Id", str(number))
        kind = line.get("DetailType")
        if kind == "SalesItemLineDetail":
            detail = line.setdefault("SalesItemLineDetail", {})
            amount = dec(line.get("Amount"))
            qty, price = dec(detail.get("Qty")), dec(detail.get("UnitPrice"))
            if amount == 0 and qty and price:
                amount = qty * price
            amount = cents(amount)
            line["Amount"] = num(amount)
            item_total += amount
            code = ref_value(detail.get("TaxCodeRef"))
            if code == "TAX":
                code = txn_code
            rates = tax_rates_of(code) if taxed and code and code != "NON" else None
            if rates:
                taxable.append((amount, rates))
        elif kind == "DescriptionOnly":
            line["Amount"] = 0
    discount = Decimal(0)
    for line in lines:
        if line.get("DetailType") == "DiscountLineDetail":
            detail = line.setdefault("DiscountLineDetail", {})
            if detail.get("PercentBased"):
                discount_line = cents(item_total * dec(detail.get("DiscountPercent")) / 100)
            else:
                discount_line = cents(dec(line.get("Amount")))
            line["Amount"] = num(discount_line)
            discount += discount_line
    subtotal = {"Amount": num(item_total), "DetailType": "SubTotalLineDetail",
                "SubTotalLineDetail": {}}
    # QuickBooks returns the computed subtotal as an extra line after the item lines.
    txn["Line"] = [*lines, subtotal]

    by_rate: dict[str, list[Any]] = {}
    factor = Decimal(1)
    if discount and item_total and txn.get("ApplyTaxAfterDiscount"):
        factor = (item_total - discount) / item_total
    for amount, rates in taxable:
        for rate_id, rate_name, percent in rates:
            entry = by_rate.setdefault(rate_id, [rate_name, percent, Decimal(0)])
            entry[2] += amount * factor
    tax_lines = []
    total_tax = Decimal(0)
    for rate_id, (rate_name, percent, net) in by_rate.items():
        if mode == "NotApplicable":
            continue
        if mode == "TaxInclusive":
            tax = cents(net * percent / (100 + percent))
            net = net - tax
        else:
            tax = cents(net * percent / 100)
        total_tax += tax
        tax_lines.append({
            "Amount": num(tax), "DetailType": "TaxLineDetail",
            "TaxLineDetail": {"TaxRateRef": {"value": rate_id, "name": rate_name},
                              "PercentBased": True, "TaxPercent": num(percent),
                              "NetAmountTaxable": num(cents(net))},
        })
    override = txn.get("_tax_override")
    if override not in (None, "") and tax_lines and mode != "NotApplicable":
        # A sent TotalTax overrides the computed tax (QuickBooks' sales-tax override): the
        # difference lands on the largest tax line, so the lines still add up.
        delta = cents(dec(override)) - total_tax
        largest = max(tax_lines, key=lambda t: abs(dec(t["Amount"])))
        largest["Amount"] = num(dec(largest["Amount"]) + delta)
        # the XSD's TaxLineDetail.OverrideDeltaAmount: "the difference between the actual
        # tax and overridden amount supplied by the user"
        largest["TaxLineDetail"]["OverrideDeltaAmount"] = num(delta)
        total_tax += delta
    tax_detail: dict[str, Any] = {"TotalTax": num(total_tax), "TaxLine": tax_lines}
    if txn_code:
        tax_detail["TxnTaxCodeRef"] = (txn.get("TxnTaxDetail") or {})["TxnTaxCodeRef"]
    txn["TxnTaxDetail"] = tax_detail
    total = item_total - discount + (total_tax if mode == "TaxExcluded" else 0)
    txn["TotalAmt"] = num(total)
    txn["HomeTotalAmt"] = num(total)
