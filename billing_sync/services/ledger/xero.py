"""Xero behind the ledger interface (xero-python for the API, OAuth2 per Xero's docs).

Xero's SDK refreshes tokens through a TokenApi whose URLs are class constants, and
it does so silently inside any call. Refresh and revocation are therefore done
here, as Xero documents them (developer.xero.com/documentation/guides/oauth2/
auth-flow), so that rotation stays single-flight under the connection model's
lock and the sandbox's base URL applies; the SDK only ever gets an access token.
"""

from urllib.parse import urlencode

import urllib3
from xero_python.accounting import AccountingApi
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.exceptions import ApiException
from xero_python.identity import IdentityApi

from .base import (
    ConnectionReport,
    LedgerAdapter,
    Organisation,
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
# Xero has no list of payment terms: a contact's or invoice's terms are a day
# number and one of these types (Accounting API, Contacts > PaymentTerms).
TERM_TYPES = [
    ("DAYSAFTERBILLDATE", "day(s) after the invoice date"),
    ("DAYSAFTERBILLMONTH", "day(s) after the end of the invoice month"),
    ("OFCURRENTMONTH", "of the current month"),
    ("OFFOLLOWINGMONTH", "of the following month"),
]


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
    return LedgerRejected(f"{what}: Xero answered {status}: {getattr(exc, 'reason', '')}",
                          status=status or 400)


class XeroAdapter(LedgerAdapter):
    """Xero Accounting API."""

    provider = "xero"
    label = "Xero"

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
        return ApiClient(config, pool_threads=1,
                         oauth2_token_getter=lambda: token,
                         oauth2_token_saver=lambda new: None)

    def _accounting(self, access_token):
        return AccountingApi(self._api_client(access_token), base_url=self.api_url + API_PATH)

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _translate(exc, what) from exc

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


def _status(value):
    return str(getattr(value, "value", value) or "")
