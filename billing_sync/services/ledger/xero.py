"""Xero behind the ledger interface (xero-python for the API, OAuth2 per Xero's docs).

Xero's SDK refreshes tokens through a TokenApi whose URLs are class constants, and
it does so silently inside any call. Refresh and revocation are therefore done
here, as Xero documents them (developer.xero.com/documentation/guides/oauth2/
auth-flow), so that rotation stays single-flight under the connection model's
lock and the sandbox's base URL applies; the SDK only ever gets an access token.
"""

import hashlib
import json
from urllib.parse import urlencode

import urllib3
from xero_python.accounting import AccountingApi
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.exceptions import ApiException
from xero_python.identity import IdentityApi

from . import xero_payloads as payloads
from .base import (
    PUSH_KINDS,
    ConnectionReport,
    LedgerAdapter,
    Organisation,
    PushResult,
    ReferenceRecord,
    TokenSet,
    discovery,
)
from .errors import (
    AccessTokenExpired,
    AuthorizationRevoked,
    LedgerError,
    LedgerRejected,
    LedgerUnavailable,
    RateLimited,
)

SCOPES = ("openid profile email offline_access "
          "accounting.transactions accounting.contacts accounting.settings")
API_PATH = "/api.xro/2.0"
# Xero's largest page of contacts (pageSize)
LIST_PAGE = 1000
# Xero has no list of payment terms: a contact's or invoice's terms are a day
# number and one of these types (Accounting API, Contacts > PaymentTerms).
TERM_TYPES = [
    ("DAYSAFTERBILLDATE", "day(s) after the invoice date"),
    ("DAYSAFTERBILLMONTH", "day(s) after the end of the invoice month"),
    ("OFCURRENTMONTH", "of the current month"),
    ("OFFOLLOWINGMONTH", "of the following month"),
]


def _validation_messages(exc):
    """The ValidationErrors messages of a Xero 400 answer (empty when it has none)."""
    try:
        body = json.loads(getattr(exc, "body", None) or "{}")
    except (TypeError, ValueError):
        return []
    if not isinstance(body, dict):
        return []
    messages = [v.get("Message") for element in body.get("Elements") or []
                for v in element.get("ValidationErrors") or [] if v.get("Message")]
    return messages or ([body["Message"]] if body.get("Message") else [])


def _translate(exc, what):
    """A LedgerError for an SDK or transport failure."""
    if isinstance(exc, LedgerError):
        return exc
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return LedgerUnavailable(f"{what}: Xero could not be reached ({type(exc).__name__}).")
    status = getattr(exc, "status", None)
    headers = getattr(exc, "headers", None) or {}
    if status == 401:
        return AccessTokenExpired(f"{what}: Xero refused the access token (401).", status=401)
    if status == 403:
        return AuthorizationRevoked(
            f"{what}: Xero refused access to this organisation (403); reconnect it.", status=403)
    if status == 429:
        return RateLimited(
            f"{what}: Xero's rate limit was reached ({headers.get('X-Rate-Limit-Problem')}).",
            retry_after=int(headers.get("Retry-After") or 60),
            problem=headers.get("X-Rate-Limit-Problem"),
        )
    if status and status >= 500:
        return LedgerUnavailable(f"{what}: Xero answered {status}.", status=status)
    messages = _validation_messages(exc) if status == 400 else []
    if messages:
        return LedgerRejected(f"{what}: Xero refused it: " + " ".join(messages),
                              status=400, details=messages)
    return LedgerRejected(f"{what}: Xero answered {status}: {getattr(exc, 'reason', '')}",
                          status=status or 400)


class XeroAdapter(LedgerAdapter):
    """Xero Accounting API."""

    provider = "xero"
    label = "Xero"
    # developer.xero.com/documentation/guides/oauth2/limits: per organisation and app
    LIMITS = {"per_minute": 60, "per_day": 5000, "concurrent": 5, "batch_per_minute": None}
    # candidates find_contacts matches in one request (a ledger of < 1,000 contacts
    # is read whole; a bigger one is filtered, ~50 candidates a request)
    FIND_LIMIT = 1000
    # Xero's advice for batched writes: at most 50 objects per request
    BATCH_SIZE = 50
    # {"minute_remaining", "day_remaining"} from the last answer's rate-limit headers
    last_headroom = None

    # -- OAuth2 -------------------------------------------------------------
    def _endpoints(self):
        return discovery(self.oauth_url, self.timeout)

    def authorization_url(self, redirect_uri, state):
        query = urlencode({
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
        })
        return f"{self._endpoints()['authorization_endpoint']}?{query}"

    def _tokens(self, form, what):
        try:
            body = self._token_request(self._endpoints()["token_endpoint"], form, what)
        except LedgerRejected as exc:
            # invalid_grant: the code or refresh token is expired, used or revoked
            raise AuthorizationRevoked(exc.message, status=exc.status) from exc
        return TokenSet.from_seconds(body["access_token"], body.get("refresh_token"),
                                     body.get("expires_in", 1800))

    def exchange_code(self, code, redirect_uri, realm_id=None):
        return self._tokens({"grant_type": "authorization_code", "code": code,
                             "redirect_uri": redirect_uri}, "Authorising with Xero")

    def refresh(self, refresh_token):
        return self._tokens({"grant_type": "refresh_token", "refresh_token": refresh_token},
                            "Refreshing the Xero token")

    def revoke(self, refresh_token):
        url = self._endpoints().get("revocation_endpoint")
        if url and refresh_token:
            self._token_request(url, {"token": refresh_token}, "Revoking the Xero grant")

    # -- SDK clients ----------------------------------------------------------
    def _api_client(self, access_token):
        # no refresh token and no expiry: the SDK never refreshes on its own,
        # the connection model does, single-flight
        token = {"access_token": access_token, "token_type": "Bearer", "scope": SCOPES,
                 "expires_in": None, "expires_at": None, "refresh_token": None,
                 "id_token": None}
        # Configuration() hands out a copy of the first instance ever made:
        # set the token on it afterwards, never through the constructor.
        config = Configuration()
        config.oauth2_token = OAuth2Token(client_id=self.client_id,
                                          client_secret=self.client_secret)
        client = ApiClient(config, pool_threads=1,
                           oauth2_token_getter=lambda: token,
                           oauth2_token_saver=lambda new: None)
        # The SDK's urllib3 pool would retry GET/PUT/DELETE on 429/503 (sleeping
        # Retry-After) and on connection errors: our worker decides, so no retries.
        client.rest_client.pool_manager.connection_pool_kw["retries"] = False
        return client

    def _accounting(self, access_token):
        return AccountingApi(self._api_client(access_token), base_url=self.api_url + API_PATH)

    def _call(self, what, fn, *args, **kwargs):
        # the SDK honours only an int or a (connect, read) pair: a float is ignored
        timeout = (self.timeout, self.timeout)
        try:
            answer = fn(*args, _request_timeout=timeout, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            self._note_headroom(getattr(exc, "headers", None) if isinstance(
                exc, ApiException) else None)
            raise _translate(exc, what) from exc
        client = getattr(getattr(fn, "__self__", None), "api_client", None)
        response = getattr(client, "last_response", None)
        self._note_headroom(response.getheaders() if response is not None else None)
        return answer

    def _note_headroom(self, headers):
        def number(name):
            try:
                return int(headers.get(name))
            except (TypeError, ValueError):
                return None

        headers = headers or {}
        self.last_headroom = {"minute_remaining": number("X-MinLimit-Remaining"),
                              "day_remaining": number("X-DayLimit-Remaining")}

    # -- Organisation -------------------------------------------------------
    def organisations(self, access_token, realm_id=None):
        api = IdentityApi(self._api_client(access_token), base_url=self.api_url)
        connections = self._call("Listing Xero organisations", api.get_connections)
        return [Organisation(id=str(c.tenant_id), name=c.tenant_name or "")
                for c in connections if (c.tenant_type or "ORGANISATION") == "ORGANISATION"]

    def test_connection(self, access_token, org_id):
        api = self._accounting(access_token)
        data, _status, headers = self._call("Testing the Xero connection", api.get_organisations,
                                            org_id, _return_http_data_only=False)
        org = data.organisations[0] if data and data.organisations else None
        headroom = (f"{headers.get('X-MinLimit-Remaining', '?')} calls left this minute, "
                    f"{headers.get('X-DayLimit-Remaining', '?')} today (Xero allows 60 a minute "
                    "and 5,000 a day per organisation)")
        return ConnectionReport(organisation=org.name if org else "", headroom=headroom)

    # -- Reference data ------------------------------------------------------
    def reference_data(self, access_token, org_id):
        api = self._accounting(access_token)
        records = []
        for acc in self._call("Importing Xero accounts", api.get_accounts, org_id).accounts or []:
            kind = {"REVENUE": "revenue_account", "SALES": "revenue_account",
                    "OTHERINCOME": "revenue_account", "BANK": "bank_account"}.get(
                        str(acc.type.value if hasattr(acc.type, "value") else acc.type))
            if not kind:
                continue
            records.append(ReferenceRecord(
                kind=kind, ledger_id=str(acc.account_id), name=acc.name or "",
                code=acc.code or "", active=_status(acc.status) == "ACTIVE",
                extra={"currency": getattr(acc, "currency_code", None) and
                       _status(acc.currency_code)}))
        for tax in self._call("Importing Xero tax rates", api.get_tax_rates,
                              org_id).tax_rates or []:
            if not tax.can_apply_to_revenue:
                continue
            records.append(ReferenceRecord(
                kind="tax", ledger_id=tax.tax_type, name=tax.name or tax.tax_type,
                code=tax.tax_type, rate=float(tax.effective_rate or tax.display_tax_rate or 0),
                active=_status(tax.status) == "ACTIVE"))
        for item in self._call("Importing Xero items", api.get_items, org_id).items or []:
            if item.is_sold is False:
                continue
            records.append(ReferenceRecord(
                kind="item", ledger_id=str(item.item_id), name=item.name or item.code,
                code=item.code or ""))
        categories = self._call("Importing Xero tracking categories",
                                api.get_tracking_categories, org_id, include_archived=True)
        for cat in categories.tracking_categories or []:
            records.append(ReferenceRecord(
                kind="tracking_category", ledger_id=str(cat.tracking_category_id),
                name=cat.name, active=_status(cat.status) == "ACTIVE"))
            for opt in cat.options or []:
                records.append(ReferenceRecord(
                    kind="tracking", ledger_id=str(opt.tracking_option_id),
                    name=f"{cat.name} / {opt.name}",
                    parent_ledger_id=str(cat.tracking_category_id),
                    active=_status(opt.status) == "ACTIVE",
                    extra={"category": cat.name, "option": opt.name}))
        for code, name in TERM_TYPES:
            records.append(ReferenceRecord(kind="term", ledger_id=code, name=name, code=code))
        return records


    # -- Push ------------------------------------------------------------------
    def batch_size(self, kind):
        """Objects per request: Xero takes batches of up to 50 on every write endpoint."""
        return self.BATCH_SIZE

    def web_url(self, kind, ledger_id, org_id=None):
        """A go.xero.com link to the object (None for payments: Xero shows them on
        the invoice or the bank account, and the push result links the invoice)."""
        if not ledger_id:
            return None
        return {
            "contact": f"https://go.xero.com/Contacts/View/{ledger_id}",
            "invoice": f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={ledger_id}",
            "void_invoice":
                f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={ledger_id}",
            "credit_note": "https://go.xero.com/AccountsReceivable/ViewCreditNote.aspx"
                           f"?creditNoteID={ledger_id}",
        }.get(kind)

    def push(self, access_token, org_id, kind, items, idempotency_key):
        """Create or update up to 50 objects of one kind in ONE request.

        Contacts: POST /Contacts; invoices and voids (Status VOIDED): POST /Invoices;
        credit notes: POST /CreditNotes, then one PUT CreditNotes/{id}/Allocations per
        credit note that has allocations not yet in Xero; payments: PUT /Payments.
        Every request carries summarizeErrors=false (Xero saves the valid objects and
        flags the others) and an Idempotency-Key derived from ``idempotency_key``, so
        the same call sent again replays Xero's first answer and creates nothing.
        Payments already in Xero (``ledger_id`` set) are left alone: Xero cannot
        edit a payment. Returns one PushResult per item, in order; raises for a
        failure of the whole call (RateLimited, LedgerUnavailable, AccessTokenExpired,
        AuthorizationRevoked).
        """
        if kind not in PUSH_KINDS:
            raise ValueError(f"unknown push kind {kind!r}")
        if len(items) > self.batch_size(kind):
            raise ValueError(f"at most {self.batch_size(kind)} {kind} items per push")
        results = [None] * len(items)
        models, positions = [], []
        for index, item in enumerate(items):
            if kind == "payment" and item.ledger_id:
                results[index] = PushResult(
                    item.key, True, ledger_id=item.ledger_id, version=item.version,
                    url=self.web_url("invoice", item.values.get("invoice_ref")))
                continue
            try:
                models.append(payloads.build(item))
            except payloads.PayloadError as exc:
                results[index] = PushResult(item.key, False, ledger_id=item.ledger_id,
                                            error=LedgerRejected(str(exc), details=exc.messages))
                continue
            positions.append(index)
        if models:
            api = self._accounting(access_token)
            answers = self._send(api, org_id, kind, models, _key(idempotency_key))
            for index, answer in zip(positions, answers, strict=True):
                results[index] = self._result(kind, items[index], answer)
            if kind == "credit_note":
                self._allocate(api, org_id, items, results, positions, answers,
                               idempotency_key)
        return results

    _WHAT = {"contact": "Sending contacts to Xero", "invoice": "Sending invoices to Xero",
             "credit_note": "Sending credit notes to Xero",
             "payment": "Sending payments to Xero", "void_invoice": "Voiding invoices in Xero"}

    def _send(self, api, org_id, kind, models, key):
        """One write request; the answered objects in request order (a LedgerRejected
        per object when Xero refused the request as a whole)."""
        body = payloads.envelope(kind, models)
        method, extra = {
            "contact": (api.update_or_create_contacts, {}),
            "invoice": (api.update_or_create_invoices, {"unitdp": payloads.UNITDP}),
            "void_invoice": (api.update_or_create_invoices, {}),
            "credit_note": (api.update_or_create_credit_notes, {"unitdp": payloads.UNITDP}),
            "payment": (api.create_payments, {}),
        }[kind]
        try:
            answer = self._call(self._WHAT[kind], method, org_id, body, summarize_errors=False,
                                idempotency_key=key, **extra)
        except LedgerRejected as exc:
            return _spread(exc, len(models))
        field = {"contact": "contacts", "invoice": "invoices", "void_invoice": "invoices",
                 "credit_note": "credit_notes", "payment": "payments"}[kind]
        objects = list(getattr(answer, field, None) or [])
        if len(objects) != len(models):
            raise LedgerUnavailable(f"{self._WHAT[kind]}: Xero answered {len(objects)} objects "
                                    f"for {len(models)} sent.")
        return objects

    def _result(self, kind, item, answer):
        """PushResult of one answered object (or of a whole-request refusal)."""
        if isinstance(answer, LedgerRejected):
            return PushResult(item.key, False, ledger_id=item.ledger_id, error=answer)
        messages = [v.message for v in (answer.validation_errors or []) if v.message]
        if messages or _status(answer.status_attribute_string) == "ERROR":
            messages = messages or ["Xero refused it without saying why."]
            return PushResult(item.key, False, ledger_id=item.ledger_id, error=LedgerRejected(
                "Xero refused it: " + " ".join(messages), details=messages))
        updated = getattr(answer, "updated_date_utc", None)
        version = updated.isoformat() if updated else None
        if kind == "contact":
            ledger_id, number = answer.contact_id, answer.contact_number
        elif kind in ("invoice", "void_invoice"):
            ledger_id, number = answer.invoice_id, answer.invoice_number
        elif kind == "credit_note":
            ledger_id, number = answer.credit_note_id, answer.credit_note_number
        else:
            ledger_id, number = answer.payment_id, None
        url = (self.web_url("invoice", item.values.get("invoice_ref")) if kind == "payment"
               else self.web_url(kind, str(ledger_id)))
        warning = None
        if kind == "void_invoice" and _status(answer.status) != "VOIDED":
            return PushResult(item.key, False, ledger_id=str(ledger_id), error=LedgerRejected(
                f"Xero left the invoice {_status(answer.status)}, not VOIDED."))
        if kind in ("invoice", "credit_note") and item.values.get("amount_total") is not None:
            expected = round(float(item.values["amount_total"]), 2)
            total = round(float(answer.total or 0.0), 2)
            if abs(total - expected) > 0.005:
                warning = LedgerError(f"Xero's total is {total:.2f}, Odoo's {expected:.2f} "
                                      "(tax rounding or mapping differs).")
        return PushResult(item.key, True, ledger_id=str(ledger_id), number=number or None,
                          version=version, url=url, error=warning)

    def _allocate(self, api, org_id, items, results, positions, answers, idempotency_key):
        """Allocate each new AUTHORISED credit note to its invoices: one request per
        credit note that needs it. A refusal leaves the credit note ok, with a warning."""
        for index, answer in zip(positions, answers, strict=True):
            result = results[index]
            if not result.ok or isinstance(answer, LedgerRejected):
                continue
            already = [a.invoice.invoice_id for a in (answer.allocations or [])
                       if a.invoice is not None and not a.is_deleted]
            try:
                wanted = payloads.allocations(items[index].values, already)
            except payloads.PayloadError as exc:
                result.error = LedgerRejected(f"The credit note is in Xero but was not "
                                              f"allocated: {exc}", details=exc.messages)
                continue
            if not wanted:
                continue
            if _status(answer.status) != "AUTHORISED":
                result.error = LedgerRejected(
                    f"The credit note is {_status(answer.status)} in Xero, so it was not "
                    "allocated to its invoice.")
                continue
            try:
                done = self._call(
                    "Allocating a credit note in Xero", api.create_credit_note_allocation,
                    org_id, result.ledger_id, wanted,
                    summarize_errors=False,
                    idempotency_key=_key(f"{idempotency_key}:alloc:{result.ledger_id}"))
            except LedgerRejected as exc:
                result.error = LedgerRejected(f"The credit note is in Xero but its allocation "
                                              f"was refused: {exc.message}", details=exc.details)
                continue
            messages = [v.message for a in (done.allocations or [])
                        for v in (a.validation_errors or []) if v.message]
            if messages:
                result.error = LedgerRejected(
                    "The credit note is in Xero but its allocation was refused: "
                    + " ".join(messages), details=messages)

    def find_contacts(self, access_token, org_id, candidates):
        """{key: ContactID} of existing active Xero contacts matching the candidates
        by tax number, then email, then exact name (case-insensitive, as Xero).

        One GET Contacts per ``where`` filter OR-ing every candidate's values
        (a filter of at most payloads.MAX_WHERE_CHARS: 50 candidates take 1-2).
        """
        candidates = [c for c in candidates if c.get("key")]
        if not candidates:
            return {}
        api = self._accounting(access_token)
        clauses = list(payloads.where_clauses(candidates))
        if len(clauses) > 1:
            # many candidates (a backfill): a ledger of fewer than a thousand
            # contacts is read whole in one request instead of one per filter
            page = self._call("Reading Xero contacts", api.get_contacts, org_id, page=1,
                              page_size=LIST_PAGE).contacts or []
            if len(page) < LIST_PAGE:
                return payloads.match_contacts(candidates, _contact_rows(page))
        found = []
        for where in clauses:
            answer = self._call("Looking for existing Xero contacts", api.get_contacts,
                                org_id, where=where, page=1, page_size=1000)
            found += _contact_rows(answer.contacts or [])
        return payloads.match_contacts(candidates, found)


def _contact_rows(contacts):
    """The matching fields of active contacts."""
    return [{"ContactID": str(c.contact_id), "TaxNumber": c.tax_number,
             "EmailAddress": c.email_address, "Name": c.name}
            for c in contacts if _status(c.contact_status) in ("", "ACTIVE")]


def _key(key):
    """Xero's Idempotency-Key (at most 128 characters; longer keys are hashed)."""
    key = str(key)
    return key if len(key) <= 128 else "h-" + hashlib.sha256(key.encode()).hexdigest()


def _spread(error, count):
    """A whole-request refusal as one LedgerRejected per object sent (the element's own
    messages when Xero listed one element per object)."""
    details = list(error.details or [])
    if len(details) == count:
        return [LedgerRejected(f"Xero refused it: {m}", status=error.status, details=[m])
                for m in details]
    return [error] * count


def _status(value):
    return str(getattr(value, "value", value) or "")
