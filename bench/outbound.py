#!/usr/bin/env python3
"""Backfill benchmark of the outbound sync: ``make bench-outbound``.

Creates clients and posted invoices in an Odoo database where billing_sync is
installed, connects it to an in-process ledger sandbox (Xero, then QuickBooks
Online) with the provider's rate limits on, then ``--workers`` OS processes
(bench/push_worker.py, each with its own Odoo registry on the same database) run
the real push loop against that one connection until no job is left, and prints
one JSON line per provider:

  provider, records, records_per_min, ceiling_ratio (target >= 0.95),
  requests_per_record (target <= 0.05), unplanned_429 (target 0),
  odoo_cpu_ms_per_record (target <= 3), ratio_<each> (value / target),
  targets_missed, workers, seconds (+ batches, peak_rss_mb of a worker,
  odoo_cpu_seconds_startup, window_seconds, jobs_left)

A "minute" lasts ``--window-seconds`` on both sides (sandbox and the connection's
rate budget), so the ceiling (batch size x calls allowed per minute) is reached in
less wall time; records_per_min is counted in those minutes. The sandbox serves
from this process; odoo_cpu_ms_per_record counts the workers' CPU only (user +
system, from each worker's own rusage over its push loop; loading the registry is
odoo_cpu_seconds_startup).
"""

import collections
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import common  # bench/, the script's own folder: adds the repository to sys.path

WORKER = Path(__file__).resolve().parent / "push_worker.py"
TARGETS = {"ceiling_ratio": (">=", 0.95), "requests_per_record": ("<=", 0.05),
           "unplanned_429": ("<=", 0), "odoo_cpu_ms_per_record": ("<=", 3.0)}


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1,
                        help="push worker processes sharing the connection (default 1)")
    parser.add_argument("--profile", metavar="DIR",
                        help="each worker writes a cProfile of its loop to DIR")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be 1 or more")
    common.each_provider(args, run)


def run(env, provider, args):
    from ledger_sandbox.core import SandboxServer
    from ledger_sandbox.qbo.app import QboSandbox
    from ledger_sandbox.xero.app import XeroSandbox

    window = args.window_seconds
    app = (XeroSandbox(window_seconds=window, day_seconds=window * 1440) if provider == "xero"
           else QboSandbox(window_seconds=window))
    app.configure(base_currency=env.company.currency_id.name)
    with SandboxServer(app) as server:
        common.quiesce(env)
        connection, tax = setup(env, provider, server.url, window)
        moves = make_invoices(env, tax, args.invoices, args.clients)
        env.cr.commit()
        drained = drain(args, connection.ids, app)
        seconds = drained["seconds"]
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
            "odoo_cpu_ms_per_record": round(drained["cpu_seconds"] * 1000 / max(records, 1),
                                            3),
        }
        common.ratios(result, TARGETS)
        result.update({
            "workers": args.workers,
            "seconds": round(seconds, 1),
            "batches": drained["batches"],
            "cron_calls": drained["cron_calls"],
            "worker_idle_seconds": drained["idle_seconds"],
            "worker_errors": drained["errors"],
            "peak_rss_mb": drained["peak_rss_mb"],
            "odoo_cpu_seconds_startup": drained["startup_cpu_seconds"],
            "window_seconds": window,
            "invoices": len(moves),
            "jobs_left": left,
        })
        if throttled:
            result["http_429_by_endpoint"] = throttled
        cleanup(env, connection)
        return result


def drain(args, connection_ids, app):
    """Run ``args.workers`` push worker processes until ``connection_ids`` have nothing
    left to send; their clocks start together, once every registry is loaded."""
    command = [sys.executable, str(WORKER), "--config", args.config,
               "--database", args.database,
               "--connections", ",".join(str(i) for i in connection_ids),
               *(["--profile", args.profile] if args.profile else [])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for _ in range(args.workers)]
    try:
        for worker in workers:
            _answer(worker, "ready")
        app.counters.reset()
        start = time.monotonic()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = [_answer(worker, "cpu_seconds") for worker in workers]
        seconds = time.monotonic() - start
        for worker in workers:
            worker.wait(timeout=60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = sum(report["cpu_seconds"] for report in reports)
    errors = collections.Counter()
    for report in reports:
        errors.update(report["errors"])
    return {"seconds": seconds, "cpu_seconds": cpu,
            "startup_cpu_seconds": round(max(total - cpu, 0.0), 2),
            "batches": sum(report["batches"] for report in reports),
            "cron_calls": sum(report["cron_calls"] for report in reports),
            "idle_seconds": round(sum(report["idle_seconds"] for report in reports), 1),
            "errors": dict(errors),
            "peak_rss_mb": max(report["peak_rss_mb"] for report in reports)}


def _answer(worker, field):
    """The worker's next JSON line holding ``field`` (other output is passed on)."""
    while True:
        line = worker.stdout.readline()
        if not line:
            worker.kill()
            raise SystemExit(f"bench: push worker {worker.pid} stopped without its {field!r} "
                             "line; its error is above")
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and field in answer:
            return answer
        print(line, end="", file=sys.stderr)


def setup(env, provider, url, window, company=None, org=None):
    """A connection of ``company`` (default: the main one) to the sandbox at ``url``,
    authorised as a person would, its reference data imported, a revenue account, an item
    and a tax mapped; returns (connection, the Odoo tax mapped). ``org``: the organisation
    to pick (a Xero tenant id, a QuickBooks realm id) when the sandbox has several."""
    from ledger_sandbox.connect import authorise, connection_values

    company = company or env.company
    Connection = env["billing_sync.connection"].with_company(company)
    connection = Connection.create({**connection_values(provider, url),
                                    "company_id": company.id, "rate_window_seconds": window})
    if provider == "qbo" and org:
        authorise(connection, realm_id=org)
    else:
        authorise(connection)
    if connection.state == "choose_org":
        connection.chosen_org_id = connection.candidate_org_ids.filtered(
            lambda o: o.org_id == org)[:1]
        connection.action_choose_org()
    connection.action_import_reference_data()
    refs = connection.reference_ids
    connection.default_account_id = refs.filtered(lambda r: r.kind == "revenue_account")[:1]
    connection.default_item_id = refs.filtered(lambda r: r.kind == "item")[:1]
    # the ledger computes its own tax: invoice with a tax of the ledger tax's rate
    tax_ref = refs.filtered(lambda r: r.kind == "tax" and (r.rate or 0) > 0)[:1]
    name = f"Bench {provider} tax {tax_ref.rate:g}%"
    Tax = env["account.tax"].with_company(company)
    tax = Tax.search([("name", "=", name), ("company_id", "=", company.id)], limit=1) or \
        Tax.create({"name": name, "amount": tax_ref.rate, "type_tax_use": "sale",
                    "company_id": company.id})
    env["billing_sync.mapping"].create({"connection_id": connection.id, "kind": "tax",
                                        "tax_id": tax.id, "tax_ref_id": tax_ref.id})
    env.cr.commit()
    return connection, tax


def make_invoices(env, tax, count, clients, prefix="Bench"):
    """``clients`` partners and ``count`` posted invoices, spread over them, in the
    company of ``tax``."""
    company = tax.company_id
    product = env["product.product"].create({
        "name": f"{prefix} advisory", "type": "service", "list_price": 150.0,
        "taxes_id": tax.ids, "company_id": company.id})
    stamp = int(time.time())
    partners = env["res.partner"].create([
        {"name": f"{prefix} client {stamp}-{i:05d}", "is_company": True,
         "email": f"client{i}.{stamp}@{prefix.lower().replace(' ', '-')}.example"}
        for i in range(clients)])
    Move = env["account.move"].with_company(company)
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
        batch = Move.create(vals)
        batch.action_post()
        env.cr.commit()
        moves |= batch
    return moves


def cleanup(env, connection):
    connection.active = False
    env.cr.commit()


if __name__ == "__main__":
    main()
