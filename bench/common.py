"""What every benchmark shares: its command line, the Odoo registry, one JSON line per
provider, and the figures' ratios against their targets."""

import argparse
import json
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parser(description):
    """The arguments every benchmark takes (add its own to the parser returned)."""
    out = argparse.ArgumentParser(description=description)
    out.add_argument("--config", required=True)
    out.add_argument("--database", required=True)
    out.add_argument("--providers", default="xero,qbo")
    return out


def registry(args):
    """The Odoo registry of ``args.database`` (configured from ``args.config``)."""
    import odoo

    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database,
                                    "--log-level=warn"])
    return odoo.modules.registry.Registry(args.database)


def each_provider(args, run):
    """Open the Odoo database of ``args`` and print ``run(env, provider, args)`` as one
    JSON line per provider."""
    from odoo import SUPERUSER_ID, api

    reg = registry(args)
    for provider in args.providers.split(","):
        with reg.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            print(json.dumps(run(env, provider, args)), flush=True)


def ratios(result, targets):
    """Add ``ratio_<name>`` = value / target for each ``{name: (op, target)}`` (op "<=" or
    ">="), and ``targets_missed``: the names whose value misses its target. A ratio of 1 or
    less meets a "<=" target, 1 or more a ">=" one; against a target of 0 the ratio is the
    value itself (0 meets it)."""
    missed = []
    for name, (op, target) in targets.items():
        value = result.get(name)
        if value is None:
            missed.append(name)
            continue
        result[f"ratio_{name}"] = round(value / target, 3) if target else value
        if (value > target) if op == "<=" else (value < target):
            missed.append(name)
    result["targets_missed"] = missed
    return result


def percentile(values, fraction):
    """The ``fraction`` percentile of ``values`` (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def free_port():
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quiesce(env):
    """Archive every ledger connection and cancel every unsent job of the benchmark's
    database, so that nothing left by an earlier (interrupted) run is sent or measured."""
    env["billing_sync.connection"].search([]).write({"active": False})
    env.cr.execute("UPDATE billing_sync_job SET state = 'cancelled' "
                   "WHERE state NOT IN ('done', 'cancelled', 'dead')")
    env.invalidate_all()
    env.cr.commit()


def start_server(args, port, log):
    """Start Odoo (threaded, its cron threads on: ``args.cron_threads``) on ``port``, its
    log in ``log``; wait until it answers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "odoo", "-c", args.config, "-d", args.database,
         "--http-port", str(port), "--http-interface", "127.0.0.1", "--workers", "0",
         "--max-cron-threads", str(args.cron_threads), "--log-level", "warn",
         f"--logfile={log}"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    common_rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/xmlrpc/2/common")
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise SystemExit(f"bench: the Odoo server stopped (exit {process.returncode}); "
                             f"see {log}")
        try:
            common_rpc.version()
            return process
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"bench: the Odoo server did not answer on port {port} "
                                 f"within 180 s; see {log}") from None
            time.sleep(0.5)
