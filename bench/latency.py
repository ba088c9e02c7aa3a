#!/usr/bin/env python3
"""Latency benchmark of the outbound sync: ``make bench-latency``.

For each provider: a ledger sandbox serves from this process (its rate limits on, a
real minute unless ``--window-seconds`` says otherwise) and the main company gets a
connected connection to it; then a REAL Odoo server starts (``python3 -m odoo``, its
cron threads woken by the push cron's trigger, as in production) and this script posts
invoices through XML-RPC as admin, ``--rate`` a second for ``--seconds``. For each
invoice it measures the time from the post RPC's return to the invoice being in the
sandbox (the sandbox's organisation is polled every ``--poll`` seconds). Then a second
company, connected to another organisation of the same sandbox, is given
``--backfill`` invoices to send, and the measure runs again while it backfills.
Prints one JSON line per provider:

  provider, out_p50_s, out_p95_s (quiet queue; target <= 2), out_p50_s_during_backfill,
  out_p95_s_during_backfill (target <= 2), ratio_<each p95> (value / target),
  targets_missed, invoices, missing (never reached the ledger within --settle; a p95
  they make unknown is null), backfill, backfill_sent_during (backfill invoices that
  reached the ledger from its start to the last measured post), backfill_left_at_end
  (its jobs still to send then: 0 means it ended before the measure did), out_max_s,
  post_rpc_p50_s (how long posting took the server), unplanned_429, seconds

The warm-up (one invoice per measured client, so each is in the ledger before the
measure) is not measured. The server's log: .build/logs/bench-latency-<database>.log.
"""

import concurrent.futures
import math
import threading
import time
import xmlrpc.client

import common  # bench/, the script's own folder: adds the repository to sys.path
import outbound

from tools import harness

TARGETS = {"out_p95_s": ("<=", 2.0), "out_p95_s_during_backfill": ("<=", 2.0)}
KEY_NAME = "billing_sync latency benchmark"
BACKFILL_COMPANY = "Bench backfill firm"
BACKFILL_ORG = "Bench Backfill Ltd"
BACKFILL_REALM = "9341453099990001"
LOGS = common.ROOT / ".build" / "logs"


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="length of each measure (quiet, then during the backfill)")
    parser.add_argument("--rate", type=float, default=1.0, help="invoices posted a second")
    parser.add_argument("--backfill", type=int, default=10000,
                        help="invoices the second company sends meanwhile")
    parser.add_argument("--backfill-clients", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=10,
                        help="clients of the measured invoices")
    parser.add_argument("--window-seconds", type=float, default=60.0,
                        help="the rate-limit minute (60: the ledgers' own limits)")
    parser.add_argument("--poll", type=float, default=0.05,
                        help="seconds between two looks at the sandbox")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="how long an invoice may take before it counts as missing")
    parser.add_argument("--http-port", type=int, default=0, help="the server's (0: a free one)")
    parser.add_argument("--cron-threads", type=int, default=2)
    args = parser.parse_args()
    common.each_provider(args, run)


def run(env, provider, args):
    from ledger_sandbox.core import SandboxServer
    from ledger_sandbox.qbo.app import QboSandbox
    from ledger_sandbox.xero.app import XeroSandbox

    window = args.window_seconds
    app = (XeroSandbox(window_seconds=window, day_seconds=window * 1440) if provider == "xero"
           else QboSandbox(window_seconds=window))
    currency = env.company.currency_id.name
    app.configure(base_currency=currency)
    server = odoo_server = None
    try:
        server = SandboxServer(app).start()
        common.quiesce(env)
        # the second company and its chart before the server runs: Odoo refuses to install
        # a module (a chart's) while one of its cron threads runs a scheduled action
        backfill_company(env)
        connection, tax = outbound.setup(env, provider, server.url, window)
        measured_org = connection.org_id
        client_ids, product_id = measured_clients(env, tax, args.clients)
        key = api_key(env)
        port = args.http_port or common.free_port()
        odoo_server = common.start_server(args, port, server_log(args))
        rpc = Poster(f"http://127.0.0.1:{port}", args.database, key, client_ids, product_id)
        probe = Probe(app, provider, measured_org, args.poll)
        with probe:
            warm = []
            for i in range(len(client_ids)):
                warm.append(rpc.post(i)[0])
                time.sleep(1 / args.rate)
            wait_for(probe, warm, args.settle)
            late = [name for name in warm if name not in probe.seen]
            if late:
                raise SystemExit(
                    f"bench: {len(late)} of the {len(warm)} warm-up invoices did not reach the "
                    f"{provider} sandbox within {args.settle:g} s: the push does not run; see "
                    f"the server's log, {server_log(args)}")
            app.counters.reset()
            quiet = measure(rpc, probe, args)
            backfill_org, holder = prepare_backfill(env, app, provider, server.url, args,
                                                    currency)
            before = probe.count(backfill_org)
            release(env, holder)
            # where the backfill stands when the last measured invoice is posted
            busy = measure(rpc, probe, args, then=lambda: (
                probe.count(backfill_org) - before, jobs_left(env, holder)))
            sent_during, left = busy["then"]
        counters = app.counters.snapshot()
        throttled = {label: statuses.get("429", 0) + statuses.get(429, 0)
                     for label, statuses in counters["by_endpoint"].items()
                     if statuses.get("429") or statuses.get(429)}
        too_many = sum(throttled.values())
        result = {
            "provider": provider,
            "out_p50_s": quiet["p50"],
            "out_p95_s": quiet["p95"],
            "out_p50_s_during_backfill": busy["p50"],
            "out_p95_s_during_backfill": busy["p95"],
        }
        common.ratios(result, TARGETS)
        result.update({
            "invoices": quiet["invoices"],
            "invoices_during_backfill": busy["invoices"],
            "missing": quiet["missing"],
            "missing_during_backfill": busy["missing"],
            "out_max_s": quiet["max"],
            "out_max_s_during_backfill": busy["max"],
            "post_rpc_p50_s": quiet["rpc_p50"],
            "post_rpc_p50_s_during_backfill": busy["rpc_p50"],
            "backfill": args.backfill,
            "backfill_sent_during": sent_during,
            "backfill_left_at_end": left,
            "unplanned_429": too_many,
            "rate": args.rate,
            "seconds": args.seconds,
            "window_seconds": window,
            "cron_threads": args.cron_threads,
        })
        if throttled:
            result["http_429_by_endpoint"] = throttled
        return result
    finally:
        if odoo_server:
            harness.stop(odoo_server, 60)
        env.cr.rollback()
        common.quiesce(env)
        env["res.users.apikeys"].sudo().search([("name", "=", KEY_NAME)]).unlink()
        env.cr.commit()
        if server:
            server.stop()


# ---------------------------------------------------------------------- set-up
def measured_clients(env, tax, count):
    """``count`` clients and a product of the main company, for the measured invoices."""
    stamp = int(time.time())
    product = env["product.product"].create({
        "name": "Latency advisory", "type": "service", "list_price": 150.0,
        "taxes_id": tax.ids, "company_id": env.company.id})
    partners = env["res.partner"].create([
        {"name": f"Latency client {stamp}-{i:03d}", "is_company": True,
         "email": f"latency{i}.{stamp}@bench.example"} for i in range(max(count, 1))])
    env.cr.commit()
    return partners.ids, product.id


def api_key(env):
    """An API key of the administrator, for XML-RPC (removed at the end)."""
    admin = env.ref("base.user_admin")
    Keys = env["res.users.apikeys"].with_user(admin).sudo()
    Keys.search([("name", "=", KEY_NAME)]).unlink()
    key = Keys._generate(None, KEY_NAME, None)
    env.cr.commit()
    return key


def backfill_company(env):
    """The second company (made once, with Odoo's generic chart of accounts)."""
    company = env["res.company"].search([("name", "=", BACKFILL_COMPANY)], limit=1)
    if not company:
        company = env["res.company"].create({
            "name": BACKFILL_COMPANY, "currency_id": env.company.currency_id.id,
            "country_id": env.company.country_id.id})
    if not company.chart_template:
        env["account.chart.template"].try_loading(
            env.company.chart_template or "generic_coa", company=company, install_demo=False)
    env.cr.commit()
    return company


def prepare_backfill(env, app, provider, url, args, currency):
    """A second organisation in the sandbox, the second company's connection to it, and
    ``args.backfill`` posted invoices of that company, whose jobs wait: the connection
    is held (as one that needs reconnecting) until ``release``. Returns (organisation id,
    connection)."""
    if provider == "xero":
        org = app.add_tenant(BACKFILL_ORG)
    else:
        from ledger_sandbox.qbo.seed import default_realm

        app.add_realm(default_realm(BACKFILL_REALM, BACKFILL_ORG))
        org = BACKFILL_REALM
    app.configure(base_currency=currency)
    company = backfill_company(env)
    connection, tax = outbound.setup(env, provider, url, args.window_seconds, company=company,
                                     org=org)
    connection._needs_reconnect("held by the latency benchmark until its backfill starts")
    env.cr.commit()
    outbound.make_invoices(env, tax, args.backfill, args.backfill_clients, prefix="Backfill")
    env.cr.commit()
    # the server's caches learn of what changed here (a company, its chart), as after an RPC
    env.registry.signal_changes()
    return org, connection


def release(env, connection):
    """Connect the held connection again, as a person would: its jobs go."""
    from ledger_sandbox.connect import authorise

    if connection.provider == "qbo":
        authorise(connection, realm_id=connection.org_id)
    else:
        authorise(connection)
    env.cr.commit()
    if connection.state != "connected":
        raise SystemExit(f"bench: the backfill connection did not reconnect "
                         f"({connection.state}: {connection.last_error})")


def jobs_left(env, connection):
    with env.registry.cursor() as cr:
        cr.execute("SELECT count(*) FROM billing_sync_job WHERE connection_id = %s "
                   "AND state IN ('pending', 'started')", [connection.id])
        return cr.fetchone()[0]


# ---------------------------------------------------------------------- the server
def server_log(args):
    return LOGS / f"bench-latency-{args.database}.log"


# ---------------------------------------------------------------------- measuring
class Poster:
    """Posts invoices of the main company through XML-RPC, as the administrator."""

    def __init__(self, url, database, key, client_ids, product_id):
        self.url, self.database, self.key = url, database, key
        self.client_ids, self.product_id = client_ids, product_id
        self.local = threading.local()
        self.uid = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common").authenticate(
            database, "admin", key, {})
        if not self.uid:
            raise SystemExit("bench: the administrator's API key was refused over XML-RPC")

    def _call(self, model, method, *args):
        proxy = getattr(self.local, "proxy", None)
        if proxy is None:
            proxy = self.local.proxy = xmlrpc.client.ServerProxy(
                f"{self.url}/xmlrpc/2/object", allow_none=True)
        return proxy.execute_kw(self.database, self.uid, self.key, model, method, list(args))

    def post(self, i):
        """Create and post invoice ``i``; returns (its number, when the post returned,
        how long the post call took)."""
        move_id = self._call("account.move", "create", {
            "move_type": "out_invoice",
            "partner_id": self.client_ids[i % len(self.client_ids)],
            "invoice_date": time.strftime("%Y-%m-%d"),
            "invoice_line_ids": [(0, 0, {"product_id": self.product_id,
                                         "quantity": 1 + i % 5, "price_unit": 150.0})]})
        start = time.monotonic()
        self._call("account.move", "action_post", [move_id])
        posted_at = time.monotonic()
        name = self._call("account.move", "read", [move_id], ["name"])[0]["name"]
        return name, posted_at, posted_at - start


class Probe:
    """Looks at one organisation of an in-process sandbox every ``interval`` seconds and
    keeps when each invoice number was first seen there."""

    def __init__(self, app, provider, org, interval):
        self.app, self.provider, self.org, self.interval = app, provider, org, interval
        self.seen = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-probe", daemon=True)

    def _invoices(self, org):
        if self.provider == "xero":
            return self.app.ledgers[org].invoices
        return self.app.realms[org].entities["Invoice"]

    def numbers(self, org):
        field = "InvoiceNumber" if self.provider == "xero" else "DocNumber"
        # a C-level copy of the dict's values: atomic under the GIL, while the sandbox's
        # threads may be adding to it
        return [invoice.get(field) for invoice in list(self._invoices(org).values())]

    def count(self, org):
        return len(self._invoices(org))

    def _run(self):
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            for number in self.numbers(self.org):
                if number and number not in self.seen:
                    self.seen[number] = now

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def wait_for(probe, names, settle):
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and any(name not in probe.seen for name in names):
        time.sleep(probe.interval)


def measure(rpc, probe, args, then=None):
    """Post ``args.rate`` invoices a second for ``args.seconds`` (on time, whatever each
    post takes: several may run at once), then wait for them in the ledger. ``then()``
    is called once the last is posted; its answer is kept under "then"."""
    count = max(1, round(args.seconds * args.rate))
    start = time.monotonic() + 0.1
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        for i in range(count):
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(rpc.post, i))
        posted = [future.result() for future in futures]
    at_end = then() if then else None
    wait_for(probe, [name for name, _at, _rpc in posted], args.settle)
    latencies = [max(0.0, probe.seen[name] - at) for name, at, _rpc in posted
                 if name in probe.seen]
    missing = len(posted) - len(latencies)
    # an invoice that never arrived is slower than any that did
    ranked = latencies + [math.inf] * missing

    def figure(value):
        return None if value is None or math.isinf(value) else round(value, 3)

    return {"invoices": len(posted), "missing": missing, "then": at_end,
            "p50": figure(common.percentile(ranked, 0.50)),
            "p95": figure(common.percentile(ranked, 0.95)),
            "max": figure(max(ranked)),
            "rpc_p50": figure(common.percentile([rpc for _n, _a, rpc in posted], 0.50))}


if __name__ == "__main__":
    main()
