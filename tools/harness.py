#!/usr/bin/env python3
"""Set-up steps behind ``make test`` and ``make demo``.

Each step either succeeds quietly or ends the run with ONE line that says what is
missing and how to provide it (exit code 2). Nothing here installs Odoo: Odoo 18
is the platform the user already has.

Environment (all optional):
    ODOO_PYTHON       python that can ``import odoo`` (default: the running one)
    ODOO_RC           an existing odoo.conf whose db_* options and addons_path are reused
    ODOO_ADDONS_PATH  Odoo's own addons paths, comma separated (default: from the odoo package)
    PGHOST PGPORT PGUSER PGPASSWORD   where PostgreSQL is and who logs in
    TEST_DB DEMO_DB   database names; HTTP_PORT  the demo's port (8069)

Databases created here carry a COMMENT marking them as ours; a database without
it is never dropped nor touched. On this machine's server, a missing role (or one
without CREATEDB) is created as the postgres OS user when we may act as it (root, or
sudo without a password). The demo's ledger sandbox keeps its state in
.build/sandbox-<demo db>, emptied whenever that database is created anew.
"""

import argparse
import configparser
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".build"
MARKER = "created by billing_sync's harness"
MODULE = "billing_sync"


class HarnessError(Exception):
    """A set-up problem the user must fix; its message is the one line shown."""


def _odoo_python():
    return os.environ.get("ODOO_PYTHON") or sys.executable


def check_odoo():
    """Fail unless the configured python imports Odoo 18."""
    python = _odoo_python()
    probe = "import odoo.release as r; print(r.version_info[0], r.version)"
    try:
        out = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise HarnessError(
            f"Odoo 18 is required: cannot run {python} ({exc.strerror}); "
            "set ODOO_PYTHON to the python where Odoo 18 is installed"
        ) from exc
    if out.returncode != 0:
        raise HarnessError(
            f"Odoo 18 is required: `import odoo` fails in {python}; install Odoo 18.0 "
            "(from its source: pip install -r requirements.txt && pip install -e .) "
            "or set ODOO_PYTHON to the python that has it"
        )
    major, version = out.stdout.split()[:2]
    if major != "18":
        raise HarnessError(
            f"Odoo 18 is required: {python} has Odoo {version}; "
            "set ODOO_PYTHON to a python with Odoo 18.0"
        )
    return version


def _rc_options():
    rc = os.environ.get("ODOO_RC")
    if not rc:
        return {}
    if not Path(rc).is_file():
        raise HarnessError(f"ODOO_RC points at {rc}, which is not a file; fix or unset ODOO_RC")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(rc)
    return dict(parser["options"]) if parser.has_section("options") else {}


def db_params():
    """Connection parameters: environment first, then ODOO_RC, then libpq defaults."""
    rc = _rc_options()
    params = {}
    for key, env in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"),
                     ("password", "PGPASSWORD")):
        value = os.environ.get(env) or rc.get(f"db_{key}")
        if value and value.lower() not in ("false", "none"):
            params[key] = value
    return params


def _role():
    import getpass

    return db_params().get("user") or getpass.getuser()


def _connect(dbname="postgres"):
    import psycopg2

    return psycopg2.connect(dbname=dbname, connect_timeout=5, **db_params())


def _is_local(host):
    return not host or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")


def _start_local_server():
    """Start the local PostgreSQL cluster (Debian's pg_ctlcluster); return what was done."""
    if not shutil.which("pg_ctlcluster") or not shutil.which("pg_lsclusters"):
        if shutil.which("pg_ctl"):
            raise HarnessError(
                "no PostgreSQL server answers; start yours (pg_ctl -D <datadir> start) "
                "or set PGHOST/PGPORT to a running one"
            )
        raise HarnessError(
            "PostgreSQL server binaries are not installed and no server answers; install "
            "PostgreSQL 13+ (apt-get install postgresql) or set PGHOST/PGPORT to a running server"
        )
    clusters = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    ).stdout.split("\n")
    port = str(db_params().get("port", "5432"))
    for line in clusters:
        cols = line.split()
        if len(cols) >= 4 and cols[2] == port:
            version, name, status = cols[0], cols[1], cols[3]
            if status == "online":
                return f"cluster {version}/{name} already online"
            res = subprocess.run(["pg_ctlcluster", version, name, "start"],
                                 capture_output=True, text=True, check=False)
            if res.returncode != 0:
                reason = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["unknown"]
                raise HarnessError(
                    f"could not start PostgreSQL {version}/{name} ({reason[0]}); start it as "
                    f"its owner: pg_ctlcluster {version} {name} start"
                )
            return f"started cluster {version}/{name}"
    raise HarnessError(
        f"no PostgreSQL cluster is configured on port {port}; create one "
        "(pg_createcluster 15 main --start) or set PGHOST/PGPORT to a running server"
    )


def ensure_postgres():
    """Make sure a server answers and our role can log in and create databases.

    On this machine's server, a missing role (or one without CREATEDB) is created (or
    granted CREATEDB) as the postgres OS user when we may act as it: root, or sudo
    without a password. Otherwise the one line says how to do it by hand."""
    import psycopg2

    params = db_params()
    role = _role()
    if role == "postgres":
        raise HarnessError(
            "Odoo refuses to run as the 'postgres' superuser; set PGUSER to another role "
            "(create one: sudo -u postgres createuser --createdb $USER)"
        )
    try:
        conn = _reach_server(params)
    except psycopg2.OperationalError as exc:
        done = _provision_role(role, params)
        if done is None:
            raise HarnessError(_login_problem(role, str(exc))) from exc
        print(f"billing_sync: {done}", flush=True)
        try:
            conn = _connect()
        except psycopg2.OperationalError as again:
            raise HarnessError(_login_problem(role, str(again))) from again
    with conn, conn.cursor() as cr:
        cr.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        can_create = cr.fetchone()[0]
    conn.close()
    if not can_create:
        done = _provision_role(role, params)
        if done is None:
            how = (f"sudo -u postgres psql -c 'ALTER ROLE \"{role}\" CREATEDB'"
                   if _plain_role(role) else "ALTER ROLE ... CREATEDB as a superuser")
            raise HarnessError(
                f"PostgreSQL role '{role}' may not create databases; grant it: {how}")
        print(f"billing_sync: {done}", flush=True)


def _reach_server(params):
    """Connect as our role, starting the local cluster when no server answers.

    A server that answers but refuses the login raises psycopg2's OperationalError."""
    import psycopg2

    try:
        return _connect()
    except psycopg2.OperationalError as exc:
        if not _server_down(str(exc)):
            raise
        if not _is_local(params.get("host")):
            raise HarnessError(
                f"no PostgreSQL server answers at {params.get('host')}:"
                f"{params.get('port', 5432)}; start it or fix PGHOST/PGPORT"
            ) from exc
    _start_local_server()
    return _wait_for_server()


# The role names the harness creates or alters: a plain identifier, or an OS user
# name with '.' or '-' (63 bytes at most: PostgreSQL would truncate a longer one).
# Anything else (quotes, spaces, $, ;) is refused, not quoted.
PLAIN_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")


def _plain_role(role):
    return bool(PLAIN_ROLE.fullmatch(role))


def _postgres_psql(params):
    """A function running SQL through psql as the postgres OS user, or None when this
    process may not act as postgres (not root and no password-less sudo to it)."""
    import pwd

    psql = shutil.which("psql")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    if psql is None:
        return None
    if os.geteuid() == 0:
        as_postgres = (["runuser", "-u", "postgres", "--"] if shutil.which("runuser")
                       else None)
    elif shutil.which("sudo") and subprocess.run(
            ["sudo", "-n", "-u", "postgres", "true"], capture_output=True,
            stdin=subprocess.DEVNULL, timeout=30, check=False).returncode == 0:
        as_postgres = ["sudo", "-n", "-u", "postgres", "--"]
    else:
        return None
    # the postgres user logs in on the local socket as itself, whatever PG* we were given
    cmd = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    host, port = params.get("host"), params.get("port")
    if host and host.startswith("/"):
        cmd += ["-h", host]
    if port:
        cmd += ["-p", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def run(sql, role):
        # the role reaches the server only as a psql variable, quoted by psql
        # (:'role' a literal, :"role" an identifier); no shell sees it but su's, quoted
        argv = [*cmd, "-v", f"role={role}"]
        if as_postgres is None:  # root without runuser
            argv = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]
        else:
            argv = [*as_postgres, *argv]
        res = subprocess.run(argv, input=sql, capture_output=True, text=True, env=env,
                             cwd="/", timeout=60, check=False)
        if res.returncode != 0:
            why = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise HarnessError(
                f"could not set up PostgreSQL role '{role}' as the postgres user ({why}); "
                f"do it by hand: sudo -u postgres createuser --createdb {role}"
            )
        return res.stdout.strip()

    return run


def _provision_role(role, params):
    """Create ``role`` (LOGIN CREATEDB), or give it CREATEDB, as the postgres OS user.

    Only on this machine's server and when we may act as postgres; returns the line
    saying what was done, or None when that cannot be done or there is nothing to do."""
    if not _is_local(params.get("host")):
        return None
    psql = _postgres_psql(params)
    if psql is None:
        return None
    if not _plain_role(role):
        raise HarnessError(
            f"PostgreSQL role {role!r} is not a plain name (letters, digits, _ . -, starting "
            "with a letter or _); the harness does not create it: set PGUSER to such a name"
        )
    found = psql("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = :'role';", role)
    if found == "t":
        return None
    if found == "f":
        psql('ALTER ROLE :"role" CREATEDB;', role)
        return f"gave PostgreSQL role '{role}' the right to create databases (CREATEDB)"
    if params.get("password"):
        # a role made here would have no password: the login would still fail
        raise HarnessError(
            f"PostgreSQL role '{role}' does not exist; create it with the password you "
            f"set: sudo -u postgres createuser --createdb --pwprompt {role}"
        )
    psql('CREATE ROLE :"role" LOGIN CREATEDB;', role)
    return f"created PostgreSQL role '{role}' (LOGIN CREATEDB) as the postgres user"


def _server_down(msg):
    return any(s in msg for s in ("Connection refused", "No such file or directory",
                                  "could not connect to server", "timeout expired"))


def _login_problem(role, msg):
    if "does not exist" in msg and "role" in msg:
        if not _plain_role(role):
            return (f"PostgreSQL role {role!r} does not exist; set PGUSER to an existing "
                    "role (or a plain name: letters, digits, _ . -)")
        return (f"PostgreSQL role '{role}' does not exist; create it "
                f"(sudo -u postgres createuser --createdb {role}) or set PGUSER/PGPASSWORD")
    if "password authentication failed" in msg or "no password supplied" in msg:
        return (f"PostgreSQL role '{role}' cannot log in with the given password; "
                "set PGPASSWORD (or PGUSER to a role that can)")
    if "Peer authentication failed" in msg or "no pg_hba.conf entry" in msg:
        return (f"PostgreSQL refuses role '{role}' (pg_hba.conf); set PGUSER to your OS "
                "user's role, or PGHOST=localhost with PGPASSWORD")
    first = msg.strip().splitlines()[0] if msg.strip() else "unknown error"
    return f"PostgreSQL role '{role}' cannot log in ({first}); set PGUSER/PGPASSWORD"


def _wait_for_server(seconds=30):
    import time

    import psycopg2

    deadline = time.monotonic() + seconds
    while True:
        try:
            return _connect()
        except psycopg2.OperationalError as exc:
            if not _server_down(str(exc)):
                raise  # it answers: the login itself is refused
            if time.monotonic() > deadline:
                raise HarnessError(
                    "PostgreSQL was started but does not answer after 30 s; "
                    "see its log (/var/log/postgresql/)"
                ) from exc
            time.sleep(0.5)


def check_port(port):
    """Fail when something already listens on the demo's port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", int(port)))
        except OSError as exc:
            raise HarnessError(
                f"port {port} is already taken ({exc.strerror}); stop what uses it "
                f"or choose another: HTTP_PORT={int(port) + 10} make demo"
            ) from exc


def _odoo_addons_path():
    configured = os.environ.get("ODOO_ADDONS_PATH") or _rc_options().get("addons_path")
    if configured:
        paths = [p.strip() for p in configured.split(",") if p.strip()]
    else:
        probe = ("import os, odoo; r = os.path.dirname(odoo.__file__); "
                 "print(os.path.join(r, 'addons')); "
                 "print(os.path.abspath(os.path.join(r, '..', 'addons')))")
        out = subprocess.run([_odoo_python(), "-c", probe], capture_output=True, text=True,
                             check=True).stdout.split()
        paths = [p for p in out if Path(p).is_dir()]
    ours = str(ROOT)
    paths = [p for p in paths if Path(p).resolve() != ROOT]
    missing = [p for p in paths if not Path(p).is_dir()]
    if missing:
        raise HarnessError(f"addons path {missing[0]} does not exist; fix ODOO_ADDONS_PATH")
    if not any((Path(p) / "sale_management").is_dir() for p in paths):
        raise HarnessError(
            "Odoo's addons (sale_management, account) are not on the addons path; "
            "set ODOO_ADDONS_PATH to Odoo's addons folder(s)"
        )
    return ",".join(paths + [ours])


# The ledger endpoints besides the providers' production ones that the databases made
# here may use: the sandboxes of the tests and benchmarks bind random loopback ports.
SANDBOX_ENDPOINTS = "127.0.0.1"


def write_config(path, dbname, http_port=None, allowed_endpoints=SANDBOX_ENDPOINTS):
    """Write an odoo.conf for one database from the environment and ODOO_RC.

    ``allowed_endpoints`` becomes billing_sync_allowed_endpoints: the only hosts (or
    host:port) other than the ledgers' production ones a connection may send its
    credentials to."""
    conf = configparser.ConfigParser(interpolation=None)
    options = dict(_rc_options())
    params = db_params()
    for key in ("host", "port", "user", "password"):
        options[f"db_{key}"] = params.get(key, "False")
    options.update({
        "addons_path": _odoo_addons_path(),
        "db_name": dbname,
        "dbfilter": f"^{dbname}$",
        "list_db": "False",
        "data_dir": str(BUILD / "data"),
        "without_demo": options.get("without_demo", "False"),
        "max_cron_threads": "1",
    })
    # billing_sync encrypts ledger credentials with a key from this file, never
    # from the database; the harness keeps one per checkout in .build/.
    options.setdefault("billing_sync_encryption_key", _encryption_key())
    # the ledger sandbox is not production: only odoo.conf can allow it
    options["billing_sync_allowed_endpoints"] = allowed_endpoints
    if http_port:
        options["http_port"] = str(http_port)
        options["http_interface"] = "127.0.0.1"
    conf["options"] = options
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        conf.write(fh)
    os.chmod(path, 0o600)  # may hold a database password
    return path


def _encryption_key():
    """This checkout's key for ledger credentials (.build/encryption.key, made once)."""
    path = BUILD / "encryption.key"
    if not path.exists():
        import base64

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"))
    return path.read_text().strip()


def _db_state(dbname):
    """None when absent, else the database's comment (our marker or anything else)."""
    conn = _connect()
    try:
        with conn.cursor() as cr:
            cr.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (dbname,),
            )
            row = cr.fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    return row[0] or ""


def _create_db(dbname, purpose):
    from psycopg2 import sql

    conn = _connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cr:
            ident = sql.Identifier(dbname)
            cr.execute(sql.SQL(
                "CREATE DATABASE {} ENCODING 'unicode' LC_COLLATE 'C' TEMPLATE template0"
            ).format(ident))
            cr.execute(sql.SQL("COMMENT ON DATABASE {} IS %s").format(ident),
                       (f"{MARKER} ({purpose})",))
    finally:
        conn.close()


def drop_db(dbname):
    """Drop a database, but only one this harness created."""
    from psycopg2 import sql

    state = _db_state(dbname)
    if state is None:
        return False
    if not state.startswith(MARKER):
        raise HarnessError(
            f"database '{dbname}' exists and was not created by billing_sync's harness; "
            "it is left untouched: choose another name (TEST_DB=... / DEMO_DB=...)"
        )
    conn = _connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cr:
            cr.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
    finally:
        conn.close()
    return True


def _run_odoo(conf, args, log_name):
    log = BUILD / "logs" / log_name
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)  # Odoo appends: judge this run only
    cmd = [_odoo_python(), "-m", "odoo", "-c", str(conf), *args,
           f"--logfile={log}", "--stop-after-init"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    if res.returncode != 0 or " ERROR " in text or " CRITICAL " in text:
        errors = [ln for ln in text.splitlines() if " ERROR " in ln or " CRITICAL " in ln]
        first = errors[0].split(": ", 1)[-1] if errors else (res.stderr.strip() or "no log")
        raise HarnessError(f"Odoo failed ({' '.join(args)}): {first[:300]} -- full log: {log}")


def fresh_db(dbname, conf, demo):
    """Create ``dbname`` anew with billing_sync installed (dropping only our own)."""
    drop_db(dbname)
    _create_db(dbname, "demo" if demo else "test")
    args = ["-d", dbname, "-i", MODULE]
    if not demo:
        args.append("--without-demo=all")
    _run_odoo(conf, args, f"install-{dbname}.log")


def workers_db(dbname):
    """The copy of a test database the multi-process engine tests commit in (each worker
    process must see what the test wrote, which a test's own transaction never shows)."""
    return f"{dbname}_workers"


def copy_db(source, target):
    """``target`` anew as a copy of ``source`` (dropping only our own ``target``)."""
    from psycopg2 import sql

    drop_db(target)
    conn = _connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cr:
            ident = sql.Identifier(target)
            cr.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                ident, sql.Identifier(source)))
            cr.execute(sql.SQL("COMMENT ON DATABASE {} IS %s").format(ident),
                       (f"{MARKER} (test, workers)",))
    finally:
        conn.close()


def sandbox_state_dir(dbname):
    """Where the demo's ledger sandbox keeps its state: one folder per demo database."""
    if "/" in dbname or "\0" in dbname or (os.altsep and os.altsep in dbname):
        raise HarnessError(f"database name {dbname!r} cannot name a folder; "
                           "choose another: DEMO_DB=...")
    return BUILD / f"sandbox-{dbname}"


def demo_plan(dbname):
    """What demo_db does with ``dbname``: 'create', 'update' or 'recreate' it.

    The sandbox's state (.build/sandbox-<db>) holds the ledger objects the demo database
    links to, so the two go together: a database made anew starts with an empty ledger
    (the folder is emptied here), an updated one keeps its ledger, and an existing
    database whose ledger state is gone (`make clean`) is made anew ('recreate')."""
    state = _db_state(dbname)
    if state is not None and not state.startswith(MARKER):
        raise HarnessError(
            f"database '{dbname}' exists and was not created by billing_sync's harness; "
            "it is left untouched: choose another name (DEMO_DB=...)"
        )
    folder = sandbox_state_dir(dbname)
    if state is not None and folder.is_dir():
        return "update"
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return "create" if state is None else "recreate"


def demo_db(dbname, conf):
    """Create the demo database, or update billing_sync in our existing one."""
    plan = demo_plan(dbname)
    if plan == "update":
        _run_odoo(conf, ["-d", dbname, "-u", MODULE], f"update-{dbname}.log")
        return "updated"
    fresh_db(dbname, conf, demo=True)
    if plan == "recreate":
        return f"recreated (its sandbox ledger {sandbox_state_dir(dbname)} was gone)"
    return "created"


# Ensures the demo's two ledger connections point at the local sandbox (run
# through `odoo shell`, so it goes through the ORM and encrypts the secrets).
DEMO_CONNECTIONS = """
from ledger_sandbox.connect import connection_values
Connection = env["billing_sync.connection"]
for provider, url in (("xero", {xero_url!r}), ("qbo", {qbo_url!r})):
    values = connection_values(provider, url)
    found = Connection.search([("provider", "=", provider), ("company_id", "=", env.company.id)])
    if not found:
        Connection.create(values)
    elif found.api_url != values["api_url"]:
        found.write(values)
env.cr.commit()
"""


def demo_connections(dbname, conf, xero_url, qbo_url):
    """Create (or re-point) the demo's Xero and QuickBooks connections at the sandbox."""
    script = DEMO_CONNECTIONS.format(xero_url=xero_url, qbo_url=qbo_url)
    res = subprocess.run(
        [_odoo_python(), "-m", "odoo", "shell", "-c", str(conf), "-d", dbname, "--no-http",
         "--log-level=warn"],
        input=script, capture_output=True, text=True, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
    )
    if res.returncode != 0 or "Traceback" in res.stderr:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise HarnessError(f"could not set up the demo's ledger connections: {last}")


def sandbox_command(dbname, sandbox_port):
    """The demo's ledger sandbox: Xero on ``sandbox_port``, QuickBooks on the next port,
    its ledgers kept on disk beside the demo database they belong to."""
    state_dir = sandbox_state_dir(dbname)
    state_dir.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "ledger_sandbox", "--provider", "both",
            "--port", str(sandbox_port), "--qbo-port", str(sandbox_port + 1),
            "--currency", os.environ.get("DEMO_CURRENCY", "USD"),
            "--state-dir", str(state_dir)]


def serve_demo(dbname, conf, sandbox_port):
    """Run the ledger sandbox beside Odoo; whichever way this ends, stop both."""
    import signal

    # SIGTERM (kill, a closing terminal) must clean up like Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children = [subprocess.Popen(sandbox_command(dbname, sandbox_port),
                                 cwd=ROOT, stdout=subprocess.DEVNULL)]
    try:
        _wait_for_sandbox(children[0], (sandbox_port, sandbox_port + 1))
        children.append(subprocess.Popen(
            [_odoo_python(), "-m", "odoo", "-c", str(conf), "-d", dbname, "--log-level=warn"]))
        return children[-1].wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            stop(child)


def stop(process, seconds=15):
    """Stop ``process``: asked to (SIGTERM), then killed if it has not ended within
    ``seconds``; returns once it has ended."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_sandbox(process, ports, seconds=30):
    """Return once the sandbox listens on every one of ``ports``; fail if it exits first."""
    import time

    deadline = time.monotonic() + seconds
    waiting = list(ports)
    while process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", waiting[0]), timeout=1):
                waiting.pop(0)
            if not waiting:
                return
        except OSError:
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"the ledger sandbox does not answer on port {waiting[0]} after "
                    f"{seconds} s; see the lines above"
                ) from None
            time.sleep(0.2)
    raise HarnessError(
        f"the ledger sandbox stopped at start (exit code {process.returncode}): see the "
        f"lines above; try it alone: python3 -m ledger_sandbox --provider both "
        f"--port {ports[0]}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check-odoo")
    sub.add_parser("postgres")
    port = sub.add_parser("check-port")
    port.add_argument("port", type=int)
    conf = sub.add_parser("config")
    conf.add_argument("path")
    conf.add_argument("dbname")
    conf.add_argument("--http-port", type=int)
    conf.add_argument("--allowed-endpoints", default=SANDBOX_ENDPOINTS,
                      help="billing_sync_allowed_endpoints: hosts or host:port, comma separated")
    for name in ("demo-connections", "serve-demo"):
        cmd = sub.add_parser(name)
        cmd.add_argument("dbname")
        cmd.add_argument("conf")
        cmd.add_argument("sandbox_port", type=int)
    for name in ("test-db", "demo-db", "drop-db"):
        cmd = sub.add_parser(name)
        cmd.add_argument("dbname")
        if name != "drop-db":
            cmd.add_argument("conf")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "check-odoo":
            check_odoo()
        elif args.cmd == "postgres":
            ensure_postgres()
        elif args.cmd == "check-port":
            check_port(args.port)
        elif args.cmd == "config":
            write_config(args.path, args.dbname, args.http_port, args.allowed_endpoints)
        elif args.cmd == "test-db":
            fresh_db(args.dbname, args.conf, demo=False)
            copy_db(args.dbname, workers_db(args.dbname))
        elif args.cmd == "demo-db":
            print(f"demo database '{args.dbname}' {demo_db(args.dbname, args.conf)}")
        elif args.cmd == "drop-db":
            drop_db(args.dbname)
        elif args.cmd == "demo-connections":
            base = "http://127.0.0.1:"
            demo_connections(args.dbname, args.conf, f"{base}{args.sandbox_port}",
                             f"{base}{args.sandbox_port + 1}")
        elif args.cmd == "serve-demo":
            return serve_demo(args.dbname, args.conf, args.sandbox_port)
    except HarnessError as exc:
        # one line, whatever a name from the environment holds
        print(f"billing_sync: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"billing_sync: {exc.name} is missing from {sys.executable}; it comes with "
              "Odoo 18's requirements (pip install -r <odoo>/requirements.txt)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
