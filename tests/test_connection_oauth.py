"""The Connect flow through Odoo's own HTTP server and the sandboxes' OAuth2 servers."""

import datetime
from urllib.parse import parse_qs, urlencode

import psycopg2

from odoo.tests import HttpCase, tagged

from .common import ADMIN, LedgerSandboxMixin, make_user

CALLBACK = "/billing_sync/oauth/callback"


@tagged("post_install", "-at_install")
class TestConnectFlow(LedgerSandboxMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes()
        cls.admin = make_user(cls.env, "bs_conn_admin", f"{ADMIN},base.group_system")

    def setUp(self):
        super().setUp()
        self.xero.reset()
        self.qbo.reset()
        self.authenticate("bs_conn_admin", "bs_conn_admin")

    def _connection(self, provider):
        return self.env["billing_sync.connection"].with_user(self.admin).create(
            self.sandbox_values(provider))

    def _callback(self, query):
        return self.url_open(f"{CALLBACK}?{query}", allow_redirects=False)

    def test_the_form_shows_the_redirect_uri_to_register(self):
        for provider in ("xero", "qbo"):
            with self.subTest(provider=provider):
                connection = self._connection(provider)
                self.assertEqual(connection.redirect_uri,
                                 connection.get_base_url() + CALLBACK)
                # the very address the consent page is asked to send back to
                start = connection.with_user(self.admin).action_connect()
                self.assertEqual(parse_qs(start["url"].split("?", 1)[1])["redirect_uri"],
                                 [connection.redirect_uri])
                connection.active = False

    def test_xero_connect_one_tenant(self):
        connection = self._connection("xero")
        answer = self._callback(self.consent(connection))
        self.assertEqual(answer.status_code, 303, answer.text)
        self.assertIn(f"action_billing_sync_connection/{connection.id}",
                      answer.headers["Location"])
        connection.invalidate_recordset()
        self.assertEqual(connection.state, "connected")
        self.assertEqual(connection.org_id, self.xero.tenant_id)
        self.assertEqual(connection.org_name, self.xero.ledger().organisation["Name"])
        self.assertEqual(connection.connected_by_id, self.admin)
        self.assertTrue(connection.token_expires_at)

    def test_xero_choose_among_tenants(self):
        second = self.xero.add_tenant("Second Practice Ltd")
        connection = self._connection("xero")
        self._callback(self.consent(connection))
        connection.invalidate_recordset()
        self.assertEqual(connection.state, "choose_org")
        self.assertEqual(len(connection.candidate_org_ids), 2)
        connection.chosen_org_id = connection.candidate_org_ids.filtered(
            lambda o: o.org_id == second)
        connection.action_choose_org()
        self.assertEqual((connection.state, connection.org_id), ("connected", second))
        self.assertEqual(connection.org_name, "Second Practice Ltd")
        self.assertFalse(connection.candidate_org_ids)

    def test_qbo_connect_realm_from_callback(self):
        from ledger_sandbox.qbo.seed import DEFAULT_REALM_ID

        connection = self._connection("qbo")
        query = self.consent(connection)
        self.assertEqual(parse_qs(query)["realmId"], [DEFAULT_REALM_ID])
        answer = self._callback(query)
        self.assertEqual(answer.status_code, 303, answer.text)
        connection.invalidate_recordset()
        self.assertEqual((connection.state, connection.org_id), ("connected", DEFAULT_REALM_ID))
        self.assertTrue(connection.org_name)

    def test_forged_state_is_refused(self):
        connection = self._connection("xero")
        query = parse_qs(self.consent(connection))
        encoded, _signature = query["state"][0].split(".", 1)
        for state in (f"{encoded}.{'0' * 64}", "garbage", ""):
            with self.subTest(state=state):
                forged = urlencode({"code": query["code"][0], "state": state})
                answer = self._callback(forged)
                self.assertEqual(answer.status_code, 403)
                self.assertIn("cannot be accepted", answer.text)
        connection.invalidate_recordset()
        self.assertEqual(connection.state, "draft")

    def test_state_is_single_use_and_bound_to_its_user(self):
        connection = self._connection("xero")
        query = self.consent(connection)
        # another administrator cannot complete what this one started
        make_user(self.env, "bs_conn_admin2", f"{ADMIN},base.group_system")
        self.authenticate("bs_conn_admin2", "bs_conn_admin2")
        self.assertEqual(self._callback(query).status_code, 403)
        self.authenticate("bs_conn_admin", "bs_conn_admin")
        self.assertEqual(self._callback(query).status_code, 303)
        # replaying the very same answer is refused
        answer = self._callback(query)
        self.assertEqual(answer.status_code, 403)
        self.assertIn("already used", answer.text)

    def test_denied_consent(self):
        connection = self._connection("qbo")
        query = self.consent(connection, deny="1", approve="")
        self.assertEqual(parse_qs(query)["error"], ["access_denied"])
        answer = self._callback(query)
        self.assertEqual(answer.status_code, 303)
        connection.invalidate_recordset()
        self.assertEqual(connection.state, "draft")
        self.assertIn("access_denied", connection.last_error)
        self.assertIn("cancelled", connection.message_ids[0].body)

    def test_expired_code(self):
        connection = self._connection("xero")
        query = self.consent(connection)
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=6)
        self.xero.clock = lambda: later  # Xero's codes live five minutes
        try:
            answer = self._callback(query)
        finally:
            self.xero.clock = lambda: datetime.datetime.now(datetime.timezone.utc)
        self.assertEqual(answer.status_code, 400)
        self.assertIn("refused the authorisation code", answer.text)
        connection.invalidate_recordset()
        self.assertEqual(connection.state, "draft")
        self.assertIn("invalid_grant", connection.last_error)

    def test_plain_user_cannot_use_callback(self):
        connection = self._connection("xero")
        query = self.consent(connection)
        make_user(self.env, "bs_conn_user", "billing_sync.group_billing_sync_user")
        self.authenticate("bs_conn_user", "bs_conn_user")
        self.assertEqual(self._callback(query).status_code, 403)
        connection.invalidate_recordset()
        self.assertEqual(connection.state, "draft")

    def test_tokens_are_encrypted_at_rest(self):
        connection = self._connection("xero")
        self._callback(self.consent(connection))
        token = self.env["billing_sync.token"].sudo().search(
            [("connection_id", "=", connection.id)])
        self.env.cr.execute(
            "SELECT client_secret, access_token, refresh_token FROM billing_sync_token "
            "WHERE id = %s", [token.id])
        raw = self.env.cr.fetchone()
        plain_secret = self.sandbox_values("xero")["client_secret"]
        self.assertNotIn(plain_secret, raw[0])
        access = connection._access_token()
        self.assertNotIn(access, raw[1])
        for value in raw:
            self.assertTrue(value.startswith("gAAAA"), "Fernet ciphertext expected")

    def test_one_active_connection_per_company_and_provider(self):
        self._connection("xero")
        with self.assertRaises(Exception) as caught, self.env.cr.savepoint():
            self._connection("xero")
        self.assertIn("already has an active", str(caught.exception))
        # the database says the same, whatever the ORM is told
        with self.assertRaises(psycopg2.errors.UniqueViolation), self.env.cr.savepoint():
            self.env.cr.execute(
                "INSERT INTO billing_sync_connection (company_id, provider, state, active) "
                "VALUES (%s, 'xero', 'draft', true)", [self.env.company.id])
