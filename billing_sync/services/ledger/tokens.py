"""What a ledger's OAuth2 token endpoint answered, told apart (RFC 6749, section 5).

Both providers' sign-in services answer a code exchange or a refresh with a 200 carrying
the tokens, or with an error object ``{"error": ..., "error_description": ...}``. Each
answer becomes a TokenSet or the one error an administrator can act on: a wrong client id
or secret (``invalid_client``) is not an expired code, an expired code is not a revoked
grant, and a sign-in service that sent garbage or could not be reached is neither.
No message carries a token, a secret or more than a capped line of the ledger's own text.
"""

import datetime
import json
from dataclasses import dataclass

from .. import endpoints
from .errors import (
    AuthorizationRevoked,
    ClientCredentialsRejected,
    ConfigurationError,
    LedgerAnswerInvalid,
    LedgerRejected,
    LedgerUnavailable,
    cap,
)

CODE = "authorization_code"
REFRESH = "refresh_token"
REVOKE = "revoke"
# seconds an access token lives when the answer does not say (Xero's 30 minutes)
DEFAULT_LIFETIME = 1800


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class TokenSet:
    """Tokens from a code exchange or a refresh; times are naive UTC, as Odoo stores them."""

    access_token: str
    refresh_token: str
    expires_at: datetime.datetime
    refresh_expires_at: datetime.datetime | None = None

    @classmethod
    def from_seconds(cls, access_token, refresh_token, expires_in, refresh_expires_in=None):
        now = utcnow()
        return cls(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=now + datetime.timedelta(seconds=int(expires_in or 0)),
            refresh_expires_at=(now + datetime.timedelta(seconds=int(refresh_expires_in))
                                if refresh_expires_in else None),
        )

    def __repr__(self):  # never print a token, even in a traceback
        return f"TokenSet(expires_at={self.expires_at!r})"


def unreachable(exc, what, label):
    """LedgerUnavailable for a transport failure (DNS, refused, reset, timeout)."""
    return LedgerUnavailable(f"{what}: {label}'s sign-in service could not be reached "
                             f"({type(exc).__name__}); try again in a moment.")


def oauth_error(status, content):
    """(error code, description) of an OAuth2 error answer; ("", "") when it has none."""
    try:
        body = json.loads(content or b"")
    except (TypeError, ValueError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    error, description = body.get("error"), body.get("error_description")
    return (cap(error, 60) if isinstance(error, str) else "",
            cap(description) if isinstance(description, str) else "")


def refusal(status, content, what, label, grant):
    """The LedgerError for a token endpoint's non-200 answer to ``grant``."""
    error, description = oauth_error(status, content)
    detail = f": {description}" if description else ""
    if status >= 500 or status == 429:
        return LedgerUnavailable(f"{what}: {label}'s sign-in service answered {status}; try "
                                 "again in a moment.", status=status)
    # a 401 is the client authentication failing, whatever its body says (RFC 6749 5.2)
    if error == "invalid_client" or status == 401:
        return ClientCredentialsRejected(label, what, status=status)
    if error == "invalid_grant" and grant == CODE:
        return AuthorizationRevoked(
            f"{what}: {label} refused the authorisation code (invalid_grant{detail}): it "
            "expired or was already used. Click Connect again.", status=status)
    if error == "invalid_grant":
        return AuthorizationRevoked(
            f"{what}: {label} no longer accepts the refresh token (invalid_grant{detail}): "
            "access was revoked in the ledger, or the token expired or was already used. "
            "Click Connect to authorise Odoo again.", status=status)
    code = error or f"HTTP {status}"
    return LedgerRejected(f"{what}: {label}'s sign-in service refused it ({code}{detail}).",
                          status=status, error_class="authentication")


def redirected(status, location, what, label):
    """ConfigurationError for a token endpoint that answered with a redirect: never
    followed, as a 307 or 308 would carry the form (the code or the refresh token) and the
    client secret to an address no endpoint check has seen."""
    target = f" to {endpoints.display(location)}" if location else ""
    return ConfigurationError(
        f"{what}: {label}'s sign-in service answered {status} (a redirect{target}), which was "
        "not followed: the code, tokens and client secret go only to the endpoints of the "
        "OAuth discovery document. Check the connection's OAuth URL.", status=status)


def invalid(what, label, grant, why):
    """LedgerAnswerInvalid for a 200 that is not a token answer (``why``)."""
    then = ("click Connect again." if grant == CODE
            else "the next attempt tries again.")
    return LedgerAnswerInvalid(f"{what}: {label}'s sign-in service answered 200 but {why}; "
                               f"{then}", status=200)


def parse_tokens(content, what, label, grant):
    """The TokenSet of a 200 answer's body (bytes or text)."""
    try:
        body = json.loads(content or b"")
    except (TypeError, ValueError):
        raise invalid(what, label, grant, "its answer is not JSON") from None
    return token_set(body, what, label, grant)


def token_set(body, what, label, grant):
    """The TokenSet of a decoded 200 answer, or LedgerAnswerInvalid when it lacks what a
    token answer must carry (an access token, a refresh token for a code, a lifetime)."""
    if not isinstance(body, dict):
        raise invalid(what, label, grant, "its answer has an unknown shape")
    access_token, refresh_token = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access_token, str) or not access_token:
        raise invalid(what, label, grant, "without an access token")
    if refresh_token is not None and not isinstance(refresh_token, str):
        raise invalid(what, label, grant, "with a refresh token that is not text")
    if grant == CODE and not refresh_token:
        # we always ask for offline access: without a refresh token the connection would
        # die with its first access token, half an hour later
        raise invalid(what, label, grant, "without a refresh token")
    try:
        # optional in OAuth2: both ledgers document half an hour or more
        expires_in = int(body.get("expires_in") or DEFAULT_LIFETIME)
        refresh_expires_in = body.get("x_refresh_token_expires_in")
        refresh_expires_in = int(refresh_expires_in) if refresh_expires_in else None
    except (TypeError, ValueError):
        raise invalid(what, label, grant, "with a token lifetime that is not a number") \
            from None
    if expires_in <= 0:
        raise invalid(what, label, grant, "with an access token that has already expired")
    return TokenSet.from_seconds(access_token, refresh_token or None, expires_in,
                                 refresh_expires_in)
