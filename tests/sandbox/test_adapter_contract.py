"""The ledger adapter contract (services/ledger/base.py): what both adapters declare and how
they answer the same calls, one signature each; provider words stay inside the adapter."""

import inspect

import pytest
from xero_support import XeroPush

from billing_sync.services.contacts import ContactMatches
from billing_sync.services.ledger import adapter_class, qbo_payloads, xero_payloads
from billing_sync.services.ledger.base import LIMIT_KEYS, PUSH_KINDS, Kind, LedgerAdapter
from billing_sync.services.ledger.errors import (
    ConfigurationError,
    LedgerAnswerInvalid,
    LedgerError,
    LedgerRejected,
    LedgerUnavailable,
    RateLimited,
)

PROVIDERS = ("xero", "qbo")


@pytest.fixture
def xero_push(xero_sandbox):
    return XeroPush(xero_sandbox)


def _adapter(provider):
    return adapter_class(provider)("id", "secret", "http://127.0.0.1:9/d", "http://127.0.0.1:9",
                                   allowed_endpoints="127.0.0.1:9")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_adapter_declares_the_whole_contract(provider):
    cls = adapter_class(provider)
    assert not inspect.isabstract(cls)
    assert set(cls.KINDS) == set(PUSH_KINDS)
    assert all(isinstance(spec, Kind) and spec.batch_size >= 1 and spec.what
               for spec in cls.KINDS.values())
    assert set(cls.LIMITS) == set(LIMIT_KEYS)
    assert cls.FIND_LIMIT >= 1
    adapter = _adapter(provider)
    assert adapter.last_headroom is None, "nothing said before any call"
    # one signature for what the engine and the models call, declared once in the base
    for name in ("push", "find_contacts", "find_documents", "web_url", "is_duplicate_name",
                 "exchange_code", "organisations", "callback_params", "batch_size"):
        assert (list(inspect.signature(getattr(cls, name)).parameters)
                == list(inspect.signature(getattr(LedgerAdapter, name)).parameters)), name


def test_an_adapter_missing_a_kind_is_refused_when_declared():
    base = adapter_class("xero")
    with pytest.raises(TypeError, match="KINDS"):
        type("HalfAdapter", (base,), {"provider": "half", "KINDS": {
            k: v for k, v in base.KINDS.items() if k != "payment"}})
    with pytest.raises(TypeError, match="LIMITS"):
        type("NoDayAdapter", (base,), {"provider": "half", "LIMITS": {"per_minute": 60}})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_batch_sizes_and_web_pages_come_from_the_kind_table(provider):
    cls, adapter = adapter_class(provider), _adapter(provider)
    for kind in PUSH_KINDS:
        assert cls.batch_size(kind) == cls.KINDS[kind].batch_size
        url = adapter.web_url(kind, "ID-1", "org")
        assert url is None or ("ID-1" in url and url.startswith("https://"))
        assert adapter.web_url(kind, None, "org") is None
    with pytest.raises(ValueError, match="unknown push kind"):
        cls.batch_size("bill")
    with pytest.raises(ValueError, match="unknown push kind"):
        adapter.push("token", "org", "bill", [], "key")


def test_callback_parameters_are_the_adapters_own():
    query = {"code": "c", "state": "s", "realmId": "9130355", "scope": "x"}
    assert adapter_class("xero").callback_params(query) == {}
    qbo = adapter_class("qbo")
    params = qbo.callback_params(query)
    assert list(params.values()) == ["9130355"]
    assert qbo.callback_params({"code": "c"}) == {}
    # a QuickBooks callback that named no company: said before any request
    with pytest.raises(LedgerRejected, match="Connect again"):
        _adapter("qbo").organisations("token", qbo.callback_params({"code": "c"}))


def test_retryable_is_declared_on_every_ledger_error():
    assert LedgerError.retryable is False
    assert RateLimited("x").retryable and LedgerUnavailable("x").retryable
    assert LedgerAnswerInvalid("x").retryable
    assert not LedgerRejected("x").retryable and not ConfigurationError("x").retryable


def test_documents_are_approved_not_provider_statuses():
    line = {"description": "Advisory", "quantity": 1, "unit_price": 100.0, "net": 100.0,
            "tax_amount": 0.0, "account_code": "200", "tracking": [
                {"ledger_id": "opt-1", "category": "Region", "option": "North"}]}
    values = {"contact_ref": "c1", "date": "2026-01-05", "number": "INV/1", "lines": [line],
              "amount_total": 100.0, "approved": True}
    assert str(xero_payloads.invoice(values).status) == "AUTHORISED"
    assert str(xero_payloads.invoice({**values, "approved": False}).status) == "DRAFT"
    tracking = xero_payloads.invoice(values).line_items[0].tracking
    assert [(t.name, t.option) for t in tracking] == [("Region", "North")]
    # QuickBooks has no drafts: nothing of it is sent
    body = qbo_payloads.sales_form({**values, "contact_ref": "7"})
    assert "status" not in str(body).lower() and "approved" not in str(body).lower()


def test_find_contacts_answers_contact_matches_even_for_nobody(xero_push):
    found = xero_push.find_contacts([])
    assert isinstance(found, ContactMatches) and found == {} and found.name_holders == {}


def test_headroom_is_declared_after_a_call(xero_push):
    xero_push.find_contacts([{"key": "p1", "name": "Nobody Here Ltd"}])
    assert set(xero_push.adapter.last_headroom) == {"minute_remaining", "day_remaining"}
