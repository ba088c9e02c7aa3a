"""QboSandbox: the QuickBooks Online Accounting API v3 emulator (plus Intuit's OAuth 2.0).

python-quickbooks and intuit-oauth talk to it with only their base URLs changed:

    auth = AuthClient(client_id, client_secret, redirect_uri,
                      environment=f"{url}/.well-known/openid_sandbox_configuration")
    qb = QuickBooks(auth_client=auth, refresh_token=..., company_id=realm_id, minorversion=75)
    qb.api_url_v3 = f"{url}/v3"

(``AuthClient`` treats an ``environment`` that is not "sandbox"/"production" as the URL of the
discovery document and takes every OAuth endpoint from it; ``QuickBooks.api_url`` reads the
``api_url_v3`` attribute.)  Given an AuthClient, python-quickbooks talks through
requests-oauthlib, which refuses plain http on loopback unless ``OAUTHLIB_INSECURE_TRANSPORT=1``;
a plain ``requests.Session`` with an ``access_token`` attribute as ``qb.session`` needs no
such switch (billing_sync's adapter does that).

Per realm: in-memory company state (:mod:`.store`, rules in :mod:`.entities`), the query
language (:mod:`.query`), CDC (:mod:`.cdc`), batch (:mod:`.batch`), ``requestid``
idempotency, Intuit's throttles (500 requests/minute, 10/second, 10 concurrent, 40 batch
calls/minute per realm; HTTP 429 Fault 3001), webhooks signed with ``intuit-signature``
(:mod:`.webhooks`) and the bookkeeper control actions (:mod:`.bookkeeper`).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from ..core import RateLimiter, Request, Response, SandboxApp, SandboxError
from . import errors, query
from .batch import run_batch
from .bookkeeper import BookkeeperMixin
from .cdc import change_data_capture
from .entities import Ledger
from .fields import ENTITY_FIELDS
from .oauth import ACCOUNTING_SCOPE, OAuthServer
from .seed import DEFAULT_VERIFIER_TOKEN, default_seed
from .store import ENTITY_TYPES, Realm
from .webhooks import QboWebhooks

REALM = r"/v3/company/(?P<realm>[0-9]+)"


class QboSandbox(BookkeeperMixin, SandboxApp):
    """The QuickBooks Online emulator; see the module docstring for how SDKs connect."""

    name = "qbo"

    def __init__(self, clock: Callable[[], dt.datetime] | None = None, seed: dict | None = None,
                 window_seconds: float = 60.0, per_minute: int | None = 500,
                 per_second: int | None = 10, concurrent: int | None = 10,
                 batch_per_minute: int | None = 40, access_lifetime: int = 3600,
                 webhook_url: str | None = None,
                 verifier_token: str = DEFAULT_VERIFIER_TOKEN, hang_seconds: float = 30.0):
        super().__init__(clock=clock, hang_seconds=hang_seconds,
                         limiter=RateLimiter(per_minute=per_minute, concurrent=concurrent,
                                             window_seconds=window_seconds))
        self.webhook.url = webhook_url
        self.webhook.key = verifier_token
        # Intuit's per-second and batch throttles; the "second" is window_seconds / 60.
        self.second_limiter = RateLimiter(per_minute=per_second,
                                          window_seconds=window_seconds / 60.0)
        self.batch_limiter = RateLimiter(per_minute=batch_per_minute,
                                         window_seconds=window_seconds)
        self.throttle_format = "json"
        self.notify_api_changes = True
        self.webhooks = QboWebhooks(self)
        self.seed = seed if seed is not None else default_seed()
        self.realms: dict[str, Realm] = {}
        self.ledgers: dict[str, Ledger] = {}
        self.oauth = OAuthServer(self.now, lambda: list(self.realms),
                                 access_lifetime=access_lifetime)
        self.load_state(self.seed)
        self.routes = self._build_routes()

    def now(self) -> dt.datetime:
        """The app clock (replaceable by tests: assign ``app.clock``)."""
        return self.clock()

    # ------------------------------------------------------------------ routes

    def _build_routes(self) -> list:
        open_route = {"auth": False, "limited": False, "idempotent": False}
        routes: list = [
            ("GET", r"/\.well-known/openid(?:_sandbox)?_configuration/?", self.oauth.discovery,
             {**open_route, "label": "GET /.well-known/openid_configuration"}),
            ("GET", r"/connect/oauth2", self._locked(self.oauth.authorize),
             {**open_route, "label": "GET /connect/oauth2"}),
            ("POST", r"/oauth2/v1/tokens/bearer", self._locked(self.oauth.token),
             {**open_route, "label": "POST /oauth2/v1/tokens/bearer"}),
            ("POST", r"/v2/oauth2/tokens/revoke", self._locked(self.oauth.revoke),
             {**open_route, "label": "POST /v2/oauth2/tokens/revoke"}),
            ("GET", r"/v1/openid_connect/userinfo", self.oauth.userinfo,
             {**open_route, "label": "GET /v1/openid_connect/userinfo"}),
        ]
        api = {"idempotent": False}  # QuickBooks' idempotency is the requestid parameter
        for method in ("GET", "POST"):
            routes.append((method, REALM + r"/query", self._api(self._query),
                           {**api, "label": f"{method} /v3/company/{{realmId}}/query"}))
        routes.append(("GET", REALM + r"/cdc", self._api(self._cdc),
                       {**api, "label": "GET /v3/company/{realmId}/cdc"}))
        routes.append(("POST", REALM + r"/batch", self._api(self._batch, batch=True),
                       {**api, "label": "POST /v3/company/{realmId}/batch"}))
        routes.append(("GET", REALM + r"/preferences", self._api(self._preferences),
                       {**api, "label": "GET /v3/company/{realmId}/preferences"}))
        routes.append(("GET", REALM + r"/companyinfo/(?P<id>[0-9]+)",
                       self._api(self._company_info),
                       {**api, "label": "GET /v3/company/{realmId}/companyinfo/{id}"}))
        for entity in ENTITY_TYPES:
            low = entity.lower()
            routes.append(("POST", REALM + rf"/{low}", self._api(self._write, entity=entity),
                           {**api, "label": f"POST /v3/company/{{realmId}}/{low}"}))
            routes.append(("GET", REALM + rf"/{low}/(?P<id>[^/]+)",
                           self._api(self._read, entity=entity),
                           {**api, "label": f"GET /v3/company/{{realmId}}/{low}/{{id}}"}))
        return routes

    def _locked(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            with self.lock:
                return handler(request)
        return run

    def _api(self, handler: Callable[..., Any], batch: bool = False,
             entity: str | None = None) -> Callable[[Request], Response]:
        """Wrap an API handler: throttles, minorversion, requestid replay, Faults, webhooks."""

        def run(request: Request) -> Response:
            realm_id = request.params["realm"]
            for limiter in ([self.batch_limiter] if batch else []) + [self.second_limiter]:
                decision = limiter.acquire(realm_id)
                limiter.release(realm_id)  # these limits count calls, not calls in flight
                if not decision.allowed:
                    return self._throttled()
            minor = request.arg("minorversion")
            if minor not in (None, "") and not str(minor).isdigit():
                return errors.invalid_property(
                    f"Invalid minorversion {minor!r}", "minorversion").response(self.now())
            request_id = request.arg("requestid") if request.method == "POST" else None
            if not request_id:
                return self._execute(handler, request, realm_id, entity)
            limit = 36 if batch else 50  # Intuit's RequestID length limits
            if len(request_id) > limit:
                return errors.business(
                    f"You cannot enter more than {limit} characters in the request_id field. "
                    f"You tried entering {request_id[:10]}..., which is {len(request_id)} "
                    "characters.").response(self.now())
            scope = f"qbo:{realm_id}"
            with self.idempotency.lock(scope, request_id):
                stored = self.idempotency.get(scope, request_id)
                if stored is not None:
                    return stored  # Intuit answers a repeated requestid with the first answer
                # one step under the app lock: a state snapshot never holds the change
                # without the answer a replay of this requestid must give
                with self.lock:
                    response = self._execute(handler, request, realm_id, entity)
                    if response.status < 500:
                        self.idempotency.put(scope, request_id, response)
                return response

        return run

    def _execute(self, handler: Callable[..., Any], request: Request, realm_id: str,
                 entity: str | None) -> Response:
        with self.lock:
            ledger = self.ledgers.get(realm_id)
            if ledger is None:
                return errors.authorization_failed(self.now())
            ledger.events.clear()
            try:
                args = (request, ledger, entity) if entity else (request, ledger)
                body = handler(*args)
                response = Response(200, {**body, "time": errors.qbo_time(self.now())})
            except errors.QboFault as fault:
                response = fault.response(self.now())
            if self.notify_api_changes:
                self._notify(realm_id, ledger)
            ledger.events.clear()
            return response

    # ------------------------------------------------------------------ handlers

    def _read(self, request: Request, ledger: Ledger, entity: str) -> dict:
        return {entity: ledger.read(entity, request.params["id"])}

    def _write(self, request: Request, ledger: Ledger, entity: str) -> dict:
        body = request.json()
        if body is None:
            raise errors.bad_request("Request body is not valid JSON")
        operation = (request.arg("operation") or "").lower()
        include = (request.arg("include") or "").lower()
        if operation == "delete":
            return {entity: ledger.delete(entity, body)}
        if operation == "void" or (operation == "update" and include == "void"):
            return {entity: ledger.void(entity, body)}
        if operation not in ("", "create", "update"):
            raise errors.unsupported(operation, entity)
        if isinstance(body, dict) and body.get("Id") not in (None, "", 0, "0"):
            return {entity: ledger.update(entity, body)}
        return {entity: ledger.create(entity, body)}

    def _query(self, request: Request, ledger: Ledger) -> dict:
        text = request.arg("query")
        if not text:
            text = request.body.decode("utf-8", "replace")
        return {"QueryResponse": self.run_query(ledger, text)}

    def run_query(self, ledger: Ledger, text: str) -> dict:
        """Run one query statement for a realm; returns the QueryResponse element."""
        try:
            parsed = query.parse(text)
            entity = query.validate(parsed, ENTITY_FIELDS)
        except query.QueryError as exc:
            raise errors.query_error(exc.kind, exc.detail) from exc
        records = ledger.records(entity)
        if "Active" in ENTITY_FIELDS[entity] and not query.mentions(parsed, "Active"):
            # Name lists return active entities unless the query asks about Active.
            records = [r for r in records if r.get("Active", True) is not False]
        page, total = query.run(parsed, records)
        if parsed.count:
            return {"totalCount": total}
        if not page:
            return {}
        page = [query.project(parsed, record) for record in page]
        return {entity: page, "startPosition": parsed.start_position, "maxResults": len(page)}

    def _cdc(self, request: Request, ledger: Ledger) -> dict:
        return change_data_capture(ledger, request.arg("entities"), request.arg("changedSince"),
                                   self.now())

    def _batch(self, request: Request, ledger: Ledger) -> dict:
        items = run_batch(ledger, request.json(), lambda text: self.run_query(ledger, text))
        return {"BatchItemResponse": items}

    def _company_info(self, request: Request, ledger: Ledger) -> dict:
        realm = ledger.realm
        if request.params["id"] != realm.realm_id:
            raise errors.not_found("CompanyInfo", request.params["id"])
        return {"CompanyInfo": {
            "Id": realm.realm_id, "SyncToken": "0", "domain": "QBO", "sparse": False,
            "CompanyName": realm.company_name, "LegalName": realm.company_name,
            "Country": realm.country, "SupportedLanguages": "en",
            "DefaultTimeZone": "UTC", "FiscalYearStartMonth": "January",
            "CompanyStartDate": "2026-01-01",
            "NameValue": [{"Name": "HomeCurrency", "Value": realm.currency}],
        }}

    def _preferences(self, request: Request, ledger: Ledger) -> dict:
        """GET /preferences: the parts of Preferences the emulator keeps (currency, tax)."""
        realm = ledger.realm
        return {"Preferences": {
            "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": False,
            "CurrencyPrefs": {"HomeCurrency": {"value": realm.currency},
                              "MultiCurrencyEnabled": realm.multicurrency},
            "TaxPrefs": {"UsingSalesTax": realm.using_sales_tax},
            "MetaData": {"CreateTime": "2026-01-01T00:00:00+00:00",
                         "LastUpdatedTime": "2026-01-01T00:00:00+00:00"},
        }}

    # ------------------------------------------------------------------ webhooks

    def _notify(self, realm_id: str, ledger: Ledger) -> None:
        """Queue the changes ``ledger.events`` recorded for the next (batched, signed)
        notification (:mod:`.webhooks`)."""
        if not ledger.events:
            return
        realm = ledger.realm
        changes = [(entity, entity_id, op, realm.stamp(entity, entity_id) or
                    self.now().timestamp()) for entity, entity_id, op in ledger.events]
        self.webhooks.publish(realm_id, changes)

    # ------------------------------------------------------------------ core hooks

    def authenticate(self, request: Request) -> Response | None:
        """Bearer access token valid, unexpired, unrevoked, for this realm and scope."""
        record, problem = self.oauth.check_bearer(request)
        if record is None:
            return errors.authentication_failed(problem, self.now())
        realm_id = request.params.get("realm")
        if realm_id and (record["realm_id"] != realm_id
                         or ACCOUNTING_SCOPE not in record["scope"].split()):
            return errors.authorization_failed(self.now())
        return None

    def rate_limit_key(self, request: Request) -> str | None:
        """Per-minute and concurrent limits are per realm."""
        return request.params.get("realm")

    def rate_limited_response(self, request: Request, decision: Any) -> Response:
        """Intuit's 429 (no Retry-After: Intuit documents "wait 60 seconds")."""
        return self._throttled()

    def _throttled(self) -> Response:
        if self.throttle_format == "xml":
            return errors.throttled_xml(self.now())
        return errors.throttled(self.now())

    def fault_response(self, kind: str, request: Request, opts: dict) -> Response:
        """Injected faults in Intuit's shapes."""
        if kind == "http429":
            return self._throttled()
        if kind == "http401":
            return errors.authentication_failed("Token expired: injected sandbox fault",
                                                self.now())
        return errors.system_fault(int(kind[4:]), self.now())

    @staticmethod
    def _answered_entities(body: dict) -> list[dict]:
        """The entities of an answer: each BatchItemResponse's, a single write's or read's,
        and the rows of a QueryResponse."""
        found: list[dict] = []

        def collect(holder: dict) -> None:
            for key, value in holder.items():
                if key in ("bId", "Fault", "time"):
                    continue
                if key == "QueryResponse" and isinstance(value, dict):
                    for rows in value.values():
                        if isinstance(rows, list):
                            found.extend(r for r in rows if isinstance(r, dict))
                elif isinstance(value, dict):
                    found.append(value)

        for item in body.get("BatchItemResponse") or []:
            if isinstance(item, dict):
                collect(item)
        collect({k: v for k, v in body.items() if k != "BatchItemResponse"})
        return found

    def strip_ids(self, body: dict) -> None:
        """Fault ``no_ids``: every answered entity without its Id."""
        for entity in self._answered_entities(body):
            entity.pop("Id", None)

    def drop_one(self, body: dict) -> None:
        """Fault ``one_fewer``: the last BatchItemResponse (else the last row of a query,
        else the one entity a single write or read answers) left out."""
        if body.get("BatchItemResponse"):
            body["BatchItemResponse"].pop()
            return
        for rows in (body.get("QueryResponse") or {}).values():
            if isinstance(rows, list) and rows:
                rows.pop()
                return
        for key in [k for k, v in body.items() if k != "time" and isinstance(v, dict)]:
            body.pop(key)
            return

    def render_error(self, request: Request, error: SandboxError) -> Response:
        """Faults raised outside the API wrapper (e.g. unknown paths)."""
        if isinstance(error, errors.QboFault):
            return error.response(self.now())
        if error.kind == "not_found":
            fault = errors.validation(
                404 if error.status == 404 else 405, "Resource not found",
                f"No QuickBooks Online resource at {request.method} {request.path}",
                status=error.status)
            return fault.response(self.now())
        return errors.validation(2010, "Request has invalid or unsupported property",
                                 error.message, status=error.status).response(self.now())

    # ------------------------------------------------------------------ state

    STATE_SHAPE = {  # a complete dump_state() (state files are checked against it)
        "realms": [{"realm_id": str, "entities": dict, "deleted": dict, "stamps": dict,
                    "next_id": dict, "next_doc_number": dict}],
        "oauth": {"clients": dict, "codes": dict, "refresh_tokens": dict,
                  "access_tokens": dict},
    }

    def reset_state(self) -> None:
        """Back to the seed: realms re-created, tokens forgotten, clients re-registered."""
        self.oauth.clear_tokens()
        self.load_state(self.seed)
        self.second_limiter.reset()
        self.batch_limiter.reset()
        self.webhooks.sent.clear()

    def dump_state(self) -> dict:
        """Realms and OAuth state (clients and live tokens)."""
        return {"realms": [realm.dump() for realm in self.realms.values()],
                "oauth": self.oauth.dump()}

    def load_state(self, data: dict) -> None:
        """Replace realms (and OAuth state when present) with dumped data."""
        data = copy.deepcopy(data)  # the seed must survive later changes to the state
        realms = [Realm.load(item) for item in data.get("realms") or []]
        self.realms = {realm.realm_id: realm for realm in realms}
        self.ledgers = {realm.realm_id: Ledger(realm, self.now) for realm in realms}
        if data.get("oauth"):
            self.oauth.load(data["oauth"])

    def dump_settings(self) -> dict:
        """Core settings (webhook URL, verifier token) plus the access-token lifetime,
        whether API changes are notified and the webhook payload format."""
        return {**super().dump_settings(), "access_lifetime": self.oauth.access_lifetime,
                "notify_api_changes": self.notify_api_changes,
                "webhook_format": self.webhooks.format}

    def load_settings(self, settings: dict) -> None:
        """Apply :meth:`dump_settings` output (absent names keep their value)."""
        super().load_settings(settings)
        if "access_lifetime" in settings:
            self.oauth.access_lifetime = int(settings["access_lifetime"])
        if "notify_api_changes" in settings:
            self.notify_api_changes = bool(settings["notify_api_changes"])
        if "webhook_format" in settings:
            self.webhooks.set_format(settings["webhook_format"])

    def add_realm(self, realm: Realm) -> None:
        """Add a company (tests use several realms)."""
        with self.lock:
            self.realms[realm.realm_id] = realm
            self.ledgers[realm.realm_id] = Ledger(realm, self.now)

    def describe(self, url: str) -> dict:
        """How a client connects (printed by ``python3 -m ledger_sandbox``)."""
        clients = [{"client_id": cid, "client_secret": c["secret"]}
                   for cid, c in self.oauth.clients.items()]
        return {
            "url": url,
            "discovery_url": f"{url}/.well-known/openid_sandbox_configuration",
            "api_url_v3": f"{url}/v3",
            "realms": list(self.realms),
            "clients": clients,
            "verifier_token": self.webhook.key,
            "connect": ("AuthClient(client_id, client_secret, redirect_uri, environment="
                        "discovery_url); QuickBooks(...).api_url_v3 = api_url_v3; "
                        "OAUTHLIB_INSECURE_TRANSPORT=1"),
        }

    @property
    def default_realm_id(self) -> str:
        """The first realm (the one the authorize page offers first)."""
        return next(iter(self.realms))

    def configure(self, **options: Any) -> dict:
        """Core options plus ``per_second``, ``batch_per_minute``, ``access_lifetime``,
        ``verifier_token`` (= ``webhook_key``), ``throttle_format`` ("json"|"xml"),
        ``base_currency`` (home currency), ``multicurrency`` (bool), ``currencies`` (the
        CompanyCurrency codes), ``exchange_rates`` ({code: home units per unit}),
        ``notify_api_changes``, ``redirect_uris`` (for the default client),
        ``webhook_format`` ("cloudevents" (default) | "legacy") and
        ``webhook_batch_seconds`` (how long events of every realm are aggregated into one
        delivery; default 0.2, 0 = one delivery per request)."""
        if "webhook_format" in options:
            try:
                self.webhooks.set_format(options.pop("webhook_format"))
            except ValueError as error:
                raise SandboxError(400, str(error), kind="config") from None
        if "webhook_batch_seconds" in options:
            seconds = float(options.pop("webhook_batch_seconds"))
            if seconds < 0:
                raise SandboxError(400, "webhook_batch_seconds must not be negative",
                                   kind="config")
            self.webhook.batch_seconds = seconds
        if "window_seconds" in options:
            window = float(options["window_seconds"])
            self.second_limiter.configure(window_seconds=window / 60.0)
            self.batch_limiter.configure(window_seconds=window)
        if "per_second" in options:
            self.second_limiter.configure(per_minute=options.pop("per_second"))
        if "batch_per_minute" in options:
            self.batch_limiter.configure(per_minute=options.pop("batch_per_minute"))
        if "access_lifetime" in options:
            self.oauth.access_lifetime = int(options.pop("access_lifetime"))
        if "verifier_token" in options:
            options["webhook_key"] = options.pop("verifier_token")
        if "throttle_format" in options:
            value = options.pop("throttle_format")
            if value not in ("json", "xml"):
                raise SandboxError(400, "throttle_format must be json or xml", kind="config")
            self.throttle_format = value
        if "base_currency" in options:
            # the companies' home currency (set to the Odoo company's, as for Xero)
            currency = str(options.pop("base_currency")).upper()
            with self.lock:
                for realm in self.realms.values():
                    realm.currency = currency
        if {"multicurrency", "currencies", "exchange_rates"} & set(options):
            self._configure_currencies(options.pop("multicurrency", None),
                                       options.pop("currencies", None),
                                       options.pop("exchange_rates", None))
        if "notify_api_changes" in options:
            self.notify_api_changes = bool(options.pop("notify_api_changes"))
        if "redirect_uris" in options:
            for client in self.oauth.clients.values():
                client["redirect_uris"] = options["redirect_uris"]
            options.pop("redirect_uris")
        return super().configure(**options)

    def _configure_currencies(self, enabled: Any, currencies: Any, rates: Any) -> None:
        """Multicurrency on or off, the CompanyCurrency list (codes; others made inactive)
        and the day rates (home units per foreign unit) for every company."""
        with self.lock:
            for realm_id, realm in self.realms.items():
                if enabled is not None:
                    realm.multicurrency = bool(enabled)
                if rates is not None:
                    realm.exchange_rates = {str(k).upper(): float(v) for k, v in rates.items()}
                if currencies is None:
                    continue
                wanted = {str(c).upper() for c in currencies} - {realm.currency}
                ledger = self.ledgers[realm_id]
                for record in list(realm.entities["CompanyCurrency"].values()):
                    active = record["Code"] in wanted
                    wanted.discard(record["Code"])
                    if record.get("Active", True) != active:
                        realm.put("CompanyCurrency", {**record, "Active": active}, self.now(),
                                  created=False)
                if wanted and not realm.multicurrency:
                    raise SandboxError(400, "currencies need multicurrency=true", kind="config")
                for code in sorted(wanted):
                    ledger.create("CompanyCurrency", {"Code": code})
                ledger.events.clear()

    def config(self) -> dict:
        """Effective configuration (secrets excluded)."""
        return {**super().config(), "per_second": self.second_limiter.per_minute,
                "batch_per_minute": self.batch_limiter.per_minute,
                "access_lifetime": self.oauth.access_lifetime,
                "throttle_format": self.throttle_format,
                "notify_api_changes": self.notify_api_changes,
                "webhook_format": self.webhooks.format,
                "webhook_batch_seconds": self.webhook.batch_seconds,
                "realms": list(self.realms), "clients": list(self.oauth.clients)}
