#!/usr/bin/env python3
"""Latency benchmark of the inbound sync: ``make bench-inbound``.

For each provider: a ledger sandbox serves from this process (its rate limits on, a real
minute unless ``--window-seconds`` says otherwise), the main company gets a connected
connection to it with a webhook signing secret, and a REAL Odoo server starts
(``python3 -m odoo``, ``--cron-threads`` cron threads woken by the crons' triggers, as in
production). The sandbox is then told to deliver its webhooks to that server
(``/billing_sync/webhook/<provider>/<database>``, signed with the secret). A warm-up posts
one invoice per client (``--clients``) through XML-RPC, so each client is in the ledger
and linked. Then the bookkeeper makes ``--rate`` changes a second in the ledger for
``--seconds`` (round-robin over the clients; ``--changes mixed``, the default: a new
billing email, then a payment of 1.00 on the client's invoice, in turn; or only one of the
two), and for each change this script measures the time from the change to Odoo showing it
(the partner's billing email, or the invoice's amount open, read from the database every
``--poll`` seconds), and the server's answer
time to each webhook delivery (as the sandbox timed it: from the POST's start to the
answer read). Prints one JSON line per provider:

  provider, events (webhook events delivered during the measure), ack_p50_ms,
  ack_p95_ms (target <= 50), in_p50_s, in_p95_s (target <= 2; in_p95_s_contacts and
  in_p95_s_payments: each kind alone), reads_per_change (ledger
  API requests Odoo made during the measure / changes applied; target <= 0.2),
  bytes_read_per_change (bytes of the ledger's API answers Odoo read during the measure /
  changes applied: what Xero prices from 2026; no target is set),
  missing (changes never shown within --settle; a p95 they make unknown is null),
  ratio_<each target> (value / target), targets_missed, changes, applied, superseded,
  in_max_s, webhook_attempts, webhook_failed, requests_by_endpoint, unplanned_429,
  jobs_enqueued, inbox_deferred (changes the worker put off: rate budget, 429, retry;
  beyond --gather),
  inbox_pending_at_end, inbox_failed, server_log_errors, seconds

The warm-up is not measured, and its calls leave the organisation's rate-limit minute
before the measure starts (``--cool-down``, default one window). The server's log:
.build/logs/bench-inbound-<database>.log.
"""

import collections
import json
import math
import threading
import time

import common  # bench/, the script's own folder: adds the repository to sys.path
import latency
import outbound

from tools import harness

TARGETS = {"ack_p95_ms": ("<=", 50.0), "in_p95_s": ("<=", 2.0),
           "reads_per_change": ("<=", 0.2)}
KEY_NAME = "billing_sync inbound benchmark"
WEBHOOK_KEY = "bench-inbound-webhook-signing-secret"
LOGS = common.ROOT / ".build" / "logs"
# the sandbox's OAuth and identity endpoints: not the ledger's API
NOT_API = ("/connect/", "oauth2", "well-known", "openid", "userinfo", "revocation", "revoke",
           "/Connections")


def main():
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the measure")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="bookkeeper changes a second")
    parser.add_argument("--clients", type=int, default=20,
                        help="clients in the ledger, changed in turn")
    parser.add_argument("--window-seconds", type=float, default=60.0,
                        help="the rate-limit minute (60: the ledgers' own limits)")
    parser.add_argument("--poll", type=float, default=0.05,
                        help="seconds between two looks at the partners")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="how long a change may take before it counts as missing")
    parser.add_argument("--cool-down", type=float, default=None,
                        help="seconds between the warm-up and the measure, so that the "
                             "warm-up's calls have left the organisation's rate-limit "
                             "minute (default: --window-seconds; 0: none)")
    parser.add_argument("--changes", choices=("mixed", "contacts", "payments"),
                        default="mixed",
                        help="what the bookkeeper changes: a client's billing email, a "
                             "payment of 1.00 on a client's invoice, or one then the other")
    parser.add_argument("--gather", type=int, default=0,
                        help="the connection's 'Gather ledger changes (seconds)': how long "
                             "an announced change waits so that those after it ride in the "
                             "same read (0, the default: read at once)")
    parser.add_argument("--qbo-batch-seconds", type=float, default=0.2,
                        help="QuickBooks' aggregation of events into one delivery")
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
    app.configure(base_currency=env.company.currency_id.name)
    server = odoo_server = db = None
    try:
        server = SandboxServer(app).start()
        common.quiesce(env)
        connection, tax = outbound.setup(env, provider, server.url, window)
        connection.webhook_key = WEBHOOK_KEY
        connection.inbound_gather_seconds = args.gather
        # QuickBooks' payments without a deposit account go to Undeposited Funds
        connection.ledger_payment_journal_id = env["account.journal"].search(
            [("type", "=", "bank"), ("company_id", "=", env.company.id)], limit=1)
        env.cr.commit()
        client_ids, product_id = clients(env, tax, args.clients)
        key = api_key(env)
        port = args.http_port or common.free_port()
        odoo_server = common.start_server(args, port, server_log(args))
        subscribe(app, provider, f"http://127.0.0.1:{port}/billing_sync/webhook/{provider}/"
                                 f"{args.database}", args)
        db = Database(args.database)
        rpc = latency.Poster(f"http://127.0.0.1:{port}", args.database, key, client_ids,
                             product_id)
        ledger_ids = warm_up(rpc, db, app, connection.id, client_ids, args)
        invoices = invoices_of(db, connection.id, client_ids)
        # the warm-up's pushes and reads spent most of the organisation's rate-limit
        # minute: the measure starts once they have left it
        time.sleep(args.window_seconds if args.cool_down is None else args.cool_down)
        app.counters.reset()
        first_attempt = len(app.webhook.attempts)
        jobs_before = db.one("SELECT coalesce(max(id), 0) FROM billing_sync_job")
        inbox_before = db.one("SELECT coalesce(max(id), 0) FROM billing_sync_inbox")
        with Watcher(db, client_ids, [i[0] for i in invoices.values()],
                     args.poll) as watcher:
            started = time.monotonic()
            changes = bookkeep(app, provider, connection.org_id, ledger_ids, invoices, args)
            wait_for(watcher, changes, args.settle)
            app.webhook.flush(timeout=10)
            seconds = time.monotonic() - started
        counters = app.counters.snapshot()
        attempts = app.webhook.attempts[first_attempt:]
        figures = latencies(watcher, changes)
        api = {label: sum(statuses.values())
               for label, statuses in counters["by_endpoint"].items()
               if not any(part in label for part in NOT_API)}
        applied = figures["applied"]
        read = {label: size for label, size in counters.get("bytes_by_endpoint", {}).items()
                if not any(part in label for part in NOT_API)}
        acks = [attempt["seconds"] * 1000 for attempt in attempts]
        result = {
            "provider": provider,
            "events": sum(events_in(provider, attempt["body"]) for attempt in attempts
                          if attempt["ok"]),
            "ack_p50_ms": rounded(common.percentile(acks, 0.50), 1),
            "ack_p95_ms": rounded(common.percentile(acks, 0.95), 1),
            "in_p50_s": figures["p50"],
            "in_p95_s": figures["p95"],
            "in_p95_s_contacts": latencies(watcher, changes, "contact")["p95"],
            "in_p95_s_payments": latencies(watcher, changes, "payment")["p95"],
            "reads_per_change": round(sum(api.values()) / applied, 3) if applied else None,
            "bytes_read_per_change": (round(sum(read.values()) / applied)
                                      if applied else None),
            "missing": figures["missing"],
        }
        common.ratios(result, TARGETS)
        result.update({
            "changes": len(changes),
            "changes_kind": args.changes,
            "applied": applied,
            "superseded": figures["superseded"],
            "in_max_s": figures["max"],
            "ack_max_ms": rounded(max(acks) if acks else None, 1),
            "webhook_attempts": len(attempts),
            "webhook_failed": dict(collections.Counter(
                attempt["reason"] for attempt in attempts if not attempt["ok"])),
            "api_requests": sum(api.values()),
            "unplanned_429": sum(statuses.get("429", 0)
                                 for statuses in counters["by_endpoint"].values()),
            "requests_by_endpoint": api,
            "jobs_enqueued": db.one("SELECT count(*) FROM billing_sync_job WHERE id > %s "
                                    "AND connection_id = %s", [jobs_before, connection.id]),
            # rows of the measure the worker put off (the rate budget, a 429, a retry)
            # beyond the gathering asked for, and those still unread at the end
            "inbox_deferred": db.one(
                "SELECT count(*) FROM billing_sync_inbox WHERE id > %s AND connection_id = %s "
                "AND next_attempt_at > received_at + make_interval(secs => %s + 1)",
                [inbox_before, connection.id, args.gather]),
            "inbox_pending_at_end": db.one(
                "SELECT count(*) FROM billing_sync_inbox WHERE id > %s AND connection_id = %s "
                "AND state = 'pending'", [inbox_before, connection.id]),
            "inbox_failed": db.one("SELECT count(*) FROM billing_sync_inbox WHERE "
                                   "connection_id = %s AND state = 'failed'", [connection.id]),
            "server_log_errors": log_errors(args),
            "rate": args.rate,
            "seconds": round(seconds, 1),
            "clients": len(client_ids),
            "window_seconds": window,
            "cron_threads": args.cron_threads, "gather_seconds": args.gather,
            "cool_down_seconds": args.window_seconds if args.cool_down is None
            else args.cool_down,
        })
        return result
    finally:
        # no delivery to a server about to stop (a failed one would be retried meanwhile)
        app.configure(webhook_url=None)
        if odoo_server:
            harness.stop(odoo_server, 60)
        if db:
            db.close()
        env.cr.rollback()
        common.quiesce(env)
        env["res.users.apikeys"].sudo().search([("name", "=", KEY_NAME)]).unlink()
        env.cr.commit()
        if server:
            server.stop()


def rounded(value, digits):
    return None if value is None or math.isinf(value) else round(value, digits)


# ---------------------------------------------------------------------- set-up
def clients(env, tax, count):
    """``count`` clients and a product of the main company (a warm-up invoice each)."""
    stamp = int(time.time())
    product = env["product.product"].create({
        "name": "Inbound advisory", "type": "service", "list_price": 150.0,
        "taxes_id": tax.ids, "company_id": tax.company_id.id})
    partners = env["res.partner"].create([
        {"name": f"Inbound client {stamp}-{i:03d}", "is_company": True,
         "email": f"inbound{i}.{stamp}@bench.example"} for i in range(max(count, 1))])
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


def subscribe(app, provider, url, args):
    """The sandbox's webhooks go to the Odoo server, signed with the connection's secret."""
    if provider == "xero":
        app.configure(webhook_url=url, webhook_key=WEBHOOK_KEY)
    else:
        app.configure(webhook_url=url, verifier_token=WEBHOOK_KEY,
                      webhook_batch_seconds=args.qbo_batch_seconds)


def warm_up(rpc, db, app, connection_id, client_ids, args):
    """One invoice per client, posted at ``args.rate``; returns {partner id: ledger id}
    once every client is linked, and the inbox and the webhook queue are quiet."""
    for i in range(len(client_ids)):
        rpc.post(i)
        time.sleep(1 / args.rate)
    deadline = time.monotonic() + args.settle
    while True:
        links = dict(db.all(
            "SELECT res_id, ledger_id FROM billing_sync_link WHERE connection_id = %s "
            "AND res_model = 'res.partner' AND active AND res_id = ANY(%s)",
            [connection_id, client_ids]))
        if len(links) == len(client_ids):
            break
        if time.monotonic() > deadline:
            raise SystemExit(
                f"bench: {len(client_ids) - len(links)} of the {len(client_ids)} clients were "
                f"not linked to the ledger within {args.settle:g} s of the warm-up: the push "
                f"does not run; see the server's log, {server_log(args)}")
        time.sleep(0.2)
    # what the warm-up's own webhooks (Odoo's contacts and invoices, echoed) brought is
    # applied before the measure starts
    app.webhook.flush(timeout=args.settle)
    while db.one("SELECT count(*) FROM billing_sync_inbox WHERE connection_id = %s "
                 "AND state = 'pending'", [connection_id]):
        if time.monotonic() > deadline:
            raise SystemExit(
                f"bench: the warm-up's webhooks were still not applied after "
                f"{args.settle:g} s; see the server's log, {server_log(args)}")
        time.sleep(0.2)
    return links


def invoices_of(db, connection_id, client_ids):
    """{partner id: (invoice id, ledger invoice id, amount open)} of one warm-up invoice
    of each client, in the ledger."""
    out = {}
    for move_id, ledger_id, partner_id, residual in db.all(
            "SELECT m.id, l.ledger_id, m.partner_id, m.amount_residual FROM billing_sync_link l "
            "JOIN account_move m ON m.id = l.res_id WHERE l.res_model = 'account.move' "
            "AND l.connection_id = %s AND l.active AND m.partner_id = ANY(%s) ORDER BY m.id",
            [connection_id, client_ids]):
        out.setdefault(partner_id, (move_id, ledger_id, float(residual)))
    return out


# ---------------------------------------------------------------------- the server
def server_log(args):
    return LOGS / f"bench-inbound-{args.database}.log"


def log_errors(args):
    """ERROR and CRITICAL lines of the server's log (this provider's run)."""
    log = server_log(args)
    if not log.exists():
        return 0
    text = log.read_text(encoding="utf-8", errors="replace")
    return sum(1 for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line)


# ---------------------------------------------------------------------- measuring
class Database:
    """A plain psycopg2 connection (autocommit) to the benchmark's database: the polling
    costs one small query a look and nothing of the server's."""

    def __init__(self, name):
        import psycopg2

        from odoo.sql_db import connection_info_for

        _db, info = connection_info_for(name)
        info = {k: v for k, v in info.items() if k != "application_name"}
        self.conn = psycopg2.connect(application_name="bench-inbound", **info)
        self.conn.autocommit = True
        self.lock = threading.Lock()

    def all(self, query, params=()):
        with self.lock, self.conn.cursor() as cr:
            cr.execute(query, params)
            return cr.fetchall()

    def one(self, query, params=()):
        return self.all(query, params)[0][0]

    def close(self):
        self.conn.close()


class Watcher:
    """Reads the clients' billing emails and their invoices' amounts open every
    ``interval`` seconds and keeps when each (("contact", partner), email) and
    (("payment", invoice), amount open) was first seen."""

    def __init__(self, db, partner_ids, invoice_ids, interval):
        self.db, self.interval = db, interval
        self.partner_ids, self.invoice_ids = list(partner_ids), list(invoice_ids)
        self.seen = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbound-watcher", daemon=True)

    def look(self):
        now = time.monotonic()
        rows = [(("contact", partner_id), email) for partner_id, email in self.db.all(
            "SELECT id, billing_sync_billing_email FROM res_partner WHERE id = ANY(%s)",
            [self.partner_ids])]
        rows += [(("payment", move_id), f"{residual:.2f}") for move_id, residual in self.db.all(
            "SELECT id, amount_residual FROM account_move WHERE id = ANY(%s)",
            [self.invoice_ids])]
        for key, value in rows:
            if value and (key, value) not in self.seen:
                self.seen[(key, value)] = now

    def _run(self):
        while not self._stop.wait(self.interval):
            self.look()

    def __enter__(self):
        self.look()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def bookkeep(app, provider, org_id, ledger_ids, invoices, args):
    """The bookkeeper makes ``args.rate`` changes a second for ``args.seconds``, clients
    in turn: a new billing email, or a payment of 1.00 on the client's invoice (mixed:
    one, then the other); returns [(key, value expected in Odoo, when changed)]."""
    partners = list(ledger_ids)
    open_amounts = {partner: invoices[partner][2] for partner in invoices}
    stamp = int(time.time())
    count = max(1, round(args.seconds * args.rate))
    changes = []
    start = time.monotonic() + 0.1
    for i in range(count):
        delay = start + i / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        partner_id = partners[i % len(partners)]
        pay = args.changes == "payments" or (args.changes == "mixed" and i % 2)
        if pay:
            move_id, ledger_invoice, _open = invoices[partner_id]
            if provider == "xero":
                app.apply_payment(ledger_invoice, amount=1.0, tenant_id=org_id)
            else:
                app.apply_payment(ledger_invoice, amount=1.0, realm_id=org_id)
            open_amounts[partner_id] = round(open_amounts[partner_id] - 1.0, 2)
            changes.append((("payment", move_id), f"{open_amounts[partner_id]:.2f}",
                            time.monotonic()))
            continue
        email = f"billing{i}.{stamp}@{provider}.inbound.example"
        if provider == "xero":
            app.edit_contact(ledger_ids[partner_id], fields={"EmailAddress": email},
                             tenant_id=org_id)
        else:
            app.edit_contact(ledger_ids[partner_id], realm_id=org_id, email=email)
        changes.append((("contact", partner_id), email, time.monotonic()))
    return changes


def wait_for(watcher, changes, settle):
    """Until every change is shown (or a later change of its client is), ``settle``
    seconds at most after the last change."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and any(
            shown(watcher, changes, n) is None for n in range(len(changes))):
        time.sleep(watcher.interval)


def shown(watcher, changes, n):
    """When change ``n`` showed in Odoo: its own value, or else the first later value of
    the same record (which then holds a newer state of the ledger; the change is
    'superseded'); None if neither was seen."""
    key, value, _at = changes[n]
    when = watcher.seen.get((key, value))
    if when is not None:
        return when, False
    later = [watcher.seen.get((k, v)) for k, v, _a in changes[n + 1:] if k == key]
    later = [w for w in later if w is not None]
    return (min(later), True) if later else None


def latencies(watcher, changes, kind=None):
    """Figures of the changes (of ``kind``, "contact" or "payment", if given)."""
    figures, superseded, missing = [], 0, 0
    for n, (key, _value, at) in enumerate(changes):
        if kind and key[0] != kind:
            continue
        seen = shown(watcher, changes, n)
        if seen is None:
            missing += 1
            continue
        figures.append(max(0.0, seen[0] - at))
        superseded += seen[1]
    # a change never shown is slower than any that was
    ranked = figures + [math.inf] * missing
    return {"applied": len(figures), "missing": missing, "superseded": superseded,
            "p50": rounded(common.percentile(ranked, 0.50), 3),
            "p95": rounded(common.percentile(ranked, 0.95), 3),
            "max": rounded(max(ranked) if ranked else None, 3)}


def events_in(provider, body):
    """The events one delivery carried."""
    try:
        payload = json.loads(body)
    except ValueError:
        return 0
    if provider == "xero":
        return len(payload.get("events", []))
    if isinstance(payload, list):  # CloudEvents
        return len(payload)
    return sum(len(item.get("dataChangeEvent", {}).get("entities", []))
               for item in payload.get("eventNotifications", []))


if __name__ == "__main__":
    main()
