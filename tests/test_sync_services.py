"""The outbound sync's plain-Python parts: backoff, idempotency keys, hints (the rate-limit
budget lives in PostgreSQL: test_rate_budget.py)."""

import random

from odoo.addons.billing_sync.services import backoff
from odoo.addons.billing_sync.services.hints import hint_for
from odoo.addons.billing_sync.services.idempotency import batch_key


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
