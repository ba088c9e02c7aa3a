#!/usr/bin/env python3
"""Overhead benchmark of the outbound sync on posting: ``make bench-overhead``.

Posting an invoice with sync on (the company has an active, connected connection)
writes its job in the same transaction and sends nothing; with sync off (no
connection for the company) it writes nothing. This posts ``--invoices`` draft
invoices each way in one run, one invoice per transaction (``action_post`` then
commit, as a person clicking Post), alternating chunks of ``--chunk`` on and off in
the order on-off-off-on (so that a drift of the machine weighs on both alike), after
a warm-up of each. The drafts are made beforehand, untimed: only posting is measured.
Prints one JSON line per provider:

  provider, invoices, seconds_on, seconds_off, ratio (= seconds_on / seconds_off,
  target <= 1.05), ratio_ratio (ratio / target), targets_missed, median_ms_on,
  median_ms_off, ratio_median, p95_ms_on, p95_ms_off, max_ms_on, max_ms_off,
  cpu_seconds_on, cpu_seconds_off, ratio_cpu (this process's CPU only: steadier than
  wall time on a shared machine, but blind to PostgreSQL's share), jobs_enqueued (one
  per invoice posted with sync on), requests_during_measure (0: nothing is sent while posting)
"""

import statistics
import time

import common  # bench/, the script's own folder: adds the repository to sys.path
import outbound

TARGETS = {"ratio": ("<=", 1.05)}


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1000,
                        help="invoices posted each way (sync on, sync off)")
    parser.add_argument("--chunk", type=int, default=50,
                        help="invoices posted in a row one way before switching")
    parser.add_argument("--warmup", type=int, default=20,
                        help="invoices posted each way first, not measured")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--profile", metavar="DIR",
                        help="write a cProfile of the measured posts, each way, to DIR")
    args = parser.parse_args()
    common.each_provider(args, run)


def run(env, provider, args):
    from ledger_sandbox.core import SandboxServer
    from ledger_sandbox.qbo.app import QboSandbox
    from ledger_sandbox.xero.app import XeroSandbox

    app = XeroSandbox() if provider == "xero" else QboSandbox()
    app.configure(base_currency=env.company.currency_id.name)
    with SandboxServer(app) as server:
        common.quiesce(env)
        connection, tax = outbound.setup(env, provider, server.url, 60.0)
        total = args.invoices + args.warmup
        drafts = make_drafts(env, tax, 2 * total, args.clients)
        on, off = drafts[:total], drafts[total:]
        # warm-up: caches, the first query plans, the sequence of the journal
        post_each(env, connection, on[:args.warmup], sync=True)
        post_each(env, connection, off[:args.warmup], sync=False)
        Job = env["billing_sync.job"]
        jobs_before = Job.search_count([("connection_id", "=", connection.id)])
        app.counters.reset()
        timings = {True: [], False: []}
        cpu = {True: 0.0, False: 0.0}
        chunks = {True: _chunks(on[args.warmup:], args.chunk),
                  False: _chunks(off[args.warmup:], args.chunk)}
        profiles = {}
        if args.profile:
            import cProfile

            profiles = {True: cProfile.Profile(), False: cProfile.Profile()}
        order = [True, False, False, True]
        turn = 0
        while chunks[True] or chunks[False]:
            sync = order[turn % 4]
            turn += 1
            if not chunks[sync]:
                continue
            seconds, cpu_seconds = post_each(env, connection, chunks[sync].pop(0), sync,
                                             profiles.get(sync))
            timings[sync].extend(seconds)
            cpu[sync] += cpu_seconds
        for sync, profile in profiles.items():
            profile.dump_stats(f"{args.profile}/overhead-{provider}-{'on' if sync else 'off'}"
                               ".prof")
        counters = app.counters.snapshot()
        requests = sum(n for statuses in counters["by_endpoint"].values()
                       for n in statuses.values())
        jobs = Job.search_count([("connection_id", "=", connection.id)]) - jobs_before
        seconds_on, seconds_off = sum(timings[True]), sum(timings[False])
        median_on = statistics.median(timings[True]) if timings[True] else 0.0
        median_off = statistics.median(timings[False]) if timings[False] else 0.0
        result = {
            "provider": provider,
            "invoices": len(timings[True]),
            "seconds_on": round(seconds_on, 3),
            "seconds_off": round(seconds_off, 3),
            "ratio": round(seconds_on / seconds_off, 4) if seconds_off else None,
        }
        common.ratios(result, TARGETS)
        result.update({
            "median_ms_on": round(median_on * 1000, 2),
            "median_ms_off": round(median_off * 1000, 2),
            "ratio_median": round(median_on / median_off, 4) if median_off else None,
            "p95_ms_on": _ms(common.percentile(timings[True], 0.95)),
            "p95_ms_off": _ms(common.percentile(timings[False], 0.95)),
            "max_ms_on": _ms(max(timings[True], default=None)),
            "max_ms_off": _ms(max(timings[False], default=None)),
            "cpu_seconds_on": round(cpu[True], 3),
            "cpu_seconds_off": round(cpu[False], 3),
            "ratio_cpu": round(cpu[True] / cpu[False], 4) if cpu[False] else None,
            "jobs_enqueued": jobs,
            "requests_during_measure": requests,
            "chunk": args.chunk,
        })
        common.quiesce(env)
        return result


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


def _chunks(records, size):
    return [records[i:i + size] for i in range(0, len(records), max(size, 1))]


def post_each(env, connection, moves, sync, profile=None):
    """Post ``moves`` one transaction each, with the connection active (``sync``) or
    archived; returns (the seconds of each post, the CPU seconds of them all).
    ``profile``: a cProfile.Profile enabled around each post."""
    if connection.active != sync:
        connection.active = sync
        env.cr.commit()
    seconds = []
    cpu = time.process_time()
    for move in moves:
        # alone, as a person posting one invoice: a record browsed among the drafts made
        # with it would fetch (and compute) fields for all of them at each post
        move = env["account.move"].browse(move.id)
        if profile:
            profile.enable()
        start = time.perf_counter()
        move.action_post()
        env.cr.commit()
        seconds.append(time.perf_counter() - start)
        if profile:
            profile.disable()
    return seconds, time.process_time() - cpu


def make_drafts(env, tax, count, clients):
    """``count`` draft invoices for ``clients`` partners, made in bulk (untimed)."""
    product = env["product.product"].create({"name": "Bench overhead advisory",
                                             "type": "service", "list_price": 150.0,
                                             "taxes_id": tax.ids})
    stamp = int(time.time())
    partners = env["res.partner"].create([
        {"name": f"Overhead client {stamp}-{i:05d}", "is_company": True,
         "email": f"overhead{i}.{stamp}@bench.example"} for i in range(clients)])
    moves = []
    chunk = 500
    for start in range(0, count, chunk):
        moves.extend(env["account.move"].create([{
            "move_type": "out_invoice",
            "partner_id": partners[i % clients].id,
            "invoice_date": time.strftime("%Y-%m-%d"),
            "invoice_line_ids": [(0, 0, {"product_id": product.id, "quantity": 1 + i % 5,
                                         "price_unit": 150.0})],
        } for i in range(start, min(count, start + chunk))]))
        env.cr.commit()
    return moves


if __name__ == "__main__":
    main()
