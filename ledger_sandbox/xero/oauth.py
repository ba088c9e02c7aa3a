"""Xero identity: OAuth2 authorization-code flow, refresh rotation, revocation, connections.

Follows developer.xero.com/documentation/guides/oauth2/auth-flow and …/oauth2/token-types:

* the authorize endpoint redirects back with ``code`` and ``state`` (codes are single use and
  expire after 5 minutes); PKCE (S256/plain) is honoured when a ``code_challenge`` is sent;
* the token endpoint accepts client credentials by HTTP Basic or in the form (the SDK sends
  them in the form) and answers ``{"id_token","access_token","expires_in","token_type",
  "refresh_token","scope"}``;
* access tokens live 30 minutes (configurable) and are JWT-shaped;
* every refresh returns a new refresh token; the used one keeps working for a 30-minute grace
  period (Xero: "you can retry refreshing the old token for a grace period of 30 minutes"),
  then answers ``invalid_grant``; unused refresh tokens expire after 60 days;
* revocation (``/connect/revocation``) kills the refresh token, its successors, their access
  tokens and the connections of that authorisation;
* ``GET /Connections`` lists the tenants the user connected; ``DELETE /Connections/{id}``
  disconnects one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid

from .dates import iso_datetime, parse_datetime

CODE_SECONDS = 300
REFRESH_IDLE_SECONDS = 60 * 86400
ISSUER = "https://identity.xero.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class OAuthError(Exception):
    """An OAuth2 error answer: ``error`` code, optional description and HTTP status."""

    def __init__(self, error: str, description: str = "", status: int = 400):
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict:
        """The JSON body Xero's identity server sends."""
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


class Identity:
    """OAuth2 clients, grants, tokens and connections of the sandbox."""

    def __init__(self, clock, access_seconds: int = 1800, grace_seconds: int = 1800):
        self.clock = clock
        self.access_seconds = access_seconds
        self.grace_seconds = grace_seconds
        self.signing_key = secrets.token_bytes(32)
        self.clients: dict[str, dict] = {}
        self.codes: dict[str, dict] = {}
        self.access: dict[str, dict] = {}
        self.refresh: dict[str, dict] = {}
        self.grants: dict[str, dict] = {}
        self.connections: dict[str, dict] = {}

    # ------------------------------------------------------------------ state

    def dump(self) -> dict:
        """Serialisable identity state (tokens included so a reload keeps sessions)."""
        return {"clients": self.clients, "codes": self.codes, "access": self.access,
                "refresh": self.refresh, "grants": self.grants,
                "connections": self.connections,
                "signing_key": base64.b64encode(self.signing_key).decode()}

    def load(self, data: dict) -> None:
        """Restore :meth:`dump` output."""
        for name in ("clients", "codes", "access", "refresh", "grants", "connections"):
            setattr(self, name, dict(data.get(name, {})))
        if data.get("signing_key"):
            self.signing_key = base64.b64decode(data["signing_key"])

    def _now(self) -> dt.datetime:
        return self.clock()

    def _at(self, seconds: float) -> str:
        return iso_datetime(self._now() + dt.timedelta(seconds=seconds))

    def _past(self, stamp: str | None) -> bool:
        return stamp is not None and parse_datetime(stamp) <= self._now()

    # ------------------------------------------------------------------ clients

    def register_client(self, client: dict) -> None:
        """Register (or replace) an OAuth2 app."""
        self.clients[client["client_id"]] = dict(client)

    def _client(self, form: dict, authorization: str | None) -> dict:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode("utf-8")
                client_id, secret = decoded.split(":", 1)
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client") from None
        client = self.clients.get(client_id or "")
        if client is None or not hmac.compare_digest(str(secret or ""),
                                                     client["client_secret"]):
            raise OAuthError("invalid_client")
        return client

    @staticmethod
    def redirect_allowed(client: dict, redirect_uri: str) -> bool:
        """Exact match against registered URIs; none registered: any loopback URI."""
        if client.get("redirect_uris"):
            return redirect_uri in client["redirect_uris"]
        return redirect_uri.startswith(("http://127.0.0.1", "http://localhost",
                                        "http://[::1]"))

    # ------------------------------------------------------------------ authorize

    def authorize(self, query: dict, tenants: list[dict]) -> str:
        """Approve an authorization request and return the redirect URL (code + state).

        Raises OAuthError for requests Xero would refuse on its login page.
        """
        client = self.clients.get(query.get("client_id", ""))
        if client is None:
            raise OAuthError("unauthorized_client", "Unknown client or client not enabled")
        redirect_uri = query.get("redirect_uri", "")
        if not self.redirect_allowed(client, redirect_uri):
            raise OAuthError("invalid_request", "Invalid redirect_uri")
        if query.get("response_type") != "code":
            raise OAuthError("unsupported_response_type")
        scope = " ".join(query.get("scope", "").split())
        if not scope:
            raise OAuthError("invalid_scope", "scope is required")
        code = secrets.token_urlsafe(32)
        self.codes[code] = {
            "client_id": client["client_id"], "redirect_uri": redirect_uri, "scope": scope,
            "expires_at": self._at(CODE_SECONDS), "used": False,
            "code_challenge": query.get("code_challenge"),
            "code_challenge_method": query.get("code_challenge_method", "plain"),
            "tenants": [t["tenant_id"] for t in tenants],
        }
        params = {"code": code, "scope": scope}
        if query.get("state") is not None:
            params["state"] = query["state"]
        from urllib.parse import urlencode

        joiner = "&" if "?" in redirect_uri else "?"
        return f"{redirect_uri}{joiner}{urlencode(params)}"

    # ------------------------------------------------------------------ token endpoint

    def token(self, form: dict, authorization: str | None, tenants: dict[str, dict]) -> dict:
        """Handle POST /connect/token; return the token response or raise OAuthError."""
        client = self._client(form, authorization)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(client, form, tenants)
        if grant_type == "refresh_token":
            return self._refresh(client, form)
        raise OAuthError("unsupported_grant_type")

    def _exchange_code(self, client: dict, form: dict, tenants: dict[str, dict]) -> dict:
        entry = self.codes.get(form.get("code", ""))
        if (entry is None or entry["used"] or self._past(entry["expires_at"])
                or entry["client_id"] != client["client_id"]):
            raise OAuthError("invalid_grant")
        if form.get("redirect_uri") != entry["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri mismatch")
        if entry.get("code_challenge"):
            verifier = form.get("code_verifier", "")
            if entry["code_challenge_method"] == "S256":
                verifier = _b64(hashlib.sha256(verifier.encode("ascii")).digest())
            if not hmac.compare_digest(verifier, entry["code_challenge"]):
                raise OAuthError("invalid_grant", "code_verifier mismatch")
        entry["used"] = True
        grant_id = str(uuid.uuid4())
        auth_event = str(uuid.uuid4())
        self.grants[grant_id] = {"client_id": client["client_id"], "scope": entry["scope"],
                                 "auth_event_id": auth_event, "revoked": False,
                                 "user_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "sandbox-user"))}
        now = iso_datetime(self._now())
        for tenant_id in entry["tenants"]:
            tenant = tenants.get(tenant_id)
            if tenant is None:
                continue
            existing = next((c for c in self.connections.values()
                             if c["tenantId"] == tenant_id
                             and c["client_id"] == client["client_id"]), None)
            if existing:
                existing.update(updatedDateUtc=now, authEventId=auth_event, grant_id=grant_id)
                continue
            conn_id = str(uuid.uuid4())
            self.connections[conn_id] = {
                "id": conn_id, "authEventId": auth_event, "tenantId": tenant_id,
                "tenantType": "ORGANISATION", "tenantName": tenant["organisation"]["Name"],
                "createdDateUtc": now, "updatedDateUtc": now,
                "client_id": client["client_id"], "grant_id": grant_id,
            }
        return self._issue(grant_id, entry["scope"])

    def _refresh(self, client: dict, form: dict) -> dict:
        token = form.get("refresh_token", "")
        entry = self.refresh.get(token)
        if entry is None or entry["client_id"] != client["client_id"] or entry["revoked"]:
            raise OAuthError("invalid_grant")
        grant = self.grants.get(entry["grant_id"])
        if grant is None or grant["revoked"]:
            raise OAuthError("invalid_grant")
        if entry["used_at"] is not None:
            used = parse_datetime(entry["used_at"])
            if self._now() >= used + dt.timedelta(seconds=self.grace_seconds):
                raise OAuthError("invalid_grant")
        elif self._past(entry["expires_at"]):
            raise OAuthError("invalid_grant")
        if entry["used_at"] is None:
            entry["used_at"] = iso_datetime(self._now())
        scope = entry["scope"]
        if form.get("scope"):
            asked = set(form["scope"].split())
            if not asked <= set(scope.split()):
                raise OAuthError("invalid_scope")
        return self._issue(entry["grant_id"], scope)

    def _jwt(self, claims: dict) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self.signing_key, f"{header}.{payload}".encode(),
                                  hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def _issue(self, grant_id: str, scope: str) -> dict:
        grant = self.grants[grant_id]
        now = self._now()
        exp = now + dt.timedelta(seconds=self.access_seconds)
        claims = {"nbf": int(now.timestamp()), "exp": int(exp.timestamp()), "iss": ISSUER,
                  "aud": f"{ISSUER}/resources", "client_id": grant["client_id"],
                  "sub": grant["user_id"], "auth_time": int(now.timestamp()),
                  "xero_userid": grant["user_id"], "jti": uuid.uuid4().hex,
                  "authentication_event_id": grant["auth_event_id"], "scope": scope.split()}
        access_token = self._jwt(claims)
        self.access[access_token] = {"grant_id": grant_id, "scope": scope,
                                     "expires_at": iso_datetime(exp), "revoked": False}
        body = {"id_token": self._jwt({"iss": ISSUER, "aud": grant["client_id"],
                                       "sub": grant["user_id"], "email": "bookkeeper@example.com",
                                       "exp": int(exp.timestamp()),
                                       "iat": int(now.timestamp())}),
                "access_token": access_token, "expires_in": self.access_seconds,
                "token_type": "Bearer", "scope": scope}
        if "offline_access" in scope.split():
            refresh_token = secrets.token_urlsafe(32)
            self.refresh[refresh_token] = {"grant_id": grant_id, "client_id": grant["client_id"],
                                           "scope": scope, "used_at": None, "revoked": False,
                                           "expires_at": self._at(REFRESH_IDLE_SECONDS)}
            body["refresh_token"] = refresh_token
        return body

    # ------------------------------------------------------------------ revoke

    def revoke(self, form: dict, authorization: str | None) -> None:
        """Handle POST /connect/revocation (refresh token → whole authorisation revoked)."""
        client = self._client(form, authorization)
        token = form.get("token", "")
        entry = self.refresh.get(token) or self.access.get(token)
        if entry is None:
            return  # RFC 7009: unknown tokens are not an error
        grant = self.grants.get(entry["grant_id"])
        if grant is None or grant["client_id"] != client["client_id"]:
            raise OAuthError("invalid_grant")
        grant["revoked"] = True
        for table in (self.refresh, self.access):
            for value in table.values():
                if value["grant_id"] == entry["grant_id"]:
                    value["revoked"] = True
        # Xero: revoking removes the connections made by that authorisation.
        for conn_id in [c for c, v in self.connections.items()
                        if v["grant_id"] == entry["grant_id"]]:
            del self.connections[conn_id]

    # ------------------------------------------------------------------ bearer checks

    def check(self, bearer: str | None) -> tuple[str, dict | None]:
        """Classify a bearer: ``("ok", info)``, ``("expired", info)`` or ``("invalid", None)``."""
        entry = self.access.get(bearer or "")
        if entry is None or entry["revoked"]:
            return "invalid", None
        grant = self.grants.get(entry["grant_id"])
        if grant is None or grant["revoked"]:
            return "invalid", None
        if self._past(entry["expires_at"]):
            return "expired", entry
        return "ok", dict(entry, client_id=grant["client_id"])

    def tenant_connected(self, info: dict, tenant_id: str) -> bool:
        """Whether the token's app has a live connection to ``tenant_id``."""
        return any(c["tenantId"] == tenant_id and c["client_id"] == info["client_id"]
                   for c in self.connections.values())

    def list_connections(self, info: dict) -> list[dict]:
        """Connections visible to the token's app (Xero's Connection shape)."""
        return [{k: v for k, v in c.items() if k not in ("client_id", "grant_id")}
                for c in self.connections.values() if c["client_id"] == info["client_id"]]

    def delete_connection(self, info: dict, conn_id: str) -> bool:
        """Disconnect one tenant; False when no such connection for this app."""
        conn = self.connections.get(conn_id)
        if conn is None or conn["client_id"] != info["client_id"]:
            return False
        del self.connections[conn_id]
        return True

    def expire_access_token(self, token: str) -> None:
        """Force an access token's expiry to now (tests)."""
        if token in self.access:
            self.access[token]["expires_at"] = iso_datetime(self._now())
