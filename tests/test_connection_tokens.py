"""Token refresh with rotation, failure, disconnect, concurrency, and who may read what."""

import datetime
import threading

from freezegun import freeze_time

from odoo import SUPERUSER_ID, api, tools
from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, tagged

from odoo.addons.billing_sync.services.crypto import TokenCipher
from odoo.addons.billing_sync.services.ledger.errors import AuthorizationRevoked

from .common import ADMIN, MANAGER, USER, LedgerSandboxMixin, make_user


def token_calls(sandbox):
    """How many times the sandbox's token endpoint answered, by status."""
    counters = sandbox.counters.snapshot()["by_endpoint"]
    for label, statuses in counters.items():
        if "token" in label.lower() and "POST" in label:
            return statuses
    return {}


@tagged("post_install", "-at_install")
class TestTokens(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes(test_mode=True)
        cls.admin = make_user(cls.env, "bs_tok_admin", ADMIN)

    def setUp(self):
        super().setUp()
        self.xero.reset()
        self.qbo.reset()
        self.Connection = self.env["billing_sync.connection"].with_user(self.admin)

    def _connected(self, provider="xero"):
        return self.connect(self.Connection.create(self.sandbox_values(provider)))

    def _refresh_token(self, connection):
        token = connection._token_sudo()
        token.invalidate_recordset()
        return connection._cipher().decrypt(token.refresh_token)

    def test_refresh_rotates_and_old_refresh_token_dies(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self._connected(provider)
                first_access = connection._access_token()
                first_refresh = self._refresh_token(connection)
                # still fresh: no call to the ledger
                self.assertEqual(connection._access_token(), first_access)
                later = datetime.datetime.now() + datetime.timedelta(hours=2)
                with freeze_time(later, tick=True):
                    new_access = connection._access_token()
                    new_refresh = self._refresh_token(connection)
                    self.assertNotEqual(new_access, first_access)
                    self.assertNotEqual(new_refresh, first_refresh)
                    token = connection._token_sudo()
                    self.assertGreater(token.expires_at, later)
                    # the rotated-out refresh token no longer works at the ledger
                    if provider == "xero":
                        self.xero.configure(refresh_grace_seconds=0)
                    with self.assertRaises(AuthorizationRevoked):
                        connection._adapter().refresh(first_refresh)
                    # the new one does
                    self.assertTrue(connection._adapter().refresh(new_refresh).access_token)

    def test_failed_refresh_needs_reconnect_and_tells_admins(self):
        connection = self._connected("qbo")
        connection._adapter().revoke(self._refresh_token(connection))
        connection._token_sudo().expires_at = datetime.datetime(2000, 1, 1)
        # not assertRaises: Odoo's rolls back a savepoint, and with it what the
        # refresh's own cursor committed (one transaction in test mode)
        try:
            connection._access_token()
            self.fail("a revoked grant must not yield a token")
        except UserError as exc:
            self.assertIn("must be reconnected", str(exc))
        self.assertEqual(connection.state, "needs_reconnect")
        message = connection.message_ids.filtered(
            lambda m: "refused to renew access" in str(m.body))
        self.assertEqual(len(message), 1)
        self.assertIn(self.admin.partner_id, message.partner_ids)
        activities = connection.activity_ids
        self.assertEqual(len(activities), 1)
        self.assertEqual(activities.user_id, self.admin)
        # a second failure does not pile up activities
        connection._needs_reconnect("again")
        self.assertEqual(len(connection.activity_ids), 1)
        # nothing secret in what people read
        refresh = self._refresh_token(connection)
        for text in connection.message_ids.mapped("body") + [connection.last_error]:
            self.assertNotIn(refresh, str(text))

    def test_disconnect_revokes_at_the_ledger(self):
        connection = self._connected("xero")
        refresh = self._refresh_token(connection)
        connection.action_disconnect()
        self.assertEqual(connection.state, "disconnected")
        token = connection._token_sudo()
        self.assertFalse(token.access_token or token.refresh_token)
        with self.assertRaises(AuthorizationRevoked):
            connection._adapter().refresh(refresh)
        with self.assertRaises(UserError):
            connection._access_token()

    def test_test_connection_reports_org_and_headroom(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self._connected(provider)
                action = connection.action_test_connection()
                self.assertEqual(action["params"]["title"],
                                 f"Connected to {connection.org_name}")
                if provider == "xero":
                    self.assertRegex(action["params"]["message"], r"^\d+ calls left this minute")
                else:
                    # Intuit sends no remaining-call header: never said as "none left"
                    message = action["params"]["message"]
                    self.assertIn("does not say how much of its rate limit is left", message)
                    self.assertNotIn("no remaining", message)
                self.assertIn(connection.org_name, connection.last_test)

    def test_missing_encryption_key_is_a_clear_error(self):
        key = tools.config.options.pop("billing_sync_encryption_key")
        try:
            with self.assertRaises(UserError) as caught:
                self.Connection.create(self.sandbox_values("xero"))
        finally:
            tools.config.options["billing_sync_encryption_key"] = key
        self.assertIn("billing_sync_encryption_key", str(caught.exception))

    def test_key_rotation_keeps_old_ciphertexts_readable(self):
        old = tools.config["billing_sync_encryption_key"]
        ciphertext = TokenCipher(old).encrypt("s3cr3t")
        from odoo.addons.billing_sync.services.crypto import generate_key

        rotated = TokenCipher(f"{generate_key()},{old}")
        self.assertEqual(rotated.decrypt(ciphertext), "s3cr3t")


@tagged("post_install", "-at_install")
class TestAccess(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes()
        cls.connection = cls.env["billing_sync.connection"].create(cls.sandbox_values("xero"))
        cls.users = {
            "employee": make_user(cls.env, "acc_employee", "base.group_user"),
            "user": make_user(cls.env, "acc_user", USER),
            "manager": make_user(cls.env, "acc_manager", MANAGER),
            "admin": make_user(cls.env, "acc_admin", ADMIN),
            "system": make_user(cls.env, "acc_system", "base.group_system"),
        }

    def test_only_administrators_see_connections_and_mappings(self):
        for role, user in self.users.items():
            for model in ("billing_sync.connection", "billing_sync.mapping",
                          "billing_sync.ledger.ref", "billing_sync.mapping.health"):
                with self.subTest(role=role, model=model):
                    records = self.env[model].with_user(user)
                    if role in ("admin", "system"):
                        records.search([])
                    else:
                        with self.assertRaises(AccessError):
                            records.search([])

    def test_no_role_reads_tokens(self):
        self.connection._token_sudo().write({"access_token": "x", "refresh_token": "y"})
        for role, user in self.users.items():
            with self.subTest(role=role):
                tokens = self.env["billing_sync.token"].with_user(user)
                with self.assertRaises(AccessError):
                    tokens.search_read([], ["access_token", "refresh_token"])
        # not even the admin account, nor through the connection's fields
        admin = self.env.ref("base.user_admin")
        with self.assertRaises(AccessError):
            self.env["billing_sync.token"].with_user(admin).search([])
        values = self.connection.with_user(admin).read(["client_secret"])[0]
        self.assertFalse(values["client_secret"])
        exported = self.connection.with_user(admin).export_data(["client_secret"])["datas"]
        self.assertFalse(exported[0][0])
        self.assertNotIn("access_token", self.env["billing_sync.connection"]._fields)


@tagged("post_install", "-at_install")
class TestConcurrentRefresh(LedgerSandboxMixin, TransactionCase):
    """Two workers find the token expired at the same moment: one refresh, both served.

    This needs committed data and real concurrent transactions, so it works on
    cursors of its own and removes what it committed.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes()

    def test_single_flight(self):
        registry = self.registry
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            connection = env["billing_sync.connection"].create(
                {**self.sandbox_values("qbo"), "company_id": env.ref("base.main_company").id})
            # a committed connection: authorise it for real
            self.connect(connection)
            connection._token_sudo().expires_at = datetime.datetime(2000, 1, 1)
            conn_id = connection.id
        try:
            self.qbo.counters.reset()
            barrier = threading.Barrier(2)
            results, errors = [], []

            def worker():
                try:
                    with registry.cursor() as cr:
                        env = api.Environment(cr, SUPERUSER_ID, {})
                        barrier.wait(timeout=10)
                        results.append(env["billing_sync.connection"].browse(conn_id)
                                       ._access_token())
                except Exception as exc:  # noqa: BLE001 -- reported below
                    errors.append(exc)

            threads = [threading.Thread(target=worker) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            self.assertFalse(errors, errors)
            self.assertEqual(len(results), 2)
            self.assertEqual(results[0], results[1], "both workers use the one new token")
            self.assertEqual(sum(token_calls(self.qbo).values()), 1, token_calls(self.qbo))
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                self.assertEqual(env["billing_sync.connection"].browse(conn_id).state,
                                 "connected")
        finally:
            with registry.cursor() as cr:
                cr.execute("DELETE FROM billing_sync_connection WHERE id = %s", [conn_id])
