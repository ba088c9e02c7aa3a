"""QuickBooks Online behind the ledger interface (python-quickbooks + intuit-oauth).

intuit-oauth takes the OpenID discovery document's URL as its ``environment``,
and python-quickbooks builds every URL from ``api_url_v3``: those two are the
only things set differently for the sandbox.
"""

import os

import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks import exceptions as qb_exceptions
from quickbooks.objects.account import Account
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.department import Department
from quickbooks.objects.item import Item
from quickbooks.objects.taxcode import TaxCode
from quickbooks.objects.term import Term
from quickbooks.objects.trackingclass import Class
from requests.adapters import HTTPAdapter

from .base import (
    ConnectionReport,
    LedgerAdapter,
    Organisation,
    ReferenceRecord,
    TokenSet,
    is_loopback,
)
from .errors import (
    AccessTokenExpired,
    AuthorizationRevoked,
    LedgerError,
    LedgerRejected,
    LedgerUnavailable,
    RateLimited,
)

MINOR_VERSION = 75
PAGE = 1000  # QBO's MAXRESULTS ceiling


class _TimeoutAdapter(HTTPAdapter):
    """python-quickbooks sends without a timeout; a hung ledger must not hang a worker."""

    def __init__(self, timeout, **kwargs):
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _translate(exc, what):
    if isinstance(exc, LedgerError):
        return exc
    if isinstance(exc, requests.RequestException):
        return LedgerUnavailable(f"{what}: QuickBooks could not be reached "
                                 f"({type(exc).__name__}).")
    if isinstance(exc, AuthClientError):
        if exc.status_code >= 500:
            return LedgerUnavailable(f"{what}: Intuit answered {exc.status_code}.",
                                     status=exc.status_code)
        return AuthorizationRevoked(f"{what}: Intuit refused the grant ({exc.status_code}).",
                                    status=exc.status_code)
    code = getattr(exc, "error_code", 0) or 0
    message = getattr(exc, "message", str(exc))
    detail = getattr(exc, "detail", "") or ""
    if code == 401:
        return AccessTokenExpired(f"{what}: QuickBooks refused the access token (401).",
                                  status=401)
    if code in (3001, 3003) or "ThrottleExceeded" in message or "statusCode=429" in message:
        return RateLimited(f"{what}: QuickBooks' rate limit was reached.", retry_after=60)
    if code == 3100 or "statusCode=403" in message:
        return AuthorizationRevoked(f"{what}: QuickBooks refused access (403); reconnect it.",
                                    status=403)
    if isinstance(exc, qb_exceptions.SevereException) or code >= 10000:
        return LedgerUnavailable(f"{what}: QuickBooks failed ({message[:120]}).", status=500)
    suffix = f" ({detail})" if detail else ""
    return LedgerRejected(f"{what}: QuickBooks said: {message}{suffix}", status=400)


class QboAdapter(LedgerAdapter):
    """QuickBooks Online Accounting API v3."""

    provider = "qbo"
    label = "QuickBooks Online"

    def _auth(self, redirect_uri="", access_token=None, realm_id=None):
        try:
            auth = AuthClient(self.client_id, self.client_secret, redirect_uri,
                              environment=self.oauth_url, access_token=access_token,
                              realm_id=realm_id)
        except (requests.RequestException, AuthClientError, ValueError, KeyError) as exc:
            raise _translate(exc, "Reaching Intuit's sign-in service") from exc
        for scheme in ("http://", "https://"):
            auth.mount(scheme, _TimeoutAdapter(self.timeout))
        return auth

    def _oauth(self, what, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except (requests.RequestException, AuthClientError) as exc:
            raise _translate(exc, what) from exc

    # -- OAuth2 -------------------------------------------------------------
    def authorization_url(self, redirect_uri, state):
        return self._auth(redirect_uri).get_authorization_url([Scopes.ACCOUNTING],
                                                              state_token=state)

    def _token_set(self, auth):
        return TokenSet.from_seconds(auth.access_token, auth.refresh_token, auth.expires_in,
                                     auth.x_refresh_token_expires_in)

    def exchange_code(self, code, redirect_uri, realm_id=None):
        auth = self._auth(redirect_uri)
        self._oauth("Authorising with QuickBooks", auth.get_bearer_token, code,
                    realm_id=realm_id)
        return self._token_set(auth)

    def refresh(self, refresh_token):
        auth = self._auth()
        self._oauth("Refreshing the QuickBooks token", auth.refresh, refresh_token=refresh_token)
        return self._token_set(auth)

    def revoke(self, refresh_token):
        if refresh_token:
            auth = self._auth()
            self._oauth("Revoking the QuickBooks grant", auth.revoke, token=refresh_token)

    # -- SDK client -----------------------------------------------------------
    def client(self, access_token, realm_id):
        """A python-quickbooks client for one company, with a timeout on every call."""
        if is_loopback(self.api_url):
            # requests-oauthlib refuses plain http unless told; only the local
            # ledger sandbox is ever reached that way (the model refuses other
            # http URLs), so the switch is set for it alone.
            os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
        auth = self._auth(access_token=access_token, realm_id=realm_id)
        qb = QuickBooks(auth_client=auth, company_id=realm_id, minorversion=MINOR_VERSION)
        qb.api_url_v3 = self.api_url + "/v3"
        for scheme in ("http://", "https://"):
            qb.session.mount(scheme, _TimeoutAdapter(self.timeout))
        return qb

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (qb_exceptions.QuickbooksException, requests.RequestException) as exc:
            raise _translate(exc, what) from exc

    def _all(self, what, entity, qb):
        out, start = [], 1
        while True:
            page = self._call(what, entity.filter, qb=qb, start_position=start, max_results=PAGE)
            out.extend(page)
            if len(page) < PAGE:
                return out
            start += PAGE

    # -- Organisation -------------------------------------------------------
    def _company(self, access_token, realm_id):
        qb = self.client(access_token, realm_id)
        return self._call("Reading the QuickBooks company", CompanyInfo.get, realm_id, qb=qb)

    def organisations(self, access_token, realm_id=None):
        info = self._company(access_token, realm_id)
        return [Organisation(id=str(realm_id), name=info.CompanyName or "")]

    def test_connection(self, access_token, org_id):
        info = self._company(access_token, org_id)
        # Intuit sends no remaining-quota header: say what the limits are.
        return ConnectionReport(
            organisation=info.CompanyName or "",
            headroom="QuickBooks reports no remaining quota; it allows 500 requests a minute "
                     "and 10 at once per company, and 40 batch requests a minute",
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
        for tax in self._all("Importing QuickBooks tax codes", TaxCode, qb):
            records.append(ReferenceRecord(
                kind="tax", ledger_id=str(tax.Id), name=tax.Name, code=tax.Name,
                active=bool(tax.Active), extra={"taxable": bool(tax.Taxable)}))
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
                    active=bool(rec.Active), extra={"entity": label, "id": str(rec.Id)}))
        for term in self._all("Importing QuickBooks terms", Term, qb):
            records.append(ReferenceRecord(
                kind="term", ledger_id=str(term.Id), name=term.Name, active=bool(term.Active),
                extra={"due_days": term.DueDays}))
        return records
