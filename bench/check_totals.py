#!/usr/bin/env python3
"""Totals benchmark of the outbound sync: ``make check-totals``.

Generates documents in an Odoo database where billing_sync is installed (invoices and
credit notes across quantities, prices with up to four decimals, discounts, tax sets
-- none, excluded, included, two taxes on one line -- both of Odoo's rounding methods,
currencies of 2, 0 and 3 decimals besides the company's,
and payments of part or all of an invoice), pushes them with the real worker to an
in-process ledger sandbox (Xero, then QuickBooks Online; rate limits off: this measures
equality, not speed), then reads every document back from the sandbox and prints one
JSON line per provider:

  provider, documents, cent_mismatches (target 0), adjusted (needed the explicit tax
  or a rounding line: the ledger's own arithmetic would have missed Odoo's figures),
  rounding_lines, held (with reasons; target: none for supported cases), unsupported
  (documents with amounts below the cent, e.g. KWD to the mill, which no ledger keeping
  cents can hold: refused before sending, with the reason), payments, seconds
"""

import collections
import random
import time
from decimal import ROUND_HALF_UP, Decimal

import common  # bench/, the script's own folder: adds the repository to sys.path

CENT = Decimal("0.01")


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=15)
    common.each_provider(parser.parse_args(), run)


def run(env, provider, args):
    from ledger_sandbox.core import SandboxServer
    from ledger_sandbox.qbo.app import QboSandbox
    from ledger_sandbox.xero.app import XeroSandbox
    from tests import totals_cases as cases

    app = XeroSandbox() if provider == "xero" else QboSandbox()
    app.configure(base_currency=env.company.currency_id.name, per_minute=None,
                  per_day=None, concurrent=None)
    if provider == "qbo":
        app.configure(per_second=None, batch_per_minute=None)
    env.ref("product.decimal_price").digits = 4
    cases.enable_currencies(env)
    cases.enable_ledger_currencies(app, provider)
    with SandboxServer(app) as server:
        connection, ledger_tax = setup(env, provider, server.url)
        taxes = cases.tax_sets(env, ledger_tax.rate, f"Totals {provider}")
        cases.map_tax_sets(connection, taxes, ledger_tax)
        journal = env["account.journal"].search(
            [("type", "=", "bank"), ("company_id", "=", env.company.id)], limit=1)
        env["billing_sync.mapping"].create({
            "connection_id": connection.id, "kind": "journal", "journal_id": journal.id,
            "bank_account_id": connection.reference_ids.filtered(
                lambda r: r.kind == "bank_account")[:1].id})
        product = env["product.product"].create({"name": f"Totals {provider} service",
                                                 "type": "service"})
        rng = random.Random(args.seed)  # noqa: S311 -- repeatable documents, not secrets
        stamp = int(time.time())
        partners = env["res.partner"].create([
            {"name": f"Totals client {stamp}-{i:03d}", "is_company": True,
             "email": f"totals{i}.{stamp}@bench.example"} for i in range(50)])
        moves, payments = [], 0
        start = time.monotonic()
        for n in range(args.documents):
            spec = cases.random_spec(rng)
            move = cases.make_document(env, partners[n % len(partners)], product, spec, taxes)
            payments += bool(cases.pay(env, move, spec["paid"], journal))
            moves.append(move)
            if n % 200 == 199:
                env.cr.commit()
        env.cr.commit()
        Job = env["billing_sync.job"]
        while Job._cron_push():
            pass
        seconds = time.monotonic() - start
        result = measure(env, provider, app, connection, moves, ledger_tax.rate)
        result.update(payments=payments, seconds=round(seconds, 1))
        env.cr.commit()
        connection.active = False
        env.cr.commit()
        return result


def setup(env, provider, url):
    from ledger_sandbox.connect import authorise, connection_values

    Connection = env["billing_sync.connection"]
    Connection.search([]).write({"active": False})
    # the sandbox's limits are off and the pacer's "minute" is a second: this measures
    # equality, not speed
    connection = Connection.create({**connection_values(provider, url),
                                    "rate_window_seconds": 1.0})
    authorise(connection)
    connection.action_import_reference_data()
    refs = connection.reference_ids
    revenue = refs.filtered(lambda r: r.kind == "revenue_account")
    connection.write({"default_account_id": revenue[:1].id,
                      "default_item_id": refs.filtered(lambda r: r.kind == "item")[:1].id,
                      "rounding_account_id": revenue[-1:].id})
    ledger_tax = refs.filtered(lambda r: r.kind == "tax" and (r.rate or 0) > 0)[:1]
    env.cr.commit()
    return connection, ledger_tax


def measure(env, provider, app, connection, moves, rate):
    from tests import totals_cases as cases

    Link = env["billing_sync.link"]
    realm = next(iter(app.realms)) if provider == "qbo" else None
    mismatches, adjusted, rounding_lines = 0, 0, 0
    held, unsupported = collections.Counter(), collections.Counter()
    for move in moves:
        jobs = env["billing_sync.job"].search([("res_model", "=", "account.move"),
                                               ("res_id", "=", move.id),
                                               ("state", "!=", "done")])
        for job in jobs:
            # an amount to the mill (KWD) no ledger keeping cents can hold: refused
            # before sending, on purpose; anything else held is a defect
            bucket = unsupported if cases.beyond_cents(move) else held
            bucket[(job.last_error or job.state)[:140]] += 1
        link = Link._of(connection, move)
        if not link:
            continue
        credit = move.move_type == "out_refund"
        total, tax, due = cases.ledger_figures(app, provider, realm, link.ledger_id, credit)
        if (round(total, 2), round(tax, 2), round(due, 2)) != (
                round(move.amount_total, 2), round(move.amount_tax, 2),
                round(move.amount_residual, 2)):
            mismatches += 1
        rounding_lines += bool(link.adjustment)
        native = native_tax(app, provider, realm, link.ledger_id, credit, rate)
        adjusted += bool(link.adjustment) or native != Decimal(str(round(move.amount_tax, 2)))
    return {"provider": provider, "documents": len(moves), "cent_mismatches": mismatches,
            "adjusted": adjusted, "rounding_lines": rounding_lines,
            "held": sum(held.values()), "held_reasons": dict(held.most_common(5)),
            "unsupported": sum(unsupported.values()),
            "unsupported_reasons": dict(unsupported.most_common(2))}


def _cents(value):
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def native_tax(app, provider, realm, ledger_id, credit, rate):
    """The tax the ledger would have computed by itself from the lines it holds (Xero:
    per line; QuickBooks: once on the summed taxable lines)."""
    rate = Decimal(str(rate))
    if provider == "xero":
        ledger = app.ledger()
        doc = (ledger.credit_notes if credit else ledger.invoices)[ledger_id]
        inclusive = doc["LineAmountTypes"] == "Inclusive"
        tax = Decimal(0)
        for line in doc["LineItems"]:
            if line.get("TaxType") in (None, "NONE"):
                continue
            amount = Decimal(str(line["LineAmount"]))
            tax += _cents(amount * rate / (100 + rate) if inclusive else amount * rate / 100)
        return tax
    doc = app.realms[realm].get("CreditMemo" if credit else "Invoice", ledger_id)
    taxable = sum((Decimal(str(ln["Amount"])) for ln in doc["Line"]
                   if ln.get("DetailType") == "SalesItemLineDetail"
                   and (ln["SalesItemLineDetail"].get("TaxCodeRef") or {}).get("value")
                   not in (None, "NON")), Decimal(0))
    return _cents(taxable * rate / 100)


if __name__ == "__main__":
    main()
