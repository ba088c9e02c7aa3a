"""Generated documents for the totals proof (tests/test_totals_property.py) and the
``make check-totals`` benchmark: one plain "spec" shape, turned into real Odoo moves.

A spec is ``{"move_type", "rounding", "currency", "lines": [(price, quantity, discount,
tax_set)], "paid": fraction of the total paid in one payment (0 for none)}``; tax sets
name combinations of Odoo taxes mapped to the ledger's one positive rate; currencies are
the company's ("") or foreign ones of 0, 2 and 3 decimals.
"""

from odoo import Command, fields

TAX_SETS = ("none", "excluded", "included", "halves")
ROUNDINGS = ("round_per_line", "round_globally")
QUANTITIES = (1, 2, 3, 7, 0.5, 2.25, 12)
DISCOUNTS = (0, 0, 5, 12.5, 33.33)
# foreign currencies of 2, 0 and 3 decimals, and Odoo's rate (units per company unit)
CURRENCIES = {"EUR": 0.8, "JPY": 150.0, "KWD": 0.3}


def enable_currencies(env):
    """Activate the foreign CURRENCIES in Odoo with a rate from the start of the year."""
    for name, rate in CURRENCIES.items():
        currency = env.ref(f"base.{name}")
        currency.active = True
        if not env["res.currency.rate"].search([("currency_id", "=", currency.id),
                                                ("company_id", "=", env.company.id)]):
            env["res.currency.rate"].create({
                "currency_id": currency.id, "rate": rate, "company_id": env.company.id,
                "name": fields.Date.today().replace(month=1, day=1)})


def enable_ledger_currencies(sandbox, provider):
    """The same currencies enabled in the ledger organisation."""
    if provider == "xero":
        sandbox.configure(currencies=list(CURRENCIES))
    else:
        sandbox.configure(multicurrency=True, currencies=list(CURRENCIES))


def beyond_cents(move):
    """True when ``move`` has an amount a ledger keeping cents cannot hold."""
    amounts = [move.amount_total, move.amount_tax] + move.invoice_line_ids.mapped(
        "price_subtotal")
    return any(abs(a - round(a, 2)) > 1e-9 for a in amounts) or any(
        abs(a - round(a, 2)) > 1e-9 for a in move.line_ids.mapped("amount_currency"))


def tax_sets(env, rate, tag):
    """{tax set: account.tax recordset} at the ledger's ``rate`` (created once per tag)."""
    Tax = env["account.tax"]

    def tax(name, amount, included=False):
        name = f"{tag} {name}"
        return Tax.search([("name", "=", name), ("company_id", "=", env.company.id)],
                          limit=1) or Tax.create({
            "name": name, "amount": amount, "type_tax_use": "sale",
            "price_include_override": "tax_included" if included else "tax_excluded"})

    half = rate / 2
    return {"none": Tax, "excluded": tax(f"{rate:g}%", rate),
            "included": tax(f"{rate:g}% incl.", rate, included=True),
            "halves": tax(f"{half:g}% part A", half) | tax(f"{half:g}% part B", half)}


def map_tax_sets(connection, taxes, ledger_tax):
    """Map every Odoo tax of ``taxes`` to the ledger tax ``ledger_tax`` (a combined rate
    for the halves)."""
    Mapping = connection.env["billing_sync.mapping"]
    for tax in (taxes["excluded"] | taxes["included"] | taxes["halves"]):
        if not Mapping._lookup(connection, "tax", tax):
            Mapping.create({"connection_id": connection.id, "kind": "tax",
                            "tax_id": tax.id, "tax_ref_id": ledger_tax.id})


def random_spec(rng):
    """A spec drawn from ``rng`` (random.Random): prices with up to 4 decimals."""
    lines = []
    for _ in range(rng.randint(1, 5)):
        price = round(rng.uniform(0.01, 2500) if rng.random() < 0.8 else rng.uniform(0, 2), 4)
        lines.append((max(price, 0.0001), rng.choice(QUANTITIES), rng.choice(DISCOUNTS),
                      rng.choice(TAX_SETS)))
    return {"move_type": "out_refund" if rng.random() < 0.15 else "out_invoice",
            "rounding": rng.choice(ROUNDINGS), "lines": lines,
            "currency": rng.choice(("", "", "", *CURRENCIES)),
            "paid": rng.choice((0, 0, 0.5, 1, 0.3333))}


def make_document(env, partner, product, spec, taxes):
    """The posted move of ``spec`` (and its payment when ``paid``)."""
    env.company.tax_calculation_rounding_method = spec["rounding"]
    currency = env.ref(f"base.{spec['currency']}") if spec.get("currency") else \
        env.company.currency_id
    move = env["account.move"].create({
        "move_type": spec["move_type"], "partner_id": partner.id,
        "invoice_date": fields.Date.today(), "currency_id": currency.id,
        "invoice_line_ids": [Command.create({
            "product_id": product.id, "name": f"Service {n}", "price_unit": price,
            "quantity": qty, "discount": discount,
            "tax_ids": [Command.set(taxes[tax_set].ids)]})
            for n, (price, qty, discount, tax_set) in enumerate(spec["lines"], 1)],
    })
    move.action_post()
    return move


def pay(env, move, fraction, journal):
    """Register a customer payment of ``fraction`` of ``move``'s residual (none for 0)."""
    if not fraction or move.move_type != "out_invoice" or move.currency_id.is_zero(
            move.amount_residual):
        return None
    amount = move.currency_id.round(move.amount_residual * fraction)
    if amount <= 0:
        return None
    wizard = env["account.payment.register"].with_context(
        active_model="account.move", active_ids=move.ids).create(
        {"amount": amount, "journal_id": journal.id})
    return wizard._create_payments()


def ledger_figures(sandbox, provider, realm, ledger_id, credit=False):
    """(total, tax, amount due) of a document as the sandbox holds it."""
    if provider == "xero":
        ledger = sandbox.ledger()
        doc = (ledger.credit_notes if credit else ledger.invoices)[ledger_id]
        due = doc.get("RemainingCredit") if credit else doc.get("AmountDue")
        return float(doc["Total"]), float(doc["TotalTax"]), float(due or 0.0)
    doc = sandbox.realms[realm].get("CreditMemo" if credit else "Invoice", ledger_id)
    due = doc.get("RemainingCredit") if credit else doc.get("Balance")
    return (float(doc["TotalAmt"]), float((doc.get("TxnTaxDetail") or {}).get("TotalTax", 0)),
            float(due or 0.0))
