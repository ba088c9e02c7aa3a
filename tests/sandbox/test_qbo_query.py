"""QBO sandbox: the query endpoint (filter, where, order, paging, count) and its parser."""

import datetime as dt

import pytest
from quickbooks.exceptions import ValidationException
from quickbooks.objects import Customer, Invoice, Item

from ledger_sandbox.qbo import query as qbo_query


def _customers(qb, *names):
    out = []
    for name in names:
        customer = Customer()
        customer.DisplayName = name
        customer.CompanyName = name.split()[0]
        out.append(customer.save(qb=qb))
    return out


def test_filter_where_like_in_and_order(qbo):
    qb = qbo.qb
    _customers(qb, "Beta Ltd", "Alpha Ltd", "Gamma Inc", "O'Brien & Co")
    assert [c.DisplayName for c in Customer.filter(DisplayName="alpha ltd", qb=qb)] == [
        "Alpha Ltd"]
    assert len(Customer.filter(DisplayName="O'Brien & Co", qb=qb)) == 1
    liked = Customer.where("DisplayName LIKE '%Ltd'", order_by="DisplayName DESC", qb=qb)
    assert [c.DisplayName for c in liked] == ["Beta Ltd", "Alpha Ltd"]
    chosen = Customer.choose(["Gamma", "Beta"], field="CompanyName", qb=qb)
    assert {c.DisplayName for c in chosen} == {"Gamma Inc", "Beta Ltd"}
    both = Customer.where("CompanyName IN ('Alpha', 'Beta') AND DisplayName > 'Alpha Ltd'",
                          qb=qb)
    assert [c.DisplayName for c in both] == ["Beta Ltd"]
    ordered = Customer.all(order_by="DisplayName", qb=qb)  # sends "ORDER BY"
    assert [c.DisplayName for c in ordered][:2] == ["Alpha Ltd", "Beta Ltd"]


def test_startposition_and_maxresults_page_and_count(qbo):
    qb = qbo.qb
    _customers(qb, *[f"Client {n:02d}" for n in range(1, 8)])
    assert Customer.count(qb=qb) == 7
    assert Customer.count("DisplayName LIKE 'Client 0%'", qb=qb) == 7
    pages = []
    for start in (1, 4, 7):
        page = Customer.where("", order_by="Id", start_position=start, max_results=3, qb=qb)
        pages.append([c.DisplayName for c in page])
    assert pages == [["Client 01", "Client 02", "Client 03"],
                     ["Client 04", "Client 05", "Client 06"], ["Client 07"]]
    raw = qb.query("SELECT * FROM Customer STARTPOSITION 2 MAXRESULTS 2")["QueryResponse"]
    assert raw["startPosition"] == 2 and raw["maxResults"] == 2
    assert qb.query("SELECT * FROM Customer WHERE Id = '999'")["QueryResponse"] == {}
    projected = qb.query("SELECT DisplayName FROM Customer MAXRESULTS 1")["QueryResponse"]
    assert set(projected["Customer"][0]) == {"Id", "SyncToken", "domain", "sparse", "MetaData",
                                             "DisplayName"}


def test_metadata_last_updated_time_filter(qbo):
    qb, app = qbo.qb, qbo.server.app
    start = dt.datetime.now(dt.UTC)
    app.clock = lambda: start - dt.timedelta(minutes=5)
    (old,) = _customers(qb, "Old Ltd")
    app.clock = lambda: start
    (new,) = _customers(qb, "New Ltd")
    mark = (start - dt.timedelta(minutes=1)).replace(microsecond=0).isoformat()
    recent = Customer.where(f"MetaData.LastUpdatedTime >= '{mark}'", qb=qb)
    assert [c.Id for c in recent] == [new.Id]
    assert Item.where("Type = 'Service' AND UnitPrice > '100'", qb=qb)


def test_query_errors_are_faults_4000_and_4001(qbo):
    qb = qbo.qb
    with pytest.raises(ValidationException) as parse_error:
        qb.query("SELECT * FROM Customer WHERE DisplayName = 'a' OR Id = '1'")
    assert parse_error.value.error_code == 4000
    with pytest.raises(ValidationException) as bad_property:
        Customer.where("Colour = 'blue'", qb=qb)
    assert bad_property.value.error_code == 4001
    with pytest.raises(ValidationException) as bad_entity:
        qb.query("SELECT * FROM Spaceship")
    assert bad_entity.value.error_code == 4001


def test_invoice_query_by_customer_ref_and_balance(qbo):
    qb = qbo.qb
    (customer,) = _customers(qb, "Ref Ltd")
    item = Item.filter(Name="Consulting hours", qb=qb)[0]
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line = []
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail

    line = SalesItemLine()
    line.Amount = 10
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = item.to_ref()
    invoice.Line.append(line)
    invoice.save(qb=qb)
    assert len(Invoice.where(f"CustomerRef = '{customer.Id}' AND Balance > '5'", qb=qb)) == 1
    assert Invoice.where("Balance > '50'", qb=qb) == []


def test_parser_units():
    parsed = qbo_query.parse(
        "select count(*) from Invoice where TxnDate >= '2026-01-01' and "
        "DocNumber in ('1', '2') orderby TxnDate desc, Id maxresults 5 startposition 3")
    assert parsed.count and parsed.entity == "Invoice"
    assert [(c.prop, c.op) for c in parsed.where] == [("TxnDate", ">="), ("DocNumber", "in")]
    assert parsed.order_by == [("TxnDate", True), ("Id", False)]
    assert (parsed.start_position, parsed.max_results) == (3, 5)
    assert qbo_query.parse("SELECT * FROM Item MAXRESULTS 1000").max_results == 1000
    with pytest.raises(qbo_query.QueryError) as too_many:  # refused, not truncated
        qbo_query.parse("SELECT * FROM Item MAXRESULTS 5000")
    assert too_many.value.kind == "validation"
    escaped = qbo_query.parse(r"SELECT * FROM Customer WHERE DisplayName = 'O\'Brien'")
    assert escaped.where[0].value == "O'Brien"
    for bad in ("SELECT FROM Customer", "SELECT * FROM Customer WHERE Id != '1'",
                "SELECT * FROM Customer WHERE", "DELETE FROM Customer"):
        with pytest.raises(qbo_query.QueryError):
            qbo_query.parse(bad)
