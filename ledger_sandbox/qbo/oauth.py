"""Intuit's OAuth 2.0 authorization-code flow, as Intuit documents it and its clients drive
it (intuit-oauth's ``AuthClient``, or billing_sync's adapter posting to the same endpoints).

Endpoints (paths mirror Intuit's; the discovery document lists them, and ``AuthClient`` reads
it when its ``environment`` argument is the discovery URL):

- ``GET /.well-known/openid_sandbox_configuration`` (and ``openid_configuration``): discovery;
- ``GET /connect/oauth2``: the authorize page (consent HTML); ``approve=1`` (the page's
  button) redirects to ``redirect_uri?code=..&state=..&realmId=..``; ``deny=1`` redirects with
  ``error=access_denied``;
- ``POST /oauth2/v1/tokens/bearer``: ``authorization_code`` and ``refresh_token`` grants, HTTP
  Basic client authentication; answers ``{token_type, access_token, refresh_token,
  expires_in, x_refresh_token_expires_in}``;
- ``POST /v2/oauth2/tokens/revoke``: JSON ``{"token": ...}``; revoking either token ends the
  whole grant (the app is disconnected from the company);
- ``GET /v1/openid_connect/userinfo``.

Rotation: every refresh returns a new refresh token and the one used stops working
(``400 {"error": "invalid_grant"}``), as Intuit's token-management guidance requires apps
to keep only the latest refresh token.  Access tokens live ``access_lifetime`` seconds
(3600 by default, Intuit's value); an authorization code is single-use and lives 300 s.
Times come from the app clock so tests can move time forward.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any

from ..core import Request, Response

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
REFRESH_LIFETIME = 8_726_400  # 101 days, the x_refresh_token_expires_in Intuit returns
CODE_LIFETIME = 300


def _oauth_error(status: int, error: str, description: str = "") -> Response:
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = description
    return Response(status, body, {"Cache-Control": "no-store"})


class OAuthServer:
    """Registered clients, codes and tokens; the OAuth endpoints as request handlers."""

    def __init__(self, clock: Callable[[], dt.datetime], realms: Callable[[], list[str]],
                 access_lifetime: int = 3600):
        self.clock = clock
        self.realms = realms
        self.access_lifetime = access_lifetime
        self.clients: dict[str, dict] = {}
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}

    # ---- registration and state

    def register_client(self, client_id: str, client_secret: str,
                        redirect_uris: list[str] | None = None, name: str = "Sandbox app") -> None:
        """Register an app; ``redirect_uris`` None accepts any redirect URI."""
        self.clients[client_id] = {"secret": client_secret, "redirect_uris": redirect_uris,
                                   "name": name}

    def dump(self) -> dict:
        """Clients and live tokens, JSON-serialisable."""
        return {"clients": self.clients, "codes": self.codes,
                "refresh_tokens": self.refresh_tokens, "access_tokens": self.access_tokens}

    def load(self, data: dict) -> None:
        """Restore :meth:`dump` output (keeps current clients when none are given)."""
        self.clients = data.get("clients") or self.clients
        self.codes = data.get("codes") or {}
        self.refresh_tokens = data.get("refresh_tokens") or {}
        self.access_tokens = data.get("access_tokens") or {}

    def clear_tokens(self) -> None:
        """Forget every code and token (clients stay registered)."""
        self.codes.clear()
        self.refresh_tokens.clear()
        self.access_tokens.clear()

    def _now(self) -> float:
        return self.clock().timestamp()

    # ---- discovery and authorize

    def discovery(self, request: Request) -> Response:
        """The OpenID discovery document, with this server's own URLs."""
        base = f"http://{request.headers.get('Host', '127.0.0.1')}"
        return Response(200, {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone",
                                 ACCOUNTING_SCOPE, "com.intuit.quickbooks.payment"],
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        })

    def authorize(self, request: Request) -> Response:
        """The consent page, or the redirect back to the app once approved/denied."""
        args = {k: v[0] for k, v in request.query.items() if v}
        client = self.clients.get(args.get("client_id", ""))
        redirect_uri = args.get("redirect_uri", "")
        if client is None:
            return Response(400, "invalid_client: unknown client_id")
        allowed = client["redirect_uris"]
        if not redirect_uri or (allowed is not None and redirect_uri not in allowed):
            # Never redirect to an unregistered URI (RFC 6749 4.1.2.1).
            return Response(400, "invalid_request: redirect_uri is not registered for this app")
        state = args.get("state", "")
        if args.get("deny"):
            return self._redirect(redirect_uri, {"error": "access_denied", "state": state})
        if args.get("response_type") != "code":
            return self._redirect(redirect_uri, {"error": "unsupported_response_type",
                                                 "state": state})
        scope = args.get("scope", "")
        if not scope.split():
            return self._redirect(redirect_uri, {"error": "invalid_scope", "state": state})
        realms = self.realms()
        realm_id = args.get("realm_id") or (realms[0] if realms else "")
        if realm_id not in realms:
            return Response(400, f"unknown company {realm_id!r}")
        if not (args.get("approve") or args.get("auto_approve")):
            return self._consent_page(request, client, realms)
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"client_id": args["client_id"], "redirect_uri": redirect_uri,
                            "realm_id": realm_id, "scope": scope,
                            "expires": self._now() + CODE_LIFETIME}
        return self._redirect(redirect_uri, {"code": code, "state": state, "realmId": realm_id})

    @staticmethod
    def _redirect(uri: str, params: dict) -> Response:
        joiner = "&" if urllib.parse.urlsplit(uri).query else "?"
        return Response(302, b"", {"Location": uri + joiner + urllib.parse.urlencode(params)})

    def _consent_page(self, request: Request, client: dict, realms: list[str]) -> Response:
        base = {k: v[0] for k, v in request.query.items() if v}
        links = []
        for realm_id in realms:
            approve = urllib.parse.urlencode({**base, "realm_id": realm_id, "approve": "1"})
            links.append(f'<li><a href="/connect/oauth2?{html.escape(approve)}">Connect company '
                         f"{html.escape(realm_id)}</a></li>")
        deny = urllib.parse.urlencode({**base, "deny": "1"})
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Intuit sandbox"
            "</title></head><body><h1>QuickBooks Online sandbox</h1>"
            f"<p>{html.escape(client['name'])} wants to connect to your company.</p>"
            f"<ul>{''.join(links)}</ul>"
            f'<p><a href="/connect/oauth2?{html.escape(deny)}">Cancel</a></p></body></html>'
        )
        return Response(200, page.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})

    # ---- tokens

    def _client_from_basic(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            form = request.form()
            client_id, secret = form.get("client_id"), form.get("client_secret")
        else:
            try:
                decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
            client_id, _, secret = decoded.partition(":")
        client = self.clients.get(client_id or "")
        if client is None or not secrets.compare_digest(client["secret"], secret or ""):
            return None
        return client_id

    def token(self, request: Request) -> Response:
        """The token endpoint (authorization_code and refresh_token grants)."""
        client_id = self._client_from_basic(request)
        if client_id is None:
            return _oauth_error(401, "invalid_client")
        form = request.form()
        grant = form.get("grant_type")
        if grant == "authorization_code":
            record = self.codes.pop(form.get("code", ""), None)
            if (record is None or record["client_id"] != client_id
                    or record["expires"] < self._now()
                    or record["redirect_uri"] != form.get("redirect_uri")):
                return _oauth_error(400, "invalid_grant")
            return Response(200, self._issue(client_id, record["realm_id"], record["scope"]),
                            {"Cache-Control": "no-store"})
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            record = self.refresh_tokens.get(token)
            if (record is None or record["client_id"] != client_id or record["used"]
                    or record["expires"] < self._now()):
                return _oauth_error(400, "invalid_grant", "Incorrect or invalid refresh token")
            record["used"] = True  # rotation: the token just used stops working
            issued = self._issue(client_id, record["realm_id"], record["scope"], record["grant"])
            return Response(200, issued, {"Cache-Control": "no-store"})
        return _oauth_error(400, "unsupported_grant_type")

    def _issue(self, client_id: str, realm_id: str, scope: str, grant: str | None = None) -> dict:
        now = self._now()
        grant = grant or secrets.token_hex(8)
        access, refresh = secrets.token_urlsafe(32), "RT1-" + secrets.token_urlsafe(32)
        common = {"client_id": client_id, "realm_id": realm_id, "scope": scope, "grant": grant}
        self.access_tokens[access] = {**common, "expires": now + self.access_lifetime,
                                      "revoked": False}
        self.refresh_tokens[refresh] = {**common, "expires": now + REFRESH_LIFETIME,
                                        "used": False}
        return {"token_type": "bearer", "access_token": access, "refresh_token": refresh,
                "expires_in": self.access_lifetime,
                "x_refresh_token_expires_in": REFRESH_LIFETIME}

    def revoke(self, request: Request) -> Response:
        """Revoke a refresh or access token: the whole grant (connection) ends."""
        client_id = self._client_from_basic(request)
        if client_id is None:
            return _oauth_error(401, "invalid_client")
        body = request.json() or {}
        token = body.get("token") if isinstance(body, dict) else None
        if not token:
            return _oauth_error(400, "invalid_request")
        record = self.refresh_tokens.get(token) or self.access_tokens.get(token)
        if record is not None and record["client_id"] == client_id:
            grant = record["grant"]
            for item in self.refresh_tokens.values():
                if item["grant"] == grant:
                    item["used"] = True
            for item in self.access_tokens.values():
                if item["grant"] == grant:
                    item["revoked"] = True
        # RFC 7009: an unknown token is answered 200 as well.
        return Response(200, b"")

    def userinfo(self, request: Request) -> Response:
        """Minimal OpenID userinfo for a valid access token."""
        record, problem = self.check_bearer(request)
        if record is None:
            return Response(401, {"error": "invalid_token", "error_description": problem})
        return Response(200, {"sub": f"user-{record['grant']}", "email": "owner@example.com",
                              "emailVerified": True, "givenName": "Sandbox",
                              "familyName": "Owner", "realmId": record["realm_id"]})

    # ---- API authentication

    def check_bearer(self, request: Request) -> tuple[dict | None, str]:
        """Return (token record, "") or (None, the detail of Intuit's 401)."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None, "Authorization header missing or not a Bearer token"
        token = header[7:].strip()
        record = self.access_tokens.get(token)
        if record is None:
            return None, "Token invalid: the bearer token is not recognised"
        if record["revoked"]:
            return None, "Token revoked: the app was disconnected"
        if record["expires"] <= self._now():
            return None, "Token expired: the access token lifetime has passed"
        return record, ""
