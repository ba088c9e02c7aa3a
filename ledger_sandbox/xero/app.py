"""XeroSandbox: the Xero emulator (identity, Accounting API subset, webhooks, bookkeeper).

URL layout on one port, mirroring Xero's hosts:

* ``/identity/connect/authorize`` (login.xero.com) and ``/connect/token``,
  ``/connect/revocation`` (identity.xero.com);
* ``/Connections`` (api.xero.com, IdentityApi base URL = sandbox URL);
* ``/api.xro/2.0/...`` (AccountingApi base URL = sandbox URL + ``/api.xro/2.0``).

Point xero-python at it by passing ``base_url`` to ``AccountingApi``/``IdentityApi`` and by
setting ``TokenApi.refresh_token_url`` / ``TokenApi.revoke_token_url`` (class attributes of
``xero_python.api_client.oauth2.TokenApi``) to ``<url>/connect/token`` and
``<url>/connect/revocation``.
"""

from __future__ import annotations

import html
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from ..core import Decision, RateLimiter, Request, Response, SandboxApp, SandboxError
from . import render
from .dates import parse_date, parse_datetime
from .ledger import Invalid, Ledger, NotFound
from .oauth import Identity, OAuthError
from .seed import DEFAULT_SCOPES, DEFAULT_WEBHOOK_KEY, default_client, default_tenant
from .webhooks import XeroWebhooks
from .where import QueryError, compile_where, sort_records

API = "/api.xro/2.0"
GUID = r"[0-9A-Za-z-]+"
SCOPES = {  # resource -> (read scope, write scope)
    "Contacts": "accounting.contacts", "Invoices": "accounting.transactions",
    "CreditNotes": "accounting.transactions", "Payments": "accounting.transactions",
    "Overpayments": "accounting.transactions", "BankTransactions": "accounting.transactions",
    "Organisation": "accounting.settings", "Items": "accounting.settings",
    "Accounts": "accounting.settings", "TaxRates": "accounting.settings",
    "TrackingCategories": "accounting.settings", "Currencies": "accounting.settings",
}
PROBLEMS = {"minute": "minute", "day": "daily", "concurrent": "concurrent"}
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"


def _problem(status: int, title: str, detail: str) -> dict:
    # Xero's identity/gateway errors use this ProblemDetails-like shape.
    return {"Type": None, "Title": title, "Status": status, "Detail": detail,
            "Instance": str(uuid.uuid4()), "Extensions": {}}


def _truthy(value: Any, default: bool) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() in ("true", "1", "yes")


class XeroSandbox(SandboxApp):
    """In-memory emulator of the parts of Xero that billing_sync uses."""

    name = "xero"
    BOOKKEEPER_ACTIONS = ("edit_contact", "apply_payment", "delete_payment", "void_invoice",
                          "issue_credit_note", "void_credit_note", "write_off",
                          "receive_overpayment", "allocate_overpayment", "void_overpayment")

    def __init__(self, clock: Callable | None = None, window_seconds: float = 60.0,
                 day_seconds: float = 86400.0, per_minute: int = 60, per_day: int = 5000,
                 concurrent: int = 5, app_per_minute: int = 10000, token_seconds: int = 1800,
                 refresh_grace_seconds: int = 1800, seed: dict | None = None,
                 webhook_url: str | None = None, webhook_key: str | None = DEFAULT_WEBHOOK_KEY,
                 client_id: str | None = None, client_secret: str | None = None,
                 hang_seconds: float = 30.0):
        limiter = RateLimiter(per_minute, per_day, concurrent, window_seconds, day_seconds)
        super().__init__(clock=clock, limiter=limiter, hang_seconds=hang_seconds)
        self.app_limiter = RateLimiter(per_minute=app_per_minute, window_seconds=window_seconds)
        self.webhook.url = webhook_url
        self.webhook.key = webhook_key
        self.token_seconds = token_seconds
        self.refresh_grace_seconds = refresh_grace_seconds
        self.authorize_auto_approve = True
        self.webhook_categories = {"CONTACT", "INVOICE", "CREDITNOTE"}
        self._client_defaults = {k: v for k, v in (("client_id", client_id),
                                                   ("client_secret", client_secret)) if v}
        self._seed = seed
        self.webhooks = XeroWebhooks(self)
        self.reset_state()
        a = API
        self.routes = [
            ("GET", r"/(identity/)?connect/authorize", self.h_authorize,
             {"label": "GET /connect/authorize", "auth": False, "limited": False,
              "idempotent": False}),
            ("POST", r"/(identity/)?connect/authorize", self.h_authorize_post,
             {"label": "POST /connect/authorize", "auth": False, "limited": False,
              "idempotent": False}),
            ("POST", r"/connect/token", self.h_token,
             {"label": "POST /connect/token", "auth": False, "limited": False,
              "idempotent": False}),
            ("GET", r"/\.well-known/openid-configuration", self.h_discovery,
             {"label": "GET /.well-known/openid-configuration", "auth": False,
              "limited": False, "idempotent": False}),
            ("POST", r"/connect/revocation", self.h_revoke,
             {"label": "POST /connect/revocation", "auth": False, "limited": False,
              "idempotent": False}),
            ("GET", r"/connections", self.h_connections,
             {"label": "GET /Connections", "limited": False, "idempotent": False}),
            ("DELETE", rf"/connections/(?P<id>{GUID})", self.h_delete_connection,
             {"label": "DELETE /Connections/{id}", "limited": False, "idempotent": False}),
            ("GET", rf"{a}/Organisation", self.h_organisation, {"label": "GET Organisation"}),
            *self._collection("Contacts", "ContactID"),
            *self._collection("Invoices", "InvoiceID"),
            *self._collection("CreditNotes", "CreditNoteID"),
            ("PUT", rf"{a}/CreditNotes/(?P<id>{GUID})/Allocations", self.h_allocate,
             {"label": "PUT CreditNotes/{id}/Allocations"}),
            ("DELETE", rf"{a}/CreditNotes/(?P<id>{GUID})/Allocations/(?P<aid>{GUID})",
             self.h_delete_allocation, {"label": "DELETE CreditNotes/{id}/Allocations/{id}"}),
            *self._collection("Payments", "PaymentID"),
            # overpayments: made by PUT BankTransactions (Type RECEIVE-OVERPAYMENT), read and
            # allocated under /Overpayments; neither is ever updated through the API
            ("PUT", rf"{a}/BankTransactions", self.h_batch("BankTransactions", True),
             {"label": "PUT BankTransactions"}),
            ("POST", rf"{a}/BankTransactions", self.h_batch("BankTransactions", False),
             {"label": "POST BankTransactions"}),
            ("GET", rf"{a}/BankTransactions/(?P<id>[^/]+)", self.h_get("BankTransactions"),
             {"label": "GET BankTransactions/{id}"}),
            ("POST", rf"{a}/BankTransactions/(?P<id>[^/]+)", self.h_update_bank_transaction,
             {"label": "POST BankTransactions/{id}"}),
            ("GET", rf"{a}/Overpayments", self.h_list("Overpayments"),
             {"label": "GET Overpayments"}),
            ("GET", rf"{a}/Overpayments/(?P<id>[^/]+)", self.h_get("Overpayments"),
             {"label": "GET Overpayments/{id}"}),
            ("PUT", rf"{a}/Overpayments/(?P<id>{GUID})/Allocations", self.h_allocate,
             {"label": "PUT Overpayments/{id}/Allocations"}),
            ("DELETE", rf"{a}/Overpayments/(?P<id>{GUID})/Allocations/(?P<aid>{GUID})",
             self.h_delete_allocation, {"label": "DELETE Overpayments/{id}/Allocations/{id}"}),
            *self._collection("Items", "ItemID"),
            ("GET", rf"{a}/Accounts", self.h_list_simple("Accounts"), {"label": "GET Accounts"}),
            ("GET", rf"{a}/Accounts/(?P<id>{GUID})", self.h_get_simple("Accounts"),
             {"label": "GET Accounts/{id}"}),
            ("GET", rf"{a}/TaxRates", self.h_list_simple("TaxRates"), {"label": "GET TaxRates"}),
            ("GET", rf"{a}/Currencies", self.h_currencies, {"label": "GET Currencies"}),
            ("PUT", rf"{a}/Currencies", self.h_add_currency, {"label": "PUT Currencies"}),
            ("GET", rf"{a}/TrackingCategories", self.h_list_simple("TrackingCategories"),
             {"label": "GET TrackingCategories"}),
            ("PUT", rf"{a}/TrackingCategories", self.h_create_tracking,
             {"label": "PUT TrackingCategories"}),
            ("GET", rf"{a}/TrackingCategories/(?P<id>{GUID})",
             self.h_get_simple("TrackingCategories"), {"label": "GET TrackingCategories/{id}"}),
            ("PUT", rf"{a}/TrackingCategories/(?P<id>{GUID})/Options", self.h_create_option,
             {"label": "PUT TrackingCategories/{id}/Options"}),
        ]

    def _collection(self, resource: str, id_field: str) -> list:
        a = API
        return [
            ("GET", rf"{a}/{resource}", self.h_list(resource), {"label": f"GET {resource}"}),
            ("PUT", rf"{a}/{resource}", self.h_batch(resource, create_only=True),
             {"label": f"PUT {resource}"}),
            ("POST", rf"{a}/{resource}", self.h_batch(resource, create_only=False),
             {"label": f"POST {resource}"}),
            ("GET", rf"{a}/{resource}/(?P<id>[^/]+)", self.h_get(resource),
             {"label": f"GET {resource}/{{id}}"}),
            ("POST", rf"{a}/{resource}/(?P<id>[^/]+)", self.h_update_one(resource),
             {"label": f"POST {resource}/{{id}}"}),
        ]

    # ================================================================== state

    STATE_SHAPE = {  # a complete dump_state() (state files are checked against it)
        "tenants": [{"tenant_id": str, "organisation": dict, "accounts": list,
                     "tax_rates": list, "items": list, "tracking_categories": list,
                     "contacts": list, "invoices": list, "credit_notes": list,
                     "payments": list, "invoice_seq": int, "credit_note_seq": int}],
        "identity": {"clients": dict, "codes": dict, "access": dict, "refresh": dict,
                     "grants": dict, "connections": dict, "signing_key": str},
        "webhook_sequence": int,
    }

    def reset_state(self) -> None:
        """Drop everything and load the seed (default: one organisation, one app)."""
        self.identity = Identity(self.now, self.token_seconds, self.refresh_grace_seconds)
        self.identity.register_client(default_client(**self._client_defaults))
        self.ledgers: dict[str, Ledger] = {}
        self.webhooks.sequence = 0
        self.webhooks.sent.clear()
        seed = self._seed
        if seed:
            self.load_state(seed)
        else:
            tenant = default_tenant()
            self.ledgers[tenant["tenant_id"]] = Ledger(tenant, self.now)

    def dump_state(self) -> dict:
        """Tenants, identity (clients, tokens, connections) and the webhook sequence."""
        return {"provider": "xero",
                "tenants": [ledger.dump() for ledger in self.ledgers.values()],
                "identity": self.identity.dump(), "webhook_sequence": self.webhooks.sequence}

    def load_state(self, data: dict) -> None:
        """Replace state with :meth:`dump_state` output (or a seed file of the same shape)."""
        self.ledgers = {}
        for tenant in data.get("tenants", []):
            base = default_tenant(tenant.get("organisation", {}).get("Name")
                                  or "Sandbox Organisation")
            base.update(tenant)
            self.ledgers[base["tenant_id"]] = Ledger(base, self.now)
        if not self.ledgers:
            tenant = default_tenant()
            self.ledgers[tenant["tenant_id"]] = Ledger(tenant, self.now)
        if "identity" in data:
            self.identity.load(data["identity"])
        for client in data.get("clients", []):
            self.identity.register_client(client)
        if not self.identity.clients:
            self.identity.register_client(default_client(**self._client_defaults))
        self.webhooks.sequence = int(data.get("webhook_sequence", 0))

    def dump_settings(self) -> dict:
        """Core settings plus token lifetimes, the consent page switch, the webhook event
        categories and whether the webhook subscription is enabled."""
        return {**super().dump_settings(), "token_seconds": self.token_seconds,
                "refresh_grace_seconds": self.refresh_grace_seconds,
                "authorize_auto_approve": self.authorize_auto_approve,
                "webhook_categories": sorted(self.webhook_categories),
                "webhook_enabled": self.webhook.enabled}

    def load_settings(self, settings: dict) -> None:
        """Apply :meth:`dump_settings` output (absent names keep their value)."""
        super().load_settings(settings)
        if "token_seconds" in settings:
            self.token_seconds = self.identity.access_seconds = int(settings["token_seconds"])
        if "refresh_grace_seconds" in settings:
            self.refresh_grace_seconds = int(settings["refresh_grace_seconds"])
            self.identity.grace_seconds = self.refresh_grace_seconds
        if "authorize_auto_approve" in settings:
            self.authorize_auto_approve = bool(settings["authorize_auto_approve"])
        if "webhook_categories" in settings:
            self.webhook_categories = set(settings["webhook_categories"])
        if "webhook_enabled" in settings:
            # a subscription Xero disabled after 24 h of failures stays so until re-enabled
            self.webhook.enabled = bool(settings["webhook_enabled"])

    def add_tenant(self, name: str) -> str:
        """Add an organisation (connected at the next authorisation); returns its tenant id."""
        with self.lock:
            tenant = default_tenant(name)
            self.ledgers[tenant["tenant_id"]] = Ledger(tenant, self.now)
            return tenant["tenant_id"]

    def now(self):
        """The current time from :attr:`clock` (looked up per call, so tests may swap it)."""
        return self.clock()

    @property
    def tenant_id(self) -> str:
        """The first (default) tenant's id."""
        return next(iter(self.ledgers))

    def ledger(self, tenant_id: str | None = None) -> Ledger:
        """The ledger of ``tenant_id`` (default tenant when None)."""
        return self.ledgers[tenant_id or self.tenant_id]

    @property
    def client(self) -> dict:
        """The first registered OAuth2 app (client_id, client_secret, redirect_uris)."""
        return next(iter(self.identity.clients.values()))

    def configure(self, **options: Any) -> dict:
        """Extends the base options with ``token_seconds``, ``refresh_grace_seconds``,
        ``app_per_minute``, ``authorize_auto_approve``, ``webhook_categories``,
        ``base_currency``, ``currencies`` (subscribed besides the base), ``currency_rates``
        ({code: units per base unit}) and the organisations' ``period_lock_date`` /
        ``end_of_year_lock_date`` (``YYYY-MM-DD``; None or "" removes the lock)."""
        if "token_seconds" in options:
            self.token_seconds = self.identity.access_seconds = int(options.pop("token_seconds"))
        if "refresh_grace_seconds" in options:
            self.refresh_grace_seconds = int(options.pop("refresh_grace_seconds"))
            self.identity.grace_seconds = self.refresh_grace_seconds
        if "app_per_minute" in options:
            self.app_limiter.configure(per_minute=options.pop("app_per_minute"))
        if "window_seconds" in options:
            self.app_limiter.configure(window_seconds=options["window_seconds"])
        if "authorize_auto_approve" in options:
            self.authorize_auto_approve = bool(options.pop("authorize_auto_approve"))
        if "webhook_categories" in options:
            self.webhook_categories = set(options.pop("webhook_categories"))
        if "base_currency" in options:
            # the organisations' base currency: set it to the Odoo company's so its
            # invoices are accepted (other currencies: ``currencies``)
            currency = options.pop("base_currency")
            with self.lock:
                for ledger in self.ledgers.values():
                    ledger.organisation["BaseCurrency"] = currency
        if "currencies" in options or "currency_rates" in options:
            # multi-currency: the currencies subscribed to besides the base, and the day
            # rate (units per base unit) used when a request sends no CurrencyRate
            currencies = options.pop("currencies", None)
            rates = options.pop("currency_rates", None)
            with self.lock:
                for ledger in self.ledgers.values():
                    if currencies is not None:
                        ledger.currencies = [str(c).upper() for c in currencies]
                    if rates is not None:
                        ledger.currency_rates = {str(k).upper(): float(v)
                                                 for k, v in rates.items()}
        for option, key in (("period_lock_date", "PeriodLockDate"),
                            ("end_of_year_lock_date", "EndOfYearLockDate")):
            if option in options:
                self.set_lock_date(key, options.pop(option))
        return super().configure(**options)

    def set_lock_date(self, key: str, value: Any, tenant_id: str | None = None) -> None:
        """Set (or with None/"" remove) ``PeriodLockDate`` or ``EndOfYearLockDate`` of one
        organisation, or of every organisation when ``tenant_id`` is None."""
        try:
            day = parse_date(value) if value not in (None, "") else None
        except ValueError:
            raise SandboxError(400, f"{key} must be a date (YYYY-MM-DD), not {value!r}",
                               kind="config") from None
        with self.lock:
            ledgers = [self.ledger(tenant_id)] if tenant_id else list(self.ledgers.values())
            for ledger in ledgers:
                if day is None:
                    ledger.organisation.pop(key, None)  # Xero shows them "if set"
                else:
                    ledger.organisation[key] = day.isoformat()

    def config(self) -> dict:
        """Effective configuration (without secrets)."""
        out = super().config()
        out.update(token_seconds=self.token_seconds,
                   refresh_grace_seconds=self.refresh_grace_seconds,
                   app_per_minute=self.app_limiter.per_minute,
                   authorize_auto_approve=self.authorize_auto_approve,
                   webhook_categories=sorted(self.webhook_categories))
        return out

    def resource_base_url(self) -> str:
        """Base of webhook ``resourceUrl`` values: this sandbox's Accounting API URL."""
        return f"{self.base_url or 'http://127.0.0.1'}{API}"

    # ================================================================== pipeline hooks

    def _is_accounting(self, request: Request) -> bool:
        return request.path.lower().startswith(API.lower() + "/")

    def authenticate(self, request: Request) -> Response | None:
        """Bearer token check (Xero's 401 shapes), tenant header, scope, app minute limit."""
        header = request.headers.get("Authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
        with self.lock:
            state, info = self.identity.check(bearer)
        if state == "invalid":
            return Response(401, _problem(401, "Unauthorized", "AuthenticationUnsuccessful"),
                            {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if state == "expired":
            return self.token_expired_response(info["expires_at"])
        request.context["token"] = info
        if not self._is_accounting(request):
            return None
        tenant_id = (request.headers.get("xero-tenant-id") or "").strip()
        with self.lock:
            connected = tenant_id in self.ledgers and self.identity.tenant_connected(
                info, tenant_id)
        if not connected:
            return Response(403, _problem(403, "Forbidden", "AuthenticationUnsuccessful"))
        resource = request.path[len(API) + 1:].split("/")[0]
        scope = SCOPES.get(resource, "")
        granted = set(info["scope"].split())
        readable = request.method == "GET" and f"{scope}.read" in granted
        if scope and scope not in granted and not readable:
            return Response(401, _problem(401, "Unauthorized", "AuthorizationUnsuccessful"))
        key = request.headers.get(self.idempotency_header)
        if key is not None and len(key) > 128:
            return self._validation_response(["Idempotency-Key must be 128 characters or "
                                              "fewer."])
        request.context["tenant"] = tenant_id
        app_decision = self.app_limiter.acquire("app")
        self.app_limiter.release("app")
        request.context["app_remaining"] = app_decision.min_remaining
        if not app_decision.allowed:
            return Response(429, "Rate limit exceeded",
                            {"Retry-After": str(app_decision.retry_after),
                             "X-Rate-Limit-Problem": "appminute",
                             "X-AppMinLimit-Remaining": "0"})
        return None

    def token_expired_response(self, expires_at: str) -> Response:
        """Xero's 401 for an expired access token."""
        moment = parse_datetime(expires_at).strftime("%m/%d/%Y %H:%M:%S")
        return Response(401, _problem(401, "Unauthorized", f"TokenExpired: token expired at "
                                                           f"{moment}"),
                        {"WWW-Authenticate": 'Bearer error="invalid_token", '
                                             'error_description="The access token expired"'})

    def rate_limit_key(self, request: Request) -> str | None:
        """Accounting calls count against their tenant's limits."""
        return request.context.get("tenant")

    def rate_limited_response(self, request: Request, decision: Decision) -> Response:
        """429 with Retry-After and X-Rate-Limit-Problem (minute | daily | concurrent)."""
        headers = {"Retry-After": str(decision.retry_after),
                   "X-Rate-Limit-Problem": PROBLEMS[decision.problem]}
        if decision.min_remaining is not None:
            headers["X-MinLimit-Remaining"] = str(decision.min_remaining)
        if decision.day_remaining is not None:
            headers["X-DayLimit-Remaining"] = str(decision.day_remaining)
        if request.context.get("app_remaining") is not None:
            headers["X-AppMinLimit-Remaining"] = str(request.context["app_remaining"])
        return Response(429, "Rate limit exceeded", headers)

    def rate_limit_headers(self, request: Request, decision: Decision) -> dict:
        """X-MinLimit-Remaining, X-DayLimit-Remaining, X-AppMinLimit-Remaining."""
        headers = {}
        if decision.min_remaining is not None:
            headers["X-MinLimit-Remaining"] = str(decision.min_remaining)
        if decision.day_remaining is not None:
            headers["X-DayLimit-Remaining"] = str(decision.day_remaining)
        if request.context.get("app_remaining") is not None:
            headers["X-AppMinLimit-Remaining"] = str(request.context["app_remaining"])
        return headers

    def idempotency_scope(self, request: Request) -> str:
        """Keys are scoped to the tenant (and the app)."""
        token = request.context.get("token") or {}
        return f"{request.context.get('tenant', '')}:{token.get('client_id', '')}"

    def fault_response(self, kind: str, request: Request, opts: dict) -> Response:
        """Injected faults in Xero's shapes."""
        if kind == "http401":
            return self.token_expired_response(
                opts.get("expired_at") or self.clock().isoformat())
        if kind == "http429":
            problem = opts.get("problem", "minute")
            return Response(429, "Rate limit exceeded",
                            {"Retry-After": str(opts.get("retry_after", 1)),
                             "X-Rate-Limit-Problem": problem, "X-MinLimit-Remaining": "0"})
        if kind == "http503":
            return Response(503, "The Xero API is temporarily unavailable.",
                            {"Retry-After": str(opts.get("retry_after", 1))})
        return Response(500, _problem(500, "An error occurred", "An error occurred in Xero. "
                                      "Check the API Status page http://status.developer.xero"
                                      ".com for current service status."))

    # the array of an Accounting API answer -> the id each of its objects carries
    ANSWER_IDS = {"Contacts": "ContactID", "Invoices": "InvoiceID",
                  "CreditNotes": "CreditNoteID", "Payments": "PaymentID", "Items": "ItemID",
                  "Overpayments": "OverpaymentID", "BankTransactions": "BankTransactionID",
                  "Allocations": "AllocationID", "Accounts": "AccountID",
                  "TaxRates": "TaxType", "Organisations": "OrganisationID",
                  "TrackingCategories": "TrackingCategoryID"}

    def strip_ids(self, body: dict) -> None:
        """Fault ``no_ids``: the answered objects without their ContactID, InvoiceID..."""
        for array, id_key in self.ANSWER_IDS.items():
            for obj in body.get(array) or []:
                if isinstance(obj, dict):
                    obj.pop(id_key, None)

    def drop_one(self, body: dict) -> None:
        """Fault ``one_fewer``: the answer's array without its last object."""
        for array in self.ANSWER_IDS:
            if body.get(array):
                body[array].pop()
                return

    def render_error(self, request: Request, error: SandboxError) -> Response:
        """404 text, 400 ValidationException / QueryParseException, else the problem shape."""
        if error.status == 404:
            return Response(404, NOT_FOUND_TEXT)
        if error.kind == "validation":
            return self._validation_response(error.detail or [error.message])
        if error.kind == "query":
            return Response(400, {"ErrorNumber": 16, "Type": "QueryParseException",
                                  "Message": error.message})
        return Response(error.status, _problem(error.status, "Error", error.message))

    @staticmethod
    def _validation_response(messages: list[str], elements: list | None = None) -> Response:
        elements = elements if elements is not None else [
            {"ValidationErrors": [{"Message": m} for m in messages]}]
        return Response(400, {"ErrorNumber": 10, "Type": "ValidationException",
                              "Message": "A validation exception occurred",
                              "Elements": elements})

    # ================================================================== helpers

    def _ledger_for(self, request: Request) -> Ledger:
        return self.ledgers[request.context["tenant"]]

    def _commit(self, ledger: Ledger) -> None:
        # Turn the ledger's recorded changes into one signed webhook delivery.
        changes, ledger.changes = ledger.changes, []
        self.webhooks.publish(ledger.tenant_id, changes, ledger)

    def _body_items(self, request: Request, key: str) -> list:
        data = request.json()
        if data is None:
            raise SandboxError(400, "The request body is not valid JSON", kind="validation",
                               detail=["The request body is not valid JSON."])
        if isinstance(data, dict) and key in data:
            items = data[key]
        elif isinstance(data, list):
            items = data
        else:
            items = [data]
        if not isinstance(items, list):
            raise SandboxError(400, f"{key} must be an array", kind="validation",
                               detail=[f"{key} must be an array."])
        return items

    def _unitdp(self, request: Request) -> int:
        try:
            return 4 if int(request.arg("unitdp", 2)) == 4 else 2
        except ValueError:
            return 2

    # ================================================================== identity handlers

    def h_discovery(self, request: Request) -> Response:
        """Xero's OpenID discovery document (identity.xero.com/.well-known/openid-configuration),
        with this sandbox's address in place of login.xero.com and identity.xero.com."""
        base = self.base_url or f"http://{request.headers.get('Host', '127.0.0.1')}"
        return Response(200, {
            "issuer": base,
            "authorization_endpoint": f"{base}/identity/connect/authorize",
            "token_endpoint": f"{base}/connect/token",
            "revocation_endpoint": f"{base}/connect/revocation",
            "userinfo_endpoint": f"{base}/connect/userinfo",
            "jwks_uri": f"{base}/.well-known/openid-configuration/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "code_challenge_methods_supported": ["plain", "S256"],
        })

    def h_authorize(self, request: Request) -> Response:
        """GET authorize: consent page, or (auto-approve) a redirect with code and state."""
        query = {k: v[0] for k, v in request.query.items() if v}
        if not self.authorize_auto_approve:
            with self.lock:
                client = self.identity.clients.get(query.get("client_id", ""))
            if client is None:
                return Response(400, "unauthorized_client: unknown client_id")
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" '
                             f'value="{html.escape(v)}">' for k, v in query.items())
            page = (f"<!doctype html><title>Xero sandbox - authorise</title>"
                    f"<h1>{html.escape(client.get('name', 'App'))} wants access</h1>"
                    f"<p>Scopes: {html.escape(query.get('scope', ''))}</p>"
                    f'<form method="post">{hidden}<button name="approve" value="1">'
                    f"Allow access</button></form>")
            return Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
        return self._approve(query)

    def h_authorize_post(self, request: Request) -> Response:
        """Consent form submission."""
        return self._approve(request.form())

    def _approve(self, query: dict) -> Response:
        with self.lock:
            tenants = [ledger.dump() for ledger in self.ledgers.values()]
            try:
                location = self.identity.authorize(query, tenants)
            except OAuthError as error:
                return Response(400, f"{error.error}: {error.description}".strip(": "))
        return Response(302, b"", {"Location": location})

    def h_token(self, request: Request) -> Response:
        """POST /connect/token (authorization_code, refresh_token)."""
        with self.lock:
            tenants = {t: {"organisation": ledger.organisation}
                       for t, ledger in self.ledgers.items()}
            try:
                body = self.identity.token(request.form(),
                                           request.headers.get("Authorization"), tenants)
            except OAuthError as error:
                return Response(error.status, error.body())
        return Response(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def h_revoke(self, request: Request) -> Response:
        """POST /connect/revocation."""
        with self.lock:
            try:
                self.identity.revoke(request.form(), request.headers.get("Authorization"))
            except OAuthError as error:
                return Response(error.status, error.body())
        return Response(200, b"")

    def h_connections(self, request: Request) -> Response:
        """GET /Connections (optionally filtered by authEventId)."""
        with self.lock:
            found = self.identity.list_connections(request.context["token"])
        event = request.arg("authEventId")
        if event:
            found = [c for c in found if c["authEventId"] == event]
        return Response(200, found)

    def h_delete_connection(self, request: Request) -> Response:
        """DELETE /Connections/{id}."""
        with self.lock:
            deleted = self.identity.delete_connection(request.context["token"],
                                                      request.params["id"])
        return Response(204, b"") if deleted else Response(404, b"")

    # ================================================================== accounting handlers

    def h_organisation(self, request: Request) -> Response:
        """GET /Organisation."""
        ledger = self._ledger_for(request)
        return Response(200, render.envelope(self.now, "Organisations",
                                             [render.organisation(ledger)]))

    def _records(self, ledger: Ledger, resource: str) -> list[dict]:
        return list({"Contacts": ledger.contacts, "Invoices": ledger.invoices,
                     "CreditNotes": ledger.credit_notes, "Payments": ledger.payments,
                     "Overpayments": ledger.overpayments,
                     "Items": ledger.items, "Accounts": ledger.accounts,
                     "TaxRates": ledger.tax_rates,
                     "TrackingCategories": ledger.tracking}[resource].values())

    def _present(self, ledger: Ledger, resource: str, record: dict, **opts) -> dict:
        if resource == "Contacts":
            return render.contact(ledger, record)
        if resource == "Invoices":
            return render.invoice(ledger, record, **opts)
        if resource == "CreditNotes":
            return render.credit_note(ledger, record, **opts)
        if resource == "Payments":
            return render.payment(ledger, record)
        if resource == "Overpayments":
            return render.overpayment(ledger, record, **opts)
        if resource == "BankTransactions":
            return render.bank_transaction(ledger, record)
        return render.plain(record)

    def h_list(self, resource: str) -> Callable[[Request], Response]:
        """GET collection with where/order/page/IDs/statuses/If-Modified-Since filters."""

        def handler(request: Request) -> Response:
            ledger = self._ledger_for(request)
            try:
                predicate = compile_where(request.arg("where"))
            except QueryError as error:
                raise SandboxError(400, str(error), kind="query") from None
            with self.lock:
                records = self._records(ledger, resource)
                records = self._prefilter(request, resource, records)
                page = request.arg("page")
                summary = _truthy(request.arg("summaryOnly"), False)
                # Xero returns invoice line items only on paged requests (and never in
                # summaryOnly mode); unpaged lists are lighter.
                opts = {}
                if resource in ("Invoices", "CreditNotes", "Overpayments"):
                    opts["with_lines"] = page is not None and not summary
                    if resource == "Invoices":
                        opts["summary"] = summary
                pairs = [(r, self._present(ledger, resource, r, **opts)) for r in records]
                try:
                    pairs = [(r, out) for r, out in pairs if predicate(out)]
                    ordered = sort_records([r for r, _ in pairs], request.arg("order"))
                except QueryError as error:
                    raise SandboxError(400, str(error), kind="query") from None
                rendered = {id(r): out for r, out in pairs}
                result = [rendered[id(r)] for r in ordered]
            extra = {}
            if page is not None:
                result, extra = self._page(request, result)
            return Response(200, render.envelope(self.now, resource, result, **extra))

        return handler

    def _prefilter(self, request: Request, resource: str, records: list[dict]) -> list[dict]:
        since = request.headers.get("If-Modified-Since")
        if since:
            try:
                moment = parse_datetime(since)
            except (ValueError, TypeError):
                raise SandboxError(400, "If-Modified-Since is not a valid date",
                                   kind="validation",
                                   detail=["If-Modified-Since is not a valid date."]) from None
            # Inclusive bound at Xero's millisecond precision: a client that passes its last
            # seen UpdatedDateUTC gets that record again rather than missing a change.
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
            records = [r for r in records if r.get("UpdatedDateUTC")
                       and parse_datetime(r["UpdatedDateUTC"]) >= moment]
        # IDs exists on GET Contacts and GET Invoices only (xero_accounting.yaml): Xero
        # ignores it elsewhere (GET Payments is filtered by ``where`` on PaymentID)
        id_field = {"Contacts": "ContactID", "Invoices": "InvoiceID"}.get(resource)
        ids = request.arg("IDs")
        if ids and id_field:
            wanted = {x.strip().lower() for x in ids.split(",") if x.strip()}
            records = [r for r in records if r[id_field].lower() in wanted]
        statuses = request.arg("Statuses")
        if statuses and resource == "Invoices":
            wanted = {x.strip().upper() for x in statuses.split(",") if x.strip()}
            records = [r for r in records if r["Status"] in wanted]
        numbers = request.arg("InvoiceNumbers")
        if numbers and resource == "Invoices":
            wanted = {x.strip() for x in numbers.split(",")}
            records = [r for r in records if r["InvoiceNumber"] in wanted]
        contacts = request.arg("ContactIDs")
        if contacts and resource == "Invoices":
            wanted = {x.strip().lower() for x in contacts.split(",")}
            records = [r for r in records if r["Contact"]["ContactID"].lower() in wanted]
        references = request.arg("References")
        if references and resource == "Overpayments":
            wanted = {x.strip().lower() for x in references.split(",") if x.strip()}
            records = [r for r in records if str(r.get("Reference") or "").lower() in wanted]
        if resource == "Contacts" and not _truthy(request.arg("includeArchived"), False):
            records = [r for r in records if r.get("ContactStatus") != "ARCHIVED"]
        # Invoices: Xero lists VOIDED and DELETED ones as any other (Status tells them
        # apart) unless Statuses or where leaves them out; includeArchived changes nothing
        # (invoices are never ARCHIVED). Payments: DELETED ones are listed too.
        term = (request.arg("searchTerm") or "").strip().lower()
        if term and resource == "Contacts":
            records = [r for r in records if any(term in str(r.get(k) or "").lower() for k in (
                "Name", "FirstName", "LastName", "ContactNumber", "CompanyNumber",
                "EmailAddress"))]
        elif term and resource == "Invoices":
            records = [r for r in records if term in r["InvoiceNumber"].lower()
                       or term in str(r.get("Reference") or "").lower()]
        return records

    @staticmethod
    def _page(request: Request, records: list) -> tuple[list, dict]:
        try:
            page = max(1, int(request.arg("page")))
            size = int(request.arg("pageSize") or 100)
        except ValueError:
            raise SandboxError(400, "page and pageSize must be integers", kind="validation",
                               detail=["page and pageSize must be integers."]) from None
        size = max(1, min(size, 1000))
        count = len(records)
        pages = (count + size - 1) // size
        chunk = records[(page - 1) * size: page * size]
        return chunk, {"pagination": {"page": page, "pageSize": size, "pageCount": pages,
                                      "itemCount": count}}

    def h_get(self, resource: str) -> Callable[[Request], Response]:
        """GET one record by ID (or number/code where Xero allows)."""
        if resource == "BankTransactions":  # only those that made an overpayment
            return self._getter("overpayments", resource, lambda ledger, record:
                                render.bank_transaction(ledger, record), "BankTransactionID")
        kind = {"Contacts": "contacts", "Invoices": "invoices", "CreditNotes": "credit_notes",
                "Payments": "payments", "Items": "items",
                "Overpayments": "overpayments"}[resource]
        return self._getter(kind, resource,
                            lambda ledger, record: self._present(ledger, resource, record))

    def h_get_simple(self, resource: str) -> Callable[[Request], Response]:
        """GET one account / tracking category."""
        kind = {"Accounts": "accounts", "TrackingCategories": "tracking"}[resource]
        return self._getter(kind, resource, lambda ledger, record: render.plain(record))

    def _getter(self, kind: str, resource: str, present: Callable[[Ledger, dict], dict],
                by: str | None = None) -> Callable[[Request], Response]:
        # ``by``: the field the URL's id is matched on (default: ledger.get's rules)
        def handler(request: Request) -> Response:
            ledger = self._ledger_for(request)
            with self.lock:
                try:
                    if by:
                        wanted = request.params["id"].lower()
                        record = next((r for r in getattr(ledger, kind).values()
                                       if str(r.get(by, "")).lower() == wanted), None)
                        if record is None:
                            raise NotFound(wanted)
                    else:
                        record = ledger.get(kind, request.params["id"])
                except NotFound:
                    raise SandboxError(404, NOT_FOUND_TEXT) from None
                out = present(ledger, record)
            return Response(200, render.envelope(self.now, resource, [out]))

        return handler

    def h_list_simple(self, resource: str) -> Callable[[Request], Response]:
        """GET Accounts / TaxRates / TrackingCategories (where and order only)."""
        listing = self.h_list(resource)

        def handler(request: Request) -> Response:
            response = listing(request)
            if resource == "TrackingCategories" and not _truthy(
                    request.arg("includeArchived"), False):
                body = response.body
                body[resource] = [t for t in body[resource] if t.get("Status") == "ACTIVE"]
            return response

        return handler

    def _upsert(self, ledger: Ledger, resource: str, item: Any, create_only: bool,
                unitdp: int, record_id: str | None = None) -> dict:
        if resource == "Contacts":
            if create_only and isinstance(item, dict) and item.get("ContactID"):
                raise Invalid("ContactID must not be specified when creating a contact; use "
                              "POST to update.")
            return ledger.upsert_contact(item, record_id)
        if resource == "Invoices":
            return ledger.upsert_invoice(item, record_id, unitdp, create_only=create_only)
        if resource == "CreditNotes":
            return ledger.upsert_credit_note(item, record_id, unitdp)
        if resource == "Payments":
            if record_id or (isinstance(item, dict) and item.get("PaymentID")):
                status = item.get("Status") if isinstance(item, dict) else None
                if status != "DELETED":
                    raise Invalid("A payment can only be updated to Status DELETED.")
                return ledger.delete_payment(record_id or item["PaymentID"])
            return ledger.create_payment(item)
        if resource == "Items":
            return ledger.upsert_item(item, create_only=create_only)
        if resource == "BankTransactions":
            return ledger.create_bank_transaction(item, unitdp)
        raise Invalid(f"{resource} cannot be written")

    def h_batch(self, resource: str, create_only: bool) -> Callable[[Request], Response]:
        """PUT (create) / POST (update or create) a batch, honouring summarizeErrors.

        summarizeErrors=true (default): when any element fails, answer 400 ValidationException
        listing the failed elements (elements that passed validation are still saved, as Xero
        does); summarizeErrors=false: answer 200 with every element and a
        StatusAttributeString of OK or ERROR, ValidationErrors on the failed ones.
        """

        def handler(request: Request) -> Response:
            ledger = self._ledger_for(request)
            key = resource
            items = self._body_items(request, key)
            summarize = _truthy(request.arg("summarizeErrors"), True)
            unitdp = self._unitdp(request)
            results: list[tuple[dict, list[str] | None]] = []
            with self.lock:
                try:
                    for item in items:
                        try:
                            record = self._upsert(ledger, resource, item, create_only, unitdp)
                            results.append((self._present(ledger, resource, record), None))
                        except Invalid as error:
                            echo = dict(item) if isinstance(item, dict) else {}
                            results.append((echo, error.messages))
                        except NotFound as error:
                            echo = dict(item) if isinstance(item, dict) else {}
                            results.append((echo, [f"{error} could not be found."]))
                finally:
                    self._commit(ledger)
            failed = [r for r in results if r[1]]
            if summarize and failed:
                elements = [dict(out, ValidationErrors=[{"Message": m} for m in errs],
                                 HasErrors=True) for out, errs in failed]
                return self._validation_response([], elements=elements)
            answer = []
            for out, errs in results:
                out = dict(out)
                if not summarize:
                    out["StatusAttributeString"] = "ERROR" if errs else "OK"
                if errs:
                    out["ValidationErrors"] = [{"Message": m} for m in errs]
                    out["HasErrors"] = True
                answer.append(out)
            return Response(200, render.envelope(self.now, key, answer))

        return handler

    def h_update_one(self, resource: str) -> Callable[[Request], Response]:
        """POST /{Resource}/{id}: update one record (payments: delete)."""
        kind = {"Contacts": "contacts", "Invoices": "invoices", "CreditNotes": "credit_notes",
                "Payments": "payments", "Items": "items"}[resource]

        def handler(request: Request) -> Response:
            ledger = self._ledger_for(request)
            items = self._body_items(request, resource)
            item = items[0] if items else {}
            unitdp = self._unitdp(request)
            with self.lock:
                try:
                    record_id = ledger.get(kind, request.params["id"])
                except NotFound:
                    raise SandboxError(404, NOT_FOUND_TEXT) from None
                id_field = {"contacts": "ContactID", "invoices": "InvoiceID",
                            "credit_notes": "CreditNoteID", "payments": "PaymentID",
                            "items": "ItemID"}[kind]
                try:
                    if kind == "items":
                        item = dict(item, ItemID=record_id[id_field])
                        record = ledger.upsert_item(item)
                    else:
                        record = self._upsert(ledger, resource, item, False, unitdp,
                                              record_id[id_field])
                except Invalid as error:
                    echo = dict(item) if isinstance(item, dict) else {}
                    element = dict(echo, ValidationErrors=[{"Message": m}
                                                           for m in error.messages])
                    return self._validation_response([], elements=[element])
                finally:
                    self._commit(ledger)
                out = self._present(ledger, resource, record)
            return Response(200, render.envelope(self.now, resource, [out]))

        return handler

    @staticmethod
    def _of_overpayment(request: Request) -> bool:
        return request.path[len(API) + 1:].lower().startswith("overpayments/")

    def h_allocate(self, request: Request) -> Response:
        """PUT /CreditNotes/{id}/Allocations and PUT /Overpayments/{id}/Allocations."""
        ledger = self._ledger_for(request)
        items = self._body_items(request, "Allocations")
        summarize = _truthy(request.arg("summarizeErrors"), True)
        allocate = (ledger.allocate_overpayment if self._of_overpayment(request)
                    else ledger.allocate_credit_note)
        answer, failed = [], []
        with self.lock:
            try:
                for item in items:
                    try:
                        allocation = allocate(request.params["id"], item)
                        out = render.allocation(ledger, allocation)
                        if not summarize:
                            out["StatusAttributeString"] = "OK"
                        answer.append(out)
                    except Invalid as error:
                        echo = dict(item, ValidationErrors=[{"Message": m}
                                                            for m in error.messages])
                        if not summarize:
                            echo["StatusAttributeString"] = "ERROR"
                        answer.append(echo)
                        failed.append(echo)
            except NotFound:
                raise SandboxError(404, NOT_FOUND_TEXT) from None
            finally:
                self._commit(ledger)
        if summarize and failed:
            return self._validation_response([], elements=failed)
        return Response(200, render.envelope(self.now, "Allocations", answer))

    def h_delete_allocation(self, request: Request) -> Response:
        """DELETE /CreditNotes/{id}/Allocations/{allocationId} (and of an overpayment)."""
        ledger = self._ledger_for(request)
        remove = (ledger.delete_overpayment_allocation if self._of_overpayment(request)
                  else ledger.delete_allocation)
        with self.lock:
            try:
                allocation = remove(request.params["id"], request.params["aid"])
            except NotFound:
                raise SandboxError(404, NOT_FOUND_TEXT) from None
            except Invalid as error:
                return self._validation_response(error.messages)
            finally:
                self._commit(ledger)
            out = render.allocation(ledger, allocation)
        return Response(200, out)

    def h_update_bank_transaction(self, request: Request) -> Response:
        """POST /BankTransactions/{id}: the sandbox's bank transactions are overpayments,
        which Xero's API neither updates nor voids (a bookkeeper voids one in Xero:
        ``void_overpayment``): 404 for an unknown id, else 400 ValidationException."""
        ledger = self._ledger_for(request)
        wanted = request.params["id"].lower()
        with self.lock:
            known = any(r["BankTransactionID"].lower() == wanted
                        for r in ledger.overpayments.values())
        if not known:
            raise SandboxError(404, NOT_FOUND_TEXT)
        return self._validation_response([
            "An overpayment cannot be updated or voided through the API (the sandbox "
            "emulates creating RECEIVE-OVERPAYMENT bank transactions only; a bookkeeper "
            "voids an overpayment: void_overpayment)."])

    def h_currencies(self, request: Request) -> Response:
        """GET /Currencies: the base currency and those the organisation subscribed to."""
        ledger = self._ledger_for(request)
        with self.lock:
            rows = [ledger.add_currency({"Code": c}) for c in ledger.enabled_currencies()]
        return Response(200, render.envelope(self.now, "Currencies", rows))

    def h_add_currency(self, request: Request) -> Response:
        """PUT /Currencies: subscribe the organisation to a currency (one per request)."""
        ledger = self._ledger_for(request)
        items = self._body_items(request, "Currencies")
        with self.lock:
            try:
                made = [ledger.add_currency(i) for i in items]
            except Invalid as error:
                return self._validation_response(error.messages)
        return Response(200, render.envelope(self.now, "Currencies", made))

    def h_create_tracking(self, request: Request) -> Response:
        """PUT /TrackingCategories."""
        ledger = self._ledger_for(request)
        items = self._body_items(request, "TrackingCategories")
        with self.lock:
            try:
                made = [render.plain(ledger.create_tracking_category(i)) for i in items]
            except Invalid as error:
                return self._validation_response(error.messages)
        return Response(200, render.envelope(self.now, "TrackingCategories", made))

    def h_create_option(self, request: Request) -> Response:
        """PUT /TrackingCategories/{id}/Options."""
        ledger = self._ledger_for(request)
        items = self._body_items(request, "Options")
        with self.lock:
            try:
                made = [ledger.create_tracking_option(request.params["id"], i) for i in items]
            except Invalid as error:
                return self._validation_response(error.messages)
            except NotFound:
                raise SandboxError(404, NOT_FOUND_TEXT) from None
        return Response(200, render.envelope(self.now, "Options", made))

    # ================================================================== bookkeeper

    def _act(self, tenant_id: str | None, action: Callable[[Ledger], Any]) -> Any:
        ledger = self.ledger(tenant_id)
        with self.lock:
            try:
                return action(ledger)
            except Invalid as error:
                raise SandboxError(400, "; ".join(error.messages), kind="validation",
                                   body={"error": "validation",
                                         "messages": error.messages}) from None
            except NotFound as error:
                raise SandboxError(404, f"not found: {error}", kind="not_found",
                                   body={"error": "not_found", "id": str(error)}) from None
            finally:
                self._commit(ledger)

    def edit_contact(self, contact_id: str, fields: dict | None = None,
                     tenant_id: str | None = None, **more: Any) -> dict:
        """Bookkeeper edits a contact in Xero (e.g. ``EmailAddress``, ``Name``)."""
        changes = dict(fields or {}, **more)
        return self._act(tenant_id, lambda lg: render.contact(
            lg, lg.upsert_contact(changes, lg.get("contacts", contact_id)["ContactID"])))

    def apply_payment(self, invoice_id: str, amount: float | None = None,
                      account_code: str = "090", date: str | None = None,
                      reference: str = "Bank transfer", tenant_id: str | None = None) -> dict:
        """Bookkeeper records a payment (full when ``amount`` is None, else partial)."""

        def act(lg: Ledger) -> dict:
            invoice = lg.get("invoices", invoice_id)
            payment = lg.create_payment({
                "Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Account": {"Code": account_code},
                "Amount": invoice["AmountDue"] if amount is None else amount,
                "Date": date, "Reference": reference})
            return render.payment(lg, payment)

        return self._act(tenant_id, act)

    def delete_payment(self, payment_id: str, tenant_id: str | None = None) -> dict:
        """Bookkeeper deletes (removes) a payment; the invoice is outstanding again."""
        return self._act(tenant_id, lambda lg: render.payment(lg, lg.delete_payment(payment_id)))

    def void_invoice(self, invoice_id: str, tenant_id: str | None = None) -> dict:
        """Bookkeeper voids an AUTHORISED invoice without payments."""
        return self._act(tenant_id, lambda lg: render.invoice(lg, lg.void_invoice(invoice_id)))

    def issue_credit_note(self, invoice_id: str | None = None, contact_id: str | None = None,
                          amount: float | None = None, description: str = "Credit",
                          account_code: str | None = None, tax_type: str | None = None,
                          allocate: bool = True, date: str | None = None,
                          tenant_id: str | None = None) -> dict:
        """Bookkeeper issues an AUTHORISED credit note, optionally allocated to an invoice.

        ``amount`` is tax inclusive (defaults to the invoice's AmountDue); the line copies
        the invoice's first account and tax type so GST is reversed proportionally.
        """

        def act(lg: Ledger) -> dict:
            invoice = lg.get("invoices", invoice_id) if invoice_id else None
            return self._credit(lg, invoice, contact_id, amount, description, account_code,
                                tax_type, allocate and invoice is not None, date)

        return self._act(tenant_id, act)

    def _credit(self, lg: Ledger, invoice: dict | None, contact_id: str | None,
                amount: float | None, description: str, account_code: str | None,
                tax_type: str | None, allocate: bool, date: str | None) -> dict:
        if invoice is None and not contact_id:
            raise Invalid("issue_credit_note needs invoice_id or contact_id")
        first = (invoice or {}).get("LineItems", [{}])[0] if invoice else {}
        total = invoice["AmountDue"] if (invoice and amount is None) else amount
        if total is None:
            raise Invalid("amount is required without an invoice")
        note = lg.upsert_credit_note({
            "Type": "ACCRECCREDIT", "Status": "AUTHORISED",
            "Contact": {"ContactID": invoice["Contact"]["ContactID"] if invoice
                        else contact_id},
            "Date": date, "LineAmountTypes": "Inclusive",
            "Reference": f"Credit for {invoice['InvoiceNumber']}" if invoice else description,
            "LineItems": [{"Description": description, "Quantity": 1, "UnitAmount": total,
                           "AccountCode": account_code or first.get("AccountCode") or "200",
                           "TaxType": tax_type or first.get("TaxType") or "NONE"}]})
        if allocate:
            lg.allocate_credit_note(note["CreditNoteID"], {
                "Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": note["Total"],
                "Date": date})
        return render.credit_note(lg, note)

    def void_credit_note(self, credit_note_id: str, remove_allocations: bool = False,
                         tenant_id: str | None = None) -> dict:
        """Bookkeeper voids an AUTHORISED credit note. Xero voids only one allocated to
        nothing ("This document cannot be edited as it has a payment or credit note
        allocated to it." otherwise); ``remove_allocations``: the bookkeeper removes its
        allocations first (the invoices are due again), then voids it."""
        return self._act(tenant_id, lambda lg: render.credit_note(
            lg, lg.void_credit_note(credit_note_id, remove_allocations)))

    def write_off(self, invoice_id: str, amount: float | None = None,
                  method: str = "credit_note", account_code: str | None = None,
                  date: str | None = None, tenant_id: str | None = None) -> dict:
        """Bookkeeper writes off an invoice balance (Xero has no write-off object).

        ``method="credit_note"`` (default, Xero Central's bad-debt procedure): a credit note
        coded to the Bad Debts account (485) with the invoice's tax type, allocated to the
        invoice.  ``method="payment"``: a payment from an expense account that allows
        payments (486 Write-offs), as bookkeepers do for small balances.
        """

        def act(lg: Ledger) -> dict:
            invoice = lg.get("invoices", invoice_id)
            value = invoice["AmountDue"] if amount is None else amount
            if method == "payment":
                payment = lg.create_payment({
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]},
                    "Account": {"Code": account_code or "486"}, "Amount": value,
                    "Date": date, "Reference": "Write-off"})
                return {"method": "payment", "payment": render.payment(lg, payment)}
            first = invoice.get("LineItems", [{}])[0] if invoice.get("LineItems") else {}
            note = self._credit(lg, invoice, None, value, "Bad debt written off",
                                account_code or "485", first.get("TaxType"), True, date)
            return {"method": "credit_note", "credit_note": note}

        return self._act(tenant_id, act)

    def receive_overpayment(self, contact_id: str, amount: float, account_code: str = "090",
                            date: str | None = None, allocations: dict | None = None,
                            reference: str | None = None,
                            tenant_id: str | None = None) -> dict:
        """Bookkeeper records a client's overpayment: money received into ``account_code``
        beyond what is due, made as Xero's API makes it (a RECEIVE-OVERPAYMENT bank
        transaction: one NoTax line of ``amount``), then allocated to the invoices of
        ``allocations`` ({invoice_id: amount}, each dated ``date``) in their order. Answers
        the overpayment as GET /Overpayments/{id} does."""

        def act(lg: Ledger) -> dict:
            record = lg.create_bank_transaction({
                "Type": "RECEIVE-OVERPAYMENT", "Contact": {"ContactID": contact_id},
                "BankAccount": {"Code": account_code}, "Date": date,
                "Reference": reference or "", "LineAmountTypes": "NoTax",
                "LineItems": [{"Description": "Overpayment", "LineAmount": amount}]})
            for invoice_id, applied in (allocations or {}).items():
                invoice = lg.get("invoices", invoice_id)
                lg.allocate_overpayment(record["OverpaymentID"], {
                    "Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": applied,
                    "Date": date})
            return render.overpayment(lg, record)

        return self._act(tenant_id, act)

    def allocate_overpayment(self, overpayment_id: str, invoice_id: str, amount: float,
                             date: str | None = None, tenant_id: str | None = None) -> dict:
        """Bookkeeper applies ``amount`` of an overpayment's credit to an invoice (as PUT
        /Overpayments/{id}/Allocations does); answers the overpayment."""

        def act(lg: Ledger) -> dict:
            invoice = lg.get("invoices", invoice_id)
            lg.allocate_overpayment(overpayment_id, {
                "Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": amount,
                "Date": date})
            return render.overpayment(lg, lg.get("overpayments", overpayment_id))

        return self._act(tenant_id, act)

    def void_overpayment(self, overpayment_id: str, remove_allocations: bool = False,
                         tenant_id: str | None = None) -> dict:
        """Bookkeeper voids an overpayment (Status VOIDED; its bank transaction too): only
        one allocated to nothing, as a credit note; ``remove_allocations``: each allocation
        is removed first (the invoices are due again). Xero's API has no way to do it."""
        return self._act(tenant_id, lambda lg: render.overpayment(
            lg, lg.void_overpayment(overpayment_id, remove_allocations)))

    # ================================================================== conveniences

    def describe(self, url: str) -> dict:
        """How a client reaches this emulator: base URLs, app credentials, tenants."""
        client = self.client
        return {
            "url": url,
            "accounting_base_url": f"{url}{API}",
            "identity_base_url": url,
            "authorize_url": f"{url}/identity/connect/authorize",
            "token_url": f"{url}/connect/token",
            "revocation_url": f"{url}/connect/revocation",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scopes": DEFAULT_SCOPES,
            "tenants": [{"tenantId": t, "tenantName": lg.organisation["Name"]}
                        for t, lg in self.ledgers.items()],
            "webhook_url": self.webhook.url,
            "webhook_key": self.webhook.key,
            "control": f"{url}/_sandbox/",
        }

    def intent_to_receive(self, url: str | None = None, key: str | None = None,
                          rounds: int = 2) -> dict:
        """Run Xero's webhook intent-to-receive validation against the receiver."""
        return self.webhooks.intent_to_receive(url, key, rounds)

    def control_extra(self, request: Request, parts: list[str], body: dict) -> Response | None:
        """``POST /_sandbox/webhooks/intent-to-receive`` (optional JSON ``url``, ``key``,
        ``rounds``): run the check, answer its report (``ok``, ``url``, ``results``)."""
        if parts == ["webhooks", "intent-to-receive"] and request.method == "POST":
            unknown = set(body) - {"url", "key", "rounds"}
            if unknown:
                raise ValueError(f"unknown intent-to-receive options: {sorted(unknown)}")
            return Response(200, self.intent_to_receive(body.get("url"), body.get("key"),
                                                        int(body.get("rounds", 2))))
        return None

    def connect(self, scope: str = DEFAULT_SCOPES, client_id: str | None = None) -> dict:
        """Authorise the app for every tenant without a browser; returns a token set.

        Same code path as the HTTP flow (authorize + code exchange), for demos and fixtures.
        """
        client = self.identity.clients[client_id] if client_id else self.client
        with self.lock:
            tenants = [ledger.dump() for ledger in self.ledgers.values()]
            redirect = (client["redirect_uris"] or ["http://127.0.0.1/callback"])[0]
            location = self.identity.authorize(
                {"client_id": client["client_id"], "redirect_uri": redirect,
                 "response_type": "code", "scope": scope, "state": "direct"}, tenants)
            code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
            return self.identity.token(
                {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                 "client_id": client["client_id"], "client_secret": client["client_secret"]},
                None, {t: {"organisation": lg.organisation} for t, lg in self.ledgers.items()})

