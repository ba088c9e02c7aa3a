import logging

from odoo import http
from odoo.exceptions import AccessDenied, AccessError, UserError
from odoo.http import request

_logger = logging.getLogger(__name__)


class BillingSyncOAuthController(http.Controller):
    """Where the ledger sends the administrator back after the consent page.

    The ``state`` is checked before anything else (signature, user, expiry,
    single use); the code exchange and everything after it live in the
    connection model, so that they are tested without a browser too.
    """

    @http.route("/billing_sync/oauth/callback", type="http", auth="user", methods=["GET"],
                save_session=False)
    def oauth_callback(self, state=None, code=None, error=None, error_description=None,
                       **query):
        Connection = request.env["billing_sync.connection"]
        try:
            connection = Connection._from_state(state)
        except (AccessDenied, AccessError) as exc:
            _logger.warning("billing_sync: refused an OAuth callback: %s", exc)
            return self._page(request.env._("This authorisation cannot be accepted"), str(exc),
                              status=403)
        if error or not code:
            connection._oauth_denied(error or "no_code", error_description)
            return request.redirect(self._form_url(connection), local=True)
        try:
            # the rest of the query is the ledger's own (its adapter's callback_params)
            connection._oauth_complete(code, callback=query)
        except UserError as exc:
            # answered normally, so what was written (last_error, the message) is kept
            connection._note(str(exc))
            return self._page(request.env._("Connecting failed"), str(exc), status=400,
                              back=self._form_url(connection))
        return request.redirect(self._form_url(connection), local=True)

    @staticmethod
    def _form_url(connection):
        return f"/odoo/action-billing_sync.action_billing_sync_connection/{connection.id}"

    @staticmethod
    def _page(title, message, status, back=None):
        html = request.env["ir.qweb"]._render("billing_sync.oauth_result", {
            "title": title, "message": message,
            "back": back or "/odoo/action-billing_sync.action_billing_sync_connection",
        })
        return request.make_response(html, status=status,
                                     headers=[("Content-Type", "text/html; charset=utf-8")])
