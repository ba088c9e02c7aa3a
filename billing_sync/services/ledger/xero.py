"""Xero behind the ledger interface (xero-python for the API, OAuth2 per Xero's docs).

Xero's SDK refreshes tokens through a TokenApi whose URLs are class constants, and
it does so silently inside any call. Refresh and revocation are therefore done
here, as Xero documents them (developer.xero.com/documentation/guides/oauth2/
auth-flow), so that rotation stays single-flight under the connection model's
lock and the sandbox's base URL applies; the SDK only ever gets an access token.
"""

import functools
import hashlib
import json
import uuid
from collections import namedtuple
from dataclasses import dataclass, field

import urllib3
from xero_python.accounting import AccountingApi, Contacts, CreditNotes, Invoices, Payments
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.exceptions import ApiException
from xero_python.identity import IdentityApi

from ..contacts import ContactMatches
from . import tokens
from . import xero_payloads as payloads
from .base import (
    CHANGES_LIMIT,
    ConnectionReport,
    ContactChanges,
    ContactState,
    CreditNoteState,
    DocumentChanges,
    InvoiceState,
    Kind,
    LedgerAdapter,
    Organisation,
    PaymentState,
    PushResult,
    ReferenceRecord,
    change_cursor,
    given_id,
    latest_cursor,
    utc_timestamp,
)
from .errors import (
    AccessTokenExpired,
    AuthorizationRevoked,
    LedgerAnswerInvalid,
    LedgerError,
    LedgerRejected,
    LedgerUnavailable,
    RateLimited,
    cap,
    unknown_outcome,
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


# What Xero answers for each type of object (a push kind names its own in KINDS): the
# array (the SDK's attribute, Xero's own name), the id each object in it carries (the
# SDK's attribute, Xero's name) and what a message calls the objects.
Answer = namedtuple("Answer", "attribute name id_attribute id_name noun")
ANSWERS = {
    "contact": Answer("contacts", "Contacts", "contact_id", "ContactID", "contacts"),
    "invoice": Answer("invoices", "Invoices", "invoice_id", "InvoiceID", "invoices"),
    "credit_note": Answer("credit_notes", "CreditNotes", "credit_note_id", "CreditNoteID",
                          "credit notes"),
    "payment": Answer("payments", "Payments", "payment_id", "PaymentID", "payments"),
    "overpayment": Answer("overpayments", "Overpayments", "overpayment_id", "OverpaymentID",
                          "overpayments"),
    # a refused allocation has no id: the count decides
    "allocation": Answer("allocations", "Allocations", None, None, "allocations"),
    # reference data: the id is what a mapping stores
    "account": Answer("accounts", "Accounts", "account_id", "AccountID", "accounts"),
    "tax": Answer("tax_rates", "TaxRates", "tax_type", "TaxType", "tax rates"),
    "item": Answer("items", "Items", "item_id", "ItemID", "items"),
    "tracking_category": Answer("tracking_categories", "TrackingCategories",
                                "tracking_category_id", "TrackingCategoryID",
                                "tracking categories"),
    "tracking": Answer("options", "Options", "tracking_option_id", "TrackingOptionID",
                       "tracking options"),
    "currency": Answer("currencies", "Currencies", "code", "Code", "currencies"),
}
UNKNOWN_OUTCOME = unknown_outcome("Xero", "idempotency key")
# Xero's advice for batched writes: at most 50 objects per request
BATCH_SIZE = 50
# GET Contacts (Payments, Overpayments, Invoices, CreditNotes)?page=n answers 100 a page
# (no pageSize sent): changed_contacts (changed_documents, for each list) reads up to
# CHANGES_LIMIT of them, 10 requests, per call
CHANGES_PAGE = 100
CHANGES_REQUESTS = CHANGES_LIMIT // CHANGES_PAGE


@dataclass(frozen=True, kw_only=True)
class XeroKind(Kind):
    """One kind Xero is sent (see base.Kind): ``build(item)`` is its xero-python model;
    ``method`` the AccountingApi write that takes a batch of them (its extra arguments in
    ``params``), ``envelope`` the model wrapping the batch, ``answer`` the ANSWERS entry of
    what Xero sends back; ``number`` the answered object's number attribute, ``due`` its
    amount due attribute (set for documents: their totals are read back), ``status`` the
    Status Xero must answer for the write to have happened (a void: VOIDED)."""

    method: str | None = None
    params: dict = field(default_factory=dict)
    envelope: type | None = None
    answer: str | None = None
    number: str | None = None
    due: str | None = None
    status: str | None = None


_INVOICE_PAGE = "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={id}"
_DOCUMENT = {"params": {"unitdp": payloads.UNITDP}}
# Payments are not pages of their own in Xero (it shows them on the invoice or the bank
# account): a payment's result links its invoice instead
KINDS = {
    "contact": XeroKind(
        batch_size=BATCH_SIZE, what="Sending contacts to Xero",
        web_url="https://go.xero.com/Contacts/View/{id}",
        build=lambda item: payloads.contact(item.values, item.ledger_id),
        method="update_or_create_contacts", envelope=Contacts, answer="contact",
        number="contact_number"),
    "invoice": XeroKind(
        batch_size=BATCH_SIZE, what="Sending invoices to Xero", web_url=_INVOICE_PAGE,
        build=lambda item: payloads.invoice(item.values, item.ledger_id),
        method="update_or_create_invoices", envelope=Invoices, answer="invoice",
        number="invoice_number", due="amount_due", **_DOCUMENT),
    "credit_note": XeroKind(
        batch_size=BATCH_SIZE, what="Sending credit notes to Xero",
        web_url="https://go.xero.com/AccountsReceivable/ViewCreditNote.aspx"
                "?creditNoteID={id}",
        build=lambda item: payloads.credit_note(item.values, item.ledger_id),
        method="update_or_create_credit_notes", envelope=CreditNotes, answer="credit_note",
        number="credit_note_number", due="remaining_credit", **_DOCUMENT),
    "payment": XeroKind(
        batch_size=BATCH_SIZE, what="Sending payments to Xero",
        build=lambda item: payloads.payment(item.values),
        method="create_payments", envelope=Payments, answer="payment"),
    "void_invoice": XeroKind(
        batch_size=BATCH_SIZE, what="Voiding invoices in Xero", web_url=_INVOICE_PAGE,
        build=lambda item: payloads.void_invoice(item.ledger_id),
        method="update_or_create_invoices", envelope=Invoices, answer="invoice",
        number="invoice_number", status="VOIDED"),
    # one POST Payments/{id} per payment (Xero documents no batch of deletions)
    "delete_payment": XeroKind(
        batch_size=BATCH_SIZE, what="Removing payments in Xero",
        build=lambda item: payloads.payment_delete(), method="delete_payment",
        answer="payment"),
}


def _unreadable(what, response):
    """LedgerAnswerInvalid for an answer the SDK could not read (not JSON, unknown shape)."""
    status = getattr(response, "status", "?")
    try:
        kind = response.getheader("Content-Type") or "no content type"
    except AttributeError:
        kind = "no content type"
    return LedgerAnswerInvalid(f"{what}: Xero answered {status} with a body that is not the "
                               f"JSON it documents ({cap(kind, 60)}); {UNKNOWN_OUTCOME}",
                               status=status if isinstance(status, int) else None)


def _objects(answer, kind, what):
    """The objects of an answer's array for ``kind`` (see ANSWERS); an answer without that
    array (Xero always sends it, empty when there is nothing) has an unknown shape:
    LedgerAnswerInvalid."""
    field = ANSWERS[kind]
    objects = getattr(answer, field.attribute, None)
    if not isinstance(objects, list):
        raise LedgerAnswerInvalid(f"{what}: Xero's answer has no {field.name} array (an "
                                  f"unknown shape); {UNKNOWN_OUTCOME}")
    return objects


def _ids(rows, attribute, what, name):
    """``rows`` (read from Xero) when each carries its id; else LedgerAnswerInvalid: a row
    without one would be linked to ledger id "None"."""
    if any(not given_id(getattr(row, attribute, None)) for row in rows):
        raise LedgerAnswerInvalid(f"{what}: Xero listed {name} without their ids (an unknown "
                                  "shape); nothing was changed, try again later.")
    return rows


def _listed(answer, kind, what):
    """The objects of a read's answer for ``kind``, each with its id (see ANSWERS)."""
    field = ANSWERS[kind]
    return _ids(_objects(answer, kind, what), field.id_attribute, what, field.noun)


def _allocations(answer, sent, what):
    """The Allocations of an allocation's answer, one per allocation ``sent``; anything else
    says nothing certain about what Xero allocated: LedgerAnswerInvalid."""
    allocations = _objects(answer, "allocation", what)
    if len(allocations) != sent:
        raise LedgerAnswerInvalid(f"{what}: Xero answered {len(allocations)} Allocations for "
                                  f"{sent} sent; {UNKNOWN_OUTCOME}")
    return allocations


def _retry_after(headers):
    """(seconds, assumed) from a 429's Retry-After; Xero documents a whole number of
    seconds, and "a minute" (assumed) stands in for a missing or unreadable one."""
    value = str(headers.get("Retry-After") or "").strip()
    return (int(value), False) if value.isdigit() else (60, True)


def _validation_messages(exc):
    """The ValidationErrors messages of a Xero 400 answer (empty when it has none)."""
    try:
        body = json.loads(getattr(exc, "body", None) or "{}")
    except (TypeError, ValueError):
        return []
    if not isinstance(body, dict):
        return []
    messages = [cap(v.get("Message")) for element in body.get("Elements") or []
                for v in element.get("ValidationErrors") or [] if v.get("Message")]
    return messages or ([cap(body["Message"])] if body.get("Message") else [])


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
        problem = cap(headers.get("X-Rate-Limit-Problem") or "", 60) or None
        retry_after, assumed = _retry_after(headers)
        return RateLimited(
            f"{what}: Xero's rate limit was reached ({problem or 'no limit named'}).",
            retry_after=retry_after, problem=problem, assumed=assumed,
        )
    if status and status >= 500:
        return LedgerUnavailable(f"{what}: Xero answered {status}.", status=status)
    messages = _validation_messages(exc) if status == 400 else []
    if messages:
        return LedgerRejected(f"{what}: Xero refused it: " + " ".join(messages),
                              status=400, details=messages)
    reason = cap(getattr(exc, "reason", ""))
    return LedgerRejected(f"{what}: Xero answered {status}: {reason}", status=status or 400,
                          ledger_message=reason or None,
                          error_class=None if reason else "validation")


class XeroAdapter(LedgerAdapter):
    """Xero Accounting API."""

    provider = "xero"
    label = "Xero"
    SIGN_IN = "Xero"
    KINDS = KINDS
    # developer.xero.com/documentation/guides/oauth2/limits: per organisation and app
    LIMITS = {"per_minute": 60, "per_day": 5000, "concurrent": 5, "batch_per_minute": None,
              "per_second": None}
    # candidates find_contacts matches in one request (a ledger of < 1,000 contacts
    # is read whole; a bigger one is filtered, ~50 candidates a request)
    FIND_LIMIT = 1000

    # -- OAuth2 -------------------------------------------------------------
    WEBHOOK_HEADER = "x-xero-signature"

    @classmethod
    def parse_webhook(cls, payload):
        return payloads.webhook_events(payload)

    def authorization_url(self, redirect_uri, state):
        return self._consent_url({"response_type": "code", "client_id": self.client_id,
                                  "redirect_uri": redirect_uri, "scope": SCOPES,
                                  "state": state})

    def exchange_code(self, code, redirect_uri, callback=None):
        return self._tokens({"grant_type": tokens.CODE, "code": code,
                             "redirect_uri": redirect_uri}, "Authorising with Xero")

    def refresh(self, refresh_token):
        return self._tokens({"grant_type": tokens.REFRESH, "refresh_token": refresh_token},
                            "Refreshing the Xero token")

    def revoke(self, refresh_token):
        if refresh_token:
            self._revoke(refresh_token, "Revoking the Xero grant")

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
        if config.debug:
            # xero-python's debug switch turns on http.client's, which prints every
            # request's headers (the bearer token) to stdout: never in a worker
            config.debug = False
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
        client = getattr(getattr(fn, "__self__", None), "api_client", None)
        if client is not None:
            client.last_response = None  # set again only once Xero has answered this call
        self._metered()
        try:
            answer = fn(*args, _request_timeout=timeout, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            self._note_headroom(getattr(exc, "headers", None) if isinstance(
                exc, ApiException) else None)
            raise _translate(exc, what) from exc
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            # xero-python reads a 200's body after keeping the response: a body that is not
            # JSON ("list or dict value expected"), or JSON its models cannot take
            response = getattr(client, "last_response", None)
            if response is None:
                raise  # raised before anything was sent: ours, not Xero's
            raise _unreadable(what, response) from exc
        response = getattr(client, "last_response", None)
        self._note_headroom(response.getheaders() if response is not None else None)
        self.last_status = getattr(response, "status", None)
        return answer

    def _note_headroom(self, headers):
        def number(name):
            try:
                return int(headers.get(name))
            except (TypeError, ValueError):
                return None

        headers = headers or {}
        self._keep_headroom(number("X-MinLimit-Remaining"), number("X-DayLimit-Remaining"))

    # -- Organisation -------------------------------------------------------
    def organisations(self, access_token, callback=None):
        api = IdentityApi(self._api_client(access_token), base_url=self.api_url)
        what = "Listing Xero organisations"
        connections = self._call(what, api.get_connections)
        if not isinstance(connections, list):
            raise LedgerAnswerInvalid(f"{what}: Xero's answer is not a list of connections; "
                                      "try again later.")
        orgs = [c for c in connections if (c.tenant_type or "ORGANISATION") == "ORGANISATION"]
        return [Organisation(id=given_id(c.tenant_id), name=cap(c.tenant_name or "", 200))
                for c in _ids(orgs, "tenant_id", what, "organisations")]

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
        """Every account, tax rate, item, tracking category and option, and currency the
        mappings pick from. Each list must come whole, each row with its id: the connection
        archives the codes a list no longer names, so an answer without its array (or a row
        without its id) is LedgerAnswerInvalid, never "no codes"."""
        api = self._accounting(access_token)
        records = []

        def read(kind, what, method, **kwargs):
            return _listed(self._call(what, method, org_id, **kwargs), kind, what)

        for acc in read("account", "Importing Xero accounts", api.get_accounts):
            kind = {"REVENUE": "revenue_account", "SALES": "revenue_account",
                    "OTHERINCOME": "revenue_account", "BANK": "bank_account"}.get(
                        _status(acc.type))
            if not kind:
                continue
            records.append(ReferenceRecord(
                kind=kind, ledger_id=str(acc.account_id), name=acc.name or "",
                code=acc.code or "", active=_status(acc.status) == "ACTIVE",
                extra={"currency": getattr(acc, "currency_code", None) and
                       _status(acc.currency_code)}))
        for tax in read("tax", "Importing Xero tax rates", api.get_tax_rates):
            if not tax.can_apply_to_revenue:
                continue
            records.append(ReferenceRecord(
                kind="tax", ledger_id=tax.tax_type, name=tax.name or tax.tax_type,
                code=tax.tax_type, rate=float(tax.effective_rate or tax.display_tax_rate or 0),
                active=_status(tax.status) == "ACTIVE"))
        for item in read("item", "Importing Xero items", api.get_items):
            if item.is_sold is False:
                continue
            records.append(ReferenceRecord(
                kind="item", ledger_id=str(item.item_id), name=item.name or item.code,
                code=item.code or ""))
        what = "Importing Xero tracking categories"
        for cat in read("tracking_category", what, api.get_tracking_categories,
                        include_archived=True):
            records.append(ReferenceRecord(
                kind="tracking_category", ledger_id=str(cat.tracking_category_id),
                name=cat.name, active=_status(cat.status) == "ACTIVE"))
            # a category without its Options array would archive every option of it
            for opt in _listed(cat, "tracking", what):
                records.append(ReferenceRecord(
                    kind="tracking", ledger_id=str(opt.tracking_option_id),
                    name=f"{cat.name} / {opt.name}",
                    parent_ledger_id=str(cat.tracking_category_id),
                    active=_status(opt.status) == "ACTIVE",
                    category=cat.name or "", option=opt.name or ""))
        for code, name in TERM_TYPES:
            records.append(ReferenceRecord(kind="term", ledger_id=code, name=name, code=code))
        # the currencies the organisation is subscribed to (its base currency included):
        # a document in any other is refused before it is sent
        for currency in read("currency", "Importing Xero currencies", api.get_currencies):
            code = _status(currency.code)
            records.append(ReferenceRecord(kind="currency", ledger_id=code,
                                           name=currency.description or code, code=code))
        return records

    # -- Push ------------------------------------------------------------------
    def push(self, access_token, org_id, kind, items, idempotency_key):
        """Create or update up to 50 objects of one kind in ONE request.

        Contacts: POST /Contacts; invoices and voids (Status VOIDED): POST /Invoices;
        credit notes: POST /CreditNotes, then one PUT CreditNotes/{id}/Allocations per
        credit note that has allocations not yet in Xero; payments: PUT /Payments.
        Every request carries summarizeErrors=false (Xero saves the valid objects and
        flags the others) and an Idempotency-Key derived from ``idempotency_key``, so
        the same call sent again replays Xero's first answer and creates nothing.
        Payments: see _push_payments. A credit note already allocated in Xero is not
        updated again (Xero refuses to edit it): only what is left of its allocation goes.
        Returns one PushResult per item, in order; raises for a failure of the whole call
        (RateLimited, LedgerUnavailable, AccessTokenExpired, AuthorizationRevoked).
        """
        if len(items) > self.batch_size(kind):  # ValueError for an unknown kind too
            raise ValueError(f"at most {self.batch_size(kind)} {kind} items per push")
        if kind == "payment":
            return self._push_payments(access_token, org_id, items, idempotency_key)
        if kind == "delete_payment" or (kind == "void_invoice" and any(
                item.values.get("or_credit") for item in items)):
            return self._push_edits(access_token, org_id, kind, items, idempotency_key)
        results = [None] * len(items)
        models, positions = [], []
        allocated = {}
        if kind == "credit_note":
            allocated = self._allocated_credit_notes(access_token, org_id, items)
        for index, item in enumerate(items):
            if item.ledger_id and str(item.ledger_id).lower() in allocated:
                answer = allocated[str(item.ledger_id).lower()]
                results[index] = self._result(kind, item, answer, org_id)
                positions.append(index)
                continue
            try:
                models.append(_build(kind, item))
            except payloads.PayloadError as exc:
                results[index] = PushResult(item.key, False, ledger_id=item.ledger_id,
                                            error=LedgerRejected(str(exc), details=exc.messages))
                continue
            positions.append(index)
        sent = [i for i in positions if results[i] is None]
        answers = {i: allocated[str(items[i].ledger_id).lower()]
                   for i in positions if results[i] is not None}
        api = self._accounting(access_token)
        if models:
            for index, answer in zip(sent, self._send(api, org_id, kind, models,
                                                      _key(idempotency_key)), strict=True):
                answers[index] = answer
                results[index] = self._result(kind, items[index], answer, org_id)
        if kind == "credit_note" and answers:
            self._allocate(api, org_id, items, results, list(answers),
                           list(answers.values()), idempotency_key)
        return results

    def _send(self, api, org_id, kind, models, key):
        """One write request of ``kind`` (its KINDS row says which); the answered objects in
        request order (a LedgerRejected per object when Xero refused the request as a
        whole)."""
        spec = KINDS[kind]
        shape = ANSWERS[spec.answer]
        body = spec.envelope(**{shape.attribute: models})
        try:
            answer = self._call(spec.what, getattr(api, spec.method), org_id, body,
                                summarize_errors=False, idempotency_key=key, **spec.params)
        except LedgerRejected as exc:
            return _spread(exc, len(models))
        what = spec.what
        objects = _objects(answer, spec.answer, what)
        if len(objects) != len(models):
            raise LedgerAnswerInvalid(
                f"{what}: Xero answered {len(objects)} {shape.name} for {len(models)} sent; "
                f"{UNKNOWN_OUTCOME}")
        missing = [n for n, obj in enumerate(objects, 1) if _refusal(obj) is None
                   and not given_id(getattr(obj, shape.id_attribute, None))]
        if missing:
            raise LedgerAnswerInvalid(
                f"{what}: Xero took {len(missing)} of the {len(objects)} objects sent without "
                f"saying their {shape.id_name} (number {missing[0]} in the batch); "
                f"{UNKNOWN_OUTCOME}")
        return objects

    def _result(self, kind, item, answer, org_id):
        """PushResult of one answered object of ``kind`` (or of a whole-request refusal),
        read as its KINDS row says: id, number, required status, totals."""
        if isinstance(answer, LedgerRejected):
            return PushResult(item.key, False, ledger_id=item.ledger_id, error=answer)
        messages = _messages(answer)
        if messages or _status(answer.status_attribute_string) == "ERROR":
            messages = messages or ["Xero refused it without saying why."]
            return PushResult(item.key, False, ledger_id=item.ledger_id, error=LedgerRejected(
                "Xero refused it: " + " ".join(messages), details=messages))
        spec = KINDS[kind]
        ledger_id = str(getattr(answer, ANSWERS[spec.answer].id_attribute))
        number = getattr(answer, spec.number, None) if spec.number else None
        if spec.status and _status(answer.status) != spec.status:
            return PushResult(item.key, False, ledger_id=ledger_id, error=LedgerRejected(
                f"Xero left it {_status(answer.status)}, not {spec.status}."))
        updated = getattr(answer, "updated_date_utc", None)
        totals = adjustment = None
        if spec.due:
            totals = {"total": _float(answer.total), "tax": _float(answer.total_tax),
                      "amount_due": _float(getattr(answer, spec.due, None))}
            adjustment = float(payloads.rounding_adjustment(item.values))
        return PushResult(item.key, True, ledger_id=ledger_id, number=number or None,
                          version=updated.isoformat() if updated else None,
                          url=self.web_url(kind, ledger_id, org_id), totals=totals,
                          adjustment=adjustment or 0.0)

    def _allocate(self, api, org_id, items, results, positions, answers, idempotency_key):
        """Allocate each AUTHORISED credit note to its invoices: one request per credit note
        that needs it, the amount capped at the invoice's amount due in Xero (read in one
        request) and at the credit left. A refused, capped or impossible allocation makes
        the result ``incomplete``: the credit note is in Xero (linked), the job waits for
        a fix, and the next push sends only what is still missing."""
        wanted = {}
        for index, answer in zip(positions, answers, strict=True):
            if not results[index].ok or isinstance(answer, LedgerRejected):
                continue
            already = {}
            for alloc in answer.allocations or []:
                if alloc.invoice is not None and not alloc.is_deleted:
                    invoice_id = str(alloc.invoice.invoice_id).lower()
                    already[invoice_id] = already.get(invoice_id, 0.0) + float(alloc.amount or 0)
            todo = [a for a in items[index].values.get("allocations") or []
                    if round(float(a.get("amount") or 0)
                             - already.get(str(a.get("invoice_ref")).lower(), 0.0), 2) > 0]
            if todo:
                wanted[index] = (answer, already, todo)
        if not wanted:
            return
        due = self._amounts_due(api, org_id, [a["invoice_ref"] for _answer, _already, todo
                                               in wanted.values() for a in todo])
        for index, (answer, already, todo) in wanted.items():
            result = results[index]
            number = answer.credit_note_number or items[index].values.get("number")
            if _status(answer.status) != "AUTHORISED":
                _incomplete(result, f"Credit note {number} is {_status(answer.status)} in Xero, "
                                    "so it was not allocated to its invoice.")
                continue
            credit = float(answer.remaining_credit or 0.0)
            short = []
            for alloc in todo:
                invoice_id = str(alloc["invoice_ref"]).lower()
                left = round(float(alloc["amount"]) - already.get(invoice_id, 0.0), 2)
                room = min(due.get(invoice_id, left), credit)
                if room < left:
                    short.append(
                        f"{alloc.get('invoice_number') or alloc['invoice_ref']}: Odoo applies "
                        f"{left:.2f} of it, Xero has {due.get(invoice_id, 0.0):.2f} due on the "
                        f"invoice and {credit:.2f} of credit left")
                credit -= max(0.0, min(room, left))
            try:
                body = payloads.allocations({**items[index].values, "allocations": todo},
                                            already, due)
            except payloads.PayloadError as exc:
                _incomplete(result, f"Credit note {number} is in Xero but was not allocated: "
                                    f"{exc}", exc.messages)
                continue
            if body is not None:
                for alloc in body.allocations:
                    invoice_id = str(alloc.invoice.invoice_id).lower()
                    if invoice_id in due:  # the next credit note finds what this one left
                        due[invoice_id] = round(due[invoice_id] - alloc.amount, 2)
                what = "Allocating a credit note in Xero"
                try:
                    done = self._call(
                        what, api.create_credit_note_allocation,
                        org_id, result.ledger_id, body, summarize_errors=False,
                        idempotency_key=_key(f"{idempotency_key}:alloc:{result.ledger_id}:"
                                             + ",".join(f"{a.amount:.2f}"
                                                        for a in body.allocations)))
                except LedgerRejected as exc:
                    _incomplete(result, f"Credit note {number} is in Xero but its allocation "
                                        f"was refused: {exc.message}", exc.details)
                    continue
                messages = [m for a in _allocations(done, len(body.allocations), what)
                            for m in _messages(a)]
                if messages:
                    _incomplete(result, f"Credit note {number} is in Xero but its allocation "
                                        "was refused: " + " ".join(messages), messages)
                    continue
            if short:
                _incomplete(result, f"Credit note {number} was allocated only in part ("
                                    + "; ".join(short) + "); fix the invoice in Xero, then "
                                    "Retry.")

    def _push_payments(self, access_token, org_id, items, idempotency_key):
        """One Odoo payment becomes one Xero Payment per invoice it pays (a Xero payment
        applies to one invoice), all of the batch in ONE PUT /Payments under one key.

        Each amount is Odoo's (Xero refuses a part beyond what it has due, and says so).
        The result's ledger_id is the first Xero payment, ``parts`` maps every
        invoice to its payment; a part refused makes it ``incomplete``: the
        parts Xero took are linked, and the next push sends only the missing ones
        (Xero cannot edit a payment)."""
        api = self._accounting(access_token)
        results = [None] * len(items)
        built = {}
        for index, item in enumerate(items):
            values = item.values
            # a payment linked before its parts were recorded is in Xero whole
            sent = values.get("sent_invoice_refs")
            if item.ledger_id and sent is None:
                sent = [a.get("invoice_ref") for a in payloads.payment_allocations(values)]
            try:
                models = payloads.payments(values, sent or ())
            except payloads.PayloadError as exc:
                results[index] = PushResult(item.key, False, ledger_id=item.ledger_id,
                                            error=LedgerRejected(str(exc),
                                                                 details=exc.messages))
                continue
            built[index] = models
        # Odoo's amounts as they are: a re-send under the same key is the same request,
        # and a part beyond what Xero has due is refused by Xero, object by object
        models = [(index, model) for index, built_models in built.items()
                  for model in built_models]
        answers = {}
        for n, start in enumerate(range(0, len(models), BATCH_SIZE)):
            chunk = models[start:start + BATCH_SIZE]
            key = _key(idempotency_key if n == 0 else f"{idempotency_key}:part{n}")
            sent = self._send(api, org_id, "payment", [m for _i, m in chunk], key)
            for (index, model), answer in zip(chunk, sent, strict=True):
                answers.setdefault(index, []).append((model, answer))
        for index in built:
            item = items[index]
            parts, refused = {}, []
            for model, answer in answers.get(index, []):
                invoice_id = str(model.invoice.invoice_id)
                messages = ([answer.message] if isinstance(answer, LedgerRejected) else
                            _messages(answer)
                            or (["Xero refused it without saying why."]
                                if _status(answer.status_attribute_string) == "ERROR"
                                else []))
                if messages:
                    refused.append(f"{invoice_id}: " + " ".join(messages))
                else:
                    parts[invoice_id] = str(answer.payment_id)
            ledger_id = item.ledger_id or next(iter(parts.values()), None)
            url = self.web_url("invoice", item.values.get("invoice_ref"), org_id)
            problems = refused
            if not ledger_id:
                results[index] = PushResult(item.key, False, error=LedgerRejected(
                    "Xero refused the payment: " + ("; ".join(problems) or
                                                    "no invoice is open in Xero."),
                    details=problems))
                continue
            result = PushResult(item.key, True, ledger_id=ledger_id, version=item.version,
                                url=url, parts=parts or None)
            if problems:
                _incomplete(result, "Part of the payment is not in Xero: "
                                    + "; ".join(problems)
                                    + ". Fix it there (or in Odoo), then Retry: only the "
                                      "missing part is sent.", problems)
            results[index] = result
        return results

    def _amounts_due(self, api, org_id, invoice_ids):
        """{invoice id (lower case): AmountDue} of Xero invoices, one request per 50 ids."""
        ids = sorted({str(i).lower() for i in invoice_ids if i})
        due = {}
        for start in range(0, len(ids), BATCH_SIZE):
            what = "Reading Xero invoices' amounts due"
            answer = self._call(what, api.get_invoices, org_id,
                                i_ds=ids[start:start + BATCH_SIZE])
            for invoice in _listed(answer, "invoice", what):
                due[str(invoice.invoice_id).lower()] = round(float(invoice.amount_due or 0), 2)
        return due

    def _allocated_credit_notes(self, access_token, org_id, items):
        """{credit note id (lower case): CreditNote} of the linked credit notes that Xero
        already allocated: Xero refuses to edit those, so they are not sent again."""
        ids = [str(i.ledger_id) for i in items if i.ledger_id and i.values.get("allocations")]
        if not ids:
            return {}
        api = self._accounting(access_token)
        where = " OR ".join(f'CreditNoteID==guid("{i}")' for i in ids)
        what = "Reading Xero credit notes"
        answer = self._call(what, api.get_credit_notes, org_id, where=where,
                            unitdp=payloads.UNITDP)
        notes = _listed(answer, "credit_note", what)
        totals = {str(i.ledger_id).lower(): i.values.get("amount_total") for i in items
                  if i.ledger_id}
        # the same total: nothing to edit; another one goes, and Xero says it is locked
        return {str(note.credit_note_id).lower(): note for note in notes
                if any(not a.is_deleted for a in note.allocations or [])
                and (totals.get(str(note.credit_note_id).lower()) is None
                     or abs(float(note.total or 0)
                            - float(totals[str(note.credit_note_id).lower()])) < 0.005)}

    def find_documents(self, access_token, org_id, kind, numbers):
        """{number: (InvoiceID or CreditNoteID, UpdatedDateUTC)}: one GET per 50 numbers
        (Invoices?InvoiceNumbers=...; credit notes by a ``where`` on their number)."""
        api = self._accounting(access_token)
        found = {}
        numbers = [str(n) for n in dict.fromkeys(numbers) if n]
        for start in range(0, len(numbers), BATCH_SIZE):
            chunk = numbers[start:start + BATCH_SIZE]
            if kind == "invoice":
                what = "Looking for invoices in Xero"
                answer = self._call(what, api.get_invoices, org_id, invoice_numbers=chunk,
                                    page=1)
                rows = [(d.invoice_number, d.invoice_id, d)
                        for d in _listed(answer, "invoice", what)]
            else:
                what = "Looking for credit notes in Xero"
                where = " OR ".join(f"CreditNoteNumber=={payloads._quote(n)}" for n in chunk)
                answer = self._call(what, api.get_credit_notes, org_id, where=where, page=1)
                rows = [(d.credit_note_number, d.credit_note_id, d)
                        for d in _listed(answer, "credit_note", what)]
            # a supplier bill carries its supplier's number, which may equal ours
            wanted = "ACCREC" if kind == "invoice" else "ACCRECCREDIT"
            for number, ledger_id, doc in rows:
                if _status(doc.type) != wanted or _status(doc.status) in ("VOIDED", "DELETED"):
                    continue
                updated = getattr(doc, "updated_date_utc", None)
                found.setdefault(number, (str(ledger_id),
                                          updated.isoformat() if updated else None))
        return found

    def find_contacts(self, access_token, org_id, candidates):
        """{key: ContactID} of existing active Xero contacts matching the candidates
        by tax number, then email, then exact name (case-insensitive, as Xero).

        One GET Contacts per ``where`` filter OR-ing every candidate's values
        (a filter of at most payloads.MAX_WHERE_CHARS: 50 candidates take 1-2).
        """
        candidates = [c for c in candidates if c.get("key")]
        if not candidates:
            return ContactMatches()
        api = self._accounting(access_token)
        clauses = list(payloads.where_clauses(candidates))
        if len(clauses) > 1:
            # many candidates (a backfill): a ledger of fewer than a thousand
            # contacts is read whole in one request instead of one per filter
            what = "Reading Xero contacts"
            page = _objects(self._call(what, api.get_contacts, org_id, page=1,
                                       page_size=LIST_PAGE), "contact", what)
            if len(page) < LIST_PAGE:
                return payloads.match_contacts(candidates, _contact_rows(page))
        found = []
        for where in clauses:
            what = "Looking for existing Xero contacts"
            answer = self._call(what, api.get_contacts, org_id, where=where, page=1,
                                page_size=1000)
            found += _contact_rows(_objects(answer, "contact", what))
        return payloads.match_contacts(candidates, found)

    def is_duplicate_name(self, error):
        """True when Xero refused a contact because an active contact has its name."""
        return payloads.is_duplicate_name(getattr(error, "details", None))

    def read_contacts(self, access_token, org_id, ids):
        """{ContactID: ContactState} of the contacts ``ids`` name (keyed as asked; Xero's
        ids are GUIDs, compared without case): one GET Contacts?IDs=...&includeArchived=true
        per 50 ids (page=1: the answer is bounded, 100 a page). An id that is no GUID names
        no Xero contact and costs no request; a deleted or unknown one is absent."""
        return self._read_ids(
            access_token, org_id, ids, "Reading Xero contacts", "contact",
            lambda api, chunk: (api.get_contacts, {"i_ds": chunk, "include_archived": True,
                                                   "page": 1}),
            _contact_state)

    def changed_contacts(self, access_token, org_id, since):
        """ContactChanges of the Xero contacts changed at or after ``since`` (see the base):
        GET Contacts with If-Modified-Since, includeArchived=true, ordered by UpdatedDateUTC
        ascending, 100 a page, at most 10 requests a call (about 1,000 contacts); archived
        ones are included, deleted ones Xero no longer lists. Never a ``full_read``: Xero
        lists changes from any time (since None: no header, every contact). Paged as
        ``_list_changed`` says."""
        since = change_cursor(since)  # ValueError before anything is sent
        api = self._accounting(access_token)
        found, _reached, complete = self._list_changed(
            "Listing changed Xero contacts", "contact", api.get_contacts, org_id, since,
            _contact_state, include_archived=True)
        return ContactChanges(found, latest_cursor(found, since), complete=complete)

    # -- Payments, invoices and credit notes, read back (inbound sync) ----------------
    def read_payments(self, access_token, org_id, ids):
        """{PaymentID or OverpaymentID: PaymentState} of the customer payments and
        overpayments ``ids`` name (keyed as asked, as read_contacts). GET Payments takes no
        IDs parameter: one GET Payments?where=``PaymentID==Guid("...") OR ...`` per 50 ids
        (page=1). Xero still lists a deleted payment (Status DELETED): it comes with
        ``deleted`` set; an unknown id is absent, and so is a payment that is no customer's
        (a bill's, a credit note refund).

        The ids Payments did not list may name overpayments (a client paid more than was
        due: an invoice lists them in its Overpayments, read_invoices in its payment_ids):
        only when some are left, one GET Overpayments?where=``OverpaymentID==Guid("...")
        OR ...`` per 50 of them (page=1). A customer's overpayment (RECEIVE-OVERPAYMENT)
        reads as a payment (``_overpayment_state``): ``allocations`` what it pays on
        invoices, ``unapplied`` its RemainingCredit, ``deleted`` when VOIDED; one to a
        supplier is absent."""
        ids, listed = list(ids or ()), set()
        found = self._read_ids(
            access_token, org_id, ids, "Reading Xero payments", "payment",
            lambda api, chunk: (api.get_payments, {
                "where": payloads.id_filter("PaymentID", chunk), "page": 1}),
            _payment_state, listed=listed)
        rest = [value for value in ids if _guid(given_id(value)) not in listed | {None}]
        if not rest:
            return found
        found.update(self._read_ids(
            access_token, org_id, rest, "Reading Xero overpayments", "overpayment",
            lambda api, chunk: (api.get_overpayments, {
                "where": payloads.id_filter("OverpaymentID", chunk), "page": 1}),
            _overpayment_state))
        return found

    def read_invoices(self, access_token, org_id, ids):
        """{InvoiceID: InvoiceState} of the sales invoices ``ids`` name (keyed as asked):
        one GET Invoices?IDs=...&page=1 per 50 ids (paged, Xero answers each invoice with
        its Payments). Voided and deleted ones are included (Xero lists them); an unknown
        id, or a bill's (ACCPAY), is absent."""
        return self._read_ids(
            access_token, org_id, ids, "Reading Xero invoices", "invoice",
            lambda api, chunk: (api.get_invoices, {"i_ds": chunk, "page": 1}),
            _invoice_state)

    def read_credit_notes(self, access_token, org_id, ids):
        """{CreditNoteID: CreditNoteState} of the sales credit notes ``ids`` name (keyed as
        asked). GET CreditNotes takes no IDs parameter: one GET CreditNotes?where=
        ``CreditNoteID==Guid("...") OR ...``&page=1 per 50 ids (paged, Xero answers each
        credit note with its LineItems). Voided and deleted ones are included (Xero lists
        them); an unknown id, or a supplier's credit note (ACCPAYCREDIT), is absent."""
        return self._read_ids(
            access_token, org_id, ids, "Reading Xero credit notes", "credit_note",
            lambda api, chunk: (api.get_credit_notes, {
                "where": payloads.id_filter("CreditNoteID", chunk), "page": 1}),
            _credit_note_state)

    def changed_documents(self, access_token, org_id, since):
        """DocumentChanges of the customer payments and overpayments, sales invoices and
        sales credit notes changed at or after ``since`` (see the base): GET Payments, GET
        Overpayments (``Type=="RECEIVE-OVERPAYMENT"``; in ``payments``, read as
        read_payments reads them), GET Invoices (``Type=="ACCREC"``) and GET CreditNotes
        (``Type=="ACCRECCREDIT"``), every status (Xero lists VOIDED and DELETED ones), each
        as changed_contacts reads contacts (If-Modified-Since, UpdatedDateUTC ascending, 100
        a page, about 10 requests a list). Deleted payments and voided overpayments are
        listed with ``deleted`` set (Xero lists them with Status DELETED / VOIDED):
        ``deleted_payments`` stays empty; never a ``full_read``.

        ``complete`` only when every list was read to its end; the cursor is then the
        latest UpdatedDateUTC listed in any (``since`` when none). When a list stopped
        short, the cursor is where it stopped (the earliest of those that did): the other
        lists' later changes come again next call, and no change of any is skipped."""
        since = change_cursor(since)  # ValueError before anything is sent
        api = self._accounting(access_token)
        payments, paid, payments_done = self._list_changed(
            "Listing changed Xero payments", "payment", api.get_payments, org_id, since,
            _payment_state)
        overpayments, overpaid, overpayments_done = self._list_changed(
            "Listing changed Xero overpayments", "overpayment", api.get_overpayments, org_id,
            since, _overpayment_state, where=payloads.CUSTOMER_OVERPAYMENTS)
        payments.update(overpayments)  # GUIDs: a payment's never is an overpayment's
        invoices, invoiced, invoices_done = self._list_changed(
            "Listing changed Xero invoices", "invoice", api.get_invoices, org_id, since,
            _invoice_state, where=payloads.SALES_INVOICES)
        notes, credited, notes_done = self._list_changed(
            "Listing changed Xero credit notes", "credit_note", api.get_credit_notes, org_id,
            since, _credit_note_state, where=payloads.SALES_CREDIT_NOTES)
        ends = ((paid, payments_done), (overpaid, overpayments_done),
                (invoiced, invoices_done), (credited, notes_done))
        complete = all(done for _reached, done in ends)
        if complete:
            cursor = max([r for r, _done in ends if r] + ([since] if since else []),
                         default=None)
        else:
            cursor = min(r for r, done in ends if not done)
        return DocumentChanges(payments, invoices, cursor, complete=complete,
                               credit_notes=notes)

    # -- reading helpers ----------------------------------------------------------------
    def _read_ids(self, access_token, org_id, ids, what, kind, send, take, listed=None):
        """{id as asked: state} of the Xero objects of ``kind`` (an ANSWERS key) that ``ids``
        name, GUIDs compared without case: one request per BATCH_SIZE ids, ``send(api,
        chunk)`` saying which (the AccountingApi method and its arguments), each through
        ``_call``. An id that is no GUID names no Xero object and costs no request. ``take(
        row, ledger_id, what)`` makes each listed row's state, None to leave it out;
        ``listed`` (a set), when given, gets the GUID of every row asked for and listed,
        left out or not."""
        asked = {}
        for value in ids or ():
            text = given_id(value)
            guid = _guid(text) if text else None
            if guid:
                asked.setdefault(guid, text)
        if not asked:
            return {}
        api = self._accounting(access_token)
        id_attribute = ANSWERS[kind].id_attribute
        wanted = list(asked)
        found = {}
        for start in range(0, len(wanted), BATCH_SIZE):
            method, options = send(api, wanted[start:start + BATCH_SIZE])
            answer = self._call(what, method, org_id, **options)
            for row in _listed(answer, kind, what):
                guid = _guid(getattr(row, id_attribute))
                ledger_id = asked.get(guid)
                if ledger_id is None:
                    continue  # not asked for: Xero's filter names only what was
                if listed is not None:
                    listed.add(guid)
                state = take(row, ledger_id, what)
                if state is not None:
                    found[ledger_id] = state
        return found

    def _list_changed(self, what, kind, method, org_id, since, take, **options):
        """({ledger id: state}, reached, complete) of the Xero objects of ``kind`` changed at
        or after ``since``: ``method`` (a GET list, with ``options``) with If-Modified-Since,
        ordered by UpdatedDateUTC ascending, 100 a page, at most CHANGES_REQUESTS requests
        (about CHANGES_LIMIT objects). ``take(row, ledger id, what)`` makes each row's state
        (None: left out); ``reached``: the latest UpdatedDateUTC listed (None for nothing),
        where a next call must start when ``complete`` is False.

        Each request after the first starts again at the latest UpdatedDateUTC listed so
        far (to the second, inclusive: its objects come again and are taken once), page 1:
        an object edited while the call reads moves to the end of Xero's order, and with
        page=n it would shift the next page's first object onto a page already read, unseen
        behind the cursor. Only a full page all within that one second asks for page n+1 of
        it, until the second is read through (beyond CHANGES_REQUESTS if it must: the
        cursor could not move on otherwise)."""
        id_attribute = ANSWERS[kind].id_attribute
        found, anchor, page, sent, reached = {}, since, 1, 0, None
        while True:
            query = {**options, "order": payloads.CHANGES_ORDER, "page": page}
            if anchor:
                query["if_modified_since"] = payloads.modified_since(anchor)
            rows = _listed(self._call(what, method, org_id, **query), kind, what)
            sent += 1
            for row in rows:
                ledger_id = given_id(getattr(row, id_attribute))
                stamp = _updated(row)
                if stamp and (reached is None or stamp > reached):
                    reached = stamp
                state = take(row, ledger_id, what)
                if state is not None:
                    found[ledger_id] = state
            if len(rows) < CHANGES_PAGE:
                return found, reached, True
            last = _updated(rows[-1])
            if last and (anchor is None or last > anchor):
                if sent >= CHANGES_REQUESTS:
                    return found, last, False
                anchor, page = last, 1
            else:
                page += 1  # a whole page within the anchor's second: the next one of it

    # -- Edits after sync -----------------------------------------------------------
    def _push_edits(self, access_token, org_id, kind, items, idempotency_key):
        """Retire in Xero what Odoo took back: payments (``delete_payment``), invoices
        (``void_invoice`` with ``values["or_credit"]``; without it, a plain void that Xero
        refuses for a paid invoice).

        Payments (``values["remove_payments"]``, else the item's ``ledger_id``) are deleted
        first: POST Payments/{id} with Status DELETED, one request each (Xero documents no
        batch of deletions); one already deleted or gone counts as removed. Invoices are
        then read (one GET Invoices?IDs=); each one Xero lets us void (AUTHORISED, nothing
        paid or credited on it) is voided, a DRAFT one deleted, all in one POST /Invoices;
        any other (paid, allocated, or refused: a locked period) is credited: a credit note
        copying its lines, allocated to what is left due on it. Either way the invoice
        gives up its number (``payloads.retired_number``) to its replacement. A step that
        went only in part is said in the result's ``error`` (a warning) and ``note``."""
        api = self._accounting(access_token)
        warnings = {item.key: [] for item in items}
        results = {}
        for item in items:
            ids = item.values.get("remove_payments") or (
                [item.ledger_id] if kind == "delete_payment" else [])
            kept = [why for why in (self._delete_payment(api, org_id, pid, idempotency_key)
                                    for pid in ids) if why]
            if kind == "delete_payment":
                results[item.key] = PushResult(
                    item.key, not kept, ledger_id=item.ledger_id, note="removed",
                    error=LedgerRejected(" ".join(kept)) if kept else None)
            else:
                warnings[item.key] += kept
        if kind == "void_invoice":
            self._retire_invoices(api, org_id, items, idempotency_key, results, warnings)
        out = []
        for item in items:
            result = results[item.key]
            if result.ok and warnings[item.key]:
                result.error = LedgerError(" ".join(
                    [*warnings[item.key], *([str(result.error)] if result.error else [])]))
            out.append(result)
        return out

    def _delete_payment(self, api, org_id, payment_id, idempotency_key):
        """Delete one Xero payment; None when it is gone, else why Xero kept it.

        Believed only when Xero answers the one Payment with Status DELETED (the id, when
        given, this one): anything else is LedgerAnswerInvalid, and the same request goes
        again under its key."""
        what = "Removing a payment in Xero"
        try:
            answer = self._call(what, api.delete_payment, org_id, payment_id,
                                payloads.payment_delete(),
                                idempotency_key=_key(f"{idempotency_key}:del:{payment_id}"))
        except LedgerRejected as exc:
            if exc.status == 404 or any("already been deleted" in str(m)
                                        for m in exc.details or [exc.message]):
                return None
            return f"Xero kept payment {payment_id}: {exc.message}"
        payments = _objects(answer, "payment", what)
        if len(payments) == 1 and _refusal(payments[0]):
            return f"Xero kept payment {payment_id}: {_refusal(payments[0])}"
        answered = given_id(payments[0].payment_id) if len(payments) == 1 else None
        if (len(payments) != 1 or _status(payments[0].status) != "DELETED"
                or (answered and answered.lower() != str(payment_id).lower())):
            raise LedgerAnswerInvalid(f"{what}: Xero did not answer payment {payment_id} with "
                                      f"Status DELETED; {UNKNOWN_OUTCOME}")
        return None

    def _retire_invoices(self, api, org_id, items, idempotency_key, results, warnings):
        ids = [str(item.ledger_id) for item in items if item.ledger_id]
        held = {}
        if ids:
            what = "Reading Xero invoices"
            answer = self._call(what, api.get_invoices, org_id, i_ds=ids, page=1,
                                unitdp=payloads.UNITDP)
            held = {str(inv.invoice_id).lower(): inv
                    for inv in _listed(answer, "invoice", what)}
        to_void, to_credit = [], []
        for item in items:
            invoice = held.get(str(item.ledger_id).lower())
            status = _status(invoice.status) if invoice is not None else ""
            if invoice is None or status in ("VOIDED", "DELETED"):
                results[item.key] = PushResult(
                    item.key, True, ledger_id=item.ledger_id,
                    note="already voided in Xero" if status == "VOIDED"
                    else "no longer in Xero (deleted there)")
            elif status in ("DRAFT", "SUBMITTED"):
                to_void.append((item, invoice, "DELETED"))
            elif (status == "AUTHORISED" and not _float(invoice.amount_paid)
                  and not _float(invoice.amount_credited)):
                to_void.append((item, invoice, "VOIDED"))
            else:
                to_credit.append((item, invoice))
        if to_void:
            models = [payloads.retire_invoice(item.ledger_id, status, payloads.retired_number(
                invoice.invoice_number, item.ledger_id, "voided"))
                for item, invoice, status in to_void]
            answers = self._send(api, org_id, "void_invoice", models,
                                 _key(f"{idempotency_key}:void"))
            for (item, invoice, status), answer in zip(to_void, answers, strict=True):
                why = _refusal(answer) or (
                    None if _status(answer.status) == status
                    else f"Xero left it {_status(answer.status)}")
                if why:
                    warnings[item.key].append(f"Xero would not void invoice "
                                              f"{invoice.invoice_number} ({why}): it was "
                                              "credited instead.")
                    to_credit.append((item, invoice))
                    continue
                results[item.key] = PushResult(
                    item.key, True, ledger_id=item.ledger_id, number=answer.invoice_number,
                    note="voided" if status == "VOIDED" else "deleted (it was a draft there)")
        if to_credit:
            self._credit_invoices(api, org_id, to_credit, idempotency_key, results, warnings)

    def _credit_invoices(self, api, org_id, pairs, idempotency_key, results, warnings):
        """Credit each invoice Xero cannot void: rename it (its number goes to the
        replacement), one credit note copying it, allocated to what is left due on it."""
        renames = [payloads.rename_invoice(item.ledger_id, payloads.retired_number(
            invoice.invoice_number, item.ledger_id, "credited")) for item, invoice in pairs]
        answers = self._send(api, org_id, "void_invoice", renames,
                             _key(f"{idempotency_key}:rename"))
        for (item, invoice), answer in zip(pairs, answers, strict=True):
            why = _refusal(answer)
            if why:
                warnings[item.key].append(f"Invoice {invoice.invoice_number} keeps its number "
                                          f"in Xero ({why}).")
        models, kept = [], []
        for item, invoice in pairs:
            try:
                models.append(payloads.credit_for(
                    invoice, reference=f"Credits {invoice.invoice_number}"))
            except payloads.PayloadError as exc:
                results[item.key] = PushResult(item.key, False, ledger_id=item.ledger_id,
                                               error=LedgerRejected(str(exc)))
                continue
            kept.append((item, invoice))
        if not models:
            return
        # keyed by the invoices credited, not by this attempt: a retry under a new job key
        # replays the credit note Xero already made instead of crediting twice
        answers = self._send(api, org_id, "credit_note", models, _key(
            "credit:" + ",".join(str(item.ledger_id) for item, _invoice in kept)))
        for (item, invoice), note in zip(kept, answers, strict=True):
            why = _refusal(note)
            if why:
                results[item.key] = PushResult(item.key, False, ledger_id=item.ledger_id,
                                               error=LedgerRejected(
                    f"Xero cannot void invoice {invoice.invoice_number} and refused the "
                    f"credit note for it: {why}"))
                continue
            number = note.credit_note_number
            results[item.key] = PushResult(item.key, True, ledger_id=item.ledger_id,
                                           number=number,
                                           note=f"credited by credit note {number}")
            if _float(note.total) != _float(invoice.total):
                results[item.key].incomplete = True
                results[item.key].error = LedgerError(
                    f"Credit note {number} is for {_float(note.total):.2f}, invoice "
                    f"{invoice.invoice_number} for {_float(invoice.total):.2f}: correct it in "
                    "Xero.")
            due = min(_float(invoice.amount_due) or 0.0, _float(note.total) or 0.0)
            if due <= 0:
                warnings[item.key].append(f"Nothing is left due on invoice "
                                          f"{invoice.invoice_number} in Xero: credit note "
                                          f"{number} stays as the customer's credit.")
                continue
            body = payloads.allocations({"allocations": [
                {"invoice_ref": item.ledger_id, "amount": due, "date": note.date}]})
            what = "Allocating a credit note in Xero"
            try:
                done = self._call(
                    what, api.create_credit_note_allocation,
                    org_id, str(note.credit_note_id), body, summarize_errors=False,
                    idempotency_key=_key(f"alloc:{note.credit_note_id}:{item.ledger_id}"))
                why = " ".join(m for a in _allocations(done, len(body.allocations), what)
                               for m in _messages(a))
            except LedgerRejected as exc:
                why = exc.message
            if why:
                # credited, but the invoice is still due in Xero: not done
                results[item.key].incomplete = True
                results[item.key].error = LedgerRejected(
                    f"Credit note {number} was not allocated to invoice "
                    f"{invoice.invoice_number}: {why}")


def _contact_rows(contacts):
    """The matching fields of active contacts (each with its id: a contact without one
    would be linked to ledger id "None")."""
    return [{"ContactID": given_id(c.contact_id), "TaxNumber": c.tax_number,
             "EmailAddress": c.email_address, "Name": c.name}
            for c in _ids(contacts, "contact_id", "Reading Xero contacts", "contacts")
            if _status(c.contact_status) in ("", "ACTIVE")]


def _guid(text):
    """``text`` as a GUID's canonical text (lower case, hyphens), None when it is none:
    every Xero id is one."""
    try:
        return str(uuid.UUID(str(text).strip()))
    except ValueError:
        return None


def _updated(row):
    """A Xero object's UpdatedDateUTC in utc_timestamp's form (None without one)."""
    return utc_timestamp(getattr(row, "updated_date_utc", None))


def _contact_state(contact, ledger_id, what):
    """The ContactState of a Contact read from Xero."""
    return ContactState(ledger_id, payloads.contact_values(contact),
                        updated_at=_updated(contact))


def _payment_state(payment, ledger_id, what):
    """The PaymentState of a Payment read from Xero; None for one that is no customer's
    payment of a sales invoice. A customer payment without its invoice has an unknown
    shape: LedgerAnswerInvalid (it would pay nothing, and be taken as deleted)."""
    if not payloads.is_customer_payment(payment):
        return None
    values = payloads.payment_values(payment)
    if not values["allocations"]:
        raise LedgerAnswerInvalid(f"{what}: Xero listed payment {ledger_id} without the "
                                  "invoice it pays (an unknown shape); nothing was changed, "
                                  "try again later.")
    return PaymentState(ledger_id, updated_at=_updated(payment), **values)


def _overpayment_state(overpayment, ledger_id, what):
    """The PaymentState of an Overpayment read from Xero (see payloads.overpayment_values);
    None for one to a supplier (SPEND-OVERPAYMENT). One without its Status has an unknown
    shape: LedgerAnswerInvalid (a voided one would be taken for credit still held)."""
    if not payloads.is_customer_overpayment(overpayment):
        return None
    if not _status(overpayment.status):
        raise LedgerAnswerInvalid(f"{what}: Xero listed overpayment {ledger_id} without its "
                                  "Status (an unknown shape); nothing was changed, try again "
                                  "later.")
    return PaymentState(ledger_id, updated_at=_updated(overpayment),
                        **payloads.overpayment_values(overpayment))


def _document_state(kind, document, ledger_id, what):
    """The InvoiceState or CreditNoteState (``kind``: "invoice", "credit_note") of a
    document read from Xero (paged: with its Payments or LineItems); None for one that is
    not a sale (a bill, a supplier's credit note). One without its Status has an unknown
    shape: LedgerAnswerInvalid."""
    is_sale, values_of, state_class = _DOCUMENTS[kind]
    if not is_sale(document):
        return None
    values = values_of(document)
    if values["status"] is None:
        noun = kind.replace("_", " ")
        raise LedgerAnswerInvalid(f"{what}: Xero listed {noun} {ledger_id} without its "
                                  "Status (an unknown shape); nothing was changed, try again "
                                  "later.")
    return state_class(ledger_id, updated_at=_updated(document), **values)


_DOCUMENTS = {
    "invoice": (payloads.is_sales_invoice, payloads.invoice_values, InvoiceState),
    "credit_note": (payloads.is_sales_credit_note, payloads.credit_note_values,
                    CreditNoteState),
}
_invoice_state = functools.partial(_document_state, "invoice")
_credit_note_state = functools.partial(_document_state, "credit_note")


def _build(kind, item):
    """The xero-python model of one PushItem (PayloadError when it cannot be one)."""
    try:
        return KINDS[kind].build(item)
    except payloads.PayloadError:
        raise
    except (ValueError, TypeError) as exc:  # the SDK's own model checks
        raise payloads.PayloadError(f"Cannot send this to Xero: {exc}") from exc


def _key(key):
    """Xero's Idempotency-Key (at most 128 characters; longer keys are hashed)."""
    if not key:  # a write without its key could be replayed as another's answer
        raise ValueError("a Xero write needs its idempotency key")
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


def _refusal(answer):
    """Why Xero refused one answered object of a batch (None when it took it)."""
    if isinstance(answer, LedgerRejected):
        return answer.message
    messages = _messages(answer)
    if messages or _status(answer.status_attribute_string) == "ERROR":
        return " ".join(messages) or "Xero refused it without saying why."
    return None


def _messages(answer):
    """The ValidationErrors messages of one answered object, each capped."""
    return [cap(v.message) for v in (getattr(answer, "validation_errors", None) or [])
            if getattr(v, "message", None)]


def _incomplete(result, message, details=None):
    """Mark an accepted result as incomplete: in Xero, but part of it was refused."""
    result.incomplete = True
    result.error = LedgerRejected(message, details=list(details or [message]))


def _float(value):
    return None if value is None else round(float(value), 2)


def _status(value):
    return str(getattr(value, "value", value) or "")
