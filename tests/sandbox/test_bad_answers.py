"""Answers that cannot be believed, and the token endpoint's answers told apart (issue 16).

The sandboxes' answer faults (``bad_json``, ``no_ids``, ``one_fewer``, ``no_access_token``,
``empty_object``, ``no_status``) spoil the answer of a request the emulator did handle; both
adapters must refuse to believe them (LedgerAnswerInvalid: retryable, outcome unknown), and a
retry under the same key must get the true answer the ledger kept for replay. The
``redirect`` fault answers a token request with a 307, which must never be followed.
Everything over real HTTP, through the real SDKs.
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from qbo_support import QboPush
from xero_support import XeroPush

from billing_sync.services.ledger.base import PushItem
from billing_sync.services.ledger.errors import (
    PROVIDER_TEXT_LIMIT,
    AuthorizationRevoked,
    ClientCredentialsRejected,
    ConfigurationError,
    LedgerAnswerInvalid,
    LedgerRejected,
    LedgerUnavailable,
    RateLimited,
    cap,
)
from billing_sync.services.ledger.qbo import QboAdapter
from billing_sync.services.ledger.xero import XeroAdapter

REDIRECT = "http://127.0.0.1:9/cb"
SPOILED = ("bad_json", "no_ids", "one_fewer")
XERO_TOKEN = r"^/connect/token$"
QBO_TOKEN = r"^/oauth2/v1/tokens/bearer$"


def _contact(name):
    return {"name": name, "email": None, "phone": None, "tax_id": None, "street": None,
            "street2": None, "city": None, "zip": None, "state": None, "country_code": None,
            "is_company": True, "term_ref": None, "currency": None}


@pytest.fixture
def xero_push(xero_sandbox):
    # its adapter is allowed to reach this sandbox only (odoo.conf's allow-list)
    return XeroPush(xero_sandbox)


@pytest.fixture
def qbo_push(qbo_sandbox):
    return QboPush(qbo_sandbox)


def _ledger_contacts(push, name):
    if isinstance(push, XeroPush):
        return [c for c in push.ledger().contacts.values() if c["Name"] == name]
    return [c for c in push.ledger().all("Customer") if c.get("DisplayName") == name]


# --------------------------------------------------------------------------- the sandbox


def test_answer_faults_are_armed_through_the_control_api(xero_sandbox):
    url = xero_sandbox.url
    armed = requests.post(f"{url}/_sandbox/faults", json={"kind": "no_ids", "count": 1},
                          timeout=5)
    assert armed.status_code == 200, armed.text
    assert armed.json()["faults"][0]["kind"] == "no_ids"
    unknown = requests.post(f"{url}/_sandbox/faults", json={"kind": "garbage"}, timeout=5)
    assert unknown.status_code >= 400


def test_spoiled_answers_keep_the_true_one_for_replay(xero_push):
    app = xero_push.app
    headers = {"Authorization": f"Bearer {xero_push.token}",
               "xero-tenant-id": xero_push.tenant_id, "Idempotency-Key": "spoil-1",
               "Accept": "application/json"}
    url = f"{xero_push.server.url}/api.xro/2.0/Contacts"
    body = {"Contacts": [{"Name": "Spoiled Ltd"}, {"Name": "Spoiled Two Ltd"}]}
    app.faults.next("bad_json", 1)
    page = requests.post(url, json=body, headers=headers, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        page.json()
    # the ledger did the work; the replay under the same key is the true answer
    replay = requests.post(url, json=body, headers=headers, timeout=5)
    assert [c["Name"] for c in replay.json()["Contacts"]] == ["Spoiled Ltd", "Spoiled Two Ltd"]
    assert all(c["ContactID"] for c in replay.json()["Contacts"])
    app.faults.next("no_ids", 1)
    stripped = requests.post(url, json=body, headers=headers, timeout=5).json()
    assert not any("ContactID" in c for c in stripped["Contacts"])
    app.faults.next("one_fewer", 1)
    fewer = requests.post(url, json=body, headers=headers, timeout=5).json()
    assert len(fewer["Contacts"]) == 1
    assert len(_ledger_contacts(xero_push, "Spoiled Ltd")) == 1


def test_qbo_spoiled_batch_answers(qbo_push):
    qb = qbo_push.adapter.client(qbo_push.token, qbo_push.realm)
    operations = [{"bId": f"b{n}", "operation": "create", "Customer": {"DisplayName": name}}
                  for n, name in enumerate(("Spoiled Ltd", "Spoiled Two Ltd"))]
    url = f"{qb.api_url}/company/{qbo_push.realm}/batch"

    def post():
        return qb.session.post(url, json={"BatchItemRequest": operations},
                               params={"requestid": "spoil-1", "minorversion": 75},
                               headers={"Authorization": f"Bearer {qbo_push.token}",
                                        "Accept": "application/json"})

    qbo_push.app.faults.next("no_ids", 1)
    stripped = post().json()["BatchItemResponse"]
    assert len(stripped) == 2 and not any("Id" in item["Customer"] for item in stripped)
    qbo_push.app.faults.next("one_fewer", 1)
    assert len(post().json()["BatchItemResponse"]) == 1
    true = post().json()["BatchItemResponse"]
    assert all(item["Customer"]["Id"] for item in true)
    assert len(_ledger_contacts(qbo_push, "Spoiled Ltd")) == 1


def test_token_answer_faults(xero_sandbox):
    app = xero_sandbox.app
    form = {"grant_type": "refresh_token", "refresh_token": "nope"}
    client = app.client
    auth = (client["client_id"], client["client_secret"])
    url = xero_sandbox.url + "/connect/token"
    # the refusal stays itself under no_access_token (only a 200 is spoiled)
    app.faults.next("no_access_token", 1)
    assert requests.post(url, data=form, auth=auth, timeout=5).json() == {
        "error": "invalid_grant"}
    wrong = requests.post(url, data=form, auth=(client["client_id"], "wrong"), timeout=5)
    assert wrong.json() == {"error": "invalid_client"}


# --------------------------------------------------------------------------- push answers


@pytest.mark.parametrize("fault", SPOILED)
@pytest.mark.parametrize("provider", ["xero", "qbo"])
def test_push_never_believes_a_bad_answer(request, provider, fault):
    push = request.getfixturevalue(f"{provider}_push")
    name = f"Answer {fault} Ltd"
    items = [PushItem("res.partner,1", "contact", _contact(name)),
             PushItem("res.partner,2", "contact", _contact(f"Other {fault} Ltd"))]
    path = "/Contacts" if provider == "xero" else "/batch"
    push.app.faults.next(fault, 1, path=path)
    with pytest.raises(LedgerAnswerInvalid) as caught:
        push.push("contact", items, f"k-{fault}")
    error = caught.value
    assert error.retryable and isinstance(error, LedgerUnavailable)
    assert "unknown" in str(error) and "same" in str(error), str(error)
    assert "<html" not in str(error).lower()
    # the ledger did create them; the retry under the same key gets its first answer
    results = push.push("contact", items, f"k-{fault}")
    assert all(r.ok and r.ledger_id for r in results), [r.error for r in results]
    assert len(_ledger_contacts(push, name)) == 1
    found = _ledger_contacts(push, name)[0]
    assert results[0].ledger_id == str(found.get("ContactID") or found.get("Id"))


def test_xero_reads_without_ids_are_not_believed(xero_push):
    (made,) = xero_push.push("contact", [PushItem("res.partner,1", "contact",
                                                  _contact("Findable Ltd"))], "find-1")
    assert made.ok
    xero_push.app.faults.next("no_ids", 1, path="/Contacts")
    with pytest.raises(LedgerAnswerInvalid):
        xero_push.find_contacts([{"key": "k", "tax_id": None, "email": None,
                                  "name": "Findable Ltd"}])
    found = xero_push.find_contacts([{"key": "k", "tax_id": None, "email": None,
                                      "name": "Findable Ltd"}])
    assert found == {"k": made.ledger_id}


def test_qbo_reads_without_ids_are_not_believed(qbo_push):
    adapter = qbo_push.adapter
    qbo_push.app.faults.next("no_ids", 1, path="/query")
    with pytest.raises(LedgerAnswerInvalid):
        adapter.reference_data(qbo_push.token, qbo_push.realm)
    qbo_push.app.faults.next("bad_json", 1, path="/companyinfo")
    with pytest.raises(LedgerAnswerInvalid) as caught:
        adapter.test_connection(qbo_push.token, qbo_push.realm)
    assert "not JSON" in str(caught.value) and "<html" not in str(caught.value).lower()
    assert adapter.test_connection(qbo_push.token, qbo_push.realm).organisation


def test_xero_unreadable_reads(xero_push):
    adapter = xero_push.adapter
    xero_push.app.faults.next("bad_json", 1, path="/Organisation")
    with pytest.raises(LedgerAnswerInvalid) as caught:
        adapter.test_connection(xero_push.token, xero_push.tenant_id)
    assert "text/html" in str(caught.value) and "<html" not in str(caught.value).lower()
    from test_push_xero import _customer, _invoices

    _invoices(xero_push, _customer(xero_push), 10.0, 20.0, key="read")
    numbers = ["INV/read/0", "INV/read/1"]
    found = adapter.find_documents(xero_push.token, xero_push.tenant_id, "invoice", numbers)
    assert found
    xero_push.app.faults.next("no_ids", 1, path="/Invoices")
    with pytest.raises(LedgerAnswerInvalid):
        adapter.find_documents(xero_push.token, xero_push.tenant_id, "invoice", numbers)


def test_long_ledger_texts_are_capped():
    text = "x" * 5000
    assert len(cap(text)) == PROVIDER_TEXT_LIMIT
    assert cap("a\n  b") == "a b" and cap(None) == ""


# --------------------------------------------------------------------------- token endpoint


def _code(adapter, provider):
    """An authorisation code from the sandbox's consent page (not yet exchanged)."""
    url = adapter.authorization_url(REDIRECT, "st-1")
    if provider == "qbo":
        url += "&approve=1"
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)
    return query["code"][0], adapter.callback_params({k: v[0] for k, v in query.items()})


def _wrong_secret(adapter):
    cls = type(adapter)
    return cls(adapter.client_id, "not-the-secret", adapter.oauth_url, adapter.api_url,
               timeout=adapter.timeout, allowed_endpoints=adapter.allowed_endpoints)


@pytest.fixture(params=["xero", "qbo"])
def token_case(request):
    push = request.getfixturevalue(f"{request.param}_push")
    path = XERO_TOKEN if request.param == "xero" else QBO_TOKEN
    return request.param, push, path


def test_token_answers_told_apart_on_exchange(token_case):
    provider, push, path = token_case
    adapter = push.adapter
    messages = {}
    for fault, expected in (("bad_json", LedgerAnswerInvalid),
                            ("no_access_token", LedgerAnswerInvalid),
                            ("reset", LedgerUnavailable)):
        code, callback = _code(adapter, provider)
        push.app.faults.next(fault, 1, path=path)
        with pytest.raises(expected) as caught:
            adapter.exchange_code(code, REDIRECT, callback=callback)
        messages[fault] = str(caught.value)
    assert "not JSON" in messages["bad_json"]
    assert "without an access token" in messages["no_access_token"]
    assert "could not be reached" in messages["reset"]
    assert all("Connect again" in messages[k] for k in ("bad_json", "no_access_token"))
    code, callback = _code(adapter, provider)
    with pytest.raises(ClientCredentialsRejected) as caught:
        _wrong_secret(adapter).exchange_code(code, REDIRECT, callback=callback)
    assert "client id or client secret is wrong" in str(caught.value)
    assert "developer portal" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)
    code, callback = _code(adapter, provider)
    assert adapter.exchange_code(code, REDIRECT, callback=callback).access_token
    with pytest.raises(AuthorizationRevoked) as caught:
        adapter.exchange_code(code, REDIRECT, callback=callback)  # already used
    assert not isinstance(caught.value, ClientCredentialsRejected)
    assert "expired or was already used" in str(caught.value)
    assert "Click Connect again" in str(caught.value)


def test_token_answers_told_apart_on_refresh(token_case):
    provider, push, path = token_case
    adapter = push.adapter

    def connected():
        code, callback = _code(adapter, provider)
        return adapter.exchange_code(code, REDIRECT, callback=callback)

    for fault, expected, words in (("bad_json", LedgerAnswerInvalid, "not JSON"),
                                   ("no_access_token", LedgerAnswerInvalid,
                                    "without an access token"),
                                   ("reset", LedgerUnavailable, "could not be reached"),
                                   ("http503", LedgerUnavailable, "answered 503")):
        # a fresh grant each time: a spoiled answer may have spent the refresh token
        tokens = connected()
        push.app.faults.next(fault, 1, path=path)
        with pytest.raises(expected) as caught:
            adapter.refresh(tokens.refresh_token)
        assert words in str(caught.value), str(caught.value)
        assert not isinstance(caught.value, AuthorizationRevoked)
    tokens = connected()
    with pytest.raises(ClientCredentialsRejected):
        _wrong_secret(adapter).refresh(tokens.refresh_token)
    assert adapter.refresh(tokens.refresh_token).access_token
    with pytest.raises(AuthorizationRevoked) as caught:
        adapter.refresh("not-a-refresh-token")
    assert not isinstance(caught.value, ClientCredentialsRejected)
    assert "no longer accepts the refresh token" in str(caught.value)
    assert "Connect" in str(caught.value)


def test_other_refusals_are_not_revocations(xero_push):
    adapter = xero_push.adapter
    with pytest.raises(LedgerRejected) as caught:
        adapter._tokens({"grant_type": "password"}, "Trying")
    assert not isinstance(caught.value, AuthorizationRevoked)
    assert "unsupported_grant_type" in str(caught.value)


def test_qbo_client_has_no_oauthlib_session(qbo_push, monkeypatch):
    """QuickBooks over plain http on loopback without OAUTHLIB_INSECURE_TRANSPORT: the API
    session is a plain requests session (requests-oauthlib would refuse, and log the
    bearer token at DEBUG)."""
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    qb = qbo_push.adapter.client(qbo_push.token, qbo_push.realm)
    assert type(qb.session).__module__.startswith("billing_sync")
    assert qbo_push.token not in repr(qb.session)
    report = qbo_push.adapter.test_connection(qbo_push.token, qbo_push.realm)
    assert report.organisation
    import os

    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_adapters_raise_no_raw_sdk_errors_on_garbage_everywhere(xero_push, qbo_push):
    """A 200 HTML page on every call of a whole reference import: one clear error."""
    for push, org in ((xero_push, xero_push.tenant_id), (qbo_push, qbo_push.realm)):
        push.app.faults.fraction("bad_json", 1.0)
        try:
            with pytest.raises(LedgerAnswerInvalid):
                push.adapter.reference_data(push.token, org)
        finally:
            push.app.faults.clear()


def test_adapter_classes_export_sign_in_names():
    assert XeroAdapter.SIGN_IN == "Xero" and QboAdapter.SIGN_IN == "Intuit"


# --------------------------------------------------------------------------- redirects
TOKEN_LABEL = {"xero": "POST /connect/token", "qbo": "POST /oauth2/v1/tokens/bearer"}
REVOCATION = {"xero": r"^/connect/revocation$", "qbo": r"^/v2/oauth2/tokens/revoke$"}


class _Elsewhere:
    """A loopback server where a followed redirect would land; it records what reaches it
    and answers like a token endpoint would."""

    def __init__(self):
        received = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.path, dict(self.headers), self.rfile.read(length)))
                body = json.dumps({"access_token": "theirs", "refresh_token": "theirs",
                                   "expires_in": 1800}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def elsewhere():
    server = _Elsewhere()
    yield server
    server.close()


def test_token_endpoint_redirects_are_never_followed(token_case, elsewhere):
    """A 307 or 308 keeps the method and the body: followed, it would hand the refresh
    token and the client secret to wherever it points, unchecked."""
    provider, push, path = token_case
    adapter = push.adapter
    code, callback = _code(adapter, provider)
    tokens = adapter.exchange_code(code, REDIRECT, callback=callback)
    for status in (307, 308):
        push.app.faults.next("redirect", 1, path=path, status=status,
                             location=elsewhere.url + "/token")
        with pytest.raises(ConfigurationError) as caught:
            adapter.refresh(tokens.refresh_token)
        message = str(caught.value)
        assert f"answered {status}" in message and "not followed" in message, message
        assert elsewhere.url + "/token" in message and "OAuth URL" in message
        assert tokens.refresh_token not in message
    # to the token endpoint itself: asked once per attempt, never sent the token twice
    push.app.counters.reset()
    push.app.faults.next("redirect", 1, path=path)
    with pytest.raises(ConfigurationError):
        adapter.refresh(tokens.refresh_token)
    assert push.app.counters.snapshot()["by_endpoint"][TOKEN_LABEL[provider]] == {"307": 1}
    # a code exchange is not followed either
    code, callback = _code(adapter, provider)
    push.app.faults.next("redirect", 1, path=path, location=elsewhere.url + "/token")
    with pytest.raises(ConfigurationError):
        adapter.exchange_code(code, REDIRECT, callback=callback)
    # nothing was spent: the refresh token still works (QuickBooks rotates on first use)
    fresh = adapter.refresh(tokens.refresh_token)
    # a revocation redirected is refused, and the grant lives until one that is not
    push.app.faults.next("redirect", 1, path=REVOCATION[provider],
                         location=elsewhere.url + "/revoke")
    with pytest.raises(ConfigurationError):
        adapter.revoke(fresh.refresh_token)
    assert elsewhere.requests == []
    adapter.revoke(fresh.refresh_token)
    with pytest.raises(AuthorizationRevoked):
        adapter.refresh(fresh.refresh_token)


# --------------------------------------------------------------------------- Xero answers
def _credit_note_push(xero_push, key):
    """A Xero invoice (230.00) and a credit note item (46.00) allocated to it."""
    from test_push_xero import _customer, _document, _invoices, _line

    contact_id = _customer(xero_push, f"Credited {key} Ltd")
    (invoice,) = _invoices(xero_push, contact_id, 200.0, key=key)
    values = _document(contact_id, f"CN/{key}", [_line(40.0)])
    values["allocations"] = [{"invoice_ref": invoice.ledger_id, "amount": 46.0,
                              "date": "2026-03-05"}]
    return invoice, PushItem(f"account.move,cn-{key}", "credit_note", values)


@pytest.mark.parametrize("fault", ["one_fewer", "empty_object"])
def test_xero_allocation_answer_must_answer_each_allocation(xero_push, fault):
    invoice, item = _credit_note_push(xero_push, fault)
    xero_push.app.faults.next(fault, 1, path=r"/Allocations$")
    with pytest.raises(LedgerAnswerInvalid) as caught:
        xero_push.push("credit_note", [item], f"cn-{fault}")
    assert "Allocations" in str(caught.value) and "unknown" in str(caught.value)
    # the retry under the same key: Xero replays both answers, nothing is allocated twice
    (result,) = xero_push.push("credit_note", [item], f"cn-{fault}")
    assert result.ok and not result.incomplete, result.error
    assert xero_push.ledger().invoices[invoice.ledger_id]["AmountCredited"] == 46.0
    assert len(xero_push.ledger().credit_notes) == 1


def test_xero_credit_for_a_paid_invoice_checks_its_allocation(xero_push):
    from test_push_xero import _customer, _invoices

    (invoice,) = _invoices(xero_push, _customer(xero_push, "Paid Ltd"), 100.0, key="paid")
    xero_push.ledger().create_payment({"Invoice": {"InvoiceID": invoice.ledger_id},
                                       "Amount": 15.0, "Account": {"Code": "090"},
                                       "Date": "2026-03-03"})
    item = PushItem("account.move,paid", "void_invoice", {"or_credit": True},
                    ledger_id=invoice.ledger_id)
    xero_push.app.faults.next("one_fewer", 1, path=r"/Allocations$")
    with pytest.raises(LedgerAnswerInvalid):
        xero_push.push("void_invoice", [item], "retire-1")
    (result,) = xero_push.push("void_invoice", [item], "retire-1")
    assert result.ok and "credited by credit note" in result.note, result.error
    assert xero_push.ledger().invoices[invoice.ledger_id]["AmountDue"] == 0
    assert len(xero_push.ledger().credit_notes) == 1


def _xero_payment(xero_push, key):
    from test_push_xero import _customer, _invoices

    (invoice,) = _invoices(xero_push, _customer(xero_push, f"Payer {key} Ltd"), 100.0, key=key)
    (payment,) = xero_push.push("payment", [PushItem(f"account.payment,{key}", "payment", {
        "invoice_ref": invoice.ledger_id, "amount": 115.0, "date": "2026-03-10",
        "bank_account_ref": None, "bank_account_code": "090", "reference": key,
        "currency": "NZD"})], f"pay-{key}")
    assert payment.ok, payment.error
    return invoice, payment


@pytest.mark.parametrize("fault", ["no_status", "one_fewer", "empty_object"])
def test_xero_payment_deletion_is_believed_only_when_deleted(xero_push, fault):
    invoice, payment = _xero_payment(xero_push, fault)
    item = PushItem(f"account.payment,{fault}", "delete_payment", {},
                    ledger_id=payment.ledger_id)
    xero_push.app.faults.next(fault, 1, path=r"/Payments/")
    with pytest.raises(LedgerAnswerInvalid) as caught:
        xero_push.push("delete_payment", [item], f"del-{fault}")
    assert "DELETED" in str(caught.value) or "Payments" in str(caught.value)
    (result,) = xero_push.push("delete_payment", [item], f"del-{fault}")
    assert result.ok and result.note == "removed", result.error
    assert xero_push.ledger().payments[payment.ledger_id]["Status"] == "DELETED"
    assert xero_push.ledger().invoices[invoice.ledger_id]["AmountDue"] == 115.0


@pytest.mark.parametrize(("fault", "path"), [
    ("empty_object", r"/Accounts$"), ("no_ids", r"/Accounts$"),
    ("no_ids", r"/TaxRates$"), ("empty_object", r"/Items$"), ("no_ids", r"/Items$"),
    ("empty_object", r"/TrackingCategories$"), ("no_ids", r"/TrackingCategories$"),
    ("empty_object", r"/Currencies$"),
])
def test_xero_reference_data_comes_whole_or_not_at_all(xero_push, fault, path):
    """A missing list would read as "no codes" (the connection then archives every one of
    them); a row without its id cannot be mapped."""
    adapter = xero_push.adapter
    xero_push.app.faults.next(fault, 1, path=path)
    with pytest.raises(LedgerAnswerInvalid):
        adapter.reference_data(xero_push.token, xero_push.tenant_id)
    records = adapter.reference_data(xero_push.token, xero_push.tenant_id)
    assert {"revenue_account", "tax", "item", "tracking_category", "tracking",
            "currency"} <= {r.kind for r in records}


def test_xero_rate_limit_headers_are_read_safely(xero_push):
    from test_push_xero import _customer

    contact_id = _customer(xero_push, "Busy Ltd")
    xero_push.app.faults.next("http429", 1, retry_after="Wed, 21 Oct 2026 07:28:00 GMT",
                              problem="minute " + "x" * 2000)
    with pytest.raises(RateLimited) as caught:
        xero_push.find_contacts([{"key": "k", "tax_id": None, "email": None,
                                  "name": contact_id}])
    assert caught.value.retry_after == 60 and caught.value.assumed
    assert len(caught.value.problem) <= 60 and len(str(caught.value)) < 200


# --------------------------------------------------------------------------- QBO answers
def test_qbo_payment_deletion_is_believed_only_when_deleted(qbo_push):
    from test_push_qbo import _customer, _id, _invoices

    (invoice,) = _invoices(qbo_push, _customer(qbo_push), 500, key="del-inv")
    (payment,) = qbo_push.push("payment", [PushItem("account.payment,1", "payment", {
        "invoice_ref": invoice.ledger_id, "amount": 200.0, "date": "2026-03-10",
        "bank_account_ref": _id(qbo_push, "Account", "Business Bank Account"),
        "bank_account_code": None, "reference": "P1", "currency": "GBP"})], "pay-del")
    assert payment.ok, payment.error
    item = PushItem("account.payment,1", "delete_payment", {}, ledger_id=payment.ledger_id)
    qbo_push.app.faults.next("no_status", 1, path=r"/batch$")
    with pytest.raises(LedgerAnswerInvalid) as caught:
        qbo_push.push("delete_payment", [item], "del-1")
    assert "without saying it was deleted" in str(caught.value)
    (result,) = qbo_push.push("delete_payment", [item], "del-1")
    assert result.ok and result.note == "removed", result.error
    assert qbo_push.ledger().get("Invoice", invoice.ledger_id)["Balance"] == 500
