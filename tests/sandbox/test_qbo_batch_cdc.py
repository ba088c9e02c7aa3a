"""QBO sandbox: batch operations and change data capture through python-quickbooks."""

import datetime as dt

import pytest
from qbo_support import service_invoice
from quickbooks.batch import BatchManager, batch_create, batch_delete, batch_update
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import ValidationException
from quickbooks.objects import Customer, Invoice


def _new_customers(*names):
    out = []
    for name in names:
        customer = Customer()
        customer.DisplayName = name
        out.append(customer)
    return out


def test_batch_create_splits_into_calls_of_thirty(qbo):
    qb, app = qbo.qb, qbo.server.app
    before = app.counters.snapshot()["by_endpoint"].get("POST /v3/company/{realmId}/batch", {})
    result = batch_create(_new_customers(*[f"Batch {n:02d}" for n in range(35)]), qb=qb)
    assert len(result.successes) == 35 and result.faults == []
    after = app.counters.snapshot()["by_endpoint"]["POST /v3/company/{realmId}/batch"]
    assert after.get("200", 0) - before.get("200", 0) == 2  # 30 + 5
    assert Customer.count(qb=qb) == 35


def test_batch_items_fail_independently(qbo):
    qb = qbo.qb
    Customer.save(_new_customers("Taken Ltd")[0], qb=qb)
    result = batch_create(_new_customers("Fresh Ltd", "Taken Ltd", "Other Ltd"), qb=qb)
    assert sorted(c.DisplayName for c in result.successes) == ["Fresh Ltd", "Other Ltd"]
    (fault,) = result.faults
    assert fault.Error[0].code == "6240" and fault.original_object.DisplayName == "Taken Ltd"


def test_batch_update_and_delete(qbo):
    qb = qbo.qb
    created = batch_create(_new_customers("Up 1", "Up 2"), qb=qb).successes
    for customer in created:
        customer.Notes = "batched"
    updated = batch_update(created, qb=qb)
    assert [c.Notes for c in updated.successes] == ["batched", "batched"]
    stale = batch_update(created, qb=qb)  # same SyncTokens again: both stale
    assert [f.Error[0].code for f in stale.faults] == ["5010", "5010"]
    invoices = batch_create([service_invoice(qb, c, 10) for c in updated.successes],
                            qb=qb).successes
    deleted = batch_delete(invoices, qb=qb)
    assert len(deleted.successes) == 2 and Invoice.count(qb=qb) == 0


def test_batch_of_more_than_thirty_is_refused(qbo):
    manager = BatchManager("create", max_request_items=31)
    with pytest.raises(ValidationException) as too_many:
        manager.save(_new_customers(*[f"Big {n}" for n in range(31)]), qb=qbo.qb)
    assert too_many.value.error_code == 2010
    assert Customer.count(qb=qbo.qb) == 0


def test_batch_query_item(qbo):
    answer = qbo.qb.batch_operation(
        '{"BatchItemRequest": [{"bId": "q1", "Query": "SELECT * FROM Term ORDERBY DueDays"}]}')
    (item,) = answer["BatchItemResponse"]
    assert item["bId"] == "q1" and item["QueryResponse"]["Term"][0]["Name"] == "Due on receipt"


def test_cdc_returns_changes_and_deletions_since(qbo):
    qb, app = qbo.qb, qbo.server.app
    start = dt.datetime.now(dt.UTC)
    app.clock = lambda: start - dt.timedelta(hours=2)
    old = Customer.save(_new_customers("Before Ltd")[0], qb=qb)
    app.clock = lambda: start
    new = Customer.save(_new_customers("After Ltd")[0], qb=qb)
    invoice = service_invoice(qb, new, 25).save(qb=qb)
    gone = service_invoice(qb, new, 5).save(qb=qb)
    gone.delete(qb=qb)
    since = (start - dt.timedelta(hours=1)).replace(tzinfo=None)  # the SDK sends no offset
    changes = change_data_capture([Customer, Invoice], since, qb=qb)
    assert [c.DisplayName for c in changes.Customer] == ["After Ltd"]
    by_id = {i.Id: i for i in changes.Invoice}
    assert by_id[invoice.Id].TotalAmt == 25
    assert by_id[gone.Id].status == "Deleted"
    assert old.Id not in [c.Id for c in changes.Customer]


def test_cdc_lookback_is_thirty_days(qbo):
    too_old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=31)
    with pytest.raises(ValidationException) as refused:
        change_data_capture([Customer], too_old, qb=qbo.qb)
    assert "older than fixed days" in refused.value.detail
