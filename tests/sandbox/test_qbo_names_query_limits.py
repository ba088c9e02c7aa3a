"""QBO sandbox: the shared Customer/Vendor/Employee name namespace and the MAXRESULTS ceiling.

QuickBooks keeps one DisplayName namespace for its names lists (customers, vendors and
employees): a customer cannot take a vendor's name (Fault 6240), which a sync that only looks
at customers before creating one runs into.  A query asking for more than 1000 rows is refused
(QueryValidationError 4001), not truncated.
"""

import pytest
import requests
from quickbooks.batch import batch_create
from quickbooks.exceptions import QuickbooksException, ValidationException
from quickbooks.objects import Customer, Employee, Vendor


def _vendor(qb, name, **fields):
    vendor = Vendor()
    vendor.DisplayName = name
    for key, value in fields.items():
        setattr(vendor, key, value)
    return vendor.save(qb=qb)


def _employee(qb, given, family):
    employee = Employee()
    employee.GivenName, employee.FamilyName = given, family
    return employee.save(qb=qb)


def _customer(name):
    customer = Customer()
    customer.DisplayName = name
    return customer


def test_vendor_and_employee_create_read_and_query(qbo):
    qb = qbo.qb
    vendor = _vendor(qb, "Paper Supplies Ltd", CompanyName="Paper Supplies")
    assert vendor.Id and vendor.SyncToken == "0" and vendor.Active is True
    assert Vendor.get(vendor.Id, qb=qb).CompanyName == "Paper Supplies"
    employee = _employee(qb, "Grace", "Hopper")
    assert employee.DisplayName == "Grace Hopper"  # built from the name parts, as QBO does
    assert [v.Id for v in Vendor.filter(DisplayName="paper supplies ltd", qb=qb)] == [vendor.Id]
    rows = qb.query("SELECT * FROM Employee")["QueryResponse"]["Employee"]
    assert [e["DisplayName"] for e in rows] == ["Grace Hopper"]
    read = Vendor.get(vendor.Id, qb=qb)
    read.sparse = True
    read.AcctNum = "V-001"
    assert read.save(qb=qb).SyncToken == "1"


@pytest.mark.parametrize("taken_by", ["vendor", "employee", "customer"])
def test_customer_name_taken_by_any_names_list_is_6240(qbo, taken_by):
    qb = qbo.qb
    if taken_by == "vendor":
        holder = _vendor(qb, "Ada Lovelace")
    elif taken_by == "employee":
        holder = _employee(qb, "Ada", "Lovelace")
    else:
        holder = _customer("Ada Lovelace").save(qb=qb)
    with pytest.raises(QuickbooksException) as duplicate:
        _customer("ADA  lovelace").save(qb=qb)  # case and inner spaces do not matter
    assert duplicate.value.error_code == 6240
    assert duplicate.value.message == "Duplicate Name Exists Error"
    assert duplicate.value.detail == f"The name supplied already exists. : Id={holder.Id}"
    if taken_by != "customer":
        # the trap for a sync: looking among customers finds nothing, yet the name is taken
        assert Customer.filter(DisplayName="Ada Lovelace", qb=qb) == []


def test_vendor_cannot_take_a_customer_name_and_renames_are_checked(qbo):
    qb = qbo.qb
    customer = _customer("Northwind").save(qb=qb)
    with pytest.raises(QuickbooksException) as duplicate:
        _vendor(qb, "northwind")
    assert duplicate.value.error_code == 6240 and f"Id={customer.Id}" in duplicate.value.detail
    vendor = _vendor(qb, "Northwind Supplies")
    vendor.DisplayName = "Northwind"  # an update is checked too
    with pytest.raises(QuickbooksException) as renamed:
        vendor.save(qb=qb)
    assert renamed.value.error_code == 6240


def test_inactive_vendor_frees_its_name(qbo):
    qb = qbo.qb
    vendor = _vendor(qb, "Old Supplier")
    vendor.Active = False
    assert vendor.save(qb=qb).DisplayName == "Old Supplier (deleted)"
    assert _customer("Old Supplier").save(qb=qb).Id


def test_plain_http_create_and_batch_share_the_namespace(qbo):
    qb, server = qbo.qb, qbo.server
    base = f"{server.url}/v3/company/{qbo.auth.realm_id}"
    headers = {"Authorization": f"Bearer {qbo.auth.access_token}",
               "Accept": "application/json", "Content-Type": "application/json"}
    made = requests.post(f"{base}/employee", json={"GivenName": "Alan", "FamilyName": "Turing"},
                         headers=headers, timeout=5)
    assert made.status_code == 200, made.text
    employee_id = made.json()["Employee"]["Id"]
    refused = requests.post(f"{base}/customer", json={"DisplayName": "Alan Turing"},
                            headers=headers, timeout=5)
    assert refused.status_code == 400
    (error,) = refused.json()["Fault"]["Error"]
    assert (error["code"], refused.json()["Fault"]["type"]) == ("6240", "ValidationFault")
    assert error["Detail"].endswith(f"Id={employee_id}")
    body = {"BatchItemRequest": [
        {"bId": "v1", "operation": "create", "Vendor": {"DisplayName": "Batch Vendor"}},
        {"bId": "c1", "operation": "create", "Customer": {"DisplayName": "batch vendor"}},
    ]}
    answer = requests.post(f"{base}/batch", json=body, headers=headers, timeout=5).json()
    items = {item["bId"]: item for item in answer["BatchItemResponse"]}
    assert items["v1"]["Vendor"]["DisplayName"] == "Batch Vendor"
    assert items["c1"]["Fault"]["Error"][0]["code"] == "6240"
    result = batch_create([_customer("Alan Turing"), _customer("Fresh Name")], qb=qb)
    assert [c.DisplayName for c in result.successes] == ["Fresh Name"]
    assert result.faults[0].Error[0].code == "6240"


def test_maxresults_over_1000_is_refused(qbo):
    qb = qbo.qb
    _customer("Only One").save(qb=qb)
    assert len(qb.query("SELECT * FROM Customer MAXRESULTS 1000")["QueryResponse"][
        "Customer"]) == 1
    with pytest.raises(ValidationException) as refused:
        qb.query("SELECT * FROM Customer MAXRESULTS 1001")
    assert refused.value.error_code == 4001
    assert refused.value.message == "Invalid query"
    assert refused.value.detail == ("QueryValidationError: value 1001 is too large. "
                                    "Max allowed value is 1000")
    with pytest.raises(ValidationException):  # python-quickbooks' own paging parameter
        Customer.where("", start_position=1, max_results=5000, qb=qb)
