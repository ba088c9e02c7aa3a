#!/usr/bin/env python3
"""Backfill benchmark of the outbound sync: ``make bench-outbound``.

Creates clients and posted invoices in an Odoo database where billing_sync is
installed, connects it to an in-process ledger sandbox (Xero, then QuickBooks
Online) with the provider's rate limits on, runs the real push worker until
every job is done, and prints one JSON line per provider:

  provider, records, records_per_min, ceiling_ratio, requests_per_record,
  unplanned_429, peak_rss_mb (+ seconds, window_seconds, jobs_left)

A "minute" lasts ``--window-seconds`` on both sides (sandbox and client pacer),
so the ceiling (batch size x calls allowed per minute) is reached in less wall
time; records_per_min is counted in those minutes.
"""

import resource
import time

import common  # bench/, the script's own folder: adds the repository to sys.path


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    common.each_provider(parser.parse_args(), run)


def run(env, provider, args):
    from odoo.addons.billing_sync.models import billing_sync_job

    from ledger_sandbox.core import SandboxServer
    from ledger_sandbox.qbo.app import QboSandbox
    from ledger_sandbox.xero.app import XeroSandbox

    window = args.window_seconds
    app = (XeroSandbox(window_seconds=window, day_seconds=window * 1440) if provider == "xero"
           else QboSandbox(window_seconds=window))
    app.configure(base_currency=env.company.currency_id.name)
    with SandboxServer(app) as server:
        connection, tax = setup(env, provider, server.url, window)
        moves = make_invoices(env, tax, args.invoices, args.clients)
        env.cr.commit()
        billing_sync_job._PACERS.clear()
        app.counters.reset()
        Job = env["billing_sync.job"]
        start = time.monotonic()
        while Job._cron_push():
            pass
        # planned waits (a 429's Retry-After) leave jobs due later: finish them
        while Job.search_count([("state", "=", "pending")]):
            time.sleep(0.5)
            Job._cron_push()
        seconds = time.monotonic() - start
        counters = app.counters.snapshot()
        records = env["billing_sync.link"].search_count([("connection_id", "=", connection.id)])
        adapter = connection._adapter()
        limits = adapter.LIMITS
        calls_per_minute = limits.get("batch_per_minute") or limits["per_minute"]
        ceiling = adapter.batch_size("invoice") * calls_per_minute
        per_min = records / (seconds / window)
        too_many = sum(statuses.get("429", 0) + statuses.get(429, 0)
                       for statuses in counters["by_endpoint"].values())
        api_requests = sum(n for label, statuses in counters["by_endpoint"].items()
                           if "token" not in label.lower() and "well-known" not in label
                           for n in statuses.values())
        throttled = {label: statuses.get("429", 0) + statuses.get(429, 0)
                     for label, statuses in counters["by_endpoint"].items()
                     if statuses.get("429") or statuses.get(429)}
        left = env["billing_sync.job"].search_count(
            [("connection_id", "=", connection.id), ("state", "!=", "done")])
        result = {
            "provider": provider,
            "records": records,
            "records_per_min": round(per_min, 1),
            "ceiling_ratio": round(per_min / ceiling, 3),
            "requests_per_record": round(api_requests / max(records, 1), 4),
            "unplanned_429": too_many,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "seconds": round(seconds, 1),
            "window_seconds": window,
            "invoices": len(moves),
            "jobs_left": left,
        }
        if throttled:
            result["http_429_by_endpoint"] = throttled
        cleanup(env, connection)
        return result


def setup(env, provider, url, window):
    from ledger_sandbox.connect import authorise, connection_values

    Connection = env["billing_sync.connection"]
    Connection.search([("provider", "=", provider)]).write({"active": False})
    connection = Connection.create({**connection_values(provider, url),
                                    "rate_window_seconds": window})
    authorise(connection)
    connection.action_import_reference_data()
    refs = connection.reference_ids
    connection.default_account_id = refs.filtered(lambda r: r.kind == "revenue_account")[:1]
    connection.default_item_id = refs.filtered(lambda r: r.kind == "item")[:1]
    # the ledger computes its own tax: invoice with a tax of the ledger tax's rate
    tax_ref = refs.filtered(lambda r: r.kind == "tax" and (r.rate or 0) > 0)[:1]
    name = f"Bench {provider} tax {tax_ref.rate:g}%"
    tax = env["account.tax"].search([("name", "=", name)], limit=1) or env["account.tax"].create(
        {"name": name, "amount": tax_ref.rate, "type_tax_use": "sale"})
    env["billing_sync.mapping"].create({"connection_id": connection.id, "kind": "tax",
                                        "tax_id": tax.id, "tax_ref_id": tax_ref.id})
    env.cr.commit()
    return connection, tax


def make_invoices(env, tax, count, clients):
    """``clients`` partners and ``count`` posted invoices, spread over them."""
    product = env["product.product"].create({"name": "Bench advisory", "type": "service",
                                             "list_price": 150.0, "taxes_id": tax.ids})
    stamp = int(time.time())
    partners = env["res.partner"].create([
        {"name": f"Bench client {stamp}-{i:05d}", "is_company": True,
         "email": f"client{i}.{stamp}@bench.example"} for i in range(clients)])
    moves = env["account.move"]
    chunk = 500
    for start in range(0, count, chunk):
        vals = [{
            "move_type": "out_invoice",
            "partner_id": partners[i % clients].id,
            "invoice_date": time.strftime("%Y-%m-%d"),
            "invoice_line_ids": [(0, 0, {"product_id": product.id, "quantity": 1 + i % 5,
                                         "price_unit": 150.0})],
        } for i in range(start, min(count, start + chunk))]
        batch = env["account.move"].create(vals)
        batch.action_post()
        env.cr.commit()
        moves |= batch
    return moves


def cleanup(env, connection):
    connection.active = False
    env.cr.commit()


if __name__ == "__main__":
    main()
