"""QuickBooks Online behind the ledger interface (python-quickbooks for the API, OAuth2
per Intuit's docs).

OAuth2 is done here as Intuit documents it (developer.intuit.com, "OAuth 2.0": the
endpoints come from the OpenID discovery document; code exchange and refresh are form
posts to its token endpoint, revocation a JSON ``{"token": ...}`` to its revocation
endpoint, all with HTTP Basic client authentication), through base.LedgerAdapter's
checked, cached discovery and its token requests, which never follow a redirect.
intuit-oauth's AuthClient would re-read the discovery document on every call (no cache,
no timeout) and follow redirects with the refresh token in the body. python-quickbooks
builds every URL from ``api_url_v3``: the only thing set differently for the sandbox.
"""

import datetime
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import requests
from quickbooks import QuickBooks
from quickbooks import exceptions as qb_exceptions
from quickbooks.objects.account import Account
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.companycurrency import CompanyCurrency
from quickbooks.objects.department import Department
from quickbooks.objects.item import Item
from quickbooks.objects.preferences import Preferences
from quickbooks.objects.taxcode import TaxCode
from quickbooks.objects.taxrate import TaxRate
from quickbooks.objects.term import Term
from quickbooks.objects.trackingclass import Class

from ..contacts import ContactMatches, match_contacts
from . import qbo_payloads as payloads
from . import tokens
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
    TimeoutHTTPAdapter,
    change_cursor,
    cursor_moment,
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

MINOR_VERSION = 75
PAGE = 1000  # QBO's MAXRESULTS ceiling
BATCH_MAX = 30  # BatchItemRequest per /batch call (Intuit's ceiling)
IN_LIST_MAX = 50  # values per IN (...) of one query statement
WEB_APP = "https://app.qbo.intuit.com/app/"
BALANCES_BID = "_invoice_balances"
# Change data capture: Intuit answers at most 1,000 objects, and looks back 30 days at most
# (by its clock: a cursor within a day of that, by ours, is read by a query instead)
CDC_MAX = CHANGES_LIMIT
CDC_LOOKBACK = datetime.timedelta(days=30)
CDC_MARGIN = datetime.timedelta(days=1)


SIGN_IN = "Intuit"
# the one scope asked for (intuitlib's Scopes.ACCOUNTING): no OpenID, no payments
SCOPE = "com.intuit.quickbooks.accounting"
UNKNOWN_OUTCOME = unknown_outcome("QuickBooks", "requestid")


@dataclass(frozen=True, kw_only=True)
class QboKind(Kind):
    """One kind QuickBooks is sent (see base.Kind): ``build(item, version, known)`` is the
    entity body of one PushItem at SyncToken ``version`` (``known``: {"customers",
    "balances"} of the invoices payments apply to, read by push); ``entity`` the entity a
    BatchItemRequest carries; ``operation`` a fixed batch operation (else create, or update
    for a linked object); ``number``: the answer's DocNumber is the object's number;
    ``due``: the answered document's amount due properties, the first present wins (set
    for documents: their totals are read back); ``single``: one object alone goes to
    the entity's own endpoint (one of the 500 requests a minute, not one of the 40
    batches: a lone change is not held to the batch pace)."""

    entity: str
    operation: str | None = None
    number: bool = False
    due: tuple = ()
    single: bool = False


def _sales_form(item, version, known):
    return payloads.sales_form(item.values or {}, item.ledger_id, version)


_INVOICE_PAGE = WEB_APP + "invoice?txnId={id}"
KINDS = {
    "contact": QboKind(
        batch_size=BATCH_MAX, what="Sending contacts to QuickBooks",
        web_url=WEB_APP + "customerdetail?nameId={id}", entity="Customer", single=True,
        build=lambda item, version, known: payloads.customer(item.values or {},
                                                             item.ledger_id, version)),
    "invoice": QboKind(
        batch_size=BATCH_MAX, what="Sending invoices to QuickBooks", web_url=_INVOICE_PAGE,
        entity="Invoice", build=_sales_form, number=True, due=("Balance",), single=True),
    # 29, so that the query of their invoices' open balances rides in the same /batch
    "credit_note": QboKind(
        batch_size=BATCH_MAX - 1, what="Sending credit notes to QuickBooks",
        web_url=WEB_APP + "creditmemo?txnId={id}", entity="CreditMemo", build=_sales_form,
        number=True, due=("RemainingCredit", "Balance")),
    "payment": QboKind(
        batch_size=BATCH_MAX, what="Sending payments to QuickBooks",
        web_url=WEB_APP + "recvpayment?txnId={id}", entity="Payment", single=True,
        build=lambda item, version, known: _payment(item, version, known["customers"],
                                                    known["balances"])[0]),
    "void_invoice": QboKind(
        batch_size=BATCH_MAX, what="Voiding invoices in QuickBooks", web_url=_INVOICE_PAGE,
        entity="Invoice", operation="void", number=True,
        build=lambda item, version, known: payloads.void(item.ledger_id, version)),
    "delete_payment": QboKind(
        batch_size=BATCH_MAX, what="Removing payments in QuickBooks", entity="Payment",
        operation="delete",
        build=lambda item, version, known: {"Id": str(item.ledger_id), "SyncToken": version}),
}


class _BearerSession(requests.Session):
    """The plain requests session python-quickbooks sends every API call through: its
    ``process_request`` adds ``Authorization: Bearer <access_token>`` to each request.

    Given an intuit-oauth AuthClient, python-quickbooks would open a requests-oauthlib OAuth2Session
    instead, which logs the token at DEBUG level and refuses plain http (the loopback
    sandbox) unless OAUTHLIB_INSECURE_TRANSPORT is set for the whole process. This one
    does neither, and gives every call a timeout."""

    def __init__(self, access_token, timeout):
        super().__init__()
        self.access_token = access_token
        for scheme in ("http://", "https://"):
            self.mount(scheme, TimeoutHTTPAdapter(timeout))

    def __repr__(self):  # never print the token, even in a traceback's locals
        return "<QuickBooks API session>"


def _retry_after(answer, default=60):
    """Seconds from a Retry-After header; Intuit sends none and documents "wait 60 s"."""
    value = (answer.headers.get("Retry-After") or "").strip()
    return int(value) if value.isdigit() else default


def _rows(answer, entity, what):
    """The ``entity`` rows of a query answer; LedgerAnswerInvalid when the answer has no
    QueryResponse (QuickBooks sends one, empty, when nothing matched) or a row has no Id
    (it would be linked to ledger id "None")."""
    response = answer.get("QueryResponse")
    if not isinstance(response, dict):
        raise LedgerAnswerInvalid(f"{what}: QuickBooks' answer has no QueryResponse (an "
                                  "unknown shape); try again later.")
    rows = response.get(entity) or []
    if not isinstance(rows, list) or any(
            not isinstance(row, dict) or not given_id(row.get("Id")) for row in rows):
        raise LedgerAnswerInvalid(f"{what}: QuickBooks listed {entity} entries without "
                                  "their Id (an unknown shape); try again later.")
    return rows


def _cdc_rows(answer, entity, what):
    """The ``entity`` objects of a CDC answer (``{"CDCResponse": [{"QueryResponse": [{entity:
    [...]}, ...]}]}``; a QueryResponse without the entity: none changed), deleted ones
    (``status`` Deleted) included; LedgerAnswerInvalid for another shape, or an object
    without its Id."""
    responses = answer.get("CDCResponse")
    if not isinstance(responses, list) or not all(isinstance(r, dict) for r in responses):
        raise LedgerAnswerInvalid(f"{what}: QuickBooks' answer has no CDCResponse (an unknown "
                                  "shape); try again later.")
    rows = []
    for response in responses:
        queries = response.get("QueryResponse")
        if not isinstance(queries, list) or not all(isinstance(q, dict) for q in queries):
            raise LedgerAnswerInvalid(f"{what}: QuickBooks' CDCResponse has no QueryResponse "
                                      "list (an unknown shape); try again later.")
        for query in queries:
            found = query.get(entity) or []
            if not isinstance(found, list) or any(
                    not isinstance(row, dict) or not given_id(row.get("Id")) for row in found):
                raise LedgerAnswerInvalid(f"{what}: QuickBooks listed {entity} changes without "
                                          "their Id (an unknown shape); try again later.")
            rows.extend(found)
    return rows


def _updated_at(row):
    """A row's MetaData.LastUpdatedTime in UTC (utc_timestamp), None when it has none."""
    meta = row.get("MetaData")
    return utc_timestamp(meta.get("LastUpdatedTime") if isinstance(meta, dict) else None)


def _customer_state(row):
    token = row.get("SyncToken")
    return ContactState(str(row["Id"]), payloads.customer_values(row),
                        updated_at=_updated_at(row),
                        version=None if token in (None, "") else str(token))


def _payment_state(row):
    return PaymentState(str(row["Id"]), **payloads.payment_values(row),
                        updated_at=_updated_at(row))


def _invoice_state(row):
    return InvoiceState(str(row["Id"]), **payloads.invoice_values(row),
                        updated_at=_updated_at(row))


def _credit_note_state(row):
    return CreditNoteState(str(row["Id"]), **payloads.credit_note_values(row),
                           updated_at=_updated_at(row))


# the entity of each kind read back (LedgerAdapter.READERS)
_READ_ENTITIES = {"contact": "Customer", "payment": "Payment", "invoice": "Invoice",
                  "credit_note": "CreditMemo"}

# the state of a row (a query's or CDC's, with its Id) of each entity read back
_STATES = {"Customer": _customer_state, "Payment": _payment_state, "Invoice": _invoice_state,
           "CreditMemo": _credit_note_state}


def _states(entity, rows, what):
    """{Id: state} of ``entity`` rows (query or CDC), as the read_* methods make them; what
    CDC lists for a deleted (or merged away) object is left out. LedgerAnswerInvalid for
    a row QuickBooks sent in another shape than it documents."""
    states = {}
    for row in rows:
        if payloads.is_deleted(row):
            continue
        try:
            state = _STATES[entity](row)
        except ValueError as exc:
            raise LedgerAnswerInvalid(f"{what}: QuickBooks sent {entity} {row['Id']} in an "
                                      f"unknown shape ({exc}); try again later.") from exc
        states[state.ledger_id] = state
    return states


class _Changes(NamedTuple):
    """What QboAdapter._changes read: ``rows`` {entity: [rows]} of the objects changed
    (never a deleted one); ``deleted`` {entity: [rows]} of what CDC listed as deleted
    (``{"Id", "status": "Deleted", "MetaData"}``; none when a query read instead);
    ``complete`` / ``full_read`` as ContactChanges; ``limit``: when not complete, the
    latest change a cursor may name (the earliest last change among the entities whose
    page was full: later ones of the others are read again from it), else None."""

    rows: dict
    deleted: dict
    complete: bool
    full_read: bool
    limit: str | None


def _check_batch(operations, answer, what):
    """{bId: BatchItemResponse} of a /batch answer, believed only when it answers each
    operation sent exactly once: a Fault, or the entity with its Id (a query: its
    QueryResponse). Anything else is LedgerAnswerInvalid: what QuickBooks did is unknown."""
    items = answer.get("BatchItemResponse")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise LedgerAnswerInvalid(f"{what}: QuickBooks' answer has no BatchItemResponse list "
                                  f"(an unknown shape); {UNKNOWN_OUTCOME}")
    sent = {str(op["bId"]): op for op in operations}
    answers = {}
    for item in items:
        bid = str(item.get("bId"))
        if bid not in sent or bid in answers:
            raise LedgerAnswerInvalid(
                f"{what}: QuickBooks answered {len(items)} batch items for {len(sent)} sent, "
                f"one of them for an operation that was not sent; {UNKNOWN_OUTCOME}")
        answers[bid] = item
    if len(answers) != len(sent):
        raise LedgerAnswerInvalid(f"{what}: QuickBooks answered {len(answers)} batch items "
                                  f"for {len(sent)} sent; {UNKNOWN_OUTCOME}")
    for bid, item in answers.items():
        if isinstance(item.get("Fault"), dict):
            continue
        operation = sent[bid]
        if "Query" in operation:
            if not isinstance(item.get("QueryResponse"), dict):
                raise LedgerAnswerInvalid(f"{what}: QuickBooks answered a query without its "
                                          f"QueryResponse; {UNKNOWN_OUTCOME}")
            continue
        entity = next((k for k in operation if k not in ("bId", "operation")), None)
        body = item.get(entity)
        if not isinstance(body, dict) or not given_id(body.get("Id")):
            raise LedgerAnswerInvalid(f"{what}: QuickBooks took a {entity} without saying its "
                                      f"Id; {UNKNOWN_OUTCOME}")
    return answers


def _chunks(seq, size):
    seq = list(seq)
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def _given_ids(ids):
    """The QuickBooks Ids ``ids`` name, as text (what names none left out)."""
    return {str(given_id(i)) for i in ids or () if given_id(i)}


def _by_id_queries(entity, ids):
    """The query statements reading the ``entity`` objects of ``ids`` (Id texts), in Id
    order: one per IN_LIST_MAX of them, inactive customers included."""
    also = "Active IN (true, false)" if entity == "Customer" else ""
    return [payloads.select_in(entity, "Id", chunk, also=also, max_results=PAGE)
            for chunk in _chunks(sorted(ids, key=_id_order), IN_LIST_MAX)]


def _id_order(value):
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _translate(exc, what):
    if isinstance(exc, LedgerError):
        return exc
    if isinstance(exc, requests.exceptions.JSONDecodeError):  # a RequestException too
        return LedgerAnswerInvalid(f"{what}: QuickBooks answered with a body that is not "
                                   f"JSON; {UNKNOWN_OUTCOME}")
    if isinstance(exc, requests.RequestException):
        return LedgerUnavailable(f"{what}: QuickBooks could not be reached "
                                 f"({type(exc).__name__}).")
    code = getattr(exc, "error_code", 0) or 0
    message = cap(getattr(exc, "message", None) or str(exc))
    detail = cap(getattr(exc, "detail", "") or "")
    if code == 10000 and message.startswith("Error reading json response"):
        # python-quickbooks quotes the whole body after these words: not repeated here
        return LedgerAnswerInvalid(f"{what}: QuickBooks answered with a body that is not "
                                   f"JSON; {UNKNOWN_OUTCOME}")
    if code == 401:
        return AccessTokenExpired(f"{what}: QuickBooks refused the access token (401).",
                                  status=401)
    if code in (3001, 3003) or "ThrottleExceeded" in message or "statusCode=429" in message:
        return RateLimited(f"{what}: QuickBooks' rate limit was reached.", retry_after=60,
                           assumed=True)
    if code == 3100 or "statusCode=403" in message:
        return AuthorizationRevoked(f"{what}: QuickBooks refused access (403); reconnect it.",
                                    status=403)
    if isinstance(exc, qb_exceptions.SevereException) or code >= 10000:
        return LedgerUnavailable(f"{what}: QuickBooks failed ({cap(message, 160)}).",
                                 status=500)
    suffix = f" ({detail})" if detail else ""
    return LedgerRejected(f"{what}: QuickBooks said: {message}{suffix}", status=400,
                          ledger_message=f"{message}{suffix}")


class QboAdapter(LedgerAdapter):
    """QuickBooks Online Accounting API v3."""

    provider = "qbo"
    label = "QuickBooks Online"
    SIGN_IN = SIGN_IN
    REFERENCE_NOUNS = {**LedgerAdapter.REFERENCE_NOUNS, "tax": "tax code"}
    # QuickBooks makes list entries inactive; it archives nothing
    INACTIVE_WORD = "inactive"

    @classmethod
    def describe_reference(cls, kind, name, category=None, option=None):
        """Tracking is a class or a department (its ``category``)."""
        if kind == "tracking" and category:
            return category.lower(), option or name
        return super().describe_reference(kind, name, category, option)

    # -- OAuth2 -------------------------------------------------------------
    WEBHOOK_HEADER = "intuit-signature"

    @classmethod
    def contact_as_stored(cls, values):
        # QuickBooks' display names cannot hold some characters (payloads.display_name)
        stored = dict(values)
        if stored.get("name"):
            stored["name"] = payloads.display_name(stored["name"])
        return stored

    @classmethod
    def parse_webhook(cls, payload):
        return payloads.webhook_events(payload)

    def authorization_url(self, redirect_uri, state):
        return self._consent_url({"client_id": self.client_id, "response_type": "code",
                                  "scope": SCOPE, "redirect_uri": redirect_uri,
                                  "state": state})

    @classmethod
    def callback_params(cls, query):
        """The company (realmId) Intuit names on the callback: organisations reads it."""
        realm = (query or {}).get("realmId")
        return {"realm_id": str(realm)} if realm else {}

    def exchange_code(self, code, redirect_uri, callback=None):
        # the realm came with the code on the callback: Intuit's token endpoint takes none
        return self._tokens({"grant_type": tokens.CODE, "code": code,
                             "redirect_uri": redirect_uri}, "Authorising with QuickBooks")

    def refresh(self, refresh_token):
        return self._tokens({"grant_type": tokens.REFRESH, "refresh_token": refresh_token},
                            "Refreshing the QuickBooks token")

    def revoke(self, refresh_token):
        if refresh_token:
            # Intuit's revocation endpoint takes JSON, not the form of RFC 7009
            self._revoke(refresh_token, "Revoking the QuickBooks grant", as_json=True)

    # -- SDK client -----------------------------------------------------------
    def client(self, access_token, realm_id):
        """A python-quickbooks client for one company, with a timeout on every call."""
        if not access_token:
            raise AccessTokenExpired("QuickBooks needs an access token; refresh the connection.",
                                     status=401)
        # No AuthClient: python-quickbooks would open a requests-oauthlib session from it
        # (see _BearerSession), and a real one first fetches the discovery document. Without
        # one, it is not "sandbox" either: QuickBooks.api_url reads api_url_v3.
        qb = QuickBooks(company_id=realm_id, minorversion=MINOR_VERSION)
        qb.api_url_v3 = self.api_url + "/v3"
        qb.session = _BearerSession(access_token, self.timeout)
        return qb

    def _call(self, what, fn, *args, **kwargs):
        """An SDK call whose answer python-quickbooks reads into its objects."""
        self._metered()
        try:
            return fn(*args, **kwargs)
        except (qb_exceptions.QuickbooksException, requests.RequestException) as exc:
            raise _translate(exc, what) from exc
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            # JSON without what python-quickbooks looks for (QueryResponse, the entity)
            raise LedgerAnswerInvalid(f"{what}: QuickBooks' answer has an unknown shape "
                                      f"({type(exc).__name__}); try again later.") from exc

    def _all(self, what, entity, qb):
        out, start = [], 1
        while True:
            page = self._call(what, entity.filter, qb=qb, start_position=start, max_results=PAGE)
            if any(not given_id(getattr(row, "Id", None)) for row in page):
                raise LedgerAnswerInvalid(f"{what}: QuickBooks listed {entity.__name__} "
                                          "entries without their Id; try again later.")
            out.extend(page)
            if len(page) < PAGE:
                return out
            start += PAGE

    # -- Organisation -------------------------------------------------------
    def _company(self, access_token, realm_id):
        qb = self.client(access_token, realm_id)
        return self._call("Reading the QuickBooks company", CompanyInfo.get, realm_id, qb=qb)

    def organisations(self, access_token, callback=None):
        realm_id = (callback or {}).get("realm_id")
        if not realm_id:
            raise LedgerRejected("QuickBooks named no company (realmId) when it sent the "
                                 "authorisation back: click Connect again and pick the "
                                 "company at QuickBooks.", error_class="authentication")
        info = self._company(access_token, realm_id)
        return [Organisation(id=str(realm_id), name=info.CompanyName or "")]

    def test_connection(self, access_token, org_id):
        info = self._company(access_token, org_id)
        # Intuit sends no remaining-quota header: say what the limits are.
        return ConnectionReport(
            organisation=info.CompanyName or "",
            headroom="QuickBooks does not say how much of its rate limit is left (it sends "
                     "no such header); it allows 500 requests a minute and 10 at once per "
                     "company, and 40 batch requests a minute",
        )

    # -- Reference data ------------------------------------------------------
    def reference_data(self, access_token, org_id):
        qb = self.client(access_token, org_id)
        records = []
        for acc in self._all("Importing QuickBooks accounts", Account, qb):
            kind = {"Income": "revenue_account", "Other Income": "revenue_account",
                    "Bank": "bank_account"}.get(acc.AccountType)
            if kind:
                records.append(ReferenceRecord(
                    kind=kind, ledger_id=str(acc.Id), name=acc.FullyQualifiedName or acc.Name,
                    code=acc.AcctNum or "", active=bool(acc.Active)))
        rates = {str(rate.Id): float(rate.RateValue or 0)
                 for rate in self._all("Importing QuickBooks tax rates", TaxRate, qb)}
        for tax in self._all("Importing QuickBooks tax codes", TaxCode, qb):
            # a code's sales rate is the sum of the rates it applies
            details = getattr(tax.SalesTaxRateList, "TaxRateDetail", None) or []
            rate = sum(rates.get(str(d.TaxRateRef.value), 0.0) for d in details
                       if getattr(d, "TaxRateRef", None))
            records.append(ReferenceRecord(
                kind="tax", ledger_id=str(tax.Id), name=tax.Name, code=tax.Name,
                rate=rate if tax.Taxable else 0.0, active=bool(tax.Active),
                extra={"taxable": bool(tax.Taxable)}))
        for item in self._all("Importing QuickBooks items", Item, qb):
            if item.Type == "Category":
                continue
            records.append(ReferenceRecord(
                kind="item", ledger_id=str(item.Id), name=item.FullyQualifiedName or item.Name,
                code=item.Sku or "", active=bool(item.Active)))
        for entity, label in ((Class, "Class"), (Department, "Department")):
            for rec in self._all(f"Importing QuickBooks {label.lower()}es", entity, qb):
                records.append(ReferenceRecord(
                    kind="tracking", ledger_id=f"{label}:{rec.Id}",
                    name=f"{label} / {rec.FullyQualifiedName or rec.Name}",
                    active=bool(rec.Active), category=label,
                    option=rec.FullyQualifiedName or rec.Name or "",
                    extra={"entity": label, "id": str(rec.Id)}))
        for term in self._all("Importing QuickBooks terms", Term, qb):
            records.append(ReferenceRecord(
                kind="term", ledger_id=str(term.Id), name=term.Name, active=bool(term.Active),
                extra={"due_days": term.DueDays}))
        records += self._currencies(qb)
        return records

    def _currencies(self, qb):
        """The company's home currency and, with multicurrency on, its active currencies
        (CompanyCurrency list): a document in any other is refused before it is sent."""
        prefs = self._call("Reading QuickBooks preferences", Preferences.get, qb=qb)
        currency_prefs = getattr(prefs, "CurrencyPrefs", None)
        home = getattr(getattr(currency_prefs, "HomeCurrency", None), "value", None)
        records = [ReferenceRecord(kind="currency", ledger_id=home, name=home, code=home,
                                   extra={"base": True})] if home else []
        if getattr(currency_prefs, "MultiCurrencyEnabled", False):
            for currency in self._all("Importing QuickBooks currencies", CompanyCurrency, qb):
                if currency.Code and currency.Code != home:
                    records.append(ReferenceRecord(
                        kind="currency", ledger_id=currency.Code,
                        name=currency.Name or currency.Code, code=currency.Code,
                        active=bool(currency.Active)))
        return records

    # -- Push -----------------------------------------------------------------
    # Intuit's documented ceilings per company (realm): 500 requests a minute, 10 at
    # once, 40 /batch calls a minute; no daily cap.
    KINDS = KINDS
    LIMITS = {"per_minute": 500, "per_day": None, "concurrent": 10, "batch_per_minute": 40,
              "per_second": 10}
    # candidates find_contacts matches in ONE /batch (3 queries per 50 candidates,
    # 30 queries per batch)
    FIND_LIMIT = 500
    FIND_BATCHED = True

    @classmethod
    def batched(cls, kind, count):
        """A push goes as one /batch, except one object of a ``single`` kind alone."""
        return count > 1 or not cls.kind_spec(kind).single

    def push(self, access_token, org_id, kind, items, idempotency_key):
        """Create or update ``items`` (one kind) in ONE /batch call with requestid =
        ``idempotency_key`` (QuickBooks replays its first answer to a repeated id); one
        object of a ``single`` kind alone goes to its entity's endpoint, under the same
        requestid (see batched).

        Extra calls, only when needed: one query for the SyncTokens of updates that came
        without ``version`` (and, for payments, for the customers of their invoices when
        ``contact_ref`` is absent); one more /batch re-sending items refused as stale
        (Fault 5010) with freshly read SyncTokens; for credit notes, one /batch of the zero
        Payments that apply them to their invoices. Returns one PushResult per item, in
        order; raises RateLimited / LedgerUnavailable / AccessTokenExpired /
        AuthorizationRevoked for failures of the whole call.
        """
        spec = self.kind_spec(kind)  # ValueError for a kind QuickBooks is not sent
        entity = spec.entity
        items = list(items)
        if len(items) > BATCH_MAX:  # the caller sized it wrongly: still one key per call
            out = []
            for n, part in enumerate(_chunks(items, BATCH_MAX)):
                out += self.push(access_token, org_id, kind, part,
                                 payloads.request_id(idempotency_key, f"part{n}"))
            return out
        if not items:
            return []
        if kind == "delete_payment" or (kind == "void_invoice" and any(
                item.values.get("or_credit") for item in items)):
            return self._push_edits(access_token, org_id, kind, items, idempotency_key)
        qb = self.client(access_token, org_id)
        what = spec.what
        results = {}

        # an invoice update is read first, even with its SyncToken: see settled()
        current = self._read_many(qb, entity, [i.ledger_id for i in items if i.ledger_id and (
            not i.version or kind == "invoice")], what)
        customers, open_balances = {}, None
        if kind == "payment":
            # the invoices paid: their customer, and their open balance, which caps what
            # a new payment applies to each (QuickBooks refuses more)
            invoices = self._read_many(qb, "Invoice", [
                a.get("invoice_ref") for i in items for a in _allocations(i.values)
                if a.get("invoice_ref")], what)
            customers = {iid: (inv.get("CustomerRef") or {}).get("value")
                         for iid, inv in invoices.items()}
            open_balances = {iid: float(inv.get("Balance") or 0.0)
                             for iid, inv in invoices.items()}

        operations, planned = [], {}
        for item in items:
            version = item.version or (current.get(str(item.ledger_id)) or {}).get("SyncToken")
            try:
                if item.ledger_id and version is None:
                    raise payloads.PayloadError(
                        f"QuickBooks has no {entity} {item.ledger_id} any more (deleted or "
                        "merged there); unlink it to create it again.")
                held = current.get(str(item.ledger_id)) if kind == "invoice" else None
                if held and payloads.settled(held):
                    raise payloads.PayloadError(
                        f"QuickBooks has payments or credits applied to invoice "
                        f"{held.get('DocNumber')}: it is not changed in place (QuickBooks "
                        "would take the change silently and unapply them). Reset the invoice "
                        "to draft in Odoo to replace it, or change it in QuickBooks.")
                body = _build(kind, item, version, customers, open_balances)
            except payloads.PayloadError as exc:
                results[item.key] = PushResult(item.key, False, ledger_id=item.ledger_id,
                                               error=LedgerRejected(str(exc)))
                continue
            operation = spec.operation or ("update" if item.ledger_id else "create")
            planned[item.key] = operation
            operations.append({"bId": item.key, "operation": operation, entity: body})
        if kind == "credit_note" and len(operations) < BATCH_MAX:
            balances = self._balances_query(items, planned)
            if balances:
                operations.append({"bId": BALANCES_BID, "Query": balances})

        answers = {}
        if operations:
            send = self._batch if self.batched(kind, len(items)) else self._single
            try:
                answers = send(qb, operations, payloads.request_id(idempotency_key), what)
            except LedgerRejected as exc:  # the whole call refused: every item says why
                for key in planned:
                    results[key] = PushResult(key, False, error=exc)
                return [results[item.key] for item in items]
            answers.update(self._retry_stale(qb, kind, entity, items, planned, answers,
                                             customers, idempotency_key, what))
        for item in items:
            if item.key not in results:
                results[item.key] = self._result(kind, entity, item, answers.get(item.key),
                                                 org_id)
        if kind == "credit_note":
            self._apply_credits(qb, items, results, answers, idempotency_key, what)
        if kind == "payment":
            self._note_capped(items, results, customers, open_balances)
        return [results[item.key] for item in items]

    def find_documents(self, access_token, org_id, kind, numbers):
        """{DocNumber: (Id, SyncToken)}: one query per 50 numbers (voided ones, which
        QuickBooks keeps with a zero total, are left out)."""
        entity = self.kind_spec(kind).entity
        qb = self.client(access_token, org_id)
        found = {}
        numbers = sorted({str(n) for n in numbers if n})
        for chunk in _chunks(numbers, IN_LIST_MAX):
            statement = payloads.select_in(entity, "DocNumber", chunk, max_results=PAGE)
            what = f"Looking for {entity}s in QuickBooks"
            answer = self._send(qb, "query", statement, what, content_type="application/text")
            for row in _rows(answer, entity, what):
                if "Voided" in str(row.get("PrivateNote") or "") and not row.get("TotalAmt"):
                    continue
                found.setdefault(row.get("DocNumber"),
                                 (str(row["Id"]), str(row.get("SyncToken", ""))))
        return found

    def find_contacts(self, access_token, org_id, candidates):
        """ContactMatches ({candidate key: Customer Id}, with ``name_holders``) for
        candidates already in QuickBooks.

        One /batch call carries every query (by e-mail, by display name; 50 values per
        IN list, 30 queries per call). QuickBooks cannot query customers by tax id
        (PrimaryTaxIdentifier is not filterable, and is returned masked), so the tax id
        only decides between customers found by e-mail or name, and a masked one only
        rules out those whose visible end differs. Then e-mail, then the exact
        (case-insensitive, as QuickBooks' names are unique that way) display name; a
        customer whose e-mail or tax id differs from the candidate's is never taken on
        its name (services/contacts.py decides, as for Xero).
        """
        candidates = [c for c in candidates or [] if c.get("key")]
        emails = sorted({str(c["email"]).strip().lower() for c in candidates
                         if c.get("email")})
        names = sorted({payloads.display_name(c["name"]) for c in candidates
                        if c.get("name")} - {""})
        queries = []
        for chunk in _chunks(emails, IN_LIST_MAX):
            # Intuit filters PrimaryEmailAddr by its address; the sandbox only resolves the
            # dotted form. Both ride in the same call; a Fault on either is ignored.
            for prop in ("PrimaryEmailAddr", "PrimaryEmailAddr.Address"):
                queries.append(payloads.select_in("Customer", prop, chunk, max_results=PAGE))
        for chunk in _chunks(names, IN_LIST_MAX):
            queries.append(payloads.select_in("Customer", "DisplayName", chunk,
                                              max_results=PAGE))
        if not queries:
            return ContactMatches()
        qb = self.client(access_token, org_id)
        rows = {}
        for part in _chunks(queries, BATCH_MAX):
            answers = self._batch(qb, [{"bId": f"q{n}", "Query": q} for n, q in enumerate(part)],
                                  None, "Looking for customers in QuickBooks")
            for answer in answers.values():
                if answer.get("Fault"):
                    continue  # a query QuickBooks cannot run (see above): the others stand
                for row in _rows(answer, "Customer", "Looking for customers in QuickBooks"):
                    rows[str(row["Id"])] = row
        found = [{"id": row_id, "tax_id": row.get("PrimaryTaxIdentifier"),
                  "email": (row.get("PrimaryEmailAddr") or {}).get("Address"),
                  "name": payloads.display_name(row.get("DisplayName"))}
                 for row_id, row in rows.items()]
        # names compared as QuickBooks will store the candidate's (display_name)
        return match_contacts([{**cand, "name": payloads.display_name(cand.get("name"))}
                               for cand in candidates], found)

    def is_duplicate_name(self, error):
        """True when ``error`` (a refused customer) is Fault 6240: a customer, vendor or
        employee already has this display name."""
        return any(isinstance(d, dict) and str(d.get("code")) == "6240"
                   for d in getattr(error, "details", None) or [])

    def read_contacts(self, access_token, org_id, ids):
        """{Customer Id: ContactState} of the customers ``ids`` name: one query
        ``select * from Customer where Id in (...) and Active in (true, false)`` per 50 ids
        (_read_many). QuickBooks deletes no customer, it makes it inactive (included); an
        Id it does not know (or one merged away) is absent. ``version`` is the SyncToken,
        ``updated_at`` MetaData.LastUpdatedTime in UTC."""
        return self._read_states(access_token, org_id, "Customer", ids,
                                 "Reading QuickBooks customers")

    def read_payments(self, access_token, org_id, ids):
        """{Payment Id: PaymentState} of the customer payments ``ids`` name: one query
        ``select * from Payment where Id in (...)`` per 50 ids (_read_many), parsed by
        payloads.payment_values. A voided payment (QuickBooks keeps it, zeroed) comes with
        ``deleted`` set; a deleted one is gone from QuickBooks, so absent, as is an Id it
        never knew."""
        return self._read_states(access_token, org_id, "Payment", ids,
                                 "Reading QuickBooks payments")

    def read_invoices(self, access_token, org_id, ids):
        """{Invoice Id: InvoiceState} of the invoices ``ids`` name: one query ``select *
        from Invoice where Id in (...)`` per 50 ids, parsed by payloads.invoice_values
        (voided ones included, "voided"; deleted and unknown ones absent)."""
        return self._read_states(access_token, org_id, "Invoice", ids,
                                 "Reading QuickBooks invoices")

    def read_credit_notes(self, access_token, org_id, ids):
        """{CreditMemo Id: CreditNoteState} of the credit memos ``ids`` name: one query
        ``select * from CreditMemo where Id in (...)`` per 50 ids, parsed by
        payloads.credit_note_values (voided ones included, "voided"; deleted and unknown
        ones absent). What a memo was applied to is not on it: QuickBooks applies credit
        through Payments (PaymentState.credits), so ``allocations`` is empty."""
        return self._read_states(access_token, org_id, "CreditMemo", ids,
                                 "Reading QuickBooks credit memos")

    def read_changed(self, access_token, org_id, wanted):
        """{kind: {Id: state}} of the objects ``wanted`` ({kind: [Ids]}) names, as the
        read_<kind> methods read them, in ONE /batch call when it takes several queries (a
        payment announces its invoice's change too: one request, not two): one query
        ``select * from <entity> where Id in (...)`` per 50 Ids of each kind, 30 a call.
        A lone query goes alone (POST /query), as read_<kind> sends it. A query QuickBooks
        refuses within the batch refuses the whole read (LedgerRejected, its message)."""
        what = "Reading what QuickBooks announced"
        asked = {kind: _given_ids(ids) for kind, ids in wanted.items()}
        queries = [(kind, query) for kind, ids in asked.items()
                   for query in _by_id_queries(_READ_ENTITIES[kind], ids)]
        if len(queries) <= 1:
            return super().read_changed(access_token, org_id, wanted)
        qb = self.client(access_token, org_id)
        rows = {kind: [] for kind in wanted}
        for part in _chunks(queries, BATCH_MAX):
            answers = self._batch(qb, [{"bId": f"r{n}", "Query": query}
                                       for n, (_kind, query) in enumerate(part)], None, what)
            for n, (kind, _query) in enumerate(part):
                answer = answers[f"r{n}"]  # _check_batch: one for each sent
                if answer.get("Fault"):
                    text, details = payloads.fault_text(answer["Fault"])
                    raise LedgerRejected(f"{what}: QuickBooks said: {text}", details=details,
                                         ledger_message=text)
                rows[kind] += [row for row in _rows(answer, _READ_ENTITIES[kind], what)
                               if str(row["Id"]) in asked[kind]]
        return {kind: _states(_READ_ENTITIES[kind], found, what)
                for kind, found in rows.items()}

    @classmethod
    def read_requests(cls, kinds):
        """One request: a lone query, or one /batch of every kind's (see read_changed)."""
        return 1, len(kinds) > 1

    def _read_states(self, access_token, org_id, entity, ids, what):
        """{Id: state} of the ``entity`` objects ``ids`` name, as _states makes them, keyed
        by the Id text; no request at all when no id can be a QuickBooks one."""
        wanted = _given_ids(ids)
        if not wanted:
            return {}
        qb = self.client(access_token, org_id)
        rows = self._read_many(qb, entity, wanted, what)
        # only what was asked for: the query names only that
        return _states(entity, [row for ledger_id, row in rows.items() if ledger_id in wanted],
                       what)

    def changed_contacts(self, access_token, org_id, since):
        """ContactChanges of the QuickBooks customers changed at or after ``since`` (see the
        base), inactive ones included, deleted (merged away) ones left out; read by
        _changes: CDC within its look-back, else (or when CDC has too many) a query of
        changed_since, ``full_read`` when CDC could not be asked."""
        since = change_cursor(since)  # ValueError before anything is sent
        qb = self.client(access_token, org_id)
        what = "Listing changed QuickBooks customers"
        found = self._changes(qb, ("Customer",), since, what)
        states = _states("Customer", found.rows["Customer"], what)
        return ContactChanges(states, latest_cursor(states, since), complete=found.complete,
                              full_read=found.full_read)

    def changed_documents(self, access_token, org_id, since):
        """DocumentChanges of the QuickBooks payments, invoices and credit memos changed at or
        after ``since`` (see the base), read by _changes as changed_contacts reads
        customers: one GET cdc?entities=Payment,Invoice,CreditMemo within CDC's look-back,
        else the queries ``SELECT * FROM Payment|Invoice|CreditMemo [WHERE
        MetaData.LastUpdatedTime >= since] ORDERBY MetaData.LastUpdatedTime`` (1,000 a
        page), ``full_read``.

        A payment CDC lists as deleted is in ``deleted_payments`` (a query cannot see one:
        none then; a voided payment is a change, in ``payments`` with ``deleted`` set). An
        invoice or a credit memo CDC lists as deleted is in ``invoices`` /
        ``credit_notes`` with status "deleted" and no amount (QuickBooks sends only its
        Id); a voided one is a change, status "voided". ``cursor``: the latest change listed
        (deletions included), or, when a page of any entity was full (``complete`` False),
        the last change read of the one that got least far (the others' later changes are
        listed again from it)."""
        since = change_cursor(since)  # ValueError before anything is sent
        qb = self.client(access_token, org_id)
        what = "Listing changed QuickBooks payments, invoices and credit memos"
        found = self._changes(qb, ("Payment", "Invoice", "CreditMemo"), since, what)
        payments = _states("Payment", found.rows["Payment"], what)
        invoices = _states("Invoice", found.rows["Invoice"], what)
        credit_notes = _states("CreditMemo", found.rows["CreditMemo"], what)
        zero = Decimal("0.00")
        for row in found.deleted["Invoice"]:
            invoices[str(row["Id"])] = InvoiceState(
                str(row["Id"]), "deleted", zero, zero, updated_at=_updated_at(row))
        for row in found.deleted["CreditMemo"]:
            credit_notes[str(row["Id"])] = CreditNoteState(
                str(row["Id"]), None, "deleted", zero, zero, zero,
                updated_at=_updated_at(row))
        gone = tuple(dict.fromkeys(str(row["Id"]) for row in found.deleted["Payment"]))
        stamps = [state.updated_at for state in (*payments.values(), *invoices.values(),
                                                 *credit_notes.values())]
        stamps += [_updated_at(row) for row in found.deleted["Payment"]]
        cursor = found.limit or max([s for s in (*stamps, since) if s], default=None)
        return DocumentChanges(payments, invoices, cursor, deleted_payments=gone,
                               complete=found.complete, full_read=found.full_read,
                               credit_notes=credit_notes)

    def _changes(self, qb, entities, since, what):
        """_Changes: the ``entities`` objects changed at or after ``since`` (a change_cursor;
        None: every one).

        Within CDC's look-back (``since`` less than 29 days old by this server's clock: a
        day's margin for QuickBooks' own): one GET cdc?entities=...&changedSince=..., its
        deleted objects apart. CDC answers at most 1,000 objects in all, and Intuit does not
        say which ones it keeps of more: at that many, the same call reads the changes by
        the queries instead (below; what CDC said was deleted is kept, though it may not be
        all of it) and they decide ``complete``.

        Otherwise (``since`` None, older, or CDC refused it: QuickBooks' clock decides) one
        query of payloads.changed_since per entity, oldest change first, 1,000 a page, and
        ``full_read``: nothing deleted can be seen that way. A full page makes the call
        incomplete; a full page all within ``since``'s second is followed by the next one
        (STARTPOSITION 1001...) until the cursor can move on."""
        moment = cursor_moment(since)
        recent = moment is not None and moment > _utcnow() - CDC_LOOKBACK + CDC_MARGIN
        deleted = {entity: [] for entity in entities}
        if recent:
            try:
                answer = self._get(qb, "cdc", what, params={
                    "entities": ",".join(entities), "changedSince": payloads.utc_time(since)})
            except LedgerRejected:
                recent = False  # QuickBooks' look-back, by its clock: the queries read
            else:
                found = {entity: _cdc_rows(answer, entity, what) for entity in entities}
                deleted = {entity: [row for row in rows if payloads.is_deleted(row)]
                           for entity, rows in found.items()}
                if sum(len(rows) for rows in found.values()) < CDC_MAX:
                    return _Changes({entity: [row for row in rows if not payloads.is_deleted(
                        row)] for entity, rows in found.items()}, deleted, True, False, None)
        rows, limits = {}, []
        for entity in entities:
            rows[entity], last = self._rows_since(qb, entity, since, what)
            if last:
                limits.append(last)
        return _Changes(rows, deleted, not limits, not recent, min(limits, default=None))

    def _rows_since(self, qb, entity, since, what):
        """([rows], last): the oldest PAGE ``entity`` changes at or after ``since`` (every
        one when None) by changed_since's query; more only while a whole page is within
        ``since``'s own second. ``last``: None when that was all of them, else the last
        change read."""
        rows, start = [], 1
        while True:
            statement = payloads.changed_since(entity, since, start, PAGE)
            answer = self._send(qb, "query", statement, what, content_type="application/text")
            page = _rows(answer, entity, what)
            rows.extend(page)
            if len(page) < PAGE:
                return rows, None
            last = _updated_at(page[-1])
            if last and (since is None or last > since):
                return rows, last
            start += PAGE

    # -- edits after sync -------------------------------------------------------
    def _push_edits(self, access_token, org_id, kind, items, idempotency_key):
        """Retire in QuickBooks what Odoo took back: payments (``delete_payment``),
        invoices (``void_invoice`` with ``values["or_credit"]``; without it, a plain void).

        Payments (``values["remove_payments"]``, else the item's ``ledger_id``) are deleted
        first, in one /batch (operation=delete); one already gone counts as removed.
        Invoices are then read (one query): each one nothing was applied to is voided, in
        one /batch; any other is credited (QuickBooks would void a paid invoice without a
        word, leaving its payments unapplied), and so is one whose void was refused (a
        closed period): a CreditMemo copying its lines, applied to what is left open on it
        by a zero Payment. A step that went only in part is said in the result's ``error``
        (a warning) and ``note``."""
        qb = self.client(access_token, org_id)
        what = ("Voiding invoices in QuickBooks" if kind == "void_invoice"
                else "Removing payments in QuickBooks")
        removal = {item.key: item.values.get("remove_payments") or (
            [item.ledger_id] if kind == "delete_payment" else []) for item in items}
        kept = self._delete_payments(qb, [p for ids in removal.values() for p in ids],
                                     idempotency_key, what)
        warnings = {item.key: [kept[p] for p in removal[item.key] if p in kept]
                    for item in items}
        results = {}
        if kind == "delete_payment":
            for item in items:
                why = warnings.pop(item.key)
                results[item.key] = PushResult(
                    item.key, not why, ledger_id=item.ledger_id, note="removed",
                    error=LedgerRejected(" ".join(why)) if why else None)
            return [results[item.key] for item in items]
        self._retire_invoices(qb, items, idempotency_key, results, warnings, what)
        for item in items:
            result = results[item.key]
            if result.ok and warnings[item.key]:
                result.error = LedgerError(" ".join(
                    [*warnings[item.key], *([str(result.error)] if result.error else [])]))
        return [results[item.key] for item in items]

    def _delete_payments(self, qb, ids, key, what):
        """Delete QuickBooks payments; {payment id: why QuickBooks kept it}."""
        current = self._read_many(qb, "Payment", ids, what)
        operations = [{"bId": f"pay-{pid}", "operation": "delete",
                       "Payment": {"Id": pid, "SyncToken": row.get("SyncToken")}}
                      for pid, row in current.items()]
        kept = {}
        for n, part in enumerate(_chunks(operations, BATCH_MAX)):
            answers = self._batch(qb, part, payloads.request_id(key, "del", n), what)
            for operation in part:
                answer = answers[operation["bId"]]  # _check_batch: one for each sent
                pid = operation["Payment"]["Id"]
                fault = answer.get("Fault")
                if fault:
                    kept[pid] = (f"QuickBooks kept payment {pid}: "
                                 f"{payloads.fault_text(fault)[0]}")
                elif answer["Payment"].get("status") != "Deleted":
                    # a delete answers {"status": "Deleted", "Id": ...}: anything else says
                    # nothing certain (the same key replays QuickBooks' first answer)
                    raise LedgerAnswerInvalid(
                        f"{what}: QuickBooks answered the deletion of payment {pid} without "
                        f"saying it was deleted; {UNKNOWN_OUTCOME}")
        return kept

    def _retire_invoices(self, qb, items, key, results, warnings, what):
        held = self._read_many(qb, "Invoice", [item.ledger_id for item in items], what)
        to_void, to_credit = [], []
        for item in items:
            invoice = held.get(str(item.ledger_id))
            if invoice is None or payloads.is_voided(invoice):
                results[item.key] = PushResult(
                    item.key, True, ledger_id=item.ledger_id,
                    note="no longer in QuickBooks (deleted there)" if invoice is None
                    else "already voided in QuickBooks")
            elif payloads.settled(invoice):
                to_credit.append((item, invoice))
            else:
                to_void.append((item, invoice))
        if to_void:
            answers = self._batch(qb, [
                {"bId": item.key, "operation": "void",
                 "Invoice": payloads.void(item.ledger_id, invoice.get("SyncToken"))}
                for item, invoice in to_void], payloads.request_id(key, "void"), what)
            for item, invoice in to_void:
                answer = answers.get(item.key) or {}
                if answer.get("Fault") or not answer.get("Invoice"):
                    why = payloads.fault_text(answer.get("Fault"))[0]
                    warnings[item.key].append(f"QuickBooks would not void invoice "
                                              f"{invoice.get('DocNumber')} ({why}): it was "
                                              "credited instead.")
                    to_credit.append((item, invoice))
                    continue
                results[item.key] = PushResult(item.key, True, ledger_id=item.ledger_id,
                                               version=str(answer["Invoice"].get("SyncToken")),
                                               note="voided")
        if to_credit:
            self._credit_invoices(qb, to_credit, key, results, warnings, what)

    def _credit_invoices(self, qb, pairs, key, results, warnings, what):
        """One CreditMemo per invoice QuickBooks cannot void, applied to its open balance."""
        operations, kept = [], []
        for item, invoice in pairs:
            try:
                body = payloads.credit_memo_for(invoice,
                                                note=f"Credits invoice {invoice.get('DocNumber')}")
            except payloads.PayloadError as exc:
                results[item.key] = PushResult(item.key, False, ledger_id=item.ledger_id,
                                               error=LedgerRejected(str(exc)))
                continue
            operations.append({"bId": item.key, "operation": "create", "CreditMemo": body})
            kept.append((item, invoice))
        if not operations:
            return
        # keyed by the invoices credited, not by this attempt: a retry under a new job key
        # replays the memo QuickBooks already made instead of crediting twice
        credit_key = payloads.request_id("credit", *[inv.get("Id") for _i, inv in kept])
        try:
            answers = self._batch(qb, operations, credit_key, what)
        except LedgerRejected as exc:
            answers = {item.key: {"Fault": {"Error": [{"Message": exc.message}]}}
                       for item, _invoice in kept}
        applications, owner = [], {}
        for item, invoice in kept:
            answer = answers.get(item.key) or {}
            memo = answer.get("CreditMemo")
            if answer.get("Fault") or not memo:
                why = payloads.fault_text(answer.get("Fault"))[0]
                results[item.key] = PushResult(item.key, False, ledger_id=item.ledger_id,
                                               error=LedgerRejected(
                    f"QuickBooks cannot void invoice {invoice.get('DocNumber')} and refused "
                    f"the credit memo for it: {why}"))
                continue
            number = memo.get("DocNumber") or memo.get("Id")
            results[item.key] = PushResult(item.key, True, ledger_id=item.ledger_id,
                                           number=memo.get("DocNumber"),
                                           note=f"credited by credit memo {number}")
            if payloads.money(memo.get("TotalAmt")) != payloads.money(invoice.get("TotalAmt")):
                results[item.key].incomplete = True
                results[item.key].error = LedgerError(
                    f"Credit memo {number} is for {payloads.money(memo.get('TotalAmt')):.2f}, "
                    f"invoice {invoice.get('DocNumber')} for "
                    f"{payloads.money(invoice.get('TotalAmt')):.2f}: correct it in QuickBooks.")
            amount = min(payloads.money(invoice.get("Balance")),
                         payloads.money(memo.get("TotalAmt")))
            if amount <= 0:
                warnings[item.key].append(f"Nothing is left open on invoice "
                                          f"{invoice.get('DocNumber')} in QuickBooks: credit "
                                          f"memo {number} stays as the customer's credit.")
                continue
            bid = f"{item.key}#apply"
            owner[bid] = (item, number)
            applications.append({"bId": bid, "operation": "create",
                                 "Payment": payloads.credit_application(
                                     memo["CustomerRef"]["value"], memo["Id"], item.ledger_id,
                                     amount, note=f"Credit memo {number} applied",
                                     currency=(memo.get("CurrencyRef") or {}).get("value"),
                                     rate=memo.get("ExchangeRate"))})
        if not applications:
            return
        apply_key = payloads.request_id("apply", *[b["Payment"]["Line"][1]["LinkedTxn"][0][
            "TxnId"] for b in applications])
        try:
            applied = self._batch(qb, applications, apply_key, what)
        except LedgerRejected as exc:
            applied = {bid: {"Fault": {"Error": [{"Message": exc.message}]}} for bid in owner}
        for bid, (item, number) in owner.items():
            fault = (applied.get(bid) or {}).get("Fault")
            if fault or bid not in applied:
                # credited, but the invoice is still open in QuickBooks: not done
                results[item.key].incomplete = True
                results[item.key].error = LedgerRejected(
                    f"Credit memo {number} was not applied to its invoice: "
                    f"{payloads.fault_text(fault)[0]}")

    # -- push helpers -----------------------------------------------------------
    def _note_capped(self, items, results, customers, balances):
        """A payment QuickBooks took with a line capped at the invoice's balance is in
        QuickBooks but short: its result is incomplete, with both figures."""
        for item in items:
            result = results[item.key]
            if not result.ok or item.ledger_id:
                continue
            _body, capped = _payment(item, None, customers, balances)
            if capped:
                short = "; ".join(
                    f"{a.get('invoice_number') or a.get('invoice_ref')}: Odoo applied "
                    f"{amount:.2f}, QuickBooks had {balance:.2f} open"
                    for a, amount, balance in capped)
                result.incomplete = True
                result.error = LedgerRejected(
                    f"The payment is in QuickBooks but applies less than in Odoo ({short}); "
                    "fix the invoice there, then Retry.")

    def _result(self, kind, entity, item, answer, org_id):
        if not answer:  # _check_batch lets none through: never a refusal, it is unknown
            return PushResult(item.key, False, ledger_id=item.ledger_id, error=LedgerAnswerInvalid(
                f"QuickBooks did not answer for this item; {UNKNOWN_OUTCOME}"))
        if answer.get("Fault"):
            text, details = payloads.fault_text(answer["Fault"])
            return PushResult(item.key, False, ledger_id=item.ledger_id, error=LedgerRejected(
                f"QuickBooks refused it: {text}", details=details, ledger_message=text))
        spec = KINDS[kind]
        obj = answer.get(entity) or {}
        ledger_id = str(obj.get("Id") or item.ledger_id or "")
        totals = None
        if spec.due:
            due = next((obj[prop] for prop in spec.due if prop in obj), None)
            totals = {"total": _amount(obj.get("TotalAmt")),
                      "tax": _amount((obj.get("TxnTaxDetail") or {}).get("TotalTax", 0)),
                      "amount_due": _amount(due)}
        return PushResult(
            item.key, True, ledger_id=ledger_id,
            number=obj.get("DocNumber") if spec.number else None,
            version=str(obj["SyncToken"]) if obj.get("SyncToken") is not None else None,
            url=self.web_url(kind, ledger_id, org_id), totals=totals)

    def _retry_stale(self, qb, kind, entity, items, planned, answers, customers, key, what):
        """Fault 5010 (someone changed it since our SyncToken): re-read those objects,
        re-apply our values on the current SyncToken and send them once more."""
        stale = [i for i in items if i.key in planned and "5010" in payloads.fault_codes(
            (answers.get(i.key) or {}).get("Fault"))]
        if not stale:
            return {}
        fresh = self._read_many(qb, entity, [i.ledger_id for i in stale], what)
        operations, versions = [], []
        for item in stale:
            row = fresh.get(str(item.ledger_id)) or {}
            token = row.get("SyncToken")
            if token is None:
                continue  # gone meanwhile: the stale Fault stands
            if kind == "invoice" and payloads.settled(row):
                continue  # paid meanwhile: never changed in place (the stale Fault stands)
            operations.append({"bId": item.key, "operation": planned[item.key],
                               entity: _build(kind, item, token, customers)})
            versions.append(f"{item.ledger_id}.{token}")
        if not operations:
            return {}
        # keyed by the SyncTokens read: a replay of this push replays this retry too
        send = self._batch if self.batched(kind, len(operations)) else self._single
        return send(qb, operations, payloads.request_id(key, "stale", *versions), what)

    @staticmethod
    def _balances_query(items, planned):
        ids = sorted({str(a.get("invoice_ref")) for i in items if i.key in planned
                      for a in (i.values.get("allocations") or []) if a.get("invoice_ref")},
                     key=_id_order)[:IN_LIST_MAX]
        if not ids:
            return None
        return payloads.select_in("Invoice", "Id", ids, max_results=PAGE)

    def _apply_credits(self, qb, items, results, answers, key, what):
        """Apply each credit note to its invoice: one /batch of zero Payments linking the
        CreditMemo and the Invoice, for what is not applied yet, capped at the invoice's
        open balance (queried in the same call as the credit notes) and the credit left.

        A refused, capped or impossible application does not undo the credit note (it is
        in QuickBooks, and linked): its result is ``incomplete``, with both figures, the
        job waits for a fix and the next push applies only what is still missing."""
        # a query QuickBooks refused (a Fault) caps nothing: the application says what it took
        query = answers.get(BALANCES_BID) or {}
        rows = [] if query.get("Fault") or not query else _rows(query, "Invoice", what)
        balances = {str(r["Id"]): float(r.get("Balance") or 0.0) for r in rows}
        operations, owner, short = [], {}, {}
        for item in items:
            result, memo = results[item.key], (answers.get(item.key) or {}).get("CreditMemo")
            allocations = item.values.get("allocations") or []
            if not (result.ok and memo and allocations):
                continue
            total = float(memo.get("TotalAmt") or 0.0)
            remaining = float(memo.get("RemainingCredit", total) or 0.0)
            # what earlier pushes applied (credit notes are applied to their own invoice)
            used = round(total - remaining, 2)
            number = memo.get("DocNumber")
            for n, alloc in enumerate(allocations):
                invoice_id = str(alloc.get("invoice_ref") or "")
                wanted = payloads.money(alloc.get("amount"))
                done = min(used, wanted)
                used -= done
                left = payloads.money(wanted - done)
                if left <= 0:
                    continue
                balance = balances.get(invoice_id, float("inf"))
                amount = payloads.money(min(left, remaining, balance))
                if amount < left:
                    short.setdefault(item.key, []).append(
                        f"{alloc.get('invoice_number') or invoice_id}: Odoo applies "
                        f"{left:.2f} of it, QuickBooks has "
                        + (f"{balance:.2f} open on the invoice and " if balance != float("inf")
                           else "") + f"{remaining:.2f} of credit left")
                if not invoice_id or amount <= 0:
                    continue
                remaining -= amount
                bid = f"{item.key}#{n}"
                owner[bid] = item.key
                operations.append({"bId": bid, "operation": "create", "Payment":
                                   payloads.credit_application(
                                       memo["CustomerRef"]["value"], memo["Id"], invoice_id,
                                       amount, alloc.get("date"),
                                       note=f"Credit note {number} applied",
                                       currency=(memo.get("CurrencyRef") or {}).get("value"),
                                       rate=memo.get("ExchangeRate"))})
        applied = {}
        if operations:
            try:
                applied = self._batch(qb, operations, payloads.request_id(key, "apply"), what)
            except LedgerRejected as exc:
                applied = {bid: {"Fault": {"Error": [{"Message": str(exc)}]}} for bid in owner}
        for bid, item_key in owner.items():
            fault = (applied.get(bid) or {}).get("Fault")
            if fault or bid not in applied:
                text, details = payloads.fault_text(fault)
                results[item_key].incomplete = True
                results[item_key].error = LedgerRejected(
                    "The credit note is in QuickBooks but was not applied to its invoice: "
                    + text, details=details, ledger_message=text)
        for item_key, lines in short.items():
            if not results[item_key].incomplete:
                results[item_key].incomplete = True
                results[item_key].error = LedgerRejected(
                    "The credit note is in QuickBooks but was applied only in part ("
                    + "; ".join(lines) + "); fix the invoice there, then Retry.")

    def _read_many(self, qb, entity, ids, what):
        """{Id: entity} for ids, one query per 50 ids (inactive customers included)."""
        out = {}
        for statement in _by_id_queries(entity, {str(i) for i in ids if i}):
            answer = self._send(qb, "query", statement, what, content_type="application/text")
            for row in _rows(answer, entity, what):
                out[str(row["Id"])] = row
        return out

    def _batch(self, qb, operations, request_id, what):
        """POST one IntuitBatchRequest; {bId: BatchItemResponse}."""
        params = {"requestid": request_id} if request_id else {}
        answer = self._send(qb, "batch", {"BatchItemRequest": operations}, what, params=params)
        return _check_batch(operations, answer, what)

    def _single(self, qb, operations, request_id, what):
        """POST one create or update to its entity's own endpoint with requestid =
        ``request_id``: the same {bId: BatchItemResponse} as _batch, a refusal of the
        object (a 400 Fault about it) answered as its Fault, as a batch item would be."""
        (operation,) = operations
        entity = next(k for k in operation if k not in ("bId", "operation"))
        answer = self._post(qb, entity.lower(), operation[entity], what,
                            params={"requestid": request_id})
        fault = _object_fault(answer)
        item = {"Fault": fault} if fault else _read_answer(answer, what)
        item = {k: v for k, v in item.items() if k != "time"}
        return _check_batch(operations, {"BatchItemResponse": [{**item, "bId": operation["bId"]}]},
                            what)

    def _send(self, qb, endpoint, body, what, params=None, content_type="application/json"):
        """The JSON answer of one POST (see _post), or the LedgerError it means."""
        return _read_answer(self._post(qb, endpoint, body, what, params, content_type), what)

    def _get(self, qb, endpoint, what, params=None):
        """The JSON answer of one GET (CDC) through python-quickbooks' authenticated session,
        as _post sends a POST: metered, its status and Fault read by _read_answer."""
        url = f"{qb.api_url}/company/{qb.company_id}/{endpoint}"
        # Intuit documents text/plain for a CDC request (it has no body)
        headers = {"Content-Type": "text/plain", "Accept": "application/json",
                   "User-Agent": "python-quickbooks V3 library"}
        params = {"minorversion": qb.minorversion, **(params or {})}
        self._keep_headroom()  # QuickBooks sends no remaining-quota header
        self._metered()
        try:
            answer = qb.process_request("GET", url, headers=headers, params=params, data=None)
        except (requests.RequestException, qb_exceptions.QuickbooksException) as exc:
            raise _translate(exc, what) from exc
        self.last_status = answer.status_code
        return _read_answer(answer, what)

    def _post(self, qb, endpoint, body, what, params=None, content_type="application/json"):
        """POST through python-quickbooks' own authenticated session (``process_request``),
        not ``make_request``: the latter never looks at the HTTP status, so a 429 would
        arrive as a validation error (JSON) or a generic one (XML) without its headers."""
        url = f"{qb.api_url}/company/{qb.company_id}/{endpoint}"
        headers = {"Content-Type": content_type, "Accept": "application/json",
                   "User-Agent": "python-quickbooks V3 library"}
        params = {"minorversion": qb.minorversion, **(params or {})}
        data = body if isinstance(body, str) else json.dumps(body)
        self._keep_headroom()  # QuickBooks sends no remaining-quota header
        self._metered(endpoint == "batch")
        try:
            answer = qb.process_request("POST", url, headers=headers, params=params, data=data)
        except (requests.RequestException, qb_exceptions.QuickbooksException) as exc:
            raise _translate(exc, what) from exc
        self.last_status = answer.status_code
        return answer


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _build(kind, item, version, customers, balances=None):
    """The entity body of one PushItem (payloads.PayloadError when it cannot be one)."""
    return KINDS[kind].build(item, version, {"customers": customers, "balances": balances})


def _payment(item, version, customers, balances):
    """(Payment body, [lines capped]); a new payment's lines are capped at the open
    balances read (an update's own application is in them: it is not capped)."""
    values = item.values or {}
    customer = values.get("contact_ref") or customers.get(str(values.get("invoice_ref")))
    return payloads.payment(values, customer, item.ledger_id, version,
                            None if item.ledger_id else balances)


def _allocations(values):
    """The invoices a payment's values apply to (older values name a single invoice)."""
    if values.get("allocations") is not None:
        return values["allocations"]
    return [{"invoice_ref": values.get("invoice_ref")}] if values.get("invoice_ref") else []


def _amount(value):
    return None if value in (None, "") else round(float(value), 2)


def _object_fault(answer):
    """The Fault of a 400 that refuses the object sent (a validation or business rule), as
    a batch item carries it; None for any other answer (a throttle, an outage: the call's
    own failure, see _read_answer)."""
    if answer.status_code != 400:
        return None
    try:
        body = answer.json()
    except ValueError:
        return None
    fault = body.get("Fault") if isinstance(body, dict) else None
    codes = payloads.fault_codes(fault)
    if not isinstance(fault, dict) or not codes or codes & {"3001", "3003"} or any(
            code.isdigit() and int(code) >= 10000 for code in codes):
        return None
    return fault


def _read_answer(answer, what):
    """The JSON of a QuickBooks answer, or the LedgerError its status and Fault mean."""
    status = answer.status_code
    if status == 429:
        raise RateLimited(f"{what}: QuickBooks' rate limit was reached.",
                          retry_after=_retry_after(answer),
                          assumed=not answer.headers.get("Retry-After"))
    if status == 401:
        raise AccessTokenExpired(f"{what}: QuickBooks refused the access token (401).",
                                 status=401)
    if status == 403:
        raise AuthorizationRevoked(f"{what}: QuickBooks refused access (403); reconnect it.",
                                   status=403)
    if status >= 500:
        raise LedgerUnavailable(f"{what}: QuickBooks answered {status}.", status=status)
    try:
        result = answer.json()
    except ValueError:
        result = None
    if not isinstance(result, dict):
        if status == 200:
            kind = cap(answer.headers.get("Content-Type") or "no content type", 60)
            raise LedgerAnswerInvalid(
                f"{what}: QuickBooks answered 200 with a body that is not the JSON object it "
                f"documents ({kind}); {UNKNOWN_OUTCOME}", status=status)
        raise LedgerRejected(f"{what}: QuickBooks answered {status}.", status=status,
                             error_class="validation")
    fault = result.get("Fault")
    if fault:
        text, details = payloads.fault_text(fault)
        codes = payloads.fault_codes(fault)
        if codes & {"3001", "3003"}:
            raise RateLimited(f"{what}: QuickBooks' rate limit was reached.",
                              retry_after=_retry_after(answer),
                              assumed=not answer.headers.get("Retry-After"))
        if any(code.isdigit() and int(code) >= 10000 for code in codes):
            raise LedgerUnavailable(f"{what}: QuickBooks failed ({text[:160]}).", status=500)
        raise LedgerRejected(f"{what}: QuickBooks said: {text}", status=status,
                             details=details, ledger_message=text)
    if status != 200:
        raise LedgerRejected(f"{what}: QuickBooks answered {status}.", status=status,
                             error_class="validation")
    return result
