"""Helpers shared by the Odoo tests."""

from odoo.tests import new_test_user


def make_user(env, login, groups, **values):
    """An internal user in exactly ``groups`` (comma separated xml ids); ``values`` are
    more res.users values (company_id, company_ids, ...)."""
    return new_test_user(env, login=login, groups=groups, name=login.replace("_", " ").title(),
                         **values)


USER = "billing_sync.group_billing_sync_user"
MANAGER = "billing_sync.group_billing_sync_manager"
ADMIN = "billing_sync.group_billing_sync_admin"


# --- engagement billing (issue 4) ---------------------------------------------

SALESMAN = "sales_team.group_sale_salesman"
SALES_ALL = "sales_team.group_sale_salesman_all_leads"
INVOICING = "account.group_account_invoice"


def make_service(env, name, price, taxes=None):
    """A service sold at ``price``, invoiced on ordered quantities, with ``taxes``
    (none by default, so that amounts are exact in assertions)."""
    return env["product.product"].create({
        "name": name,
        "type": "service",
        "invoice_policy": "order",
        "list_price": price,
        "taxes_id": [(6, 0, (taxes or env["account.tax"]).ids)],
    })


def make_proposal(env, partner, lines, **terms):
    """A draft proposal with ``lines`` as ``(product, qty)`` or
    ``(product, qty, {"billing_sync_recurring": True, ...})`` and engagement ``terms``
    (sale.order field values)."""
    order_lines = []
    for product, qty, *extra in lines:
        order_lines.append((0, 0, {"product_id": product.id, "product_uom_qty": qty,
                                   **(extra[0] if extra else {})}))
    return env["sale.order"].create({
        "partner_id": partner.id,
        "order_line": order_lines,
        **terms,
    })


def register_payment(env, invoice):
    """Pay ``invoice`` in full through Odoo's payment wizard."""
    env["account.payment.register"].with_context(
        active_model="account.move", active_ids=invoice.ids
    ).create({})._create_payments()


class LedgerSandboxMixin:
    """In-process Xero and QuickBooks sandboxes (real HTTP on loopback) for one test class,
    and helpers to create and authorise connections against them."""

    @classmethod
    def start_sandboxes(cls, test_mode=False):
        """Start both sandboxes for the class; with ``test_mode``, cursors the code
        opens itself (token refresh) share the test's transaction."""
        if test_mode:
            cls.registry.enter_test_mode(cls.cr)
            cls.addClassCleanup(cls.registry.leave_test_mode)
        from ledger_sandbox.core import SandboxServer
        from ledger_sandbox.qbo.app import QboSandbox
        from ledger_sandbox.xero.app import XeroSandbox

        cls.xero = XeroSandbox()
        cls.xero_server = SandboxServer(cls.xero).start()
        cls.addClassCleanup(cls.xero_server.stop)
        cls.qbo = QboSandbox()
        cls.qbo_server = SandboxServer(cls.qbo).start()
        cls.addClassCleanup(cls.qbo_server.stop)

    def apply_inbox(self):
        """The inbox worker's run once the calls made so far have left the pace of the
        organisation's rate budget (that pacing is test_engine's)."""
        self.env.cr.execute("DELETE FROM billing_sync_rate_call")
        self.env["billing_sync.inbox"]._cron_apply()

    @classmethod
    def sandbox_values(cls, provider):
        """Connection values pointing at the sandbox of ``provider``."""
        from ledger_sandbox.connect import connection_values

        server = cls.xero_server if provider == "xero" else cls.qbo_server
        return connection_values(provider, server.url)

    @classmethod
    def consent(cls, connection, **params):
        """The query string the sandbox sends back after its consent page."""
        from ledger_sandbox.connect import consent

        return consent(connection, **params)

    @classmethod
    def connect(cls, connection, **params):
        """Authorise ``connection`` end to end, as the callback controller does."""
        from ledger_sandbox.connect import authorise

        return authorise(connection, **params)
