from odoo.tests import TransactionCase, tagged

from .common import ADMIN, MANAGER, USER, make_user


@tagged("post_install", "-at_install")
class TestGroups(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_group = cls.env.ref(USER)
        cls.manager_group = cls.env.ref(MANAGER)
        cls.admin_group = cls.env.ref(ADMIN)

    def test_groups_share_one_category(self):
        category = self.env.ref("billing_sync.module_category_billing_sync")
        self.assertEqual(category.name, "Billing Sync")
        groups = self.user_group | self.manager_group | self.admin_group
        self.assertEqual(groups.category_id, category)
        self.assertEqual(
            sorted(groups.mapped("name")), ["Administrator", "Manager", "User"]
        )

    def test_implication_chain(self):
        self.assertIn(self.user_group, self.manager_group.implied_ids)
        self.assertIn(self.manager_group, self.admin_group.implied_ids)
        self.assertIn(self.env.ref("base.group_user"), self.user_group.implied_ids)

    def test_manager_gets_user_not_admin(self):
        manager = make_user(self.env, "bs_manager", MANAGER)
        self.assertTrue(manager.has_group(USER))
        self.assertFalse(manager.has_group(ADMIN))

    def test_admin_gets_everything_below(self):
        admin = make_user(self.env, "bs_admin", ADMIN)
        self.assertTrue(admin.has_group(MANAGER))
        self.assertTrue(admin.has_group(USER))

    def test_settings_administrators_are_billing_admins(self):
        self.assertIn(self.admin_group, self.env.ref("base.group_system").implied_ids)
        sysadmin = make_user(self.env, "bs_sysadmin", "base.group_system")
        self.assertTrue(sysadmin.has_group(ADMIN))
        self.assertTrue(self.env.ref("base.user_admin").has_group(ADMIN))

    def test_plain_employee_has_no_billing_sync_group(self):
        employee = make_user(self.env, "bs_employee", "base.group_user")
        self.assertFalse(employee.has_group(USER))

    def test_status_for_all_setting_grants_user_group_to_employees(self):
        employee = make_user(self.env, "bs_employee2", "base.group_user")
        settings = self.env["res.config.settings"].create(
            {"group_billing_sync_status_for_all": True}
        )
        settings.execute()
        self.assertTrue(employee.has_group(USER))
        self.assertFalse(employee.has_group(MANAGER))
        settings = self.env["res.config.settings"].create(
            {"group_billing_sync_status_for_all": False}
        )
        settings.execute()
        self.assertFalse(employee.with_env(self.env).has_group(USER))
