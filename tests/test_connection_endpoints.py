"""Endpoints: a connection sends its credentials only to the providers' production hosts
and to the hosts odoo.conf allows; re-pointing a connected one disconnects it first.

The attacker is a Billing Sync Administrator with a server of their own (here a loopback
HTTP server on a port odoo.conf does not list) who wants the client secret, the refresh
token or the bearer token.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from odoo import tools
from odoo.exceptions import UserError, ValidationError
from odoo.tests import TransactionCase, tagged

from odoo.addons.billing_sync.services.endpoints import CONFIG_KEY

from .common import ADMIN, LedgerSandboxMixin, make_user

PROVIDERS = ("xero", "qbo")
DISCOVERY_PATH = {"xero": "/.well-known/openid-configuration",
                  "qbo": "/.well-known/openid_configuration/"}


class Recorder:
    """A loopback HTTP server that records every request it receives and answers 200.

    With ``token_host`` it serves an OpenID discovery document whose authorize and
    userinfo endpoints are its own and whose token and revocation endpoints are on
    ``token_host``: a document from an allowed host sending the secrets elsewhere."""

    def __init__(self, token_host=None):
        self.requests = []
        self.token_host = token_host
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append((self.command, self.path, dict(self.headers), body))
                payload = recorder.payload(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def payload(self, path):
        if self.token_host and "well-known" in path:
            return json.dumps({
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.token_host}/token",
                "revocation_endpoint": f"{self.token_host}/revoke",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks",
            }).encode()
        return b"{}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@tagged("post_install", "-at_install")
class TestConnectionEndpoints(LedgerSandboxMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_sandboxes(test_mode=True)
        cls.admin = make_user(cls.env, "bs_ep_admin", ADMIN)
        # the attacker's server: on loopback, on a port odoo.conf does not list
        cls.capture = Recorder()
        cls.addClassCleanup(cls.capture.stop)
        # a listed host whose discovery document sends the token requests to the capture
        cls.rogue = Recorder(token_host=cls.capture.url)
        cls.addClassCleanup(cls.rogue.stop)

    def setUp(self):
        super().setUp()
        self.xero.reset()
        self.qbo.reset()
        self.capture.requests.clear()
        self.rogue.requests.clear()
        # odoo.conf lists exactly the sandboxes (and the rogue discovery server)
        before = tools.config.get(CONFIG_KEY)
        tools.config[CONFIG_KEY] = ", ".join(
            f"127.0.0.1:{port}" for port in (self.xero_server.port, self.qbo_server.port,
                                             self.rogue.port))
        self.addCleanup(tools.config.__setitem__, CONFIG_KEY, before)
        self.Connection = self.env["billing_sync.connection"].with_user(self.admin)

    # ------------------------------------------------------------------ helpers
    def _connected(self, provider):
        return self.connect(self.Connection.create(self.sandbox_values(provider)))

    def _secrets(self, connection):
        """Every secret value of ``connection``, in plain text."""
        token = connection._token_sudo()
        token.invalidate_recordset()
        cipher = connection._cipher()
        return [value for value in (cipher.decrypt(token.refresh_token),
                                    cipher.decrypt(token.access_token),
                                    cipher.decrypt(token.client_secret)) if value]

    def _assert_nothing_reached_the_capture(self, secrets=()):
        self.assertEqual(self.capture.requests, [], "nothing reaches the attacker's server")
        for method, path, headers, body in self.rogue.requests:
            self.assertEqual(method, "GET", path)  # the discovery document, nothing else
            self.assertNotIn("Authorization", headers)
            for secret in secrets:
                self.assertNotIn(secret, path + body.decode() + json.dumps(headers))

    def _tamper(self, connection, **urls):
        """Write the connection's URLs behind the ORM's back, as SQL would."""
        for fname, url in urls.items():
            self.env.cr.execute(
                f"UPDATE billing_sync_connection SET {fname} = %s WHERE id = %s",  # noqa: S608
                [url, connection.id])
        connection.invalidate_recordset()

    def _revocations(self, provider):
        label = ("POST /connect/revocation" if provider == "xero"
                 else "POST /v2/oauth2/tokens/revoke")
        counters = getattr(self, provider).counters.snapshot()["by_endpoint"]
        return counters.get(label, {})

    def _end_of_request(self):
        """What a commit does for mail: write the tracking of the changes so far (a record
        created in the same transaction as a change is not tracked, it is new)."""
        self.env.flush_all()
        self.env.cr.precommit.run()

    def _tracked(self, connection, fname):
        self._end_of_request()
        return self.env["mail.tracking.value"].sudo().search([
            ("mail_message_id.model", "=", "billing_sync.connection"),
            ("mail_message_id.res_id", "=", connection.id),
            ("field_id.name", "=", fname)])

    # ------------------------------------------------------------------ tests
    def test_administrator_cannot_point_a_connection_at_their_server(self):
        attacks = [self.capture.url, self.capture.url + DISCOVERY_PATH["xero"],
                   "https://evil.example", "http://127.0.0.1.evil.example/",
                   f"http://127.0.0.1:{self.xero_server.port}@evil.example/",
                   f"HTTP://LOCALHOST:{self.xero_server.port}", "javascript:alert(1)"]
        for provider in PROVIDERS:
            connection = self._connected(provider)
            secrets = self._secrets(connection)
            before = {f: connection[f] for f in ("oauth_url", "api_url")}
            for fname in ("oauth_url", "api_url"):
                for url in attacks:
                    with self.subTest(provider=provider, field=fname, url=url):
                        with self.assertRaises(ValidationError) as caught:
                            connection.write({fname: url})
                        message = str(caught.exception)
                        self.assertIn("is refused", message)
                        if "@" not in url and ":alert" not in url:
                            # a host this server could allow: say how (a malformed URL
                            # says what is wrong with it instead)
                            self.assertIn("billing_sync_allowed_endpoints", message)
                        for secret in secrets:
                            self.assertNotIn(secret, message)
            # refused before anything happened: still connected, at the same place,
            # and the grant was not revoked
            connection.invalidate_recordset()
            self.assertEqual(connection.state, "connected")
            self.assertEqual({f: connection[f] for f in before}, before)
            self.assertEqual(self._revocations(provider), {})
            # nor through a new connection or a change of provider's defaults
            connection.action_disconnect()
            with self.assertRaises(ValidationError):
                self.Connection.create({**self.sandbox_values(provider),
                                        "api_url": self.capture.url, "active": False})
        self._assert_nothing_reached_the_capture()

    def test_url_written_by_sql_is_refused_before_anything_is_sent(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self._connected(provider)
                secrets = self._secrets(connection)
                sandbox_calls = getattr(self, provider).counters.snapshot()["total"]
                self._tamper(connection, api_url=self.capture.url,
                             oauth_url=self.capture.url + DISCOVERY_PATH[provider])
                calls = {
                    "refresh": lambda c=connection: c._refresh_tokens(force=True),
                    "test connection": connection.action_test_connection,
                    "import reference data": connection.action_import_reference_data,
                    "connect": connection.action_connect,
                }
                for name, call in calls.items():
                    with self.subTest(call=name):
                        with self.assertRaises(UserError) as caught:
                            call()
                        self.assertIn("is refused", str(caught.exception))
                        self.assertIn("billing_sync_allowed_endpoints", str(caught.exception))
                # push: the worker keeps the job, with the reason, and sends nothing
                partner = self.env["res.partner"].create({"name": f"Client {provider}",
                                                          "is_company": True})
                Job = self.env["billing_sync.job"].sudo()
                Job._enqueue(partner, "contact")
                Job._cron_push()
                # (the other provider's connection, disconnected above, holds its own job)
                job = Job.search([("res_model", "=", "res.partner"),
                                  ("res_id", "=", partner.id),
                                  ("connection_id", "=", connection.id)])
                self.assertEqual(job.state, "pending")
                self.assertIn("is refused", job.last_error)
                # disconnect: the tokens are erased here; the refused address is not told
                connection.action_disconnect()
                self.assertEqual(connection.state, "disconnected")
                token = connection._token_sudo()
                self.assertFalse(token.access_token or token.refresh_token)
                self.assertTrue(connection.message_ids.filtered(
                    lambda m: "could not be told" in str(m.body)))
                self.assertEqual(self._revocations(provider), {})
                self.assertEqual(getattr(self, provider).counters.snapshot()["total"],
                                 sandbox_calls, "nor anywhere else")
                self._assert_nothing_reached_the_capture(secrets)

    def test_refused_only_by_a_configuration_changed_since(self):
        connection = self._connected("xero")
        # the server's administrator no longer lists the sandbox
        tools.config[CONFIG_KEY] = f"127.0.0.1:{self.qbo_server.port}"
        before = self.xero.counters.snapshot()["total"]
        with self.assertRaises(UserError) as caught:
            connection._refresh_tokens(force=True)
        self.assertIn(f"127.0.0.1:{self.xero_server.port}", str(caught.exception))
        self.assertEqual(self.xero.counters.snapshot()["total"], before)

    def test_discovery_document_naming_a_token_endpoint_off_the_list_is_refused(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self._connected(provider)
                secrets = self._secrets(connection)
                # the document's own host is listed; its token endpoint is not
                self._tamper(connection, oauth_url=self.rogue.url + DISCOVERY_PATH[provider])
                for name, call in (("refresh", lambda c=connection: c._refresh_tokens(
                        force=True)), ("connect", connection.action_connect)):
                    with self.subTest(call=name):
                        with self.assertRaises(UserError) as caught:
                            call()
                        self.assertIn("token endpoint", str(caught.exception))
                        self.assertIn(self.capture.url, str(caught.exception))
                        self.assertIn("billing_sync_allowed_endpoints", str(caught.exception))
                connection.action_disconnect()
                self.assertEqual(connection.state, "disconnected")
                self.assertTrue(self.rogue.requests, "the document itself was read")
                self._assert_nothing_reached_the_capture(secrets)

    def test_repointing_a_connected_connection_revokes_at_the_old_ledger_first(self):
        for provider in PROVIDERS:
            with self.subTest(provider=provider):
                connection = self._connected(provider)
                self._end_of_request()
                old_api = connection.api_url
                cipher = connection._cipher()
                refresh = cipher.decrypt(connection._token_sudo().refresh_token)
                # an allowed address, but another one: the grant must not follow it
                connection.write({"api_url": self.rogue.url})
                self.assertEqual(connection.api_url, self.rogue.url)
                self.assertEqual(connection.state, "disconnected")
                token = connection._token_sudo()
                self.assertFalse(token.access_token or token.refresh_token)
                # revoked where it was given, and nothing went to the new address
                self.assertEqual(self._revocations(provider), {"200": 1})
                if provider == "xero":
                    self.assertTrue(self.xero.identity.refresh[refresh]["revoked"])
                else:
                    self.assertTrue(self.qbo.oauth.refresh_tokens[refresh]["used"])
                self.assertEqual(self.rogue.requests, [])
                self.assertTrue(connection.message_ids.filtered(
                    lambda m: "disconnected first" in str(m.body)))
                [tracked] = self._tracked(connection, "api_url")
                self.assertEqual((tracked.old_value_char, tracked.new_value_char),
                                 (old_api, self.rogue.url))
                self.assertEqual(tracked.mail_message_id.author_id, self.admin.partner_id)
                connection.write({"active": False})
        self._assert_nothing_reached_the_capture()

    def test_changing_the_oauth_url_or_client_id_disconnects_too(self):
        for provider, changes in (("xero", {"client_id": "another-app"}),
                                  ("qbo", {"oauth_url": self.rogue.url + "/.well-known/x"})):
            with self.subTest(provider=provider):
                connection = self._connected(provider)
                self._end_of_request()
                # the same values again change nothing
                connection.write({"oauth_url": connection.oauth_url,
                                  "client_id": connection.client_id})
                self.assertEqual(connection.state, "connected")
                connection.write(changes)
                self.assertEqual(connection.state, "disconnected")
                self.assertEqual(self._revocations(provider), {"200": 1})
                fname = next(iter(changes))
                self.assertEqual(len(self._tracked(connection, fname)), 1)
        self._assert_nothing_reached_the_capture()

    def test_production_needs_no_configuration_and_defaults_follow_the_provider(self):
        tools.config[CONFIG_KEY] = ""
        connection = self.Connection.create({"provider": "xero", "client_id": "x",
                                             "client_secret": "y", "active": False})
        self.assertEqual(connection.oauth_url,
                         "https://identity.xero.com/.well-known/openid-configuration")
        self.assertEqual(connection.api_url, "https://api.xero.com")
        connection.provider = "qbo"
        self.assertEqual(connection.api_url, "https://quickbooks.api.intuit.com")
        self.assertTrue(connection._adapter())
        # a sandbox URL the server does not allow (any more) is not kept by the compute
        self._tamper(connection, api_url=f"http://127.0.0.1:{self.qbo_server.port}")
        connection.provider = "xero"
        self.assertEqual(connection.api_url, "https://api.xero.com")
