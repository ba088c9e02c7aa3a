#!/usr/bin/env python3
"""One push worker of ``bench/outbound.py --workers N``: an OS process of its own.

    python3 bench/push_worker.py --config CONF --database DB --connections 7[,8]

Loads the Odoo registry, prints ``{"ready": true}`` and waits for a line on stdin (the
parent starts every worker's clock at once), then runs the push loop as Odoo's cron does
(``billing_sync.job._cron_push()``, one bounded chunk a call, on a new cursor each call)
until the connections have no pending or started job left, and prints one JSON line:
its own CPU time (user + system) and peak memory over the loop, the batches it sent, and
the errors a call raised (as Odoo's cron runner does, a call that raises is rolled back,
its traceback shown once per kind of error, and the loop goes on).
"""

import collections
import json
import os
import resource
import sys
import time
import traceback

import common  # bench/, the script's own folder: adds the repository to sys.path

# a worker that found nothing due looks again after at most this long (the job due next
# may be sooner: it then looks at that time)
MAX_IDLE = 0.5
MIN_IDLE = 0.02
# jobs due no sooner than this (a retry's backoff, a job waiting for another record) are
# not waited for: the worker stops and the parent reports them as jobs_left
GIVE_UP_AFTER = 60.0
# calls raising one after the other: the engine is broken, not busy; the worker stops
MAX_FAILING_CALLS = 50
LEFT = """
    SELECT count(*),
           extract(epoch FROM min(next_attempt_at) FILTER (WHERE state = 'pending')
                              - (clock_timestamp() AT TIME ZONE 'UTC'))
      FROM billing_sync_job
     WHERE connection_id = ANY(%s) AND state IN ('pending', 'started')
"""


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def push_until_done(registry, connection_ids):
    """Call the push cron until ``connection_ids`` have nothing left to send; returns
    (batches sent, calls made, seconds spent idle, {error class: count})."""
    from odoo import SUPERUSER_ID, api

    batches = calls = 0
    idle = 0.0
    errors = collections.Counter()
    failing = 0
    while failing < MAX_FAILING_CALLS:
        calls += 1
        try:
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                # as the scheduled action runs it (ir.cron puts the cron's id in the context)
                cron = env.ref("billing_sync.ir_cron_push_jobs")
                sent = env["billing_sync.job"].with_context(cron_id=cron.id)._cron_push()
        except Exception as exc:  # noqa: BLE001 - as ir.cron: roll back, report, go on
            name = type(exc).__name__
            if not errors[name]:
                print(f"bench: push worker: _cron_push() raised (shown once; counted in "
                      f"worker_errors):\n{traceback.format_exc()}", file=sys.stderr,
                      flush=True)
            errors[name] += 1
            failing += 1
            time.sleep(MIN_IDLE * failing)
            continue
        failing = 0
        batches += sent or 0
        if sent:
            continue
        with registry.cursor() as cr:
            cr.execute(LEFT, [list(connection_ids)])
            left, due_in = cr.fetchone()
        if not left or (due_in or 0.0) > GIVE_UP_AFTER:
            return batches, calls, idle, dict(errors)
        # jobs another worker holds, or due later (a planned wait): look again then
        pause = min(max(due_in or 0.0, MIN_IDLE), MAX_IDLE)
        idle += pause
        time.sleep(pause)
    print(f"bench: push worker: {MAX_FAILING_CALLS} calls in a row raised; stopping",
          file=sys.stderr, flush=True)
    return batches, calls, idle, dict(errors)


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--connections", required=True,
                        help="ids of the billing_sync.connection records to drain")
    parser.add_argument("--profile", metavar="DIR",
                        help="write a cProfile of the loop to DIR/push-worker-<pid>.prof")
    args = parser.parse_args()
    registry = common.registry(args)
    ids = [int(i) for i in args.connections.split(",") if i]
    print(json.dumps({"ready": True}), flush=True)
    if not sys.stdin.readline():
        return 1  # the parent went away before the start
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile(time.process_time)  # CPU, not waits
        profile.enable()
    cpu, start = cpu_seconds(), time.monotonic()
    batches, calls, idle, errors = push_until_done(registry, ids)
    if profile:
        profile.disable()
        profile.dump_stats(f"{args.profile}/push-worker-{os.getpid()}.prof")
    print(json.dumps({
        "cpu_seconds": round(cpu_seconds() - cpu, 3),
        "seconds": round(time.monotonic() - start, 3),
        "batches": batches, "cron_calls": calls, "idle_seconds": round(idle, 2),
        "errors": errors,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
