"""What can go wrong talking to a ledger, in terms the caller can act on.

Adapters turn every SDK and HTTP failure into one of these, so nothing outside
an adapter knows which provider answered. Messages are safe to show a user:
they never carry a token, a secret or a raw request.
"""


class LedgerError(Exception):
    """Base class. ``retryable``: trying again later may succeed."""

    retryable = False

    def __init__(self, message, status=None, hint=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.hint = hint

    def __str__(self):
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigurationError(LedgerError):
    """The connection is set up wrongly (URL, client id); a person must fix it."""


class AuthorizationRevoked(LedgerError):
    """The ledger no longer honours our grant: an administrator must reconnect."""


class AccessTokenExpired(LedgerError):
    """The access token was refused (401); a refresh and one retry may cure it."""


class RateLimited(LedgerError):
    """The ledger's rate limit was hit; ``retry_after`` seconds to wait."""

    retryable = True

    def __init__(self, message, retry_after=60, problem=None, assumed=False, **kw):
        super().__init__(message, status=429, **kw)
        self.retry_after = retry_after
        self.problem = problem
        # no Retry-After came: retry_after is the provider's documented "a minute"
        self.assumed = assumed


class LedgerUnavailable(LedgerError):
    """5xx, timeout or a broken connection: transient."""

    retryable = True


class LedgerRejected(LedgerError):
    """The ledger refused the request as invalid (4xx validation); not retryable."""

    def __init__(self, message, status=400, details=(), **kw):
        super().__init__(message, status=status, **kw)
        self.details = list(details)
