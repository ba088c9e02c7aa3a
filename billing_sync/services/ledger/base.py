"""The one interface every ledger adapter implements, and the plain values it trades in."""

import abc
import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from .. import endpoints
from ..contacts import ContactMatches  # noqa: F401 -- find_contacts' answer, importable here
from . import tokens
from .errors import ConfigurationError, LedgerUnavailable
from .tokens import TokenSet  # noqa: F401 -- the adapters' return value, importable from here

DEFAULT_TIMEOUT = 30.0
# the id of an object a ledger did not save (Xero answers the nil UUID)
EMPTY_ID = "00000000-0000-0000-0000-000000000000"


def given_id(value):
    """The text of a ledger's id, or None for a missing, empty or nil one: an object
    without it would be linked to ledger id "None"."""
    text = "" if value is None else str(value).strip()
    return text if text and text != EMPTY_ID else None


def utc_timestamp(value):
    """``value`` (an aware or naive-UTC datetime, or ISO 8601 text with or without its
    offset) as ISO 8601 UTC to the second, ``YYYY-MM-DDTHH:MM:SSZ``; None for nothing, or
    for text that is no timestamp. The one form ContactState.updated_at takes, whichever
    ledger said it in which zone (QuickBooks answers in the company's offset)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # fromisoformat before Python 3.11 takes only 3 or 6 digits of a fraction
        text = re.sub(r"(\.\d+)(?=[+-]\d\d:?\d\d$|$)",
                      lambda m: m.group(1)[:7].ljust(7, "0"), text)
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ContactState:
    """A ledger contact as it is now (see ``LedgerAdapter.read_contacts``).

    ``values``: the same neutral keys the push takes for a contact (name, email, phone,
    tax_id, street, street2, city, zip, state, country_code), parsed as the inverse of the
    adapter's payload builder; an empty one is None, and a key the ledger does not let be
    read is absent (never None: None says the ledger holds nothing there). ``updated_at``:
    the ledger's last change, ISO 8601 UTC (``utc_timestamp``); ``version``: what an update
    must name (QuickBooks' SyncToken; None where the ledger has none)."""

    ledger_id: str
    values: dict
    updated_at: str | None = None
    version: str | None = None


# contacts one changed_contacts call lists, about: a long outage is caught up page by page,
# one bounded call each
CHANGES_LIMIT = 1000


@dataclass(frozen=True)
class ContactChanges:
    """The ledger contacts changed since a cursor (see ``LedgerAdapter.changed_contacts``).

    ``states``: {ledger id: ContactState}, as ``read_contacts`` gives them (the caller needs
    no second read). ``cursor``: what to pass as ``since`` next time, the latest
    ``updated_at`` among ``states`` (the ledger's clock, never this server's), or ``since``
    unchanged when nothing changed (None: the ledger holds no contact at all yet).
    ``complete``: False when there was more than one call's worth: call again at once with
    ``cursor``. ``full_read``: the ledger could not list changes since ``since`` (a first
    pull, or a cursor older than its look-back), so every contact changed since then was
    read instead; the caller may tell the administrator."""

    states: dict
    cursor: str | None
    complete: bool = True
    full_read: bool = False


def change_cursor(since):
    """``since`` (a changed_contacts cursor: ISO 8601 UTC, ``YYYY-MM-DDTHH:MM:SSZ``; an
    offset or a fraction is read too) in that one form; None for None or "" (a first
    pull). ValueError for anything that is no timestamp: a cursor the caller corrupted must
    not turn into a full read, nor into "nothing changed"."""
    if since is None or since == "":
        return None
    cursor = utc_timestamp(since)
    if cursor is None:
        raise ValueError(f"not an ISO 8601 timestamp: {since!r}")
    return cursor


def cursor_moment(cursor):
    """A cursor (change_cursor's form) as an aware UTC datetime; None for None."""
    if cursor is None:
        return None
    return datetime.datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def latest_cursor(states, since):
    """The cursor after listing ``states`` from ``since`` (both change_cursor's form): the
    latest ``updated_at`` among them, never earlier than ``since`` (``since`` itself when
    nothing changed, or when no state says when it changed)."""
    stamps = [s.updated_at for s in states.values() if s.updated_at]
    if since:
        stamps.append(since)
    return max(stamps, default=None)


@dataclass(frozen=True)
class PaymentState:
    """A ledger customer payment as it is now (see ``LedgerAdapter.read_payments``).

    ``allocations``: {ledger invoice id: amount applied to it}, in the ledger's order;
    ``unapplied``: what no invoice took (QuickBooks' UnappliedAmt, a Xero overpayment's
    remaining credit): the customer's credit. ``total`` = sum(allocations) + unapplied.
    Amounts are Decimals in the payment's currency (``currency``, ISO 4217; None where the
    ledger says nothing: the organisation's own). ``date``: the payment date,
    ``YYYY-MM-DD``. ``account_id`` / ``account_code``: the ledger account it was paid into
    (bank, Undeposited Funds), None where unknown. ``contact_id``: the ledger customer.
    ``deleted``: the ledger still lists it as deleted or voided (Xero DELETED; a voided
    QuickBooks payment, whose amounts are zero): it pays nothing any more.
    ``updated_at``: the ledger's last change, ``utc_timestamp``'s form."""

    ledger_id: str
    contact_id: str | None
    date: str | None
    total: Decimal
    allocations: dict
    unapplied: Decimal = Decimal(0)
    currency: str | None = None
    account_id: str | None = None
    account_code: str | None = None
    reference: str | None = None
    deleted: bool = False
    updated_at: str | None = None
    # {ledger credit note id: amount} a QuickBooks payment applies from credit memos (a
    # payment of zero total applies a credit memo to invoices); never in ``total``
    credits: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CreditLine:
    """One line of a ledger credit note: ``net`` (without tax) and ``tax`` amounts, the
    ledger's revenue (or other) account (``account_id`` / ``account_code``; Xero), item
    (``item_id``; QuickBooks) and tax (``tax_ref``: Xero TaxType, QuickBooks TaxCodeRef
    value) as the ledger names them, as its reference data (``reference_data``) does."""

    description: str | None
    net: Decimal
    tax: Decimal = Decimal(0)
    account_id: str | None = None
    account_code: str | None = None
    item_id: str | None = None
    tax_ref: str | None = None


@dataclass(frozen=True)
class CreditNoteState:
    """A ledger sales credit note as it is now (see ``LedgerAdapter.read_credit_notes``):
    ``status`` as InvoiceState's ("open": credit left, "paid": all of it used); ``total``
    and ``tax`` (Decimals, the credit note's currency), ``remaining`` (credit not used
    yet); ``lines``: CreditLines; ``allocations``: {ledger invoice id: amount} it is
    applied to (Xero's Allocations; QuickBooks applies a credit memo through a payment:
    PaymentState.credits, so none here)."""

    ledger_id: str
    contact_id: str | None
    status: str
    total: Decimal
    tax: Decimal
    remaining: Decimal
    lines: tuple = ()
    allocations: dict = field(default_factory=dict)
    date: str | None = None
    number: str | None = None
    reference: str | None = None
    currency: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class InvoiceState:
    """A ledger sales invoice as it is now (see ``LedgerAdapter.read_invoices``).

    ``status``: "open" (authorised, something due), "paid", "voided", "deleted" (Xero
    DELETED; never sent); "draft" for one not yet approved. ``total`` / ``amount_due``:
    Decimals in the invoice's currency. ``payment_ids``: the ledger payments applied to it
    now (deleted ones are not), in the ledger's order. ``updated_at``: as PaymentState."""

    ledger_id: str
    status: str
    total: Decimal
    amount_due: Decimal
    payment_ids: tuple = ()
    number: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class DocumentChanges:
    """What changed in a ledger's payments and invoices since a cursor (see
    ``LedgerAdapter.changed_documents``), as ContactChanges says it for contacts:
    ``payments`` {ledger id: PaymentState} (deleted ones included where the ledger still
    lists them, with ``deleted`` set), ``invoices`` {ledger id: InvoiceState};
    ``deleted_payments``: ids of payments the ledger says were deleted and no longer
    lists (QuickBooks CDC); ``credit_notes`` {ledger id: CreditNoteState}; ``cursor``,
    ``complete``, ``full_read`` as ContactChanges."""

    payments: dict
    invoices: dict
    cursor: str | None
    deleted_payments: tuple = ()
    complete: bool = True
    full_read: bool = False
    # {ledger id: CreditNoteState} changed (voided and deleted ones included as listed)
    credit_notes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Organisation:
    """A ledger organisation the grant reaches (Xero tenant, QuickBooks company)."""

    id: str
    name: str


@dataclass(frozen=True)
class ConnectionReport:
    """What "Test connection" shows: the organisation and the rate-limit headroom."""

    organisation: str
    headroom: str


@dataclass(frozen=True)
class ReferenceRecord:
    """One entry of the ledger's own vocabulary (account, tax, item, tracking, term)."""

    kind: str
    ledger_id: str
    name: str
    code: str = ""
    parent_ledger_id: str = ""
    rate: float | None = None
    active: bool = True
    # a tracking option: its category as the ledger names it (Xero: the tracking
    # category's name; QuickBooks: "Class" or "Department") and its own name; what a
    # document line sends, never parsed back out of ``name``
    category: str = ""
    option: str = ""
    extra: dict = field(default_factory=dict, compare=False)


@dataclass
class PushItem:
    """One object to create or update in the ledger (see the adapters' ``push``).

    ``key`` correlates the result (e.g. "account.move,42"); ``ledger_id`` set
    means update; ``version`` is the last known remote version (QBO SyncToken).
    ``values`` is provider-neutral: the adapters' payload modules map it.
    """

    key: str
    kind: str
    values: dict
    ledger_id: str | None = None
    version: str | None = None


@dataclass
class PushResult:
    """What the ledger said about one PushItem."""

    key: str
    ok: bool
    ledger_id: str | None = None
    number: str | None = None
    version: str | None = None
    url: str | None = None
    error: Exception | None = None
    # in the ledger (link it), but part of it was refused or capped (a credit note's
    # allocation, one of a payment's parts): the job is parked, not done, and ``error``
    # says why; a retry sends only what is missing
    incomplete: bool = False
    # {invoice ledger id: ledger id} of the objects one record became when the ledger
    # needs several (Xero: one Payment per invoice an Odoo payment covers)
    parts: dict | None = None
    # the ledger's own figures for a document, read from its answer: {"total", "tax",
    # "amount_due"} in the document's currency; the engine compares them with Odoo's
    totals: dict | None = None
    # the rounding line the adapter added so the ledger's total equals Odoo's (0.0: none)
    adjustment: float = 0.0
    # what an edit after sync did in the ledger, in words for the record's chatter
    # ("voided", "credited by credit note CN-0004"): kinds void_invoice, delete_payment
    note: str | None = None


# The kinds of object the engine pushes (PushItem.kind): each adapter declares every one of
# them in its KINDS table, and nothing else.
PUSH_KINDS = ("contact", "invoice", "credit_note", "payment", "void_invoice",
              "delete_payment")

# how each kind the ledger announces is read back (inbound sync): LedgerAdapter methods
READERS = {"contact": "read_contacts", "invoice": "read_invoices",
           "credit_note": "read_credit_notes", "payment": "read_payments"}

# What an adapter's LIMITS says, per organisation (None: the ledger sets no such limit):
# per_minute and per_day requests, batch_per_minute batch requests, per_second requests,
# concurrent requests at once. The engine's pacer reads them.
LIMIT_KEYS = ("per_minute", "batch_per_minute", "per_day", "per_second", "concurrent")


@dataclass(frozen=True, kw_only=True)
class Kind:
    """How an adapter pushes one kind of object: one row of its KINDS table, the one
    declaration a new kind needs in each adapter (the adapter subclasses it with what its
    ledger needs besides: endpoint, entity, answer).

    ``batch_size``: objects one push of this kind may carry (the provider's ceiling);
    ``what``: what a message calls sending them ("Sending invoices to Xero");
    ``web_url``: the object's page in the ledger's web app, "{id}" (and "{org}") filled in,
    None when it has no page of its own; ``build``: the provider payload of one PushItem
    (its arguments are the adapter's own: see its KINDS)."""

    batch_size: int
    what: str
    web_url: str | None = None
    build: Callable | None = None


# The kinds of reference data, shared by both providers.
REFERENCE_KINDS = [
    ("revenue_account", "Revenue account"),
    ("bank_account", "Bank account"),
    ("tax", "Tax rate / code"),
    ("item", "Item"),
    ("tracking_category", "Tracking category"),
    ("tracking", "Tracking option / class / department"),
    ("term", "Payment terms"),
    # ledger_id = ISO code; extra["base"] marks the ledger's home currency
    ("currency", "Currency"),
]


class TimeoutHTTPAdapter(HTTPAdapter):
    """Gives every call of a requests session a timeout (python-quickbooks sends none, and
    a hung ledger must not hang a worker)."""

    def __init__(self, timeout, **kwargs):
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


_DISCOVERY = {}


def check_endpoint(url, provider, allowed=frozenset(), what="The URL"):
    """``url`` if a connection to ``provider`` may send credentials there (see
    services/endpoints.py); ConfigurationError saying why not."""
    try:
        return endpoints.check_url(url, provider, allowed, what)
    except (endpoints.EndpointRefused, ValueError) as exc:  # ValueError: a bad allow-list
        raise ConfigurationError(str(exc)) from None


def discovery(url, timeout=DEFAULT_TIMEOUT, *, provider, allowed=frozenset()):
    """The provider's OpenID discovery document (authorize/token/revoke endpoints), cached.

    The document's URL and every endpoint it names must be ``provider``'s production
    endpoints or on the odoo.conf allow-list ``allowed``: a document served from an
    allowed host could still send the code, the refresh token and the client secret
    elsewhere. Checked on every call, the cache hit included (the allow-list is the
    caller's). ConfigurationError if refused: nothing is sent then."""
    check_endpoint(url, provider, allowed, "The OAuth discovery URL")
    doc = _DISCOVERY.get(url)
    if doc is None:
        doc = _DISCOVERY[url] = _fetch_discovery(url, timeout)
    try:
        return endpoints.check_discovery(doc, provider, allowed)
    except (endpoints.EndpointRefused, ValueError) as exc:
        raise ConfigurationError(str(exc)) from None


def _fetch_discovery(url, timeout):
    """The OpenID discovery document at ``url``, its endpoints not checked yet. The GET
    carries no credential, so a redirect is followed; what the document names is checked."""
    shown = endpoints.display(url)
    try:
        answer = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise LedgerUnavailable(
            f"The ledger's sign-in service at {shown} cannot be reached ({type(exc).__name__})."
        ) from exc
    if answer.status_code >= 500:
        raise LedgerUnavailable(f"The OAuth discovery URL {shown} answered "
                                f"{answer.status_code}; try again in a moment.",
                                status=answer.status_code)
    if answer.status_code != 200:
        raise ConfigurationError(
            f"The OAuth discovery URL {shown} answered {answer.status_code}; check the "
            "connection's OAuth URL.", status=answer.status_code)
    try:
        doc = answer.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not all(
            isinstance(doc.get(key), str) and doc[key]
            for key in ("authorization_endpoint", "token_endpoint")):
        raise ConfigurationError(f"{shown} is not an OpenID discovery document; check the "
                                 "connection's OAuth URL.")
    return doc


class LedgerAdapter(abc.ABC):
    """A ledger behind one interface. Construct one per connection and operation.

    ``oauth_url`` is the provider's OpenID discovery document; ``api_url`` the API
    base. Both default to production in the connection model; the sandbox
    replaces them with its loopback address.

    Everything the engine and the models use is declared here: the abstract methods, and
    the class attributes every adapter sets (checked when the class is made, see
    ``__init_subclass__``). Nothing outside an adapter knows which ledger it is.
    """

    provider = None
    label = None
    # who runs the ledger's sign-in service and developer portal, for OAuth messages
    SIGN_IN = None
    # what the ledger calls each kind of reference, and one it no longer offers: the
    # messages that name a mapping to fix use the ledger's own words
    REFERENCE_NOUNS = {"revenue_account": "account", "bank_account": "bank account",
                       "tax": "tax rate", "item": "item", "tracking": "tracking option",
                       "tracking_category": "tracking category", "term": "payment terms",
                       "currency": "currency"}
    INACTIVE_WORD = "archived"

    # -- declared by every adapter ----------------------------------------------
    # {kind: Kind} for every kind of PUSH_KINDS: batch size, message words, web page and
    # payload builder of each (plus the adapter's own endpoint and answer reading)
    KINDS: dict = {}
    # the provider's documented rate limits per organisation: every key of LIMIT_KEYS
    LIMITS: dict = {}
    # candidates find_contacts matches in one call: the engine matches the customers of
    # the invoices queued behind a batch too, up to this many
    FIND_LIMIT: int = 0
    # {"minute_remaining": int or None, "day_remaining": int or None}: what the last
    # answer of this adapter said is left of the rate limits (None before any call; both
    # None when the ledger says nothing); the engine's pacer believes it
    last_headroom: dict | None = None
    # the HTTP status of the last answer the ledger gave this adapter (the audit trail's)
    last_status: int | None = None
    # whether find_contacts sends its queries as one batch request (see batched)
    FIND_BATCHED: bool = False
    # set by the engine for one call (ratelimit.paced): called with ``batch`` before each
    # request the adapter sends, so that the organisation's budget counts every one
    meter = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.provider is None:
            return  # an intermediate class, not an adapter
        missing = set(PUSH_KINDS) ^ set(cls.KINDS)
        if missing or not all(isinstance(spec, Kind) for spec in cls.KINDS.values()):
            raise TypeError(f"{cls.__name__}.KINDS must declare exactly {PUSH_KINDS} as Kind "
                            f"rows (differs on {sorted(missing)})")
        if set(cls.LIMITS) != set(LIMIT_KEYS):
            raise TypeError(f"{cls.__name__}.LIMITS must have the keys {LIMIT_KEYS}")
        if not isinstance(cls.FIND_LIMIT, int) or cls.FIND_LIMIT < 1:
            raise TypeError(f"{cls.__name__}.FIND_LIMIT must be a positive number")

    @classmethod
    def describe_reference(cls, kind, name, category=None, option=None):
        """(noun, name) of a reference as the ledger's own screens call it; ``category``
        and ``option``: a tracking option's (see ReferenceRecord)."""
        return cls.REFERENCE_NOUNS.get(kind, kind), name

    def __init__(self, client_id, client_secret, oauth_url, api_url, timeout=DEFAULT_TIMEOUT,
                 allowed_endpoints=frozenset()):
        """``allowed_endpoints``: odoo.conf's billing_sync_allowed_endpoints (its text or
        endpoints.parse_allowed's result); by default only the production endpoints.

        Both URLs are checked here, once: an adapter exists only for endpoints this server
        allows, so no call of it sends a credential anywhere else (ConfigurationError)."""
        if not client_id or not client_secret:
            raise ConfigurationError(
                "The connection has no client id or client secret: copy them from your app "
                "in the provider's developer portal."
            )
        try:
            self.allowed_endpoints = endpoints.parse_allowed(allowed_endpoints)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        # the same words as the connection's fields, which the administrator sees
        check_endpoint(oauth_url, self.provider, self.allowed_endpoints,
                       "The OAuth discovery URL")
        check_endpoint(api_url, self.provider, self.allowed_endpoints, "The API base URL")
        self.client_id = client_id
        self.client_secret = client_secret
        self.oauth_url = oauth_url
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def _discovery(self):
        """The checked OpenID discovery document of ``oauth_url`` (see ``discovery``)."""
        return discovery(self.oauth_url, self.timeout, provider=self.provider,
                         allowed=self.allowed_endpoints)

    # -- Push ------------------------------------------------------------------
    @classmethod
    def kind_spec(cls, kind):
        """The KINDS row of ``kind``; ValueError for a kind this adapter does not push."""
        try:
            return cls.KINDS[kind]
        except KeyError:
            raise ValueError(f"unknown push kind {kind!r}") from None

    @classmethod
    def batch_size(cls, kind):
        """Objects of ``kind`` one push may carry (the provider's batch ceiling)."""
        return cls.kind_spec(kind).batch_size

    @classmethod
    def batched(cls, kind, count):
        """Whether a push of ``count`` objects of ``kind`` starts with a batch request, one
        LIMITS' ``batch_per_minute`` counts (none where the ledger counts no such thing)."""
        return bool(cls.LIMITS.get("batch_per_minute"))

    def web_url(self, kind, ledger_id, org_id):
        """The page of ledger object ``ledger_id`` (a ``kind``) of organisation ``org_id``
        in the ledger's web app; None when it has none (or there is no id)."""
        template = self.kind_spec(kind).web_url
        if not template or not ledger_id:
            return None
        return template.format(id=ledger_id, org=org_id or "")

    @abc.abstractmethod
    def push(self, access_token, org_id, kind, items, idempotency_key):
        """Create or update ``items`` (PushItem, all of ``kind``, at most batch_size(kind))
        under ``idempotency_key`` (the same key sent again replays the ledger's first
        answer). One PushResult per item, in order; raises a LedgerError for a failure of
        the whole call (RateLimited, LedgerUnavailable, LedgerAnswerInvalid,
        AccessTokenExpired, AuthorizationRevoked)."""

    @abc.abstractmethod
    def find_documents(self, access_token, org_id, kind, numbers):
        """{number: (ledger id, version)} of the invoices or credit notes (``kind``)
        already in the ledger under these numbers (voided ones excluded)."""

    # -- Contacts -------------------------------------------------------------
    @abc.abstractmethod
    def find_contacts(self, access_token, org_id, candidates):
        """ContactMatches of ``candidates`` ({"key", "tax_id", "email", "name"}, at most
        FIND_LIMIT): {key: ledger contact id} of those already in the ledger, and
        ``name_holders``, the ledger contacts bearing each candidate's name (see
        services/contacts.py, which decides for both ledgers)."""

    def read_contacts(self, access_token, org_id, ids):
        """{ledger id: ContactState} of the ledger contacts ``ids`` name, as they are now
        (inbound sync: a webhook said they changed). Archived / inactive ones are included;
        an id the ledger does not know (deleted, merged away, never there) is simply absent.
        Many ids per request (the adapter's own chunking), each request through the
        adapter's metered, error-translating choke point: raises the LedgerError a push
        would (AccessTokenExpired, RateLimited, LedgerUnavailable...)."""
        raise NotImplementedError

    def changed_contacts(self, access_token, org_id, since):
        """ContactChanges: the ledger contacts changed at or after ``since`` (inbound sync's
        periodic pull, the safety net for a lost webhook), archived / inactive ones included,
        deleted ones left out, each in ``read_contacts``' shape.

        ``since``: a cursor, ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ`` (the ``cursor`` of the
        last call), or None for everything (a first pull); ValueError for anything else.
        The bound is inclusive and to the second: contacts changed within the cursor's own
        second are listed again by the next pull (the ledgers order changes by time, not by
        anything finer that a cursor could carry); the caller applies states idempotently,
        so such a repeat changes nothing, and no change of that second is lost.

        One call lists about CHANGES_LIMIT contacts at most, oldest change first; with more
        it answers ``complete`` False and the caller calls again from ``cursor`` (a long
        outage is caught up page by page, one bounded call each). Only when more than a
        call's worth changed within one and the same second does a call read further, until
        the cursor can move on. Every request goes through the adapter's metered,
        error-translating choke point: raises the LedgerError a push would."""
        raise NotImplementedError

    # -- Payments and invoices, read back (inbound sync) ------------------------------
    def read_payments(self, access_token, org_id, ids):
        """{ledger id: PaymentState} of the customer payments ``ids`` name, as they are now
        (a webhook said they changed, or an invoice lists them). A payment the ledger
        deleted and still lists comes with ``deleted`` set; one it no longer knows at all
        is absent (the caller takes it as deleted). Many ids per request, every request
        through the adapter's metered, error-translating choke point (as read_contacts)."""
        raise NotImplementedError

    def read_invoices(self, access_token, org_id, ids):
        """{ledger id: InvoiceState} of the sales invoices ``ids`` name, as they are now
        (voided and deleted ones included where the ledger lists them; unknown ones
        absent). Many ids per request, as read_payments."""
        raise NotImplementedError

    def read_credit_notes(self, access_token, org_id, ids):
        """{ledger id: CreditNoteState} of the sales credit notes ``ids`` name, as they are
        now (voided and deleted ones included where the ledger lists them; unknown ones
        absent). Many ids per request, as read_payments."""
        raise NotImplementedError

    def read_changed(self, access_token, org_id, wanted):
        """{kind: {ledger id: state}} of the objects ``wanted`` ({kind: [ledger ids]}, kinds
        of READERS, at most a request's worth of each) names: what the ledger announced,
        read back in one go. Here one read_<kind> per kind, in ``wanted``'s order; a ledger
        that can ask several queries in one request does (QuickBooks' /batch). Raises as
        the read_<kind> methods."""
        return {kind: getattr(self, READERS[kind])(access_token, org_id, ids)
                for kind, ids in wanted.items() if ids}

    @classmethod
    def read_requests(cls, kinds):
        """(requests, batch): the requests read_changed makes for objects of ``kinds`` (at
        most a request's worth of each), and whether they are batch requests (LIMITS'
        ``batch_per_minute`` counts them). The engine takes them from the rate budget
        before the first goes, so a read never stops half-way for want of budget."""
        return len(kinds), False

    def changed_documents(self, access_token, org_id, since):
        """DocumentChanges: the customer payments, sales invoices and credit notes changed
        at or after ``since`` (the pull's safety net for lost webhooks), with the rules of
        ``changed_contacts`` (inclusive to the second, bounded pages, ``complete`` False
        for more, QuickBooks' 30-day CDC limit answered by a full read, ``full_read``)."""
        raise NotImplementedError

    @abc.abstractmethod
    def is_duplicate_name(self, error):
        """True when ``error`` (a refused contact) says another ledger contact already
        has its name: the caller then creates it under a distinct name."""

    # -- OAuth2 -------------------------------------------------------------
    @abc.abstractmethod
    def authorization_url(self, redirect_uri, state):
        """The consent page URL to send the administrator to."""

    @classmethod
    def contact_as_stored(cls, values):
        """A contact's neutral ``values`` as this ledger stores them (read_contacts gives
        them back so): what Odoo sent and what the ledger holds compare equal."""
        return dict(values)

    # -- Webhooks (services/webhooks.py) -------------------------------------------
    # the header carrying base64(HMAC-SHA256(key, raw body)) of a delivery
    WEBHOOK_HEADER: str = ""

    @classmethod
    def parse_webhook(cls, payload):
        """The WebhookEvents of a delivery's JSON, once its signature was checked: what
        changed where, never its new state (the inbound worker reads that from the API).
        MalformedDelivery for a payload of another shape."""
        raise NotImplementedError

    @classmethod
    def callback_params(cls, query):
        """What this ledger needs again, of the query its consent page sent back to the
        callback (``query``: the callback's parameters), for exchange_code and
        organisations. Opaque to the caller, which only hands it back."""
        return {}

    @abc.abstractmethod
    def exchange_code(self, code, redirect_uri, callback=None):
        """TokenSet for an authorization code; AuthorizationRevoked if it is refused.
        ``callback``: callback_params of the callback that brought the code."""

    @abc.abstractmethod
    def refresh(self, refresh_token):
        """A new TokenSet (with the rotated refresh token)."""

    @abc.abstractmethod
    def revoke(self, refresh_token):
        """Revoke the grant at the provider."""

    # -- Organisation -------------------------------------------------------
    @abc.abstractmethod
    def organisations(self, access_token, callback=None):
        """The organisations the token reaches, as a list of Organisation; ``callback``:
        callback_params of the callback that authorised it."""

    @abc.abstractmethod
    def test_connection(self, access_token, org_id):
        """A ConnectionReport: the organisation's name and the rate-limit headroom."""

    # -- Reference data ------------------------------------------------------
    @abc.abstractmethod
    def reference_data(self, access_token, org_id):
        """Every ReferenceRecord the mappings pick from."""

    # -- helpers --------------------------------------------------------------
    def _metered(self, batch=False):
        """One request (a batch one: ``batch``) is about to go: the engine's budget counts
        it (``meter``). Every request an adapter sends passes here first."""
        if self.meter is not None:
            self.meter(batch)

    def _keep_headroom(self, minute_remaining=None, day_remaining=None):
        """Keep what the last answer said is left of the rate limits (``last_headroom``)."""
        self.last_headroom = {"minute_remaining": minute_remaining,
                              "day_remaining": day_remaining}

    def _consent_url(self, params):
        """The discovery document's authorization endpoint with ``params`` (client_id,
        response_type, scope, redirect_uri, state) as its query."""
        url = self._discovery()["authorization_endpoint"]
        return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"

    def _tokens(self, form, what):
        """POST ``form`` (its grant_type: tokens.CODE or REFRESH) to the discovery document's
        token endpoint: a TokenSet, or the error the answer means (tokens.refusal):
        invalid_client, invalid_grant on a code or on a refresh token, unreachable, garbage."""
        return self._token_request(self._discovery()["token_endpoint"], form, what,
                                   form["grant_type"])

    def _revoke(self, token, what, as_json=False):
        """Revoke ``token`` (ending the grant) at the discovery document's revocation
        endpoint: a form ``token=...`` (RFC 7009), or ``as_json`` a JSON object (Intuit)."""
        url = self._discovery().get("revocation_endpoint")
        if not url:
            # a grant left alive at the ledger: said, so the administrator removes the app
            raise ConfigurationError(f"{what}: the OAuth discovery document names no "
                                     "revocation endpoint.")
        body = {"token": token}
        if as_json:
            return self._token_request(url, None, what, tokens.REVOKE, json=body)
        return self._token_request(url, body, what, tokens.REVOKE)

    def _token_request(self, url, form, what, grant, json=None):
        """POST ``form`` (or the JSON body ``json``) for a ``grant`` (tokens.CODE, REFRESH or
        REVOKE) to an OAuth2 endpoint with HTTP Basic client authentication. The TokenSet of
        the answer (None for a revocation), or the LedgerError it means (see tokens.py)."""
        label = self.SIGN_IN or self.label
        try:
            # never followed: a 307 or 308 would carry the form (code, refresh token) and
            # the client secret to an address the endpoint check never saw
            answer = requests.post(url, data=form, json=json,
                                   auth=(self.client_id, self.client_secret),
                                   headers={"Accept": "application/json"}, timeout=self.timeout,
                                   allow_redirects=False)
        except requests.RequestException as exc:
            raise tokens.unreachable(exc, what, label) from exc
        if 300 <= answer.status_code < 400:
            raise tokens.redirected(answer.status_code, answer.headers.get("Location"), what,
                                    label)
        if answer.status_code != 200:
            raise tokens.refusal(answer.status_code, answer.content, what, label, grant)
        if grant == tokens.REVOKE:
            return None  # revocation answers 200, empty
        return tokens.parse_tokens(answer.content, what, label, grant)
