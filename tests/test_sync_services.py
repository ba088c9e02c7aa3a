"""The outbound sync's plain-Python parts: backoff, idempotency keys, hints (the rate-limit
budget lives in PostgreSQL: test_rate_budget.py)."""

import random

from odoo.addons.billing_sync.services import backoff
from odoo.addons.billing_sync.services.hints import hint_for, hint_of
from odoo.addons.billing_sync.services.idempotency import batch_key
from odoo.addons.billing_sync.services.ledger.errors import (
    ERROR_CLASSES,
    AccessTokenExpired,
    AuthorizationRevoked,
    LedgerAnswerInvalid,
    LedgerRejected,
    LedgerUnavailable,
    RateLimited,
)
from odoo.addons.billing_sync.services.ledger.refusals import classify


def test_backoff_grows_with_jitter_and_respects_retry_after():
    rng = random.Random(1)
    delays = [backoff.retry_delay(n, rng=rng) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(backoff.CAP_SECONDS, backoff.BASE_SECONDS * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.retry_delay(1, retry_after=120, rng=rng) >= 120
    assert not backoff.is_dead(backoff.MAX_ATTEMPTS - 1)
    assert backoff.is_dead(backoff.MAX_ATTEMPTS)


def test_batch_key_is_deterministic_and_distinct():
    key = batch_key("db-uuid", 1, "invoice", [3, 1, 2])
    assert key == batch_key("db-uuid", 1, "invoice", [1, 2, 3])
    assert key != batch_key("db-uuid", 1, "invoice", [1, 2])
    assert key != batch_key("other-db", 1, "invoice", [1, 2, 3])
    assert key != batch_key("db-uuid", 2, "invoice", [1, 2, 3])
    assert len(key) <= 64


def test_hints():
    assert "tax mapping" in hint_for("TaxType OUTPUT9 is not valid")
    assert "revenue account" in hint_for("Account code '999' is not a valid code")
    assert "locked" in hint_for("The document date cannot be before the period lock date")
    assert "as the ledger's message says" in hint_for("Something unexpected")


def test_hints_ignore_the_names_the_ledger_quotes():
    tracking = "Check the tracking mapping"
    # Xero quotes the option and category names: an option called "Tax" is a tracking problem
    assert tracking in hint_for(
        "The tracking option 'Tax' does not exist for tracking category 'Department'.")
    assert tracking in hint_for('The tracking category "Tax" does not exist.')
    assert tracking in hint_for("The tracking option “Tax” does not exist.")
    # QuickBooks names the reference element, then the id
    assert tracking in hint_for(
        "Invalid Reference Id : ClassRef '3' does not exist or is inactive")
    assert "tax mapping" in hint_for(
        "Invalid Reference Id : TaxCodeRef '3' does not exist or is inactive")
    assert "tax mapping" in hint_for(
        "The TaxType code 'OUTPUT2' does not exist or cannot be used for this type of "
        "transaction.")
    # a name that reads like another problem does not choose the hint either
    assert "revenue account" in hint_for(
        "Account code 'Tracking 200' is not a valid code for this document.")
    assert "item" in hint_for("Item code 'TAX-ADVICE' is not valid")
    # an apostrophe is not a quote: the words after it still count
    assert "tax mapping" in hint_for("Xero can't use the tax rate on this line")


def test_every_ledger_error_carries_a_stable_class():
    classes = {value for value, _label in ERROR_CLASSES}
    cases = [(RateLimited("Xero's rate limit was reached."), "rate_limit"),
             (AccessTokenExpired("refused the access token (401)", status=401),
              "authentication"),
             (AuthorizationRevoked("refused access (403); reconnect it", status=403),
              "authentication"),
             (LedgerUnavailable("Xero answered 503.", status=503), "network"),
             (LedgerAnswerInvalid("a body that is not JSON"), "answer"),
             (LedgerRejected("Sending payments to Xero: Xero refused it: Account code '999' "
                             "is not a valid code", details=["Account code '999' is not a "
                                                             "valid code"]), "mapping")]
    for error, expected in cases:
        assert error.error_class == expected, (error, error.error_class)
        assert error.error_class in classes


def test_a_refusal_is_classed_by_the_ledgers_words_not_ours():
    # what Odoo was doing ("Sending payments", "credit notes") names no problem
    error = LedgerRejected("Sending credit notes to QuickBooks: QuickBooks said: Invalid "
                           "Reference Id : TaxCodeRef '3' does not exist", status=400,
                           ledger_message="Invalid Reference Id : TaxCodeRef '3' does not "
                                          "exist")
    assert (error.error_class, error.subject) == ("mapping", "tax")
    assert error.status == 400
    assert error.ledger_message.startswith("Invalid Reference Id")
    # QuickBooks' Fault codes say it outright, whatever the words
    duplicate = LedgerRejected("QuickBooks refused it: Duplicate Name Exists Error",
                               details=[{"code": "6240", "Message": "Duplicate Name Exists "
                                                                    "Error"}])
    assert (duplicate.error_class, duplicate.subject) == ("duplicate", "contact")
    assert duplicate.ledger_message == "Duplicate Name Exists Error"
    # the code still decides when the adapter shows the words it formatted
    shown = LedgerRejected("QuickBooks refused it: Another customer has this name",
                           details=[{"code": "6240", "Message": "Duplicate Name Exists"}],
                           ledger_message="Another customer has this name")
    assert shown.error_class == "duplicate"
    assert classify([{"code": "6210", "Message": "Account Period Closed"}])[0] == \
        "locked_period"
    assert classify(["The document date cannot be before the period lock date"]) == \
        ("locked_period", None)
    assert classify(["The currency GBP is not enabled"]) == ("currency", None)
    assert classify(["Something unexpected"]) == ("validation", None)
    # an explicit class wins
    assert LedgerRejected("x", error_class="authentication").error_class == "authentication"


def test_hints_key_off_the_class():
    assert "tax mapping" in hint_of("mapping", "tax")
    assert "Reconnect" in hint_of("authentication")
    assert "locked" in hint_of("locked_period")
    assert "rate limit" in hint_of("rate_limit")
    assert "as the ledger's message says" in hint_of("validation")
    assert "as the ledger's message says" in hint_of("validation", "unknown subject")
