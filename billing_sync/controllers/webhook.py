import contextlib
import logging

from odoo import SUPERUSER_ID, api, http
from odoo.exceptions import UserError
from odoo.http import request
from odoo.modules.registry import Registry

from ..services import webhooks
from ..services.ledger import PROVIDERS, adapter_class

_logger = logging.getLogger(__name__)

PROVIDER_KEYS = dict(PROVIDERS)


class BillingSyncWebhookController(http.Controller):
    """Where Xero and QuickBooks post their webhooks.

    In this order, and nothing else: the size, the database, the signature over the raw
    body (constant time, against every signing secret kept for the provider), then the
    JSON, then one inbox row per event, committed; the answer goes right after. Reading
    the changed objects and applying them is the inbound worker's, never the request's.

    ``auth="none"``: a webhook has no session, and the URL names the database, so a server
    with several databases serves it too (billing_sync must then be a server-wide module,
    see README); a database the server's dbfilter hides is not found. No cookie is set.
    """

    @http.route(["/billing_sync/webhook/<string:provider>",
                 "/billing_sync/webhook/<string:provider>/<string:db>"],
                type="http", auth="none", methods=["POST"], csrf=False, save_session=False,
                readonly=False)
    def webhook(self, provider, db=None, **_query):
        if provider not in PROVIDER_KEYS:
            return self._answer(404)
        length = request.httprequest.content_length
        if length is None:  # both providers say how long: a body is never read unbounded
            return self._answer(411)
        if length > webhooks.MAX_BODY:
            _logger.warning("billing_sync: refused a %s webhook of %s bytes from %s", provider,
                            length, self._sender())
            return self._answer(413)
        # werkzeug reads no more than Content-Length
        body = request.httprequest.get_data(cache=False)
        adapter = adapter_class(provider)
        try:
            with self._environment(db) as env:
                if env is None:
                    _logger.warning("billing_sync: a %s webhook for an unknown database from %s",
                                    provider, self._sender())
                    return self._answer(404)
                status = self._receive(env, adapter, provider, body)
        except UserError as exc:  # no encryption key in odoo.conf: nothing can be checked
            _logger.error("billing_sync: a %s webhook cannot be checked: %s", provider, exc)
            return self._answer(503)
        return self._answer(status)

    def _receive(self, env, adapter, provider, body):
        keys = env["billing_sync.connection"]._webhook_keys(provider)
        given = request.httprequest.headers.get(adapter.WEBHOOK_HEADER)
        matched = webhooks.matching_keys(body, given, keys)
        if not matched:
            _logger.warning("billing_sync: refused a %s webhook from %s: %s", provider,
                            self._sender(), "wrong signature" if given else "no signature")
            return 401
        try:
            events = adapter.parse_webhook(webhooks.load_json(body))
        except webhooks.MalformedDelivery as exc:
            _logger.warning("billing_sync: refused a signed %s webhook from %s: %s",
                            provider, self._sender(), exc)
            return 400
        if not events:
            return 200  # Xero's intent-to-receive check, or only objects Odoo does not read
        connections = env["billing_sync.connection"].sudo().browse().union(
            *(keys[key] for key in matched))
        kept, repeated, unknown = env["billing_sync.inbox"]._receive(connections, events)
        if unknown:
            _logger.warning("billing_sync: a %s webhook named %s event(s) of an organisation "
                            "no connection here is connected to (left out)", provider, unknown)
        if unknown == len(events):
            return 404
        _logger.info("billing_sync: %s webhook: %s change(s) kept, %s already received",
                     provider, kept, repeated)
        return 200

    @staticmethod
    @contextlib.contextmanager
    def _environment(db):
        """A superuser environment of the database the URL names (None: this server does
        not serve it, its dbfilter hides it, or billing_sync is not installed there).
        The request's own database: its transaction, which Odoo commits before the answer
        goes. Another (a server of several databases): a cursor of its own, committed on
        leaving."""
        if request.db and db in (None, request.db):
            env = request.env(su=True)
            yield env if "billing_sync.inbox" in env else None
            return
        if not db or db not in http.db_list(force=True, host=request.httprequest.host):
            yield None
            return
        try:
            registry = Registry(db)
        except Exception:  # noqa: BLE001 - a database that cannot load: not served here
            registry = None
        if registry is None or "billing_sync.inbox" not in registry:
            yield None
            return
        with registry.cursor() as cr:
            yield api.Environment(cr, SUPERUSER_ID, {})

    @staticmethod
    def _sender():
        return request.httprequest.remote_addr

    @staticmethod
    def _answer(status):
        # an empty body: Xero's intent-to-receive check wants nothing else
        return request.make_response(b"", status=status,
                                     headers=[("Content-Type", "text/plain")])
