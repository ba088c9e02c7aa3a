"""One sync worker process for test_engine_processes.py (not a test module).

    python3 tests/engine_worker.py --config C --database D push [--seconds 60]
        runs the push cron's method, committing, until no job is due or sending
    python3 tests/engine_worker.py --config C --database D take KEY PER_MINUTE N
        tries N calls of the rate-limit budget KEY at once; prints how many it got
    python3 tests/engine_worker.py --config C --database D claim
        one claim, as a worker would: prints the jobs claimed, sends nothing

Each prints one JSON line on stdout; an exception exits non-zero with its traceback.
"""

import argparse
import json
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--database", required=True)
    sub = parser.add_subparsers(dest="cmd", required=True)
    push = sub.add_parser("push")
    push.add_argument("--seconds", type=float, default=120.0)
    take = sub.add_parser("take")
    take.add_argument("key")
    take.add_argument("per_minute", type=int)
    take.add_argument("n", type=int)
    sub.add_parser("claim")
    args = parser.parse_args()

    import odoo
    from odoo import SUPERUSER_ID, api

    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database,
                                    "--log-level=warn"])
    registry = odoo.modules.registry.Registry(args.database)
    if args.cmd == "push":
        print(json.dumps(run_push(registry, api, SUPERUSER_ID, args.seconds)), flush=True)
    elif args.cmd == "take":
        import functools

        from odoo.addons.billing_sync.services.ratelimit import (
            BudgetExhausted,
            SharedBudget,
            read_committed,
        )

        got = 0
        with registry.cursor() as session:
            budget = SharedBudget(functools.partial(read_committed, registry), session, args.key,
                                  per_minute=args.per_minute, max_sleep=0)
            for _ in range(args.n):
                try:
                    budget.acquire()
                    budget.release()
                    got += 1
                except BudgetExhausted:
                    pass
        print(json.dumps({"got": got}), flush=True)
    else:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            jobs = env["billing_sync.job"]._claim_batch()
            print(json.dumps({"claimed": jobs.ids}), flush=True)
            cr.rollback()


def run_push(registry, api, uid, seconds):
    """Push until nothing is due nor being sent by anyone, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    batches = 0
    while time.monotonic() < deadline:
        with registry.cursor() as cr:
            env = api.Environment(cr, uid, {})
            Job = env["billing_sync.job"]
            sent = Job._cron_push()
            batches += sent
            busy = Job._due_count() + Job.search_count([("state", "=", "started")])
        if not sent and not busy:
            break
        if not sent:
            time.sleep(0.2)
    return {"batches": batches}


if __name__ == "__main__":
    main()
