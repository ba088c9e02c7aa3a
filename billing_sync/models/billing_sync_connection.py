import base64
import datetime
import hashlib
import logging
import secrets
import time

import psycopg2

from odoo import api, fields, models, tools
from odoo.exceptions import AccessDenied, AccessError, UserError, ValidationError
from odoo.tools import consteq
from odoo.tools.misc import hmac as odoo_hmac

from ..services import endpoints
from ..services.crypto import CONFIG_KEY, CipherError, TokenCipher
from ..services.ledger import PRODUCTION_URLS, PROVIDERS, adapter_class
from ..services.ledger.base import Organisation
from ..services.ledger.errors import (
    AuthorizationRevoked,
    ClientCredentialsRejected,
    LedgerError,
    cap,
)

_logger = logging.getLogger(__name__)

ADMIN_GROUP = "billing_sync.group_billing_sync_admin"
CALLBACK_PATH = "/billing_sync/oauth/callback"
WEBHOOK_PATH = "/billing_sync/webhook"
# the longest a connection may gather announced changes before reading them
MAX_GATHER_SECONDS = 300
# write-only secrets, encrypted in billing_sync.token (each with a has_<name> flag)
SECRET_FIELDS = ("client_secret", "webhook_key")
STATE_SCOPE = "billing_sync.oauth_state"
STATE_LIFETIME = 15 * 60
# Refresh this long before the access token expires, so that a call started
# just before expiry does not fail half way.
REFRESH_MARGIN = datetime.timedelta(minutes=2)
# where the connection sends its client secret and tokens (services/endpoints.py)
ENDPOINT_FIELDS = ("oauth_url", "api_url")
# a change of any of these moves the grant elsewhere: a connection holding one is
# disconnected first (revoked where it was given)
MOVING_FIELDS = (*ENDPOINT_FIELDS, "client_id", "provider")
# what the ledger's answers decide (Connect, the organisation chosen, a refused renewal):
# written by the connection's own flows, as the engine, never by a person's write
ENGINE_FIELDS = {"state", "org_id", "org_name", "connected_by_id", "connected_at",
                 "candidate_org_ids", "reference_imported_at"}


# a connection's states (the dashboard shows them too)
STATES = [("draft", "Not connected"), ("choose_org", "Choose organisation"),
          ("connected", "Connected"), ("needs_reconnect", "Needs reconnect"),
          ("disconnected", "Disconnected")]

class BillingSyncConnection(models.Model):
    _name = "billing_sync.connection"
    _description = "Ledger connection"
    # the journal and account for what the ledger sends must be the connection's company's
    _check_company_auto = True
    # the connections changes are queued for: connected, or waiting for a person (to
    # reconnect, to pick its organisation again, or disconnected by one after it had an
    # organisation), so that nothing made meanwhile is lost: the worker claims the jobs
    # of connected connections only, and connecting again releases them
    _SYNCING_DOMAIN = ["|", ("state", "in", ("connected", "needs_reconnect")),
                       "&", ("state", "in", ("choose_org", "disconnected")),
                       ("org_id", "!=", False)]
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "company_id, provider, id"

    name = fields.Char(compute="_compute_name", store=True)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    provider = fields.Selection(PROVIDERS, required=True, tracking=True)
    state = fields.Selection(
        STATES,
        default="draft", required=True, readonly=True, copy=False, tracking=True,
    )
    client_id = fields.Char(
        string="Client ID", copy=False, tracking=True,
        help="The client id of your app in the provider's developer portal.",
    )
    client_secret = fields.Char(
        compute="_compute_secrets", inverse="_inverse_client_secret", copy=False,
        help="Stored encrypted; never shown again once saved.",
    )
    has_client_secret = fields.Boolean(compute="_compute_secrets")
    oauth_url = fields.Char(
        string="OAuth discovery URL", compute="_compute_urls", store=True, readonly=False,
        tracking=True,
        help="The provider's OpenID discovery document. Leave the default for the real ledger; "
             "another address (the ledger sandbox) must be allowed in the server's odoo.conf "
             "(billing_sync_allowed_endpoints).",
    )
    api_url = fields.Char(
        string="API base URL", compute="_compute_urls", store=True, readonly=False,
        tracking=True,
        help="Where the ledger's API answers. Leave the default for the real ledger; another "
             "address must be allowed in the server's odoo.conf "
             "(billing_sync_allowed_endpoints).",
    )
    org_id = fields.Char(
        string="Organisation ID", readonly=True, copy=False, index=True,
        help="Xero tenant id or QuickBooks realm id.",
    )
    org_name = fields.Char(string="Organisation", readonly=True, copy=False, tracking=True)
    candidate_org_ids = fields.One2many("billing_sync.connection.org", "connection_id")
    chosen_org_id = fields.Many2one(
        "billing_sync.connection.org", string="Organisation to connect",
        domain="[('connection_id', '=', id)]", copy=False,
    )
    connected_by_id = fields.Many2one("res.users", readonly=True, copy=False)
    connected_at = fields.Datetime(readonly=True, copy=False)
    token_expires_at = fields.Datetime(compute="_compute_token_info")
    token_refreshed_at = fields.Datetime(compute="_compute_token_info")
    last_error = fields.Text(readonly=True, copy=False)
    last_test = fields.Char(string="Last test", readonly=True, copy=False)
    reference_ids = fields.One2many("billing_sync.ledger.ref", "connection_id")
    reference_count = fields.Integer(compute="_compute_counts")
    mapping_ids = fields.One2many("billing_sync.mapping", "connection_id")
    mapping_count = fields.Integer(compute="_compute_counts")
    reference_imported_at = fields.Datetime(readonly=True, copy=False)
    default_account_id = fields.Many2one(
        "billing_sync.ledger.ref", string="Default revenue account",
        domain="[('connection_id', '=', id), ('kind', '=', 'revenue_account')]",
        help="Used for a product with neither its own nor its category's mapping.",
    )
    default_item_id = fields.Many2one(
        "billing_sync.ledger.ref", string="Default item",
        domain="[('connection_id', '=', id), ('kind', '=', 'item')]",
    )
    default_term_id = fields.Many2one(
        "billing_sync.ledger.ref", string="Default payment terms",
        domain="[('connection_id', '=', id), ('kind', '=', 'term')]",
    )
    rounding_account_id = fields.Many2one(
        "billing_sync.ledger.ref", string="Rounding account",
        domain="[('connection_id', '=', id), ('kind', '=', 'revenue_account')]",
        help="Books the cent a ledger's own arithmetic cannot reproduce (e.g. Xero on a "
             "tax-included invoice rounded globally in Odoo) as a rounding line, so the "
             "ledger's total equals Odoo's. Without it such a document waits for a person.",
    )
    # Deliberately no default tax: a wrong tax code is a wrong return.
    rate_window_seconds = fields.Float(
        string="Rate-limit minute (seconds)", default=60.0,
        help="Length of the ledger's rate-limit minute. 60 for a real ledger; the ledger "
             "sandbox can compress it for benchmarks.")
    link_count = fields.Integer(compute="_compute_sync_counts")
    job_count = fields.Integer(compute="_compute_sync_counts")
    # Webhooks (issue 18): where the ledger sends them and the secret that signs them, kept
    # like the client secret (encrypted in the credentials row, never shown again); the
    # URL names the database, so a server of several serves it too (README)
    webhook_key = fields.Char(
        string="Webhook signing secret", compute="_compute_secrets",
        inverse="_inverse_webhook_key", copy=False,
        help="Xero: the webhook key of your app's webhook; QuickBooks: the verifier token of "
             "your app's webhooks. Stored encrypted; never shown again once saved.")
    has_webhook_key = fields.Boolean(string="Webhook secret saved",
                                     compute="_compute_secrets")
    redirect_uri = fields.Char(
        string="Redirect URI", compute="_compute_redirect_uri",
        help="Register this address as the redirect URI of your app in the provider's "
             "developer portal: the ledger sends the administrator back to it after consent.")
    webhook_url = fields.Char(
        string="Webhook URL", compute="_compute_webhook_url",
        help="Paste this address in your app's webhook settings in the provider's developer "
             "portal.")

    pull_cursor = fields.Char(
        string="Pulled up to", readonly=True, copy=False,
        help="The ledger's time of the latest change the periodic pull brought (the next "
             "pull asks for what changed since); kept with what it brought.")
    pulled_at = fields.Datetime(string="Last pull", readonly=True, copy=False)
    pull_documents_cursor = fields.Char(
        string="Payments pulled up to", readonly=True, copy=False,
        help="As 'Pulled up to', for the ledger's payments and invoices.")
    ledger_other_account_id = fields.Many2one(
        "account.account", string="Account for other ledger lines", copy=False,
        check_company=True,
        help="Where a line of a credit note made in the ledger is booked in Odoo when its "
             "ledger account or item is none Odoo sends to (a bad-debt write-off, for "
             "one). Without it, such a credit note waits in the inbox with a message.")
    inbound_gather_seconds = fields.Integer(
        string="Gather ledger changes (seconds)", default=0,
        help="How long a change the ledger announces waits before Odoo reads it, so that "
             "the changes that follow are read in the same request. 0 reads at once (Odoo "
             "is freshest). More spends fewer of the ledger's API calls: Xero allows 60 a "
             "minute and 5,000 a day per organisation and prices the data read; a busy "
             "organisation stays inside them with 5 to 30 seconds. At most 300.")
    ledger_payment_journal_id = fields.Many2one(
        "account.journal", string="Journal for ledger payments", copy=False,
        check_company=True, domain="[('type', 'in', ('bank', 'cash'))]",
        help="Where a payment recorded in the ledger is booked in Odoo when the ledger "
             "account it was paid into is mapped to no payment journal (QuickBooks' "
             "Undeposited Funds, for one). Without it, such a payment waits in the inbox "
             "with a message until a journal is mapped or set here.")


    # ------------------------------------------------------------------ compute
    @api.depends("provider", "company_id.name", "org_name")
    def _compute_name(self):
        labels = dict(PROVIDERS)
        for rec in self:
            label = labels.get(rec.provider, "")
            rec.name = f"{label} – {rec.org_name or rec.company_id.name or ''}".strip(" –")

    @api.depends("provider")
    def _compute_urls(self):
        # The provider's production endpoints, unless the URL already there is one this
        # server allows for the provider (the sandbox): never a way around the check.
        try:
            allowed = self._allowed_endpoints()
        except UserError:
            allowed = frozenset()
        for rec in self:
            urls = PRODUCTION_URLS.get(rec.provider, {})
            for fname in ENDPOINT_FIELDS:
                url = rec[fname]
                if not url or url in _all_production(fname) or not endpoints.is_allowed(
                        url, rec.provider, allowed):
                    rec[fname] = urls.get(fname)

    def _compute_secrets(self):
        """Secrets are never read back: empty, and whether one is kept."""
        tokens = self._token_map()
        for rec in self:
            token = tokens.get(rec.id)
            for fname in SECRET_FIELDS:
                rec[fname] = False
                rec[f"has_{fname}"] = bool(token and token[fname])

    def _store_secret(self, fname):
        for rec in self:
            if rec[fname]:
                rec._token_sudo()[fname] = self._cipher().encrypt(rec[fname].strip())

    def _inverse_client_secret(self):
        self._store_secret("client_secret")

    def _inverse_webhook_key(self):
        self._store_secret("webhook_key")

    def _compute_redirect_uri(self):
        for rec in self:
            rec.redirect_uri = rec._redirect_uri()

    @api.depends("provider")
    def _compute_webhook_url(self):
        base = self.env["ir.config_parameter"].sudo().get_param("web.base.url") or ""
        for rec in self:
            rec.webhook_url = (f"{base.rstrip('/')}{WEBHOOK_PATH}/{rec.provider}/"
                               f"{self.env.cr.dbname}") if rec.provider else False

    @api.model
    def _webhook_keys(self, provider):
        """{signing secret: the active connections of ``provider`` that hold it}, for the
        webhook endpoint (as superuser: the controller runs before any login)."""
        connections = self.sudo().with_context(active_test=True).search(
            [("provider", "=", provider)])
        tokens = connections._token_map()
        cipher = self._cipher() if tokens else None
        keys = {}
        for connection in connections:
            token = tokens.get(connection.id)
            if token and token.webhook_key:
                key = cipher.decrypt(token.webhook_key)
                keys[key] = keys.get(key, self.sudo().browse()) | connection
        return keys

    def _compute_token_info(self):
        tokens = self._token_map()
        for rec in self:
            token = tokens.get(rec.id)
            rec.token_expires_at = token.expires_at if token else False
            rec.token_refreshed_at = token.refreshed_at if token else False

    def _compute_sync_counts(self):
        for rec in self:
            rec.link_count = self.env["billing_sync.link"].search_count(
                [("connection_id", "=", rec.id)])
            rec.job_count = self.env["billing_sync.job"].search_count(
                [("connection_id", "=", rec.id), ("state", "not in", ("done", "cancelled"))])

    def _compute_counts(self):
        for rec in self:
            rec.reference_count = len(rec.reference_ids)
            rec.mapping_count = len(rec.mapping_ids)

    # ------------------------------------------------------------------ constraints
    def init(self):
        # At most one active connection per company and ledger provider; a
        # partial index (Odoo 18's _sql_constraints cannot express WHERE).
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_connection_company_provider_uniq "
            "ON billing_sync_connection (company_id, provider) WHERE active"
        )

    @api.model_create_multi
    def create(self, vals_list):
        # nothing about a company's ledgers is told to whoever may not create one there
        self.check_access("create")
        for vals in vals_list:
            if not self.env.su and ENGINE_FIELDS & set(vals):
                raise AccessError(self.env._(
                    "%s is set by connecting to the ledger, not by hand.",
                    ", ".join(sorted(ENGINE_FIELDS & set(vals)))))
            company = self.env["res.company"].browse(
                vals.get("company_id") or self.env.company.id)
            if not self.env.su and company not in self.env.companies:
                raise AccessError(self.env._(
                    "You may only connect ledgers of your own companies."))
            # say it in words before the database index says it in SQL
            if vals.get("active", True):
                self._raise_if_active_exists(company, vals.get("provider"))
        return super().create(vals_list)

    @api.constrains("company_id", "provider", "active")
    def _check_one_active_per_company(self):
        for rec in self.filtered("active"):
            rec._raise_if_active_exists(rec.company_id, rec.provider, exclude=rec)

    @api.model
    def _raise_if_active_exists(self, company, provider, exclude=None):
        domain = [("company_id", "=", company.id), ("provider", "=", provider)]
        if exclude:
            domain.append(("id", "!=", exclude.id))
        if provider and self.sudo().search_count(domain):
            raise ValidationError(self.env._(
                "%(company)s already has an active %(provider)s connection: reconnect or "
                "archive it rather than adding another.",
                company=company.name, provider=dict(PROVIDERS)[provider]))

    @api.constrains("inbound_gather_seconds")
    def _check_inbound_gather(self):
        for rec in self:
            if not 0 <= rec.inbound_gather_seconds <= MAX_GATHER_SECONDS:
                raise ValidationError(self.env._(
                    "Gather ledger changes: between 0 and %(most)s seconds (0 reads each "
                    "change at once).", most=MAX_GATHER_SECONDS))

    @api.constrains("default_account_id", "default_item_id", "default_term_id",
                    "rounding_account_id")
    def _check_defaults_are_own(self):
        # a code from another connection (another company's ledger) is no code here
        for rec in self:
            for fname in ("default_account_id", "default_item_id", "default_term_id",
                          "rounding_account_id"):
                if rec[fname] and rec[fname].connection_id != rec:
                    raise ValidationError(self.env._(
                        "%(ref)s is not from %(conn)s's own reference data.",
                        ref=rec[fname].display_name, conn=rec.display_name))

    @api.constrains("oauth_url", "api_url", "provider")
    def _check_urls(self):
        for rec in self:
            for fname in ENDPOINT_FIELDS:
                if rec[fname]:
                    problem = rec._endpoint_problem(fname, rec[fname], rec.provider)
                    if problem:
                        raise ValidationError(problem)

    @api.model
    def _allowed_endpoints(self):
        """The non-production endpoints this server allows: odoo.conf's
        billing_sync_allowed_endpoints, never the database (services/endpoints.py)."""
        try:
            return endpoints.parse_allowed(tools.config.get(endpoints.CONFIG_KEY))
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def _endpoint_problem(self, fname, url, provider):
        """Why ``url`` may not be the connection's ``fname`` for ``provider``; None if it may."""
        what = self.env._("The %s", self._fields[fname]._description_string(self.env))
        try:
            endpoints.check_url(url, provider, self._allowed_endpoints(), what)
        except endpoints.EndpointRefused as exc:
            return str(exc)
        return None

    def write(self, vals):
        if not self.env.su and ENGINE_FIELDS & set(vals):
            raise AccessError(self.env._(
                "%s is set by connecting to the ledger, not by hand: use Connect, Use this "
                "organisation or Disconnect.", ", ".join(sorted(ENGINE_FIELDS & set(vals)))))
        if "company_id" in vals:
            self._check_company_move(vals["company_id"])
        moving = [fname for fname in MOVING_FIELDS if fname in vals]
        if moving:
            # refused before anything happens: the old grant is revoked only for a move
            # that will take place
            for rec in self:
                provider = vals.get("provider", rec.provider)
                for fname in ENDPOINT_FIELDS:
                    problem = vals.get(fname) and rec._endpoint_problem(
                        fname, vals[fname], provider)
                    if problem:
                        raise ValidationError(problem)
            for rec in self:
                changed = [f for f in moving if (rec[f] or False) != (vals[f] or False)]
                if changed and rec._holds_grant():
                    rec._disconnect_before_move(changed)
        return super().write(vals)

    def _check_company_move(self, company_id):
        """A connection stays with its company once it has anything of a ledger (a grant,
        codes, links, jobs): its organisation's data would otherwise serve another
        company. A fresh one moves only to a company the user works in."""
        if self.env.su:
            return
        for rec in self.filtered(lambda r: r.company_id.id != company_id):
            if rec._has_synced():
                raise AccessError(self.env._(
                    "%s has synced with its ledger and stays with its company: archive it "
                    "and connect the other company separately.", rec.display_name))
            if company_id not in self.env.companies.ids:
                raise AccessError(self.env._(
                    "You may only connect ledgers of your own companies."))

    @api.ondelete(at_uninstall=False)
    def _unlink_unless_synced(self):
        # its links and its jobs (an attempt whose outcome is unknown among them) go with
        # it: reconnecting later would create every document again
        for rec in self:
            if rec._has_synced():
                raise UserError(self.env._(
                    "%s has synced with its ledger: archive it instead of deleting it.",
                    rec.display_name))

    def _has_synced(self):
        """True once the connection holds anything of a ledger: a grant, an organisation,
        codes, links or jobs."""
        self.ensure_one()
        Job = self.env["billing_sync.job"].sudo()
        Link = self.env["billing_sync.link"].sudo().with_context(active_test=False)
        return bool(self._holds_grant() or self.org_id or self.with_context(
            active_test=False).reference_ids or Link.search_count(
            [("connection_id", "=", self.id)]) or Job.search_count(
            [("connection_id", "=", self.id)]))

    def _holds_grant(self):
        self.ensure_one()
        token = self._token_map().get(self.id)
        return self.state in ("connected", "choose_org", "needs_reconnect") or bool(
            token and (token.refresh_token or token.access_token))

    def _disconnect_before_move(self, fnames):
        """Revoke the grant where it was given and erase the tokens, before ``fnames``
        (endpoints, client id, provider) change: a token or secret of this connection
        is never sent to the new address, nor kept for it."""
        self.ensure_one()
        labels = ", ".join(self._fields[f]._description_string(self.env) for f in fnames)
        self._note(body=self.env._(
            "%(fields)s changed: the connection is disconnected first, so that no token or "
            "secret of this connection reaches the new address. Click Connect to authorise "
            "again.", fields=labels))
        self.action_disconnect()

    # ------------------------------------------------------------------ credentials
    @api.model
    def _cipher(self):
        try:
            return TokenCipher(tools.config.get(CONFIG_KEY))
        except CipherError as exc:
            raise UserError(str(exc)) from exc

    def _token_map(self):
        if not self.ids:
            return {}
        tokens = self.env["billing_sync.token"].sudo().search(
            [("connection_id", "in", self.ids)])
        return {t.connection_id.id: t for t in tokens}

    def _token_sudo(self):
        """The credentials row of this connection (created on first use), as superuser."""
        self.ensure_one()
        Token = self.env["billing_sync.token"].sudo()
        token = Token.search([("connection_id", "=", self.id)], limit=1)
        return token or Token.create({"connection_id": self.id})

    def _adapter_class(self):
        self.ensure_one()
        return adapter_class(self.provider)

    def _adapter(self):
        self.ensure_one()
        # The adapter checks both URLs against odoo.conf's allow-list when it is built, so
        # on every use, not only when written: a URL put in the database by SQL, or allowed
        # by a configuration since changed, is refused before anything is sent.
        allowed = self._allowed_endpoints()
        secret = self._cipher().decrypt(self._token_sudo().client_secret)
        try:
            return self._adapter_class()(self.client_id, secret, self.oauth_url, self.api_url,
                                         allowed_endpoints=allowed)
        except LedgerError as exc:
            raise UserError(str(exc)) from exc

    def _store_tokens(self, tokens, env=None):
        """Write a TokenSet, encrypted, through ``env`` (default: this transaction)."""
        env = env or self.env
        cipher = self._cipher()
        token = self.with_env(env)._token_sudo()
        token.write({
            "access_token": cipher.encrypt(tokens.access_token),
            "refresh_token": cipher.encrypt(tokens.refresh_token) or token.refresh_token,
            "expires_at": tokens.expires_at,
            "refresh_expires_at": tokens.refresh_expires_at,
            "refreshed_at": fields.Datetime.now(),
        })

    def _access_token(self):
        """A valid access token (plaintext, in memory only), refreshed when close to expiry."""
        self.ensure_one()
        # not while choosing an organisation: the grant may reach another one than the
        # connection's links and codes belong to
        if self.state != "connected":
            raise UserError(self.env._("%s is not connected: use Connect first.",
                                       self.display_name))
        token = self._token_sudo()
        if token.access_token and token.expires_at and \
                token.expires_at > fields.Datetime.now() + REFRESH_MARGIN:
            return self._cipher().decrypt(token.access_token)
        return self._refresh_tokens()

    def _refresh_tokens(self, force=False):
        """Refresh once, whoever else tries at the same time, and commit the new tokens at once.

        Both providers rotate the refresh token: the one we send dies when the
        answer arrives. The new one is therefore saved and committed in its own
        transaction before anything else happens, and the credentials row stays
        locked meanwhile so that a second worker waits, then finds the fresh
        token instead of spending the dead one.
        """
        self.ensure_one()
        # what this transaction wrote must reach the database before another
        # cursor looks (in tests both share one transaction)
        self.env.flush_all()
        for attempt in range(3):
            try:
                with self.pool.cursor() as cr:
                    access_token, refused = self._refresh_tokens_in(cr, force)
                # committed, the "needs reconnect" state included: now say it
                self.env["billing_sync.token"].invalidate_model()
                self.invalidate_recordset()
                if refused:
                    raise UserError(refused)
                return access_token
            except psycopg2.errors.SerializationFailure:
                # another worker refreshed and committed while we waited for the
                # lock: start over with a snapshot that sees its token
                if attempt == 2:
                    raise
                time.sleep(0.1 * (attempt + 1))
        return None

    def _refresh_tokens_in(self, cr, force):
        env = self.env(cr=cr, su=True)
        connection = self.with_env(env)
        token = connection._token_sudo()
        # never wait forever: a transaction that wrote the row and then asks for
        # a token would otherwise wait on itself
        cr.execute("SET LOCAL lock_timeout = '30s'")
        try:
            cr.execute("SELECT 1 FROM billing_sync_token WHERE id = %s FOR NO KEY UPDATE",
                       [token.id])
        except psycopg2.errors.LockNotAvailable as exc:
            raise UserError(self.env._("The credentials of %s are busy; try again in a moment.",
                              self.display_name)) from exc
        token.invalidate_recordset()
        cipher = self._cipher()
        if not force and token.access_token and token.expires_at and \
                token.expires_at > fields.Datetime.now() + REFRESH_MARGIN:
            return cipher.decrypt(token.access_token), None
        refresh_token = cipher.decrypt(token.refresh_token)
        refused = None
        if not refresh_token:
            refused = self.env._("There is no refresh token to renew access with.")
        else:
            try:
                tokens = connection._adapter().refresh(refresh_token)
            except AuthorizationRevoked as exc:
                # invalid_grant (reconnect), or ClientCredentialsRejected: a wrong client id
                # or secret, and the message says where to copy them from; either way the
                # connection stops showing Connected
                refused = exc.message
            except LedgerError as exc:
                # unreachable, busy, or an answer that is not a token answer: try again later
                raise UserError(str(exc)) from exc
        if refused:
            connection._needs_reconnect(refused)
        else:
            connection._store_tokens(tokens, env)
            _logger.info("billing_sync: refreshed the tokens of connection %s", self.id)
        # flush now: this environment is gone by the time the caller's cursor
        # commits, and Odoo only flushes environments still alive
        env.flush_all()
        if refused:
            return None, self.env._(
                "%(name)s must be reconnected: the ledger refused to renew access (%(why)s).",
                name=self.display_name, why=refused)
        return tokens.access_token, None

    def _admin_users(self):
        group = self.env.ref(ADMIN_GROUP)
        return group.sudo().users.filtered(
            lambda u: self.company_id in u.company_ids and not u.share
            and u != self.env.ref("base.user_root"))

    def _note(self, body, **kwargs):
        """Post on the connection's chatter as the current user, even one without an email
        address: mail refuses those outside superuser mode, and connecting must not fail
        after the ledger has spent its authorisation code."""
        self.ensure_one()
        return self.sudo().message_post(body=body, author_id=self.env.user.partner_id.id,
                                        **kwargs)

    def _needs_reconnect(self, reason):
        """Mark the connection broken and tell its administrators, once: one message and
        one activity for the connection, however many workers, batches and jobs meet the
        refusal (their jobs wait, attempts unspent, until it is connected again)."""
        self.ensure_one()
        # two workers meeting the refusal at once: the second waits here, then sees it said
        self.env.cr.execute("SELECT state FROM billing_sync_connection WHERE id = %s "
                            "FOR NO KEY UPDATE", [self.id])
        if self.env.cr.fetchone()[0] == "needs_reconnect":
            self.sudo().write({"last_error": reason})
            return
        self.sudo().write({"state": "needs_reconnect", "last_error": reason})
        admins = self._admin_users()
        self._note(
            body=self.env._("The ledger refused to renew access: %(reason)s Changes made "
                            "meanwhile are kept and go to the ledger once it is connected "
                            "again.", reason=reason if reason.rstrip().endswith(".")
                            else reason.rstrip() + "."),
            partner_ids=admins.partner_id.ids,
            subtype_xmlid="mail.mt_comment",
        )
        responsible = self.connected_by_id if self.connected_by_id in admins else admins[:1]
        activity = None
        if responsible:
            self.activity_unlink(["mail.mail_activity_data_todo"])
            activity = self.activity_schedule(
                "mail.mail_activity_data_todo", user_id=responsible.id,
                summary=self.env._("Reconnect %s", self.display_name),
                note=self.env._("The ledger refused to renew access: %s", reason))
        # the connection's alert (its activity is the one above): closed once connected
        self.env["billing_sync.alert"].sudo()._raise(self, "authentication", reason,
                                                     activity=activity)

    # ------------------------------------------------------------------ OAuth2
    def _redirect_uri(self):
        return self.get_base_url() + CALLBACK_PATH

    def _make_state(self):
        """A signed, single-use, short-lived state binding this connection and this user."""
        self.ensure_one()
        nonce = secrets.token_urlsafe(16)
        payload = f"{self.id}:{self.env.uid}:{int(time.time()) + STATE_LIFETIME}:{nonce}"
        signature = odoo_hmac(self.env(su=True), STATE_SCOPE, payload)
        self._token_sudo().oauth_nonce_hash = hashlib.sha256(nonce.encode()).hexdigest()
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{encoded}.{signature}"

    @api.model
    def _from_state(self, state):
        """The connection a callback's ``state`` was made for; AccessDenied if forged."""
        try:
            encoded, signature = (state or "").split(".", 1)
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            conn_id, uid, expires, nonce = payload.split(":", 3)
            conn_id, uid, expires = int(conn_id), int(uid), int(expires)
        except ValueError as exc:
            raise AccessDenied(self.env._("The authorisation answer is malformed.")) from exc
        expected = odoo_hmac(self.env(su=True), STATE_SCOPE, payload)
        if not consteq(expected, signature):
            raise AccessDenied(self.env._("The authorisation answer was not issued by this Odoo."))
        if uid != self.env.uid:
            raise AccessDenied(self.env._("The authorisation was started by another user."))
        if expires < time.time():
            raise AccessDenied(self.env._("The authorisation took too long; click Connect again."))
        connection = self.browse(conn_id).exists()
        if not connection:
            raise AccessDenied(self.env._("The connection no longer exists."))
        connection.check_access("write")
        token = connection._token_sudo()
        if not token.oauth_nonce_hash or not consteq(
                token.oauth_nonce_hash, hashlib.sha256(nonce.encode()).hexdigest()):
            raise AccessDenied(self.env._(
                "This authorisation answer was already used; click Connect again."))
        token.oauth_nonce_hash = False
        return connection

    def action_connect(self):
        """Send the administrator to the ledger's consent page."""
        self.ensure_one()
        self.check_access("write")
        if not self.client_id or not self.has_client_secret:
            raise UserError(self.env._("Enter the client id and client secret of your app first."))
        try:
            url = self._adapter().authorization_url(self._redirect_uri(), self._make_state())
        except LedgerError as exc:
            raise UserError(str(exc)) from exc
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    def _oauth_denied(self, error, description=None):
        self.ensure_one()
        # the ledger's words, from the callback's query string: any length anyone typed
        reason = cap(description, 300) or cap(error, 60)
        self.last_error = self.env._("Consent was not given at the ledger (%s).", reason)
        self._note(body=self.env._(
            "Connecting was cancelled at the ledger: %s. Nothing changed.", reason))

    def _oauth_complete(self, code, callback=None):
        """Exchange the code, keep the tokens (committed at once), find the organisation.

        ``callback``: the other parameters of the callback's query, as the ledger sent
        them; what the adapter needs of them (callback_params) is opaque here."""
        self.ensure_one()
        adapter = self._adapter()
        params = adapter.callback_params(callback or {})
        try:
            tokens = adapter.exchange_code(code, self._redirect_uri(), params)
        except ClientCredentialsRejected as exc:
            # Connect again would fail the same way: the message says where to fix the client
            # id or secret, and a connection that was connected no longer says so
            if self.state in ("connected", "choose_org"):
                self._needs_reconnect(exc.message)
            self.last_error = exc.message
            raise UserError(exc.message) from exc
        except LedgerError as exc:
            # each says what happened: the code expired or was already used (invalid_grant),
            # the sign-in service could not be reached, or its answer was not a token answer
            self.last_error = str(exc)
            raise UserError(str(exc)) from exc
        # Saved in this transaction, which also consumed the state: the callback
        # answers every expected failure normally, so the grant is kept even if
        # listing the organisations fails next. (A second cursor here would wait
        # on the row this transaction just locked.)
        self._store_tokens(tokens)
        try:
            orgs = adapter.organisations(tokens.access_token, params)
        except LedgerError as exc:
            raise UserError(str(exc)) from exc
        values = {"connected_by_id": self.env.uid, "connected_at": fields.Datetime.now(),
                  "last_error": False}
        self.sudo().candidate_org_ids.unlink()
        known = [o for o in orgs if o.id == self.org_id]
        if self.org_id and orgs and not known:
            # This connection's links, mappings and codes belong to its organisation: a
            # grant that reaches others never switches it silently.
            why = self.env._(
                "This authorisation reaches %(orgs)s, not %(org)s, the organisation this "
                "connection syncs with. Click Connect and pick %(org)s at the ledger, or "
                "choose one of these and click Move to this organisation: this connection's "
                "links, mappings and reference data are then archived.",
                orgs=", ".join(o.name for o in orgs), org=self.org_name or self.org_id)
            self.sudo().write({**values, "state": "choose_org", "last_error": why,
                        "candidate_org_ids": [fields.Command.create(
                            {"org_id": o.id, "name": o.name}) for o in orgs]})
            self._note(body=why)
            return True
        if len(orgs) == 1 or known:
            org = known[0] if known else orgs[0]
            self.sudo().write(values)
            self._connect_org(org)
        elif orgs:
            self.sudo().write({**values, "state": "choose_org", "candidate_org_ids": [
                fields.Command.create({"org_id": o.id, "name": o.name}) for o in orgs]})
        else:
            raise UserError(self.env._(
                "The authorisation reaches no organisation: connect one in the ledger first."))
        return True

    def action_choose_org(self):
        self.ensure_one()
        self.check_access("write")
        org = self._chosen_org()
        if self.org_id and org.org_id != self.org_id:
            raise UserError(self.env._(
                "%(chosen)s is not %(org)s, the organisation this connection syncs with: "
                "click Move to this organisation to switch it (its links, mappings and "
                "reference data are archived), or Connect again and pick %(org)s.",
                chosen=org.name, org=self.org_name or self.org_id))
        self._connect_org(org)
        return True

    def action_move_org(self):
        """Switch this connection to another organisation of the ledger, explicitly.

        Everything that names the old organisation's objects is archived, kept for
        history: links, mappings and reference data (import the new organisation's and
        map again); the defaults naming its codes are cleared. Jobs retiring an
        old-organisation document are cancelled; every invoice, credit note and payment
        the old organisation held is queued for the new one (sent once mapped)."""
        self.ensure_one()
        self.check_access("write")
        org = self._chosen_org()
        old = self.org_name or self.org_id
        engine = self.sudo()
        links = engine.env["billing_sync.link"].search([("connection_id", "=", self.id)])
        links.write({"active": False})
        mappings = engine.mapping_ids
        mappings.write({"active": False})
        refs = engine.env["billing_sync.ledger.ref"].search([("connection_id", "=", self.id)])
        refs.write({"active": False})
        Job = engine.env["billing_sync.job"]
        Job._forget_organisation(self)
        engine.write({"default_account_id": False, "default_item_id": False,
                      "default_term_id": False, "rounding_account_id": False,
                      "reference_imported_at": False})
        self._connect_org(org, note=self.env._(
            "Moved from %(old)s to %(new)s: %(links)s links, %(maps)s mappings and "
            "%(refs)s reference codes of %(old)s were archived, and what %(old)s held is "
            "queued for %(new)s. Import the reference data and map again: documents wait "
            "for their mappings.", old=old, new=org.name,
            links=len(links), maps=len(mappings), refs=len(refs)))
        Job._resend(self, links)
        return True

    def _chosen_org(self):
        if self.state != "choose_org" or not self.chosen_org_id:
            raise UserError(self.env._("Pick the organisation to connect."))
        if self.chosen_org_id not in self.sudo().candidate_org_ids:
            raise AccessError(self.env._(
                "Pick one of the organisations the ledger offered this connection."))
        return self.chosen_org_id

    def _connect_org(self, org, note=None):
        """Connect to ``org`` (an Organisation or a connection.org row)."""
        org_id = org.id if isinstance(org, Organisation) else org.org_id
        self.sudo().write({"state": "connected", "org_id": org_id, "org_name": org.name,
                           "chosen_org_id": False, "last_error": False})
        self.sudo().candidate_org_ids.unlink()
        self._note(body=note or self.env._("Connected to %s.", self.org_name))
        self.activity_unlink(["mail.mail_activity_data_todo"])
        self.env["billing_sync.alert"].sudo()._settle(self)
        # what waited while it was not connected goes now
        self.env["billing_sync.job"]._trigger_push()

    def action_disconnect(self):
        """Revoke the grant at the provider and forget the tokens."""
        self.check_access("write")
        for rec in self:
            token = rec._token_sudo()
            warning = False
            refresh_token = rec._cipher().decrypt(token.refresh_token)
            if refresh_token:
                try:
                    rec._adapter().revoke(refresh_token)
                except (LedgerError, UserError) as exc:  # UserError: an endpoint refused
                    warning = str(exc)
            token.write({"access_token": False, "refresh_token": False, "expires_at": False,
                         "refresh_expires_at": False})
            rec.sudo().write({"state": "disconnected", "last_error": warning})
            rec._note(body=self.env._("Disconnected; the tokens were revoked and erased.")
                             if not warning else
                             self.env._(
                                 "Disconnected and tokens erased, but the ledger could not be "
                                 "told (%s): remove the app from the ledger's connected apps.",
                               warning))
        return True

    def action_test_connection(self):
        self.ensure_one()
        self.check_access("write")
        try:
            report = self._adapter().test_connection(self._access_token(), self.org_id)
        except LedgerError as exc:
            raise UserError(str(exc)) from exc
        self.last_test = self.env._("%(org)s – %(headroom)s", org=report.organisation,
                           headroom=report.headroom)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": "success",
                       "title": self.env._("Connected to %s", report.organisation),
                       "message": report.headroom, "sticky": False},
        }

    # ------------------------------------------------------------------ reference data
    def action_import_reference_data(self):
        self.check_access("write")
        for rec in self:
            rec._import_reference_data()
        return True

    def _import_reference_data(self):
        """Bring the ledger's accounts, taxes, items, tracking and terms; archive what vanished.

        A code is never deleted here, mappings point at it: one the ledger archived or no
        longer returns is kept, inactive, and the mappings still using it are reported
        once, when it changes (documents needing it are then held before sending)."""
        self.ensure_one()
        try:
            records = self._adapter().reference_data(self._access_token(), self.org_id)
        except LedgerError as exc:
            raise UserError(str(exc)) from exc
        Ref = self.env["billing_sync.ledger.ref"].with_context(active_test=False)
        existing = {(r.kind, r.ledger_id): r for r in Ref.search(
            [("connection_id", "=", self.id), ("ledger_org_id", "=", self.org_id)])}
        was_active = Ref.browse([r.id for r in existing.values() if r.active])
        # an option of an archived tracking category cannot be used either
        closed = {rec.ledger_id for rec in records
                  if rec.kind == "tracking_category" and not rec.active}
        seen = set()
        to_create = []
        for rec in records:
            key = (rec.kind, rec.ledger_id)
            seen.add(key)
            active = rec.active and not (rec.kind == "tracking" and rec.parent_ledger_id
                                         and rec.parent_ledger_id in closed)
            values = {"name": rec.name, "code": rec.code, "rate": rec.rate,
                      "active": active, "parent_ledger_id": rec.parent_ledger_id,
                      "category": rec.category, "option": rec.option}
            ref = existing.get(key)
            if ref:
                if any((ref[k] or False) != (v or False) for k, v in values.items()):
                    ref.write(values)
            else:
                to_create.append({**values, "connection_id": self.id, "kind": rec.kind,
                                  "ledger_id": rec.ledger_id, "ledger_org_id": self.org_id})
        Ref.create(to_create)
        vanished = [r.id for k, r in existing.items() if k not in seen and r.active]
        Ref.browse(vanished).write({"active": False})
        self.sudo().reference_imported_at = fields.Datetime.now()
        known = Ref.browse([r.id for r in existing.values()])
        self._report_archived_references(was_active.filtered(lambda r: not r.active))
        if (known - was_active).filtered("active"):
            # a code the ledger made active again may be what a held document waits for
            self.env["billing_sync.job"].sudo()._release_mapping_holds(self)
        return len(records)

    @api.model
    def _cron_import_reference_data(self):
        """Refresh every connected ledger's reference data; one failure stops no other."""
        for connection in self.search([("state", "=", "connected")]):
            try:
                with self.env.cr.savepoint():
                    connection._import_reference_data()
            except UserError as exc:
                connection.last_error = str(exc)
                _logger.warning("billing_sync: reference import of connection %s failed: %s",
                                connection.id, exc)

    @api.model
    def _cron_keep_tokens_alive(self):
        """Refresh tokens idle for a week: refresh tokens die unused (Xero: 60 days)."""
        stale = fields.Datetime.now() - datetime.timedelta(days=7)
        for connection in self.search([("state", "=", "connected")]):
            token = connection._token_sudo()
            if not token.refreshed_at or token.refreshed_at < stale:
                try:
                    connection._refresh_tokens(force=True)
                except UserError as exc:
                    _logger.warning("billing_sync: keeping connection %s alive failed: %s",
                                    connection.id, exc)

    # ------------------------------------------------------------------ UI
    def action_open_references(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "billing_sync.action_billing_sync_ledger_ref")
        action["domain"] = [("connection_id", "=", self.id)]
        action["context"] = {"default_connection_id": self.id, "search_default_group_kind": 1}
        return action

    def action_open_mappings(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "billing_sync.action_billing_sync_mapping")
        action["domain"] = [("connection_id", "=", self.id)]
        action["context"] = {"default_connection_id": self.id, "search_default_group_kind": 1}
        return action


def check_kept(records, vals, fnames):
    """Refuse, outside the engine, changing ``fnames`` of ``records`` once created.

    Odoo checks record rules before a write, not after: a row an administrator re-points
    at another company's connection would carry this company's data (codes, an
    organisation to connect) into that company's ledger."""
    if records.env.su:
        return
    for fname in set(fnames) & set(vals):
        field = records._fields[fname]
        new = field.convert_to_cache(vals[fname], records, validate=False)
        if any(field.convert_to_cache(rec[fname], rec, validate=False) != new
               for rec in records):
            raise AccessError(records.env._(
                "%(field)s of %(what)s cannot be changed once it is created.",
                field=field._description_string(records.env), what=records._description))


def _all_production(key):
    return {urls[key] for urls in PRODUCTION_URLS.values()}


class BillingSyncConnectionOrg(models.Model):
    """An organisation an authorisation reaches, offered for the administrator to pick."""

    _name = "billing_sync.connection.org"
    _description = "Ledger organisation to choose"
    _order = "name"

    connection_id = fields.Many2one("billing_sync.connection", required=True,
                                    ondelete="cascade")
    org_id = fields.Char(required=True)
    name = fields.Char(required=True)
