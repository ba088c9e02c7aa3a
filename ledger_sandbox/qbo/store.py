"""In-memory state of one QuickBooks Online company (a realm).

Holds the entities by type and Id, the tombstones of deleted ones (CDC reports them), the
exact change time of every entity (CDC compares against it; ``MetaData`` shows whole seconds
as Intuit does) and the Id/DocNumber sequences.  JSON dump/load round-trips all of it.
Entity rules live in :mod:`ledger_sandbox.qbo.entities`; this module only stores.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

ENTITY_TYPES = (
    "Account", "TaxRate", "TaxCode", "Term", "Class", "Department", "Item", "Customer",
    "Vendor", "Employee", "Invoice", "CreditMemo", "Payment", "CompanyCurrency",
)


def meta_time(moment: dt.datetime) -> str:
    """``MetaData`` time: whole seconds with the offset (``2026-01-02T03:04:05+00:00``)."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


class Realm:
    """One company: entities, tombstones, change stamps and sequences."""

    def __init__(self, realm_id: str, company_name: str = "Sandbox Company",
                 country: str = "GB", currency: str = "GBP"):
        self.realm_id = str(realm_id)
        self.company_name = company_name
        self.country = country
        self.currency = currency
        self.entities: dict[str, dict[str, dict]] = {name: {} for name in ENTITY_TYPES}
        self.deleted: dict[str, dict[str, dict]] = {name: {} for name in ENTITY_TYPES}
        self.stamps: dict[str, float] = {}  # "Type/Id" -> POSIX time of the last change
        self.next_id: dict[str, int] = dict.fromkeys(ENTITY_TYPES, 1)
        self.next_doc_number: dict[str, int] = {"Invoice": 1001, "CreditMemo": 5001}
        # Preferences.TaxPrefs.UsingSalesTax: with sales tax off, a transaction's
        # TxnTaxDetail "is ignored and not stored" (Intuit's Invoice reference)
        self.using_sales_tax = True
        # Preferences.CurrencyPrefs.MultiCurrencyEnabled (off by default, as in QuickBooks);
        # the foreign currencies are CompanyCurrency entities; ``exchange_rates`` is the
        # day rate (home units per foreign unit) used when a transaction sends none
        self.multicurrency = False
        self.exchange_rates: dict[str, float] = {}

    # ---- access

    def get(self, entity: str, entity_id: Any) -> dict | None:
        """The live record, or None (deleted or never existed)."""
        return self.entities[entity].get(str(entity_id))

    def all(self, entity: str) -> list[dict]:
        """All live records of a type, in Id order."""
        return sorted(self.entities[entity].values(), key=lambda r: int(r["Id"]))

    def new_id(self, entity: str) -> str:
        """Next Id of a type (QuickBooks numbers each type separately)."""
        value = self.next_id[entity]
        self.next_id[entity] = value + 1
        return str(value)

    def new_doc_number(self, entity: str) -> str:
        """Next automatic DocNumber of a sales form."""
        value = self.next_doc_number.get(entity, 1)
        self.next_doc_number[entity] = value + 1
        return str(value)

    # ---- writes

    def put(self, entity: str, record: dict, moment: dt.datetime, created: bool) -> dict:
        """Store a record, stamping MetaData (and SyncToken on updates)."""
        meta = record.setdefault("MetaData", {})
        now = meta_time(moment)
        if created:
            meta["CreateTime"] = now
            record["SyncToken"] = "0"
        else:
            record["SyncToken"] = str(int(record.get("SyncToken") or 0) + 1)
        meta["LastUpdatedTime"] = now
        self.entities[entity][record["Id"]] = record
        self.stamps[f"{entity}/{record['Id']}"] = moment.timestamp()
        return record

    def remove(self, entity: str, entity_id: str, moment: dt.datetime) -> dict:
        """Delete a record, leaving the tombstone CDC reports."""
        self.entities[entity].pop(str(entity_id), None)
        tomb = {"Id": str(entity_id), "status": "Deleted", "domain": "QBO",
                "MetaData": {"LastUpdatedTime": meta_time(moment)}}
        self.deleted[entity][str(entity_id)] = tomb
        self.stamps[f"{entity}/{entity_id}"] = moment.timestamp()
        return tomb

    def stamp(self, entity: str, entity_id: str) -> float:
        """Exact time of the last change of an entity (0 if unknown)."""
        return self.stamps.get(f"{entity}/{entity_id}", 0.0)

    # ---- persistence

    def dump(self) -> dict:
        """JSON-serialisable copy of the whole realm."""
        return {
            "realm_id": self.realm_id, "company_name": self.company_name,
            "country": self.country, "currency": self.currency,
            "entities": copy.deepcopy(self.entities), "deleted": copy.deepcopy(self.deleted),
            "stamps": dict(self.stamps), "next_id": dict(self.next_id),
            "next_doc_number": dict(self.next_doc_number),
            "multicurrency": self.multicurrency, "exchange_rates": dict(self.exchange_rates),
            "using_sales_tax": self.using_sales_tax,
        }

    @classmethod
    def load(cls, data: dict) -> Realm:
        """Rebuild a realm from :meth:`dump` output (missing parts start empty)."""
        realm = cls(data["realm_id"], data.get("company_name", "Sandbox Company"),
                    data.get("country", "GB"), data.get("currency", "GBP"))
        realm.multicurrency = bool(data.get("multicurrency", False))
        realm.using_sales_tax = bool(data.get("using_sales_tax", True))
        realm.exchange_rates = dict(data.get("exchange_rates") or {})
        for name in ENTITY_TYPES:
            realm.entities[name] = {str(k): v for k, v in
                                    (data.get("entities", {}).get(name) or {}).items()}
            realm.deleted[name] = dict(data.get("deleted", {}).get(name) or {})
            ids = [int(i) for i in [*realm.entities[name], *realm.deleted[name]] if i.isdigit()]
            realm.next_id[name] = max([data.get("next_id", {}).get(name, 1), *(i + 1 for i in ids)])
        realm.stamps = {k: float(v) for k, v in (data.get("stamps") or {}).items()}
        realm.next_doc_number.update(data.get("next_doc_number") or {})
        return realm
