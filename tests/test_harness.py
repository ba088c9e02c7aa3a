"""`make test` / `make demo` set-up: each bad input ends in one clear line."""

import os
import socket
import subprocess
import sys

import psycopg2
import pytest

import odoo

from tools import harness

HARNESS = [sys.executable, str(harness.ROOT / "tools" / "harness.py")]


def run(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True,
                          env=full_env, check=False, timeout=120)


def one_line_error(res):
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("billing_sync: ")
    return lines[0]


def test_odoo_present():
    res = run("check-odoo")
    assert res.returncode == 0, res.stderr


def test_missing_odoo_says_odoo_18_is_required(tmp_path):
    # a python that cannot import odoo: isolated mode, no site-packages
    fake = tmp_path / "python-without-odoo"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    fake.chmod(0o755)
    line = one_line_error(run("check-odoo", env={"ODOO_PYTHON": str(fake)}))
    assert "Odoo 18 is required" in line


def test_missing_python_binary():
    line = one_line_error(run("check-odoo", env={"ODOO_PYTHON": "/nonexistent/python3"}))
    assert "Odoo 18 is required" in line and "ODOO_PYTHON" in line


def test_port_taken():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        line = one_line_error(run("check-port", str(port)))
    assert f"port {port} is already taken" in line and "HTTP_PORT=" in line


def test_role_that_cannot_log_in():
    line = one_line_error(run("postgres", env={"PGUSER": "no_such_role_bs"}))
    assert "role 'no_such_role_bs'" in line and "PGUSER" in line


def test_postgres_role_refused():
    line = one_line_error(run("postgres", env={"PGUSER": "postgres"}))
    assert "postgres" in line and "PGUSER" in line


def test_remote_server_down_is_not_started():
    # nothing listens on port 1 of loopback's 127.0.0.2: reported, not started
    line = one_line_error(run("postgres", env={"PGHOST": "127.0.0.2", "PGPORT": "1"}))
    assert "no PostgreSQL server answers" in line or "no PostgreSQL cluster" in line


def test_server_answers():
    assert run("postgres").returncode == 0


@pytest.fixture
def foreign_db():
    name = f"{odoo.tools.config['db_name'] or 'billing_sync'}_not_ours"
    conn = psycopg2.connect(dbname="postgres", **harness.db_params())
    conn.autocommit = True
    with conn.cursor() as cr:
        cr.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cr.execute(f'CREATE DATABASE "{name}"')
    yield name
    with conn.cursor() as cr:
        cr.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


def _exists(name):
    conn = psycopg2.connect(dbname="postgres", **harness.db_params())
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cr.fetchone() is not None
    finally:
        conn.close()


def test_database_not_ours_is_never_dropped(foreign_db, tmp_path):
    for cmd in (["test-db", foreign_db, str(tmp_path / "x.conf")],
                ["demo-db", foreign_db, str(tmp_path / "x.conf")],
                ["drop-db", foreign_db]):
        line = one_line_error(run(*cmd))
        assert "not created by billing_sync's harness" in line
        assert _exists(foreign_db)


def test_config_reuses_odoo_rc_and_env(tmp_path):
    rc = tmp_path / "odoo.conf"
    rc.write_text("[options]\ndb_host = dbserver.example\ndb_user = firm\nlimit_time_cpu = 120\n")
    out = tmp_path / "generated.conf"
    res = run("config", str(out), "somedb", env={"ODOO_RC": str(rc), "PGUSER": "other"})
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "db_host = dbserver.example" in text
    assert "db_user = other" in text  # the environment wins over the file
    assert "limit_time_cpu = 120" in text
    assert "db_name = somedb" in text
    assert str(harness.ROOT) in text  # our addon is on the addons path
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_bad_addons_path(tmp_path):
    line = one_line_error(run("config", str(tmp_path / "c.conf"), "db",
                              env={"ODOO_ADDONS_PATH": str(tmp_path)}))
    assert "ODOO_ADDONS_PATH" in line


def test_config_allows_the_sandbox_endpoints_only(tmp_path):
    import configparser

    from odoo.addons.billing_sync.services.endpoints import parse_allowed

    def allowed(*extra):
        out = tmp_path / "allowed.conf"
        res = run("config", str(out), "somedb", *extra)
        assert res.returncode == 0, res.stderr
        conf = configparser.ConfigParser(interpolation=None)
        conf.read(out)
        return parse_allowed(conf["options"]["billing_sync_allowed_endpoints"])

    # tests and benchmarks: their sandboxes bind random loopback ports
    assert allowed() == {("127.0.0.1", None)}
    # the demo: exactly its two sandboxes (the Makefile passes SANDBOX_PORT and the next)
    assert allowed("--http-port", "8069", "--allowed-endpoints",
                   "127.0.0.1:8070,127.0.0.1:8071") == {("127.0.0.1", 8070), ("127.0.0.1", 8071)}
