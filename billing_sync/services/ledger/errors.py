"""What can go wrong talking to a ledger, in terms the caller can act on.

Adapters turn every SDK and HTTP failure into one of these, so nothing outside
an adapter knows which provider answered. Messages are safe to show a user:
they never carry a token, a secret or a raw request.
"""

from .refusals import _words, classify

# A ledger's own words (a validation message, an OAuth error_description, a Fault's
# detail) go into job errors, chatter and connection fields: a few hundred characters
# say what went wrong, a page of HTML from a proxy says nothing and fills the database.
PROVIDER_TEXT_LIMIT = 400


def cap(text, limit=PROVIDER_TEXT_LIMIT):
    """``text`` (a ledger's own words) on one line and at most ``limit`` characters."""
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def unknown_outcome(ledger, key):
    """The end of a LedgerAnswerInvalid message: what happens next when ``ledger`` ("Xero")
    answered in a way that cannot be believed; ``key`` names its idempotency key."""
    return (f"what {ledger} did is unknown, so nothing is linked and the same request goes "
            f"again later under the same {key} ({ledger} then replays its first answer: "
            "nothing is created twice).")


# The stable classes of what went wrong (issue 19): every LedgerError carries one, and
# the job or inbox row it stops keeps it; hints, alerts and the dashboard key off the
# class, never off a ledger's wording.
ERROR_CLASSES = [
    ("authentication", "Authentication"),
    ("rate_limit", "Rate limit"),
    ("validation", "Validation"),
    ("mapping", "Mapping"),
    ("duplicate", "Duplicate"),
    ("locked_period", "Locked period"),
    ("currency", "Currency"),
    ("network", "Network"),
    ("answer", "Unreadable answer"),
    ("configuration", "Configuration"),
    ("mismatch", "Differs from Odoo"),
    ("other", "Other"),
]


class LedgerError(Exception):
    """Base class. ``retryable``: trying again later may succeed. ``error_class``: one of
    ERROR_CLASSES (the class's own unless given); ``subject``: what of a mapping or a
    validation the ledger named (tax, account, item, tracking, contact, payments, email),
    None when nothing more; ``status``: the HTTP status; ``ledger_message``: the ledger's
    own words, when it said any."""

    retryable = False
    error_class = "other"

    def __init__(self, message, status=None, hint=None, error_class=None, subject=None,
                 ledger_message=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.hint = hint
        if error_class:
            self.error_class = error_class
        self.subject = subject
        self.ledger_message = cap(ledger_message) if ledger_message else None

    def __str__(self):
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigurationError(LedgerError):
    """The connection is set up wrongly (URL, client id); a person must fix it."""

    error_class = "configuration"


class AuthorizationRevoked(LedgerError):
    """The ledger no longer honours our grant: an administrator must reconnect."""

    error_class = "authentication"


class ClientCredentialsRejected(AuthorizationRevoked):
    """The ledger's sign-in service refused our client id or secret (OAuth2
    ``invalid_client``): nothing works until an administrator copies them again from the
    app in the provider's developer portal, then connects. A reconnect alone would fail
    the same way, so the message says where to fix them."""

    def __init__(self, label, what=None, **kw):
        message = (f"{label} refused the app's credentials: the client id or client secret "
                   f"is wrong. Copy them again from your app in {label}'s developer portal "
                   "into the connection (Client ID, Client secret), then click Connect.")
        super().__init__(f"{what}: {message}" if what else message, **kw)


class AccessTokenExpired(LedgerError):
    """The access token was refused (401); a refresh and one retry may cure it."""

    error_class = "authentication"


class RateLimited(LedgerError):
    """The ledger's rate limit was hit; ``retry_after`` seconds to wait."""

    retryable = True
    error_class = "rate_limit"

    def __init__(self, message, retry_after=60, problem=None, assumed=False, **kw):
        super().__init__(message, status=429, **kw)
        self.retry_after = retry_after
        self.problem = problem
        # no Retry-After came: retry_after is the provider's documented "a minute"
        self.assumed = assumed


class LedgerUnavailable(LedgerError):
    """5xx, timeout or a broken connection: transient."""

    retryable = True
    error_class = "network"


class LedgerAnswerInvalid(LedgerUnavailable):
    """The ledger answered, but not in a way that can be believed: not JSON, a shape we do
    not know, objects without their ids, more or fewer objects than were sent.

    What the ledger did is unknown: the attempt is retried later under the same
    idempotency key, so the ledger replays its own first answer and creates nothing twice.
    """

    error_class = "answer"


class LedgerRejected(LedgerError):
    """The ledger refused the request as invalid (4xx validation); not retryable."""

    def __init__(self, message, status=400, details=(), **kw):
        """``details``: the ledger's own messages (text, or QuickBooks' Fault Error dicts
        with their ``code``); the error's class and subject are read from them (else from
        ``ledger_message``, else from ``message``) unless given (refusals.classify)."""
        self.details = list(details)
        if not kw.get("error_class"):
            kw["error_class"], subject = classify(
                self.details, kw.get("ledger_message") or (None if self.details else message))
            kw.setdefault("subject", subject)
        if not kw.get("ledger_message") and self.details:
            kw["ledger_message"] = " ".join(_words(d) for d in self.details)
        super().__init__(message, status=status, **kw)
