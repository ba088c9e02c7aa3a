"""The sync engine across OS processes (issue 17): workers that share one PostgreSQL.

Each worker is a real process (tests/engine_worker.py) with its own Odoo registry and
database sessions, pushing to the in-process sandboxes over HTTP. What they must see is
committed, so these tests work in a copy of the test database that `make test` makes
(`<test db>_workers`, tools/harness.py test-db) and leave their connections disconnected.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from unittest.mock import patch

import pytest

import odoo
from odoo import SUPERUSER_ID, api, fields

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("engine_worker.py")


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def registry():
    database = odoo.tools.config["db_name"]
    if isinstance(database, list):  # Odoo 18 keeps a list
        database = database[0]
    name = f"{database}_workers"
    with odoo.sql_db.db_connect("postgres").cursor() as cr:
        cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cr.fetchone():
            pytest.fail(f"the database {name} is missing: `make test` creates it as a copy of "
                        f"{database} (tools/harness.py test-db)")
    # loaded as a worker loads it: not as a database under test (no test suites)
    with patch.dict(odoo.tools.config.options, {"test_enable": False}):
        return odoo.modules.registry.Registry(name)


@pytest.fixture(scope="module")
def sandboxes():
    from ledger_sandbox.core import SandboxServer
    from ledger_sandbox.qbo.app import QboSandbox
    from ledger_sandbox.xero.app import XeroSandbox

    apps = {"xero": XeroSandbox(), "qbo": QboSandbox()}
    servers = {name: SandboxServer(app).start() for name, app in apps.items()}
    yield {name: (apps[name], servers[name]) for name in apps}
    for server in servers.values():
        server.stop()


@pytest.fixture()
def ledger(registry, sandboxes):
    """A helper to make connected connections in the workers' database; each is
    disconnected afterwards so that no later test's worker claims its jobs."""
    made = []
    helper = Ledger(registry, sandboxes, made)
    yield helper
    with registry.cursor() as cr:
        cr.execute("UPDATE billing_sync_connection SET state = 'disconnected', active = FALSE "
                   "WHERE id = ANY(%s)", [made])
        cr.execute("UPDATE billing_sync_job SET state = 'cancelled' WHERE connection_id = ANY(%s)"
                   " AND state IN ('pending', 'started')", [made])


class Ledger:
    def __init__(self, registry, sandboxes, made):
        self.registry = registry
        self.sandboxes = sandboxes
        self.made = made

    def env(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})

    def connect(self, provider, invoices=0, clients=1, latency=0.0):
        """A connected, mapped connection to a fresh sandbox organisation and ``invoices``
        posted invoices for ``clients`` new clients; returns (connection id, move ids)."""
        from ledger_sandbox.connect import authorise, connection_values

        app, server = self.sandboxes[provider]
        app.reset()
        app.configure(base_currency="USD", latency_seconds=latency)
        with self.registry.cursor() as cr:
            env = self.env(cr)
            company = env.company
            env["billing_sync.connection"].search(
                [("provider", "=", provider), ("company_id", "=", company.id)]).write(
                {"active": False})
            connection = env["billing_sync.connection"].create(
                {**connection_values(provider, server.url), "company_id": company.id})
            cr.commit()
            self.made.append(connection.id)
            authorise(connection)
            connection.action_import_reference_data()
            refs = connection.reference_ids
            connection.default_account_id = refs.filtered(
                lambda r: r.kind == "revenue_account")[:1]
            connection.default_item_id = refs.filtered(lambda r: r.kind == "item")[:1]
            tax_ref = refs.filtered(lambda r: r.kind == "tax" and (r.rate or 0) > 0)[:1]
            tax = env["account.tax"].create({
                "name": f"Workers tax {uuid.uuid4().hex[:6]}", "amount": tax_ref.rate,
                "type_tax_use": "sale", "company_id": company.id})
            env["billing_sync.mapping"].create({"connection_id": connection.id, "kind": "tax",
                                                "tax_id": tax.id, "tax_ref_id": tax_ref.id})
            cr.commit()
            moves = self._invoices(env, company, tax, invoices, clients) if invoices else []
            cr.commit()
            return connection.id, moves

    def _invoices(self, env, company, tax, count, clients):
        stamp = uuid.uuid4().hex[:8]
        product = env["product.product"].create({
            "name": f"Workers advisory {stamp}", "type": "service", "list_price": 100.0,
            "taxes_id": [(6, 0, tax.ids)]})
        partners = env["res.partner"].create([
            {"name": f"Workers client {stamp}-{i:03d}", "is_company": True,
             "email": f"c{i}.{stamp}@workers.example"} for i in range(clients)])
        moves = env["account.move"].create([{
            "move_type": "out_invoice", "company_id": company.id,
            "partner_id": partners[i % clients].id,
            "invoice_date": fields.Date.today(),
            "invoice_line_ids": [(0, 0, {"product_id": product.id, "quantity": 1 + i % 3,
                                         "price_unit": 100.0})]} for i in range(count)])
        moves.action_post()
        return moves.ids

    def _org(self, connection_id):
        with self.registry.cursor() as cr:
            return self.env(cr)["billing_sync.connection"].browse(connection_id).org_id

    def ledger_numbers(self, provider, connection_id):
        app, org = self.sandboxes[provider][0], self._org(connection_id)
        if provider == "xero":
            return [inv.get("InvoiceNumber") for inv in app.ledger(org).invoices.values()]
        return [inv.get("DocNumber") for inv in app.realms[org].all("Invoice")]

    def ledger_contacts(self, provider, connection_id):
        app, org = self.sandboxes[provider][0], self._org(connection_id)
        if provider == "xero":
            return [c.get("Name") for c in app.ledger(org).contacts.values()]
        return [c.get("DisplayName") for c in app.realms[org].all("Customer")]

    def jobs(self, connection_id):
        with self.registry.cursor() as cr:
            cr.execute("SELECT state, count(*) FROM billing_sync_job WHERE connection_id = %s "
                       "GROUP BY state", [connection_id])
            return dict(cr.fetchall())


def start_worker(registry, *args):
    return subprocess.Popen(  # noqa: S603 -- our own worker script
        [sys.executable, str(WORKER), "--config", odoo.tools.config.rcfile,
         "--database", registry.db_name, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})


def finish(worker, timeout=240):
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, f"the worker crashed: {err[-3000:]}"
    assert "Traceback" not in err and "ERROR" not in err, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def run_workers(registry, count, *args):
    workers = [start_worker(registry, "push", *args) for _ in range(count)]
    return [finish(worker) for worker in workers]


def assert_each_once(ledger, provider, connection_id, moves):
    with ledger.registry.cursor() as cr:
        env = ledger.env(cr)
        names = env["account.move"].browse(moves).mapped("name")
        links = env["billing_sync.link"].search([("connection_id", "=", connection_id),
                                                 ("res_model", "=", "account.move")])
        assert sorted(links.mapped("res_id")) == sorted(moves), "every invoice linked"
    numbers = collections.Counter(ledger.ledger_numbers(provider, connection_id))
    assert {n: c for n, c in numbers.items() if c > 1} == {}, "an invoice twice in the ledger"
    assert set(names) <= set(numbers), "an invoice missing from the ledger"
    contacts = collections.Counter(ledger.ledger_contacts(provider, connection_id))
    assert {n: c for n, c in contacts.items() if c > 1} == {}, "a client twice in the ledger"
    assert set(ledger.jobs(connection_id)) == {"done"}, ledger.jobs(connection_id)


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("provider", ["xero", "qbo"])
def test_two_then_four_workers_on_one_connection(ledger, provider):
    """Workers collide on nothing: no deadlock, no constraint error, no crashed run, and
    every record once in the ledger (clients shared by many invoices included)."""
    connection, moves = ledger.connect(provider, invoices=90, clients=20)
    run_workers(ledger.registry, 2)
    assert_each_once(ledger, provider, connection, moves)
    more = ledger.connect(provider, invoices=120, clients=25)
    run_workers(ledger.registry, 4)
    assert_each_once(ledger, provider, *more)


def test_four_workers_on_two_connections(ledger):
    """One company with a Xero and a QuickBooks ledger: each invoice goes to both."""
    xero, _moves = ledger.connect("xero")
    qbo, _moves = ledger.connect("qbo")
    with ledger.registry.cursor() as cr:
        env = ledger.env(cr)
        moves = ledger._invoices(env, env.company, env["account.tax"], 60, 15)
        cr.commit()
    run_workers(ledger.registry, 4)
    assert_each_once(ledger, "xero", xero, moves)
    assert_each_once(ledger, "qbo", qbo, moves)


def test_a_batch_is_never_resent_while_its_sender_lives(ledger):
    connection, moves = ledger.connect("xero", invoices=3, clients=1, latency=3.0)
    app = ledger.sandboxes["xero"][0]
    sender = start_worker(ledger.registry, "push")
    wait_for(lambda: ledger.jobs(connection).get("started"), "the batch to be claimed")
    app.counters.reset()
    # another worker meanwhile: finds the batch owned by a live worker, sends nothing
    other = finish(start_worker(ledger.registry, "claim"))
    assert other["claimed"] == []
    with ledger.registry.cursor() as cr:
        assert not ledger.env(cr)["billing_sync.job"]._requeue_stuck()
    finish(sender)
    posts = sum(n for label, statuses in app.counters.snapshot()["by_endpoint"].items()
                if "Invoices" in label for n in statuses.values())
    assert posts == 1, app.counters.snapshot()
    assert_each_once(ledger, "xero", connection, moves)


def test_a_killed_workers_batch_is_resent_within_30_seconds_and_once(ledger):
    connection, moves = ledger.connect("xero", invoices=3, clients=1, latency=2.0)
    victim = start_worker(ledger.registry, "push")
    wait_for(lambda: ledger.jobs(connection).get("started"), "the batch to be claimed")
    time.sleep(0.5)  # the request is on its way
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed = time.monotonic()
    with ledger.registry.cursor() as cr:
        cr.execute("SELECT DISTINCT batch_key FROM billing_sync_job WHERE connection_id = %s "
                   "AND state = 'started'", [connection])
        keys = [row[0] for row in cr.fetchall()]
    assert len(keys) == 1
    finish(start_worker(ledger.registry, "push"))
    assert time.monotonic() - killed <= 30
    assert_each_once(ledger, "xero", connection, moves)
    with ledger.registry.cursor() as cr:
        cr.execute("SELECT DISTINCT batch_key FROM billing_sync_job WHERE connection_id = %s "
                   "AND res_model = 'account.move'", [connection])
        assert [row[0] for row in cr.fetchall()] == keys, "resent under its own key"


def test_two_processes_share_one_organisations_budget(registry):
    key = f"test|{uuid.uuid4().hex}"
    try:
        workers = [start_worker(registry, "take", key, "10", "10") for _ in range(2)]
        got = [finish(worker)["got"] for worker in workers]
        assert sum(got) == 10, got
    finally:
        with registry.cursor() as cr:
            cr.execute("DELETE FROM billing_sync_rate_budget WHERE key = %s", [key])


def test_a_429_seen_by_one_worker_pauses_the_other(ledger):
    connection, _moves = ledger.connect("xero", invoices=1, clients=1)
    app = ledger.sandboxes["xero"][0]
    app.faults.next("http429", count=1, retry_after=40, path="/api.xro/2.0/Invoices")
    finish(start_worker(ledger.registry, "push", "--seconds", "3"))
    assert ledger.jobs(connection).get("pending")
    with ledger.registry.cursor() as cr:
        cr.execute("UPDATE billing_sync_job SET next_attempt_at = now() at time zone 'UTC' "
                   "WHERE connection_id = %s AND state = 'pending'", [connection])
    app.counters.reset()
    other = finish(start_worker(ledger.registry, "claim"))
    assert other["claimed"] == [], "the organisation is paused for every worker"
    assert app.counters.snapshot()["total"] == 0


def wait_for(condition, what, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"waited {seconds} s for {what}")
