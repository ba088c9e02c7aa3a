"""`make test` / `make demo` set-up: each bad input ends in one clear line."""

import os
import secrets
import shutil
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


def _as_postgres(sql, **variables):
    """Run ``sql`` through psql as the postgres OS user (root, or sudo without a password)."""
    prefix = (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0
              else ["sudo", "-n", "-u", "postgres", "--"])
    argv = [*prefix, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    for name, value in variables.items():
        argv += ["-v", f"{name}={value}"]
    res = subprocess.run(argv, input=sql, capture_output=True, text=True, cwd="/",
                         timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def _role_flags(role):
    """(can log in, may create databases) of ``role``, or None when it does not exist."""
    conn = psycopg2.connect(dbname="postgres", **harness.db_params())
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT rolcanlogin, rolcreatedb FROM pg_roles WHERE rolname = %s",
                       (role,))
            return cr.fetchone()
    finally:
        conn.close()


@pytest.fixture
def throwaway_role():
    role = f"billing_sync_role_test_{secrets.token_hex(4)}"
    yield role
    _as_postgres('DROP ROLE IF EXISTS :"role";', role=role)
    assert _role_flags(role) is None


def test_missing_role_is_created_when_we_administer_postgres(throwaway_role):
    role = throwaway_role
    res = run("postgres", env={"PGUSER": role})
    assert res.stdout == f"billing_sync: created PostgreSQL role '{role}' (LOGIN CREATEDB) " \
                         "as the postgres user\n"
    assert _role_flags(role) == (True, True)
    if res.returncode:  # local peer authentication: this OS user is not that role
        assert "refuses role" in one_line_error(res)
    # once is enough: a second run finds the role and creates nothing
    again = run("postgres", env={"PGUSER": role})
    assert again.stdout == "" and again.returncode == res.returncode


def test_role_without_createdb_is_granted_it(throwaway_role):
    role = throwaway_role
    _as_postgres('CREATE ROLE :"role" LOGIN NOCREATEDB;', role=role)
    res = run("postgres", env={"PGUSER": role})
    assert res.stdout == (f"billing_sync: gave PostgreSQL role '{role}' the right to create "
                          "databases (CREATEDB)\n")
    assert _role_flags(role) == (True, True)


def test_missing_role_with_a_password_is_not_created_without_it(throwaway_role):
    # a role made here would have no password: say how to make it with one instead
    line = one_line_error(run("postgres", env={
        "PGUSER": throwaway_role, "PGHOST": "localhost", "PGPASSWORD": "not-used"}))
    assert f"role '{throwaway_role}' does not exist" in line and "--pwprompt" in line
    assert _role_flags(throwaway_role) is None


@pytest.mark.parametrize("role", [
    "bs_evil$(touch {tmp}/shell-ran)",
    "bs_evil'; CREATE ROLE bs_injected_role; --",
    'bs_evil"; CREATE ROLE bs_injected_role; --',
    "-bs_evil_option",
])
def test_hostile_role_name_is_refused(role, tmp_path):
    role = role.format(tmp=tmp_path)
    res = run("postgres", env={"PGUSER": role})
    line = one_line_error(res)
    assert "not a plain name" in line and "PGUSER" in line
    assert res.stdout == ""
    assert not (tmp_path / "shell-ran").exists()
    assert _role_flags(role) is None
    assert _role_flags("bs_injected_role") is None


def test_role_that_cannot_log_in(throwaway_role):
    # the role exists and may create databases, but this OS user cannot log in as it
    # (peer authentication) nor with that password: said in one line, nothing changed
    _as_postgres('CREATE ROLE :"role" LOGIN CREATEDB;', role=throwaway_role)
    for env in ({}, {"PGHOST": "localhost", "PGPASSWORD": "wrong"}):
        res = run("postgres", env={"PGUSER": throwaway_role, **env})
        line = one_line_error(res)
        assert f"role '{throwaway_role}'" in line and "PGUSER" in line
        assert res.stdout == ""


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


# The demo's sandbox ledger (.build/sandbox-<db>) goes with its database.

@pytest.fixture
def demo_name():
    name = f"{odoo.tools.config['db_name'] or 'billing_sync'}_demo_plan"
    folder = harness.sandbox_state_dir(name)
    harness.drop_db(name)
    shutil.rmtree(folder, ignore_errors=True)
    yield name
    harness.drop_db(name)
    shutil.rmtree(folder, ignore_errors=True)


def _ledger_state(name, content):
    folder = harness.sandbox_state_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ledger.json").write_text(content)
    return folder


def test_new_demo_database_starts_with_an_empty_sandbox_ledger(demo_name):
    folder = _ledger_state(demo_name, "left by an older demo database")
    assert folder == harness.BUILD / f"sandbox-{demo_name}"
    assert harness.demo_plan(demo_name) == "create"
    assert folder.is_dir() and not any(folder.iterdir())


def test_updated_demo_database_keeps_its_sandbox_ledger(demo_name):
    harness._create_db(demo_name, "demo")  # marked as ours, as fresh_db makes it
    folder = _ledger_state(demo_name, "what this database links to")
    assert harness.demo_plan(demo_name) == "update"
    assert (folder / "ledger.json").read_text() == "what this database links to"
    # its ledger gone (make clean): the database must be made anew, with an empty one
    shutil.rmtree(folder)
    assert harness.demo_plan(demo_name) == "recreate"
    assert folder.is_dir() and not any(folder.iterdir())
    # the database dropped: made anew, and the ledger state it left is emptied
    (folder / "ledger.json").write_text("what the dropped database linked to")
    assert harness.drop_db(demo_name)
    assert harness.demo_plan(demo_name) == "create"
    assert not any(folder.iterdir())


def test_sandbox_ledger_of_a_database_not_ours_is_left_alone(foreign_db):
    folder = _ledger_state(foreign_db, "not ours either")
    try:
        with pytest.raises(harness.HarnessError, match="not created by billing_sync"):
            harness.demo_plan(foreign_db)
        assert (folder / "ledger.json").read_text() == "not ours either"
    finally:
        shutil.rmtree(folder)


def test_demo_database_name_that_cannot_name_a_folder(tmp_path):
    line = one_line_error(run("demo-db", "../escape", str(tmp_path / "x.conf")))
    assert "cannot name a folder" in line and "DEMO_DB" in line
    assert not (harness.BUILD.parent / "escape").exists()


def _two_free_ports():
    while True:
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port


def test_demo_sandbox_starts_with_its_state_folder(demo_name):
    port = _two_free_ports()
    command = harness.sandbox_command(demo_name, port)
    folder = harness.sandbox_state_dir(demo_name)
    assert folder.is_dir()
    sandbox = subprocess.Popen(command, cwd=harness.ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        try:
            harness._wait_for_sandbox(sandbox, (port, port + 1))
        except harness.HarnessError as exc:
            sandbox.kill()
            pytest.fail(f"{exc}\n{sandbox.communicate()[1]}")
        # the ledgers are kept where the harness said, beside their database
        assert any(folder.iterdir())
    finally:
        harness.stop(sandbox)


def test_demo_sandbox_that_stops_at_start_is_reported():
    sandbox = subprocess.Popen([sys.executable, "-m", "ledger_sandbox", "--provider", "none"],
                               cwd=harness.ROOT, stderr=subprocess.DEVNULL)
    port = _two_free_ports()
    with pytest.raises(harness.HarnessError, match="sandbox stopped at start"):
        harness._wait_for_sandbox(sandbox, (port, port + 1))
