"""The role matrix of issue 16: every billing_sync model, operation and button, per role.

Company A (the test company) has a Xero sandbox connection that really synced two invoices
and their clients (jobs and links written by the push cron); company B has a QuickBooks
sandbox connection. Each case runs in a savepoint that is always rolled back, so the
fixtures (built once per class) stay as they are.

How to read the tables: ``READS`` says which fixture rows each role reads (search, read,
export, read_group); a role not named is refused every operation on the model
(AccessError). ``CHANGES`` says which of write (w), create (c) and unlink (u) a role may
do on company A's rows; anything else is an AccessError.
"""

import base64
import time
from urllib.parse import urlencode

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, TransactionCase, tagged
from odoo.tests.common import JsonRpcException
from odoo.tools.misc import hmac as odoo_hmac

from odoo.addons.billing_sync.models.billing_sync_connection import STATE_SCOPE

from .common import (
    ADMIN,
    INVOICING,
    MANAGER,
    SALESMAN,
    USER,
    LedgerSandboxMixin,
    make_service,
    make_user,
)

EXPORT = "base.group_allow_export"
ROLES = ("user", "manager", "admin", "sysadmin", "manager_b", "admin_b", "invoicing",
         "salesman", "portal", "public")

# --- what each role reads ------------------------------------------------------------
# rows about partners (every employee reads partners) and about a deleted partner
PARTNER_ROWS = {"partner_x", "partner_y", "gone"}
LIVE_PARTNER_ROWS = PARTNER_ROWS - {"gone"}
A_ONLY, B_ONLY = {"a"}, {"b"}
READS = {
    "billing_sync.connection": {"admin": A_ONLY, "sysadmin": A_ONLY, "admin_b": B_ONLY},
    "billing_sync.connection.org": {"admin": A_ONLY, "sysadmin": A_ONLY, "admin_b": B_ONLY},
    "billing_sync.ledger.ref": {"admin": A_ONLY, "sysadmin": A_ONLY, "admin_b": B_ONLY},
    "billing_sync.mapping": {"admin": A_ONLY, "sysadmin": A_ONLY, "admin_b": B_ONLY},
    "billing_sync.mapping.health": {"admin": A_ONLY, "sysadmin": A_ONLY, "admin_b": set()},
    "billing_sync.token": {},
    # jobs and links: the rows whose record the role reads (invoices: Invoicing rights;
    # the salesman: his own invoice), or whose record is gone; company B's on its own
    "billing_sync.job": {
        "user": PARTNER_ROWS, "manager": PARTNER_ROWS, "sysadmin": PARTNER_ROWS,
        "admin": PARTNER_ROWS | {"inv_own", "inv_other"},
        "salesman": PARTNER_ROWS | {"inv_own"},
        "manager_b": B_ONLY, "admin_b": B_ONLY,
    },
    # a link of a deleted record is history for the engine alone
    "billing_sync.link": {
        "user": LIVE_PARTNER_ROWS, "manager": LIVE_PARTNER_ROWS, "sysadmin": LIVE_PARTNER_ROWS,
        "admin": LIVE_PARTNER_ROWS | {"inv_own", "inv_other"},
        "salesman": LIVE_PARTNER_ROWS | {"inv_own"},
        "manager_b": B_ONLY, "admin_b": B_ONLY,
    },
    # what the ledgers announced, and the conflicts their policy decided: Managers of
    # the connection's company
    "billing_sync.inbox": {"manager": A_ONLY, "admin": A_ONLY, "sysadmin": A_ONLY,
                           "manager_b": B_ONLY, "admin_b": B_ONLY},
    "billing_sync.conflict": {"manager": A_ONLY, "admin": A_ONLY, "sysadmin": A_ONLY,
                              "manager_b": B_ONLY, "admin_b": B_ONLY},
    # alerts: Managers of the connection's company
    "billing_sync.alert": {"manager": A_ONLY, "admin": A_ONLY, "sysadmin": A_ONLY,
                           "manager_b": B_ONLY, "admin_b": B_ONLY},
    # the audit trail: Managers (and Administrators) of the connection's company
    "billing_sync.audit.log": {"manager": A_ONLY, "admin": A_ONLY, "sysadmin": A_ONLY,
                               "manager_b": B_ONLY, "admin_b": B_ONLY},
    # how each connection is doing: every Billing Sync user of its company
    "billing_sync.dashboard": {"user": A_ONLY, "manager": A_ONLY, "admin": A_ONLY,
                               "sysadmin": A_ONLY, "salesman": A_ONLY,
                               "manager_b": B_ONLY, "admin_b": B_ONLY},
    # engagement rows follow their proposal: salespeople their own, Invoicing all
    "billing_sync.schedule.line": {"admin": {"own", "other"}, "invoicing": {"own", "other"},
                                   "salesman": {"own"}, "manager_b": set()},
    "billing_sync.milestone": {"admin": {"own", "other"}, "invoicing": {"own", "other"},
                               "salesman": {"own"}, "manager_b": set()},
}
# --- what each role changes in company A ---------------------------------------------
CHANGES = {
    # a connection that synced is archived, never deleted (its links and jobs go with it)
    "billing_sync.connection": {"admin": "wc", "sysadmin": "wc"},
    "billing_sync.connection.org": {},  # written by Connect (the engine) only
    "billing_sync.ledger.ref": {"admin": "wcu", "sysadmin": "wcu"},
    "billing_sync.mapping": {"admin": "wcu", "sysadmin": "wcu"},
    "billing_sync.mapping.health": {},  # a database view: read only
    "billing_sync.token": {},  # nobody, not even Settings administrators
    "billing_sync.job": {},  # the engine only: people act through Retry and Cancel
    "billing_sync.link": {},  # the engine only, from the ledger's answers
    "billing_sync.inbox": {},  # the webhook endpoint and the pull only
    "billing_sync.conflict": {},  # the engine; people act through its button
    "billing_sync.alert": {},  # the engine: raised and cleared by what it stops
    "billing_sync.audit.log": {},  # append-only, by the engine; nobody changes an entry
    "billing_sync.dashboard": {},  # a database view: read only
    "billing_sync.schedule.line": {"salesman": "wc"},
    "billing_sync.milestone": {"salesman": "wcu"},
}
# allowed to the role, but refused in words for the fixture row (a UserError)
REFUSED = {"billing_sync.connection": {"admin": "u", "sysadmin": "u"}}
# --- buttons of the views (type="object"): who may press them --------------------------
# target: a fixture row of the model; a role not listed gets an AccessError. A role that
# may press a button can still be told a precondition is missing (a UserError). OPENERS
# only open another list: a role not listed may get the action, but it names nothing
# but the id it was given, and the list it opens shows that role nothing.
BUTTONS = [
    ("billing_sync.connection", "draft", "action_connect", {"admin", "sysadmin"}),
    ("billing_sync.connection", "draft", "action_test_connection", {"admin", "sysadmin"}),
    ("billing_sync.connection", "draft", "action_import_reference_data", {"admin", "sysadmin"}),
    ("billing_sync.connection", "draft", "action_disconnect", {"admin", "sysadmin"}),
    ("billing_sync.connection", "draft", "action_open_references", {"admin", "sysadmin"}),
    ("billing_sync.connection", "draft", "action_open_mappings", {"admin", "sysadmin"}),
    ("billing_sync.connection", "draft", "action_choose_org", {"admin", "sysadmin"}),
    ("billing_sync.connection", "draft", "action_move_org", {"admin", "sysadmin"}),
    # a partner's job: Managers of company A
    ("billing_sync.job", "partner_y", "action_retry", {"manager", "admin", "sysadmin"}),
    ("billing_sync.job", "partner_y", "action_cancel", {"manager", "admin", "sysadmin"}),
    ("billing_sync.job", "partner_y", "action_open_record",
     {"user", "manager", "admin", "sysadmin", "salesman"}),
    ("billing_sync.job", "partner_y", "action_send_now", {"manager", "admin", "sysadmin"}),
    # an invoice's job: only a Manager who reads the invoice
    ("billing_sync.job", "inv_other", "action_retry", {"admin"}),
    ("billing_sync.job", "inv_other", "action_cancel", {"admin"}),
    ("billing_sync.job", "inv_other", "action_open_record", {"admin"}),
    ("billing_sync.job", "inv_other", "action_send_now", {"admin"}),
    # a planned final invoice (Bill now bills it) and a cancelled line (Plan again): the
    # salesman on his own proposal; read-only roles (Invoicing) change nothing
    ("billing_sync.schedule.line", "final_own", "action_bill_now", {"salesman"}),
    ("billing_sync.schedule.line", "own", "action_plan_again", {"salesman"}),
    ("billing_sync.schedule.line", "final_other", "action_bill_now", set()),
    ("billing_sync.schedule.line", "other", "action_plan_again", set()),
    # a conflict: Managers of its company take the other value
    ("billing_sync.conflict", "a", "action_take_other_value", {"manager", "admin", "sysadmin"}),
    # what a ledger announced: read again by Managers of its company
    ("billing_sync.inbox", "a", "action_retry", {"manager", "admin", "sysadmin"}),
    ("billing_sync.inbox", "b", "action_retry", {"manager_b", "admin_b"}),
    # the dashboard's way to the invoices that need a fix: those who read invoices
    ("billing_sync.dashboard", "a", "action_open_to_fix", {"admin", "salesman"}),
    # an invoice's Retry: a Manager who reads the invoice (nothing to retry: told so)
    ("account.move", "inv_other", "action_billing_sync_retry", {"admin"}),
    # a client every employee reads: a Manager of another company is told nothing of
    # his companies waits for a fix, and company A's job is not retried
    ("res.partner", "partner_y", "action_billing_sync_retry",
     {"manager", "admin", "sysadmin", "manager_b", "admin_b"}),
    ("billing_sync.milestone", "own", "action_mark_reached", {"salesman"}),
    ("billing_sync.milestone", "other", "action_mark_reached", set()),
]
OPENERS = {"action_open_references", "action_open_mappings"}
# job and link fields whose change would redirect what the superuser worker sends where
JOB_FIELDS = ("res_model", "res_id", "connection_id", "state", "batch_key", "ledger_id",
              "ledger_payment_ids", "kind", "attempts", "outcome_unknown", "last_error")
LINK_FIELDS = ("res_model", "res_id", "connection_id", "ledger_id", "ledger_type",
               "sync_state", "mismatch", "ledger_total", "active", "ledger_parts")


class _Undo(Exception):
    def __init__(self, value):
        super().__init__()
        self.value = value


@tagged("post_install", "-at_install")
class TestSecurityMatrix(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes(test_mode=True)
        env = cls.env
        cls.company_a = env.company
        cls.company_b = env["res.company"].create({"name": "Matrix Other Firm"})
        cls._make_roles()
        currency = cls.company_a.currency_id.name
        cls.xero.configure(base_currency=currency)
        cls.qbo.configure(per_second=None, base_currency=currency)
        Connection = env["billing_sync.connection"]
        # one ledger per company here: jobs go to every connected one
        Connection.search([]).write({"active": False})

        # company A: a connected, mapped Xero ledger that really syncs two invoices
        conn_a = cls.connect(Connection.create(cls.sandbox_values("xero")))
        conn_a.action_import_reference_data()
        refs = conn_a.reference_ids

        def first(connection, kind, pred=lambda r: True):
            return connection.reference_ids.filtered(
                lambda r: r.kind == kind and r.active and pred(r))[:1]

        conn_a.default_account_id = first(conn_a, "revenue_account")
        conn_a.default_item_id = first(conn_a, "item")
        tax_ref = first(conn_a, "tax", lambda r: (r.rate or 0) > 0)
        tax = env["account.tax"].create({
            "name": f"Matrix tax {tax_ref.rate:g}", "amount": tax_ref.rate,
            "type_tax_use": "sale"})
        product = make_service(env, "Matrix advisory", 1000.0, taxes=tax)
        Mapping = env["billing_sync.mapping"]
        map_a = Mapping.create({"connection_id": conn_a.id, "kind": "tax", "tax_id": tax.id,
                                "tax_ref_id": tax_ref.id})
        cls.categ_new = env["product.category"].create({"name": "Matrix new category"})
        cls.account_ref_a = first(conn_a, "revenue_account")

        Partner = env["res.partner"]
        partner_x = Partner.create({"name": "Matrix Own Client", "is_company": True,
                                    "email": "own@client.example"})
        partner_y = Partner.create({"name": "Matrix Other Client", "is_company": True,
                                    "email": "other@client.example"})
        inv_own = cls._invoice(partner_x, product, tax, cls.users["salesman"])
        inv_other = cls._invoice(partner_y, product, tax, cls.users["admin"])
        Job = env["billing_sync.job"]
        Job._cron_push()
        partner_x.phone = "+64 9 000 0001"  # a linked client changes: a contact job
        Job._cron_push()

        # company B: a connected QuickBooks ledger with its codes and a mapping
        conn_b = cls.connect(Connection.create(
            {**cls.sandbox_values("qbo"), "company_id": cls.company_b.id}))
        conn_b.action_import_reference_data()
        map_b = Mapping.create({
            "connection_id": conn_b.id, "kind": "product_category",
            "categ_id": env["product.category"].create({"name": "Matrix B services"}).id,
            "account_id": first(conn_b, "revenue_account").id})
        partner_b = Partner.create({"name": "Matrix B Client", "company_id": cls.company_b.id})

        # rows the engine writes in other situations (as superuser, as the engine does)
        Link = env["billing_sync.link"]
        gone = Partner.create({"name": "Matrix Deleted Client"})
        # as the worker leaves it once it found the record deleted
        job_gone = Job.create({"connection_id": conn_a.id, "res_model": "res.partner",
                               "res_id": gone.id, "kind": "contact", "state": "blocked",
                               "record_gone": True})
        link_gone = Link.create({"connection_id": conn_a.id, "res_model": "res.partner",
                                 "res_id": gone.id, "ledger_id": "C-GONE"})
        gone.unlink()
        job_y = Job.create({"connection_id": conn_a.id, "res_model": "res.partner",
                            "res_id": partner_y.id, "kind": "contact", "state": "blocked",
                            "last_error": "Other Client's contact was refused."})
        # a job of company A's ledger naming company B's client ("somehow")
        job_foreign = Job.create({"connection_id": conn_a.id, "res_model": "res.partner",
                                  "res_id": partner_b.id, "kind": "contact",
                                  "state": "blocked"})
        job_b = Job.create({"connection_id": conn_b.id, "res_model": "res.partner",
                            "res_id": partner_b.id, "kind": "contact", "state": "blocked"})
        link_b = Link.create({"connection_id": conn_b.id, "res_model": "res.partner",
                              "res_id": partner_b.id, "ledger_id": "B-1"})

        def job_of(record, kind):
            job = Job.search([("res_model", "=", record._name), ("res_id", "=", record.id),
                              ("kind", "=", kind), ("state", "=", "done")])
            assert len(job) == 1, (record, kind, job.mapped("last_error"))
            return job

        def link_of(record):
            link = Link._of(conn_a, record)
            assert link, record
            return link

        Inbox, Conflict = env["billing_sync.inbox"], env["billing_sync.conflict"]
        inbox_a, inbox_b = (
            Inbox.create({"connection_id": conn.id, "kind": "contact", "ledger_id": ledger_id,
                          "change": "update", "event_id": f"matrix-{ledger_id}"})
            for conn, ledger_id in ((conn_a, link_of(partner_x).ledger_id), (conn_b, "B-1")))
        conflict_a, conflict_b = (
            Conflict.create({"connection_id": conn.id, "partner_id": partner.id,
                             "group": "email", "decision": "ledger", "policy": "last",
                             "odoo_value": "email: odoo@x.example",
                             "ledger_value": "email: ledger@x.example",
                             "odoo_values": '{"email": "odoo@x.example"}',
                             "ledger_values": '{"email": "ledger@x.example"}'})
            for conn, partner in ((conn_a, partner_x), (conn_b, partner_b)))
        Alert = env["billing_sync.alert"]
        alert_a, alert_b = (Alert.create({"connection_id": conn.id, "error_class": "mapping",
                                          "count": 1, "last_message": "matrix"})
                            for conn in (conn_a, conn_b))
        audit_a, audit_b = (env["billing_sync.audit.log"]._log([{
            "company_id": conn.company_id.id, "connection_id": conn.id,
            "direction": "outbound", "outcome": "in_ledger", "initiated_by": "cron",
            "record_name": "matrix"}]) for conn in (conn_a, conn_b))
        Org = env["billing_sync.connection.org"]
        org_a = Org.create({"connection_id": conn_a.id, "org_id": "org-a", "name": "Org A"})
        org_b = Org.create({"connection_id": conn_b.id, "org_id": "org-b", "name": "Org B"})
        # a draft invoice with a tax nobody mapped: a row of the mapping health view
        unmapped = env["account.tax"].create({"name": "Matrix unmapped 9", "amount": 9,
                                              "type_tax_use": "sale"})
        cls._invoice(partner_x, product, unmapped, cls.users["admin"], post=False)
        env.flush_all()  # the view reads the tables
        health = env["billing_sync.mapping.health"].search(
            [("connection_id", "=", conn_a.id), ("tax_id", "=", unmapped.id)], limit=1)
        assert health
        Token = env["billing_sync.token"]
        order_own, order_other = (
            cls._engagement(partner_x, product, cls.users[login])
            for login in ("salesman", "admin"))
        # a connection to press buttons on: company A's, archived, never connected
        draft = Connection.create({"provider": "qbo", "active": False})

        cls.conn_a, cls.conn_b, cls.draft = conn_a, conn_b, draft
        cls.partner_x, cls.partner_y, cls.partner_b = partner_x, partner_y, partner_b
        cls.inv_own, cls.inv_other = inv_own, inv_other
        cls.rows = {
            "billing_sync.connection": {"a": conn_a, "b": conn_b},
            "billing_sync.connection.org": {"a": org_a, "b": org_b},
            "billing_sync.ledger.ref": {"a": refs[:1], "b": conn_b.reference_ids[:1]},
            "billing_sync.mapping": {"a": map_a, "b": map_b},
            "billing_sync.mapping.health": {"a": health},
            "billing_sync.token": {
                "a": Token.search([("connection_id", "=", conn_a.id)]),
                "b": Token.search([("connection_id", "=", conn_b.id)])},
            "billing_sync.job": {
                "inv_own": job_of(inv_own, "invoice"), "inv_other": job_of(inv_other, "invoice"),
                "partner_x": job_of(partner_x, "contact"), "partner_y": job_y,
                "gone": job_gone, "foreign": job_foreign, "b": job_b},
            "billing_sync.link": {
                "inv_own": link_of(inv_own), "inv_other": link_of(inv_other),
                "partner_x": link_of(partner_x), "partner_y": link_of(partner_y),
                "gone": link_gone, "b": link_b},
            "billing_sync.schedule.line": {
                "own": order_own.billing_sync_schedule_line_ids.filtered(
                    lambda ln: ln.kind == "milestone")[:1],
                "other": order_other.billing_sync_schedule_line_ids.filtered(
                    lambda ln: ln.kind == "milestone")[:1]},
            "billing_sync.inbox": {"a": inbox_a, "b": inbox_b},
            "billing_sync.conflict": {"a": conflict_a, "b": conflict_b},
            "billing_sync.alert": {"a": alert_a, "b": alert_b},
            "billing_sync.audit.log": {"a": audit_a, "b": audit_b},
            "billing_sync.dashboard": {
                "a": env["billing_sync.dashboard"].browse(conn_a.id),
                "b": env["billing_sync.dashboard"].browse(conn_b.id)},
            "billing_sync.milestone": {"own": order_own.billing_sync_milestone_ids[:1],
                                       "other": order_other.billing_sync_milestone_ids[:1]},
        }
        # rows the buttons are pressed on, besides the ones above: a planned final
        # invoice of each proposal (Bill now bills it), their milestone lines cancelled
        # (Plan again puts them back)
        finals = {key: cls.rows["billing_sync.schedule.line"][key].order_id
                  .billing_sync_schedule_line_ids.filtered(lambda ln: ln.kind == "final")
                  for key in ("own", "other")}
        cls.extras = {
            "billing_sync.connection": {"draft": draft},
            "account.move": {"inv_other": inv_other},
            "res.partner": {"partner_y": partner_y},
            "billing_sync.schedule.line": {"final_own": finals["own"],
                                           "final_other": finals["other"]},
        }
        cls.rows["billing_sync.schedule.line"]["own"].is_cancelled = True
        cls.rows["billing_sync.schedule.line"]["other"].is_cancelled = True
        for model, rows in list(cls.rows.items()) + list(cls.extras.items()):
            for key, row in rows.items():
                assert len(row) == 1, (model, key)
        # the write target of each model: a company A row
        cls.targets = {model: rows.get("a") or rows.get("own") or rows.get("partner_y")
                       for model, rows in cls.rows.items()}
        cls.targets["billing_sync.connection"] = conn_a

    @classmethod
    def _make_roles(cls):
        a, b = cls.company_a, cls.company_b
        only_b = {"company_id": b.id, "company_ids": [fields.Command.set(b.ids)]}
        cls.users = {
            "user": make_user(cls.env, "matrix_user", f"{USER},{EXPORT}"),
            "manager": make_user(cls.env, "matrix_manager", f"{MANAGER},{EXPORT}"),
            "admin": make_user(cls.env, "matrix_admin", f"{ADMIN},{INVOICING},{EXPORT}"),
            "sysadmin": make_user(cls.env, "matrix_sysadmin", f"base.group_system,{EXPORT}"),
            "manager_b": make_user(cls.env, "matrix_manager_b",
                                   f"{MANAGER},{INVOICING},{EXPORT}", **only_b),
            "admin_b": make_user(cls.env, "matrix_admin_b", f"{ADMIN},{EXPORT}", **only_b),
            "invoicing": make_user(cls.env, "matrix_invoicing", f"{INVOICING},{EXPORT}"),
            "salesman": make_user(cls.env, "matrix_salesman", f"{SALESMAN},{USER},{EXPORT}"),
            "portal": make_user(cls.env, "matrix_portal", "base.group_portal"),
            "public": cls.env.ref("base.public_user"),
        }
        # a Manager of both companies (working in A) who reads company B's clients too
        cls.manager_ab = make_user(
            cls.env, "matrix_manager_ab", f"{MANAGER},{INVOICING}",
            company_id=a.id, company_ids=[fields.Command.set((a | b).ids)])

    @classmethod
    def _invoice(cls, partner, product, tax, salesperson, post=True):
        move = cls.env["account.move"].create({
            "move_type": "out_invoice", "partner_id": partner.id,
            "invoice_user_id": salesperson.id, "invoice_date": fields.Date.today(),
            "invoice_line_ids": [fields.Command.create({
                "product_id": product.id, "quantity": 2, "price_unit": 1000.0,
                "tax_ids": [fields.Command.set(tax.ids)]})]})
        if post:
            move.action_post()
        return move

    @classmethod
    def _engagement(cls, partner, product, salesperson):
        order = cls.env["sale.order"].create({
            "partner_id": partner.id, "user_id": salesperson.id,
            "order_line": [fields.Command.create({"product_id": product.id,
                                                  "product_uom_qty": 1})],
            "billing_sync_engagement_type": "milestones",
            "billing_sync_deposit_type": "none",
            "billing_sync_milestone_ids": [fields.Command.create({
                "name": "Design approved", "amount_type": "percent", "percent": 40})],
        })
        order.action_confirm()
        return order

    # ------------------------------------------------------------------ helpers
    def attempt(self, func, *args, **kwargs):
        """("ok", value), ("denied", AccessError) or ("refused", UserError) of
        ``func(*args, **kwargs)``, whose effects are always rolled back."""
        try:
            with self.env.cr.savepoint():
                value = func(*args, **kwargs)
                self.env.flush_all()
                raise _Undo(value)
        except _Undo as undo:
            return "ok", undo.value
        except AccessError as exc:
            return "denied", exc
        except UserError as exc:  # ValidationError and MissingError included
            return "refused", exc
        finally:
            self.env.invalidate_all()

    @staticmethod
    def export(Model, ids):
        return Model.search([("id", "in", ids)]).export_data([".id", "display_name"])

    def as_role(self, role, model):
        return self.env[model].with_user(self.users[role])

    def keys_of(self, model, records):
        ids = set(records.ids) if hasattr(records, "ids") else set(records)
        return {key for key, row in self.rows[model].items() if row.id in ids}

    def assertDenied(self, outcome, msg=None):
        self.assertEqual(outcome[0], "denied", msg or outcome[1])

    def assertAllowed(self, outcome, msg=None):
        self.assertNotEqual(outcome[0], "denied", msg or outcome[1])

    def create_values(self, model):
        today = fields.Date.today()
        return {
            "billing_sync.connection": {"provider": "qbo", "company_id": self.company_a.id},
            "billing_sync.connection.org": {"connection_id": self.conn_a.id,
                                            "org_id": "org-new", "name": "New org"},
            "billing_sync.ledger.ref": {"connection_id": self.conn_a.id, "kind": "tax",
                                        "ledger_id": "tax-new", "name": "New tax"},
            "billing_sync.mapping": {"connection_id": self.conn_a.id,
                                     "kind": "product_category", "categ_id": self.categ_new.id,
                                     "account_id": self.account_ref_a.id},
            "billing_sync.mapping.health": {"connection_id": self.conn_a.id, "kind": "tax"},
            "billing_sync.token": {"connection_id": self.draft.id, "access_token": "x"},
            "billing_sync.job": {"connection_id": self.conn_a.id, "res_model": "res.partner",
                                 "res_id": self.partner_x.id, "kind": "contact"},
            "billing_sync.link": {"connection_id": self.conn_a.id, "res_model": "res.partner",
                                  "res_id": self.partner_x.id, "ledger_id": "C-NEW"},
            # a forged announcement, a forged conflict (its button would write the client)
            "billing_sync.inbox": {"connection_id": self.conn_a.id, "kind": "contact",
                                   "ledger_id": "C-FORGED", "change": "update",
                                   "event_id": "forged"},
            "billing_sync.conflict": {"connection_id": self.conn_a.id,
                                      "partner_id": self.partner_y.id, "group": "email",
                                      "decision": "ledger", "policy": "last",
                                      "odoo_values": '{"email": "attacker@evil.example"}'},
            "billing_sync.dashboard": {"connection_name": "Forged ledger"},
            # a forged alert would tell an administrator a lie
            "billing_sync.alert": {"connection_id": self.conn_a.id, "error_class": "other",
                                   "last_message": "Pay invoice 42 to IBAN XX00 now"},
            # a forged entry would rewrite history
            "billing_sync.audit.log": {"company_id": self.company_a.id,
                                       "direction": "inbound", "outcome": "applied",
                                       "initiated_by": "xero", "record_name": "Forged"},
            "billing_sync.schedule.line": {
                "order_id": self.rows["billing_sync.schedule.line"]["own"].order_id.id,
                "kind": "period", "key": "matrix:1", "name": "Extra period", "date": today,
                "amount": 10.0},
            "billing_sync.milestone": {
                "order_id": self.rows["billing_sync.milestone"]["own"].order_id.id,
                "name": "Extra milestone", "amount_type": "percent", "percent": 10},
        }[model]

    WRITE_VALUES = {
        "billing_sync.connection": {"rate_window_seconds": 30.0},
        "billing_sync.connection.org": {"name": "Renamed org"},
        "billing_sync.ledger.ref": {"name": "Renamed code"},
        "billing_sync.mapping": {"active": False},
        "billing_sync.mapping.health": {"invoice_count": 0},
        "billing_sync.token": {"access_token": "attacker"},
        "billing_sync.job": {"state": "pending"},
        "billing_sync.link": {"ledger_number": "INV-FAKE"},
        "billing_sync.inbox": {"state": "done"},
        "billing_sync.conflict": {"odoo_values": '{"email": "attacker@evil.example"}'},
        "billing_sync.alert": {"state": "closed"},
        "billing_sync.audit.log": {"outcome": "applied"},
        "billing_sync.dashboard": {"backlog": 0},
        "billing_sync.schedule.line": {"name": "Renamed line"},
        "billing_sync.milestone": {"name": "Renamed milestone"},
    }

    # ------------------------------------------------------------------ the matrix
    def test_models_are_all_in_the_matrix(self):
        """A new billing_sync model must be added to the tables."""
        models = {name for name, model in self.env.registry.items()
                  if name.startswith("billing_sync.") and not model._abstract
                  and not model._transient}
        self.assertEqual(models, set(READS))
        self.assertEqual(models, set(CHANGES))

    def test_reads(self):
        for model, readers in READS.items():
            rows = self.rows[model]
            ids = [row.id for row in rows.values()]
            for role in ROLES:
                expected = readers.get(role)
                Model = self.as_role(role, model)
                with self.subTest(role=role, model=model, op="search"):
                    outcome = self.attempt(Model.search, [("id", "in", ids)])
                    if expected is None:
                        self.assertDenied(outcome)
                    else:
                        self.assertEqual(outcome[0], "ok", outcome[1])
                        self.assertEqual(self.keys_of(model, outcome[1]), expected)
                with self.subTest(role=role, model=model, op="search_count"):
                    outcome = self.attempt(Model.search_count, [("id", "in", ids)])
                    if expected is None:
                        self.assertDenied(outcome)
                    else:
                        self.assertEqual(outcome, ("ok", len(expected)))
                for key, row in rows.items():
                    with self.subTest(role=role, model=model, op="read", row=key):
                        outcome = self.attempt(lambda M=Model, r=row: M.browse(r.id).read())
                        if expected is not None and key in expected:
                            self.assertEqual(outcome[0], "ok", outcome[1])
                        else:
                            self.assertDenied(outcome)
                with self.subTest(role=role, model=model, op="export_data"):
                    outcome = self.attempt(self.export, Model, ids)
                    if expected is None:
                        self.assertDenied(outcome)
                    else:
                        exported = {int(line[0]) for line in outcome[1]["datas"]}
                        self.assertEqual(self.keys_of(model, exported), expected)
                with self.subTest(role=role, model=model, op="export_by_id"):
                    # an export of ids one cannot read, as an RPC client could send it
                    hidden = [row.id for key, row in rows.items()
                              if expected is None or key not in expected]
                    if hidden:
                        outcome = self.attempt(Model.browse(hidden).export_data,
                                               ["display_name"])
                        if self.users[role].has_group(EXPORT):
                            self.assertDenied(outcome)
                        else:  # refused before any record is looked at
                            self.assertEqual(outcome[0], "refused", outcome[1])
                with self.subTest(role=role, model=model, op="read_group"):
                    outcome = self.attempt(Model.read_group, [("id", "in", ids)],
                                           ["__count"], [])
                    if expected is None:
                        self.assertDenied(outcome)
                    else:
                        self.assertEqual(outcome[0], "ok", outcome[1])
                        self.assertEqual(outcome[1][0]["__count"], len(expected))

    def test_changes(self):
        for model, writers in CHANGES.items():
            target = self.targets[model]
            for role in ROLES:
                allowed = writers.get(role, "")
                Model = self.as_role(role, model)
                operations = {
                    "w": ("write", lambda M=Model, t=target: M.browse(t.id).write(
                        self.WRITE_VALUES[M._name])),
                    "c": ("create", lambda M=Model: M.create(self.create_values(M._name))),
                    "u": ("unlink", lambda M=Model, t=target: M.browse(t.id).unlink()),
                }
                for letter, (operation, func) in operations.items():
                    with self.subTest(role=role, model=model, op=operation):
                        outcome = self.attempt(func)
                        if letter in allowed:
                            self.assertEqual(outcome[0], "ok", outcome[1])
                        elif letter in REFUSED.get(model, {}).get(role, ""):
                            self.assertEqual(outcome[0], "refused", outcome[1])
                        else:
                            self.assertDenied(outcome)

    def test_buttons(self):
        for model, key, method, pressers in BUTTONS:
            record = (self.rows.get(model, {}).get(key) or self.extras[model][key])
            for role in ROLES:
                with self.subTest(role=role, model=model, button=method, row=key):
                    outcome = self.attempt(getattr(record.with_user(self.users[role]), method))
                    if role in pressers:
                        self.assertAllowed(outcome)
                    elif method in OPENERS and outcome[0] == "ok":
                        action = outcome[1]
                        self.assertEqual(action["domain"], [("connection_id", "=", record.id)])
                        shown = self.attempt(self.as_role(role, action["res_model"]).search,
                                             action["domain"])
                        self.assertFalse(shown[0] == "ok" and shown[1], shown)
                    else:
                        self.assertDenied(outcome)

    # ------------------------------------------------------------------ the attacks
    def test_nobody_rewrites_what_a_job_or_link_names(self):
        values = {
            "res_model": "account.move", "res_id": self.inv_other.id,
            "connection_id": self.conn_b.id, "state": "pending", "batch_key": "stolen-key",
            "ledger_id": "INV-OF-SOMEONE-ELSE", "ledger_payment_ids": "P-1", "kind": "invoice",
            "attempts": 0, "outcome_unknown": False, "last_error": False,
            "ledger_type": "invoice", "sync_state": "synced", "mismatch": False,
            "ledger_total": 1.0, "active": False, "ledger_parts": "a:b",
        }
        for model, fnames in (("billing_sync.job", JOB_FIELDS),
                              ("billing_sync.link", LINK_FIELDS)):
            row = self.rows[model]["partner_y"]
            for role in ("manager", "admin", "sysadmin"):
                for fname in fnames:
                    with self.subTest(role=role, model=model, field=fname):
                        outcome = self.attempt(self.as_role(role, model).browse(row.id).write,
                                               {fname: values[fname]})
                        self.assertDenied(outcome)
                        self.assertIn("engine", str(outcome[1]))

    def test_a_manager_retries_no_job_of_another_companys_record(self):
        foreign = self.rows["billing_sync.job"]["foreign"]
        # a Manager of both companies reads the client, and the job is company A's
        self.assertTrue(self.partner_b.with_user(self.manager_ab).has_access("read"))
        for method in ("action_retry", "action_cancel"):
            if method == "action_retry":
                with self.subTest(user="manager_ab", button=method):
                    outcome = self.attempt(lambda m=method: getattr(
                        foreign.with_user(self.manager_ab), m)())
                    self.assertDenied(outcome)
                    self.assertIn("never sent to that ledger", str(outcome[1]))
            with self.subTest(user="manager", button=method):
                # company A only: the client is company B's, out of his sight
                self.assertDenied(self.attempt(lambda m=method: getattr(
                    foreign.with_user(self.users["manager"]), m)()))
            with self.subTest(user="manager_b", button=method):
                # company B's Manager: the job belongs to company A's ledger
                self.assertDenied(self.attempt(lambda m=method: getattr(
                    foreign.with_user(self.users["manager_b"]), m)()))
        self.assertEqual(foreign.state, "blocked")
        # who sees both companies may put such a job aside: it sends nothing
        foreign.with_user(self.manager_ab).action_cancel()
        self.assertEqual(foreign.state, "cancelled")

    def test_the_worker_never_sends_another_companys_record(self):
        foreign = self.rows["billing_sync.job"]["foreign"]
        foreign.write({"state": "pending", "next_attempt_at": fields.Datetime.now()})
        before = self.xero.counters.snapshot()["total"]
        self.env["billing_sync.job"]._cron_push()
        self.assertEqual(foreign.state, "blocked")
        self.assertIn("Matrix Other Firm", foreign.last_error)
        self.assertIn("never sent", foreign.last_error)
        self.assertEqual(self.xero.counters.snapshot()["total"], before,
                         "nothing reached the ledger")
        names = [c.get("Name") for c in self.xero.ledger().contacts.values()]
        self.assertNotIn(self.partner_b.name, names)

    def test_the_jobs_list_of_a_manager_without_invoicing(self):
        """The list opens (no access error) and shows only rows of records he reads."""
        Job = self.env["billing_sync.job"].with_user(self.users["manager"])
        views = Job.get_views([(False, "list"), (False, "form"), (False, "search")])
        listed_fields = views["models"]["billing_sync.job"]["fields"]
        spec = {name: ({"fields": {"display_name": {}}} if info["type"] == "many2one" else {})
                for name, info in listed_fields.items()}
        fixture_ids = [row.id for row in self.rows["billing_sync.job"].values()]
        listed = Job.web_search_read([("id", "in", fixture_ids)], spec)
        self.assertEqual(self.keys_of("billing_sync.job", [r["id"] for r in listed["records"]]),
                         PARTNER_ROWS)
        self.assertNotIn(self.inv_other.name, str(listed))
        # grouped, as the list's filters do
        for groupby in (["state"], ["connection_id"], ["res_model"], ["kind"]):
            with self.subTest(groupby=groupby):
                groups = Job.web_read_group([("id", "in", fixture_ids)], ["__count"], groupby,
                                            lazy=False)
                self.assertEqual(sum(g["__count"] for g in groups["groups"]),
                                 len(PARTNER_ROWS))
        # the invoice rows by id: refused, and their texts never shown
        job = self.rows["billing_sync.job"]["inv_other"]
        self.assertDenied(self.attempt(lambda: Job.browse(job.id).read(["last_error"])))
        self.assertDenied(self.attempt(lambda: Job.browse(job.id).web_read(
            {"record_name": {}, "last_error": {}})))
        self.assertFalse(Job.search([("res_model", "=", "account.move")]))

    def test_sync_status_follows_the_record(self):
        salesman = self.users["salesman"]
        own = self.inv_own.with_user(salesman)
        self.assertEqual(own.billing_sync_status, "synced")
        self.assertTrue(own.billing_sync_ledger_number)
        self.assertDenied(self.attempt(lambda: self.inv_other.with_user(salesman).read(
            ["billing_sync_status"])))
        # an employee without the Billing Sync group sees no status field at all
        invoicing = self.users["invoicing"]
        self.assertDenied(self.attempt(lambda: self.inv_own.with_user(invoicing).read(
            ["billing_sync_status"])))

    def test_no_secret_leaves_a_connection(self):
        secret = self.conn_a._cipher().decrypt(
            self.rows["billing_sync.token"]["a"].client_secret)
        tokens = self.rows["billing_sync.token"]["a"]
        access = self.conn_a._cipher().decrypt(tokens.access_token)
        refresh = self.conn_a._cipher().decrypt(tokens.refresh_token)
        self.assertTrue(secret and access and refresh)
        for role in ("admin", "sysadmin"):
            Connection = self.as_role(role, "billing_sync.connection")
            conn = Connection.browse(self.conn_a.id)
            answers = {
                "read": lambda c=conn: c.read(),
                "search_read": lambda C=Connection: C.search_read([("id", "=", self.conn_a.id)]),
                "web_read": lambda c=conn: c.web_read({name: {} for name in c._fields
                                                        if c._fields[name].type not in (
                                                            "one2many", "many2many",
                                                            "many2one")}),
                "export_data": lambda c=conn: c.export_data(
                    [name for name, f in c._fields.items()
                     if f.type not in ("one2many", "many2many")]),
                "read_group": lambda C=Connection: C.read_group(
                    [], ["client_id"], ["client_id", "provider"], lazy=False),
                "fields_get": lambda C=Connection: C.fields_get(),
                "default_get": lambda C=Connection: C.default_get(list(C._fields)),
                "copy_data": lambda c=conn: c.copy_data(),
                "name_search": lambda C=Connection: C.name_search(""),
            }
            for name, func in answers.items():
                with self.subTest(role=role, op=name):
                    outcome = self.attempt(func)
                    self.assertEqual(outcome[0], "ok", outcome[1])
                    text = str(outcome[1])
                    for value in (secret, access, refresh):
                        self.assertNotIn(value, text)
                    for cipher in (tokens.client_secret, tokens.access_token,
                                   tokens.refresh_token):
                        self.assertNotIn(cipher, text)
            with self.subTest(role=role, op="client_secret"):
                self.assertFalse(conn.client_secret)
                self.assertTrue(conn.has_client_secret)
            with self.subTest(role=role, op="token by ORM"):
                Token = self.as_role(role, "billing_sync.token")
                for func in (lambda T=Token: T.search([]),
                             lambda T=Token: T.browse(tokens.id).read(["access_token"]),
                             lambda T=Token: T.search_read([], ["refresh_token"]),
                             lambda T=Token: T.read_group([], ["__count"], []),
                             lambda T=Token: T.browse(tokens.id).export_data(["client_secret"])):
                    self.assertDenied(self.attempt(func))

    def test_connection_org_across_companies(self):
        admin_b = self.users["admin_b"]
        org_a = self.rows["billing_sync.connection.org"]["a"]
        Org = self.env["billing_sync.connection.org"].with_user(admin_b)
        self.assertFalse(Org.search([("connection_id", "=", self.conn_a.id)]))
        for name, func in {
            "read": lambda: Org.browse(org_a.id).read(["org_id", "name"]),
            "write": lambda: Org.browse(org_a.id).write({"org_id": "attacker-org"}),
            "unlink": lambda: Org.browse(org_a.id).unlink(),
            "create": lambda: Org.create({"connection_id": self.conn_a.id,
                                          "org_id": "attacker-org", "name": "Attacker"}),
            "choose": lambda: self.conn_a.with_user(admin_b).write(
                {"chosen_org_id": org_a.id}),
            "move_org": lambda: self.conn_a.with_user(admin_b).action_move_org(),
            "connection": lambda: self.conn_a.with_user(admin_b).read(["org_id"]),
            "mapping": lambda: self.rows["billing_sync.mapping"]["a"].with_user(
                admin_b).write({"active": False}),
        }.items():
            with self.subTest(op=name):
                self.assertDenied(self.attempt(func))

    def test_connection_creation_reveals_nothing(self):
        # company A has an active Xero ledger: a duplicate would be a ValidationError
        # naming it, which must never reach whoever may not create a connection there
        for role in ("user", "manager", "salesman", "invoicing", "portal", "public",
                     "admin_b", "manager_b"):
            for provider in ("xero", "qbo"):
                with self.subTest(role=role, provider=provider):
                    outcome = self.attempt(lambda r=role, p=provider: self.as_role(
                        r, "billing_sync.connection").create(
                        {"provider": p, "company_id": self.company_a.id}))
                    self.assertDenied(outcome)
                    self.assertNotIn("already has", str(outcome[1]))
        # a company B administrator creating for a company he does not work in
        outcome = self.attempt(lambda: self.as_role("admin_b", "billing_sync.connection").create(
            {"provider": "xero", "company_id": self.company_a.id}))
        self.assertIn("your own companies", str(outcome[1]))
        # company A's administrator: told in words
        outcome = self.attempt(lambda: self.as_role("admin", "billing_sync.connection").create(
            {"provider": "xero"}))
        self.assertEqual(outcome[0], "refused")
        self.assertIn("already has", str(outcome[1]))

    def test_nothing_is_moved_to_another_company(self):
        """An Administrator of company A must not re-point company A's rows at company B
        (B's ledger would get A's codes; A's ledger B's invoices)."""
        admin = self.users["admin"]
        cases = {
            "connection company": lambda: self.conn_a.with_user(admin).write(
                {"company_id": self.company_b.id}),
            "ledger code connection": lambda: self.rows["billing_sync.ledger.ref"]["a"].with_user(
                admin).write({"connection_id": self.conn_b.id}),
            "organisation connection": lambda: self.rows["billing_sync.connection.org"][
                "a"].with_user(admin).write({"connection_id": self.conn_b.id}),
            "mapping connection": lambda: self.rows["billing_sync.mapping"]["a"].with_user(
                admin).write({"connection_id": self.conn_b.id}),
        }
        for name, func in cases.items():
            with self.subTest(case=name):
                self.assertDenied(self.attempt(func))


@tagged("post_install", "-at_install")
class TestSecurityMatrixHttp(HttpCase):
    """The same promises over HTTP: the OAuth callback and JSON-RPC."""

    CALLBACK = "/billing_sync/oauth/callback"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from ledger_sandbox.connect import connection_values

        cls.env["billing_sync.connection"].search([]).write({"active": False})
        # never contacted: the endpoints are only stored
        cls.connection = cls.env["billing_sync.connection"].create(
            connection_values("xero", "http://127.0.0.1:9"))
        cls.token = cls.connection._token_sudo()
        cls.token.write({"access_token": cls.connection._cipher().encrypt("matrix-bearer"),
                         "refresh_token": cls.connection._cipher().encrypt("matrix-refresh")})
        cls.portal = make_user(cls.env, "matrix_http_portal", "base.group_portal")
        cls.sysadmin = make_user(cls.env, "matrix_http_sysadmin", "base.group_system")

    def rpc(self, model, method, *args, **kwargs):
        return self.make_jsonrpc_request("/web/dataset/call_kw", {
            "model": model, "method": method, "args": list(args), "kwargs": kwargs})

    def assertRpcDenied(self, model, method, *args, **kwargs):
        with self.assertRaises(JsonRpcException) as caught:
            self.rpc(model, method, *args, **kwargs)
        self.assertEqual(str(caught.exception), "odoo.exceptions.AccessError")

    def test_public_user_never_reaches_the_callback(self):
        answer = self.url_open(f"{self.CALLBACK}?{urlencode({'state': 'x', 'code': 'y'})}",
                               allow_redirects=False)
        self.assertIn(answer.status_code, (302, 303))
        self.assertIn("/web/login", answer.headers["Location"])
        self.connection.invalidate_recordset()
        self.assertEqual(self.connection.state, "draft")

    def test_signed_state_with_non_numeric_fields_is_refused(self):
        self.authenticate(self.sysadmin.login, self.sysadmin.login)
        uid, later = self.sysadmin.id, int(time.time()) + 600
        for payload in (f"abc:{uid}:{later}:nonce", f"{self.connection.id}:me:{later}:nonce",
                        f"{self.connection.id}:{uid}:soon:nonce",
                        f"{self.connection.id}:{uid}:{later}"):
            with self.subTest(payload=payload):
                signature = odoo_hmac(self.env(su=True), STATE_SCOPE, payload)
                encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
                query = urlencode({"state": f"{encoded}.{signature}", "code": "c"})
                answer = self.url_open(f"{self.CALLBACK}?{query}", allow_redirects=False)
                self.assertEqual(answer.status_code, 403, answer.text[:500])

    def test_portal_rpc_is_refused(self):
        self.authenticate(self.portal.login, self.portal.login)
        conn = self.connection.id
        for model, method, args, kwargs in (
            ("billing_sync.job", "search_read", [[]], {"fields": ["last_error"]}),
            ("billing_sync.link", "search_read", [[]], {"fields": ["ledger_id"]}),
            ("billing_sync.connection", "search_read", [[]], {"fields": ["name"]}),
            ("billing_sync.connection", "read", [[conn], ["org_name"]], {}),
            ("billing_sync.connection", "create", [{"provider": "xero"}], {}),
            ("billing_sync.connection", "action_connect", [[conn]], {}),
            ("billing_sync.connection", "action_disconnect", [[conn]], {}),
            ("billing_sync.connection.org", "search_read", [[]], {}),
            ("billing_sync.token", "search_read", [[]], {}),
            ("billing_sync.mapping", "search_read", [[]], {}),
            ("billing_sync.mapping.health", "search_read", [[]], {}),
            ("billing_sync.ledger.ref", "search_read", [[]], {}),
            ("billing_sync.job", "action_retry", [[1]], {}),
            ("billing_sync.schedule.line", "search_read", [[]], {}),
            ("billing_sync.milestone", "search_read", [[]], {}),
        ):
            with self.subTest(model=model, method=method):
                self.assertRpcDenied(model, method, *args, **kwargs)

    def test_settings_administrator_rpc_returns_no_secret(self):
        self.authenticate(self.sysadmin.login, self.sysadmin.login)
        conn = self.connection.id
        answers = [
            self.rpc("billing_sync.connection", "search_read", [["id", "=", conn]]),
            self.rpc("billing_sync.connection", "web_read", [conn],
                     specification={"client_secret": {}, "has_client_secret": {}}),
            self.rpc("billing_sync.connection", "export_data", [conn],
                     ["client_secret", "client_id", "oauth_url"]),
            self.rpc("billing_sync.connection", "fields_get"),
            self.rpc("billing_sync.connection", "default_get", ["client_secret", "client_id"]),
        ]
        text = str(answers)
        for value in ("matrix-bearer", "matrix-refresh", "matrix-refresh",
                      self.token.access_token, self.token.refresh_token,
                      self.token.client_secret):
            self.assertNotIn(value, text)
        self.assertEqual(answers[0][0]["client_secret"], False)
        for method, args in (("search_read", [[]]), ("read", [[self.token.id]]),
                             ("write", [[self.token.id], {"access_token": "x"}]),
                             ("create", [{"connection_id": conn}]),
                             ("unlink", [[self.token.id]])):
            with self.subTest(method=method):
                self.assertRpcDenied("billing_sync.token", method, *args)
