from odoo.exceptions import AccessError
from odoo.tests import HttpCase, TransactionCase, tagged

from .common import ADMIN, MANAGER, USER, make_user

ROOT = "billing_sync.menu_billing_sync_root"
DASHBOARD = "billing_sync.menu_billing_sync_dashboard"
PROPOSALS = "billing_sync.menu_billing_sync_proposals"
CONFIGURATION = "billing_sync.menu_billing_sync_configuration"
SETTINGS = "billing_sync.menu_billing_sync_settings"
ALL = (ROOT, DASHBOARD, CONFIGURATION, SETTINGS)
SALES = "sales_team.group_sale_salesman"


@tagged("post_install", "-at_install")
class TestMenus(TransactionCase):
    def _visible(self, user):
        visible = self.env["ir.ui.menu"].with_user(user)._visible_menu_ids()
        return {xmlid for xmlid in ALL if self.env.ref(xmlid).id in visible}

    def test_plain_employee_sees_no_app(self):
        employee = make_user(self.env, "menu_employee", "base.group_user")
        self.assertEqual(self._visible(employee), set())

    def test_user_and_manager_see_dashboard_only(self):
        for login, group in (("menu_user", USER), ("menu_manager", MANAGER)):
            with self.subTest(group=group):
                user = make_user(self.env, login, f"{group},{SALES}")
                self.assertEqual(self._visible(user), {ROOT, DASHBOARD})

    def test_billing_users_without_sales_rights_reach_the_dashboard(self):
        user = make_user(self.env, "menu_user_nosales", USER)
        self.assertEqual(self._visible(user), {ROOT, DASHBOARD})
        # Odoo hides a menu whose records the user may not read, rather than showing an
        # access error: the accepted proposals are for those who read proposals
        visible = self.env["ir.ui.menu"].with_user(user)._visible_menu_ids()
        self.assertNotIn(self.env.ref(PROPOSALS).id, visible)
        sales = make_user(self.env, "menu_user_sales", f"{USER},{SALES}")
        self.assertIn(self.env.ref(PROPOSALS).id,
                      self.env["ir.ui.menu"].with_user(sales)._visible_menu_ids())

    def test_settings_administrator_sees_configuration(self):
        admin = make_user(self.env, "menu_sysadmin", f"base.group_system,{SALES}")
        self.assertEqual(self._visible(admin), set(ALL))

    def test_configuration_menu_is_for_administrators(self):
        menu = self.env.ref(CONFIGURATION)
        self.assertEqual(menu.groups_id, self.env.ref(ADMIN))

    def test_plain_user_cannot_open_settings(self):
        user = make_user(self.env, "menu_user2", USER)
        with self.assertRaises(AccessError):
            self.env["res.config.settings"].with_user(user).create({})

    def test_billing_user_with_sales_rights_opens_the_proposals(self):
        user = make_user(self.env, "menu_sales", f"{USER},{SALES}")
        action = self.env["ir.actions.actions"].with_user(user)._for_xml_id(
            "billing_sync.action_billing_sync_proposals"
        )
        self.assertEqual(action["res_model"], "sale.order")
        # the domain the web client will apply runs for that user
        self.env["sale.order"].with_user(user).search(eval(action["domain"]))  # noqa: S307


@tagged("post_install", "-at_install")
class TestMenusOverHttp(HttpCase):
    """The web client's own menu load, as a browser session makes it."""

    def _menu_xmlids(self, login):
        self.authenticate(login, login)
        res = self.url_open("/web/webclient/load_menus/1")
        self.assertEqual(res.status_code, 200)
        return {m["xmlid"] for m in res.json().values() if m.get("xmlid")}

    def test_load_menus_per_group(self):
        make_user(self.env, "http_employee", "base.group_user")
        make_user(self.env, "http_user", f"{USER},{SALES}")
        make_user(self.env, "http_sysadmin", f"base.group_system,{SALES}")
        self.assertFalse(set(ALL) & self._menu_xmlids("http_employee"))
        user_menus = self._menu_xmlids("http_user")
        self.assertIn(DASHBOARD, user_menus)
        self.assertNotIn(CONFIGURATION, user_menus)
        self.assertTrue(set(ALL) <= self._menu_xmlids("http_sysadmin"))
