"""Install (with demo data), upgrade and uninstall billing_sync on a scratch database.

The test database itself was created without demo data by the harness, so these
runs cover the other half: a stock Odoo 18 database with demo data, through the
real ``odoo`` command, as an administrator would do it.
"""

import subprocess
import sys

import psycopg2
import pytest

import odoo

from tools import harness

# derived from the test database, so that two checkouts can test side by side
SCRATCH = f"{odoo.tools.config['db_name'] or 'billing_sync'}_lifecycle"


def _odoo(conf, *args):
    res = subprocess.run(
        [sys.executable, "-m", "odoo", "-c", conf, "-d", SCRATCH, *args,
         "--stop-after-init", "--log-level=warn"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    errors = [ln for ln in res.stderr.splitlines() if " ERROR " in ln or " CRITICAL " in ln]
    ours = [ln for ln in res.stderr.splitlines() if " WARNING " in ln and "billing_sync" in ln]
    assert res.returncode == 0, res.stderr[-2000:]
    assert not errors, errors
    assert not ours, ours
    return res


def _query(sql, params=()):
    conn = psycopg2.connect(dbname=SCRATCH, **harness.db_params())
    try:
        with conn.cursor() as cr:
            cr.execute(sql, params)
            return cr.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def scratch_conf(request, tmp_path_factory):
    conf = request.config.getoption("--odoo-config")
    if not conf:
        pytest.fail("run through `make test`: the lifecycle test needs --odoo-config")
    harness.drop_db(SCRATCH)
    harness._create_db(SCRATCH, "lifecycle test")
    yield conf
    harness.drop_db(SCRATCH)


def test_install_with_demo_upgrade_uninstall(scratch_conf):
    _odoo(scratch_conf, "-i", "billing_sync")
    assert _query("SELECT state FROM ir_module_module WHERE name='billing_sync'") == [
        ("installed",)
    ]
    # demo data came along: a confirmed proposal for the dashboard
    demo = _query(
        "SELECT s.state FROM sale_order s JOIN ir_model_data d ON d.res_id = s.id "
        "AND d.model = 'sale.order' WHERE d.module = 'billing_sync' ORDER BY d.name"
    )
    assert sorted(r[0] for r in demo) == ["draft", "draft", "sale"]
    groups = _query("SELECT count(*) FROM ir_model_data WHERE module='billing_sync' "
                    "AND model='res.groups'")
    assert groups == [(3,)]

    _odoo(scratch_conf, "-u", "billing_sync")
    assert _query("SELECT latest_version FROM ir_module_module WHERE name='billing_sync'")[0][0]

    uninstall = (
        "env['ir.module.module'].search([('name', '=', 'billing_sync')])"
        ".button_immediate_uninstall(); env.cr.commit()"
    )
    res = subprocess.run(
        [sys.executable, "-m", "odoo", "shell", "-c", scratch_conf, "-d", SCRATCH,
         "--log-level=warn", "--no-http"],
        input=uninstall, capture_output=True, text=True, check=False, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert _query("SELECT state FROM ir_module_module WHERE name='billing_sync'") == [
        ("uninstalled",)
    ]
    leftovers = _query("SELECT model, name FROM ir_model_data WHERE module='billing_sync'")
    assert leftovers == []
    assert _query("SELECT count(*) FROM ir_ui_menu WHERE name->>'en_US' = 'Billing Sync'") == [
        (0,)
    ]
