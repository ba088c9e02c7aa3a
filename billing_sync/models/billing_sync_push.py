import hashlib
import json

from odoo import api, fields, models

from ..services.contacts import distinct_name, norm_name
from ..services.idempotency import batch_key
from ..services.ledger.base import PushItem
from ..services.ownership import CONTACT_GROUPS, CONTACT_KEYS
from ..services.ratelimit import paced
from ..services.totals import describe, differences, spread

# partner fields the ledger's contact carries: a change to one of them is pushed
CONTACT_FIELDS = ("name", "email", "billing_sync_billing_email", "phone", "vat", "street",
                  "street2", "city", "zip", "state_id", "country_id", "is_company",
                  "property_payment_term_id")


# the first key of the advisory lock one worker holds while it matches and creates the
# contacts of a ledger (its second: the connection)
CONTACT_LOCKS = 0x42534331  # "BSC1"
# decimals both ledgers keep on every amount
LEDGER_DIGITS = 2
# decimals of an exchange rate sent to the ledger (company currency per document unit)
RATE_DIGITS = 8


def _money(value):
    return round(float(value or 0.0), 2)


# where _items leaves the _Batch it built, on the cursor, for _record_successes to find it
# again by the batch's key: one at a time, the next batch's replaces it
BATCH_CACHE = "billing_sync.push.batch"
# what building an invoice's values reads of each of its journal items (Odoo's own tax
# computation, _line_taxes, reads the many2many ones line by line)
DOCUMENT_LINE_READ = ("tax_ids", "tax_tag_ids")


class _Batch:
    """What one batch of jobs reads from the database, loaded once for all its records: a
    few queries per batch, not one per line or record.

    ``maps``: the connection's mappings of every product, tax, tracking source, journal
    and payment term the batch's records name (MappingIndex); ``links``: the active links
    of the records, of their customers and of the documents they apply to (LinkIndex),
    loaded by ``load_links`` once the batch's customers are in the ledger; the currencies
    the ledger has enabled. Built by ``_items`` for one batch and dropped with it (the
    next batch's replaces it): nothing is kept from one batch to the next, so nothing
    needs invalidating. Recording the ledger's answers (``_record_successes``) finds it
    again by the batch's key (``answered``)."""

    def __init__(self, connection, records):
        self.connection = connection
        for recs in records:
            if recs._name == "account.move":
                recs.line_ids.fetch(DOCUMENT_LINE_READ)
        self.maps = connection._mapping_index(records)
        self.links = None
        self._currencies = None
        self._answered = None
        # {job id: its record} (see BillingSyncPush._job_records)
        self.records = {}

    def answered(self, job):
        """(record, its active link) of ``job`` as its answer is recorded, read again for
        the whole batch the first time (a few queries): the ledger answered after a while,
        a record may be gone meanwhile (empty record), another worker may have linked a
        customer. Kept current by ``keep``."""
        if self._answered is None:
            present = [recs.exists() for recs in _by_model(
                [rec for rec in self.records.values() if rec])]
            self._answered = {(rec._name, rec.id) for recs in present for rec in recs}
            self.links = self.connection.env["billing_sync.link"]._index(self.connection,
                                                                         present)
        record = self.records[job.id]
        if record is None or (record._name, record.id) not in self._answered:
            return (record.browse() if record is not None else None), None
        return record, self.links.of(record)

    def keep(self, record, link):
        """``link`` is ``record``'s active link now (its answer was just recorded)."""
        self.links.keep(record, link)

    def load_links(self, records):
        """Read the links of ``records`` (recordsets), and of what they name, at once."""
        self.links = self.connection.env["billing_sync.link"]._index(
            self.connection, _link_sources(records))

    def currencies(self):
        """The ledger's enabled currency codes (see ``_enabled_currencies``)."""
        if self._currencies is None:
            self._currencies = _enabled_currencies(self.connection)
        return self._currencies


def _enabled_currencies(connection):
    """The ledger's enabled currency codes as last imported (empty before any import: the
    ledger itself decides then)."""
    return set(connection.env["billing_sync.ledger.ref"].search_fetch(
        [("connection_id", "=", connection.id), ("kind", "=", "currency")],
        ["ledger_id"]).mapped("ledger_id"))


def _link_sources(records):
    """The records whose links building values for ``records`` reads: the records, their
    customers, a credit note's invoice, the invoices a payment pays."""
    out = []
    for recs in records:
        out.append(recs)
        if recs._name == "account.move":
            out += [recs.commercial_partner_id, recs.reversed_entry_id]
        elif recs._name == "account.payment":
            invoices = recs.reconciled_invoice_ids
            out += [invoices, invoices.commercial_partner_id]
        elif recs._name == "res.partner":
            out.append(recs.commercial_partner_id)
    return out


class BillingSyncPush(models.AbstractModel):
    """What an Odoo record is, in the provider-neutral words the adapters take.

    Reads records and mappings and writes links; never calls a ledger itself,
    except to make sure a partner exists there before its invoices do.
    """

    _name = "billing_sync.push"
    _description = "Ledger push: Odoo records to ledger values"

    # ------------------------------------------------------------------ items
    @api.model
    def _items(self, connection, adapter, jobs, pacer=None):
        """(PushItem list, [(job, reason, record it waits for or None)] for jobs that cannot
        go) for one batch; jobs whose mappings need a fix are held here
        (``_hold_for_mapping``), unsent.

        ``pacer`` spaces the calls made to match or create customers first. What the batch
        needs of mappings and links is read once for all of it (``_Batch``)."""
        items, skipped = [], []
        records = self._job_records(jobs)
        # an edit after sync (void_invoice, delete_payment) carries its ledger id: it goes
        # even when its record was deleted
        # seen under the company rule alone from now on (billing_sync.record.access)
        self.env["billing_sync.job"].browse(
            [job.id for job, rec in records.items() if not rec and not job.record_gone]
        ).write({"record_gone": True})
        gone = [job for job, rec in records.items() if not rec and not job.ledger_id]
        skipped += [(job, self.env._("The record was deleted."), None) for job in gone]
        # a job names what the superuser worker sends: never another company's record,
        # never another organisation's document
        for job in list(records):
            problem = job._sending_problem(records[job])
            if problem:
                skipped.append((job, problem, None))
                del records[job]
        kind = jobs[0].kind
        # the records to build values for, by model (one recordset each: read together)
        sending = _by_model([rec for job, rec in records.items() if rec and not job.ledger_id])
        batch = _Batch(connection, sending)
        batch.records = {job.id: rec for job, rec in records.items()}
        if jobs[0].batch_key:
            self.env.cr.cache[BATCH_CACHE] = (jobs[0].batch_key, batch)
        # held before any request (the customer's included): a mapping to fix, missing or
        # naming a code the ledger archived, is for an administrator to cure, not for the
        # ledger to refuse
        for job, record in list(records.items()):
            problems = record and self._mapping_problems(connection, job.kind, record, batch)
            if problems:
                job._hold_for_mapping(" ".join(problems))
                del records[job]
        refused = {}
        if kind in ("invoice", "credit_note"):
            partners = self.env["res.partner"].browse(
                {rec.commercial_partner_id.id for rec in records.values() if rec})
            refused = self._ensure_contacts(connection, adapter, partners, pacer)
        # read after the customers were linked (just above)
        batch.load_links(sending)
        waiting = {}
        if kind == "invoice":
            waiting = self.env["billing_sync.edit"]._waiting_all(
                connection, self.env["account.move"].union(
                    *[rec for job, rec in records.items() if rec and not job.ledger_id]))
        for job, record in records.items():
            if job.ledger_id:
                items.append(self.env["billing_sync.edit"]._item(job))
                continue
            if not record:
                continue
            if waiting.get(record.id):  # its earlier ledger copy goes first (edits after sync)
                skipped.append((job, waiting[record.id], None))
                continue
            if kind in ("invoice", "credit_note") and record.commercial_partner_id.id in refused:
                skipped.append((job, refused[record.commercial_partner_id.id], None))
                continue
            try:
                values = getattr(self, f"_values_{kind}")(connection, record, batch)
            except _Skip as skip:
                skipped.append((job, str(skip), skip.waits_for))
                continue
            link = batch.links.of(record)
            ledger_id = link.ledger_id or (values.pop("_ledger_id", None))
            items.append(PushItem(key=f"{record._name},{record.id}", kind=kind, values=values,
                                  ledger_id=ledger_id or None,
                                  version=link.ledger_version or None))
        self._find_lost_documents(connection, adapter, jobs, items, pacer)
        return items, skipped

    @api.model
    def _find_lost_documents(self, connection, adapter, jobs, items, pacer=None):
        """An attempt whose outcome stayed unknown (timeout, 5xx, a worker that died) may
        have created the document although no answer said so; when it goes again under a
        new key (a Retry, or after a change), look it up by its number first, so that the
        ledger's copy is updated rather than created twice."""
        kind = jobs[:1].kind
        if kind not in ("invoice", "credit_note"):
            return
        unsure = {f"{job.res_model},{job.res_id}" for job in jobs if job.outcome_unknown}
        lost = [item for item in items if item.key in unsure and not item.ledger_id
                and item.values.get("number")]
        if not lost:
            return
        found = paced(pacer, adapter, adapter.find_documents, connection._access_token(),
                      connection.org_id, kind, [item.values["number"] for item in lost])
        # a ledger document another record is linked to (a replaced invoice's credited
        # copy keeps its number) is not this one; the link itself is written once the
        # ledger has answered the update, with its figures checked
        taken = set(self.env["billing_sync.link"].with_context(active_test=False).search([
            ("connection_id", "=", connection.id), ("ledger_type", "=", kind),
            ("ledger_org_id", "=", connection.org_id),
            ("ledger_id", "in", [hit[0] for hit in found.values()])]).mapped("ledger_id"))
        for item in lost:
            hit = found.get(item.values["number"])
            if hit and hit[0] not in taken:
                item.ledger_id, item.version = hit

    @api.model
    def _job_records(self, jobs):
        """{job: its record}, read in one query per model rather than one per job: empty
        when the record was deleted, None when its model is gone (as ``job._record()``)."""
        ids = {}
        for job in jobs:
            ids.setdefault(job.res_model, []).append(job.res_id)
        found = {}
        for model, res_ids in ids.items():
            if model in self.env:
                found[model] = {rec.id: rec for rec in self.env[model].browse(res_ids).exists()}
        return {job: found[job.res_model].get(job.res_id) or self.env[job.res_model]
                if job.res_model in found else None for job in jobs}

    @api.model
    def _mapping_problems(self, connection, kind, record, batch=None):
        """What ``connection``'s mappings lack for sending ``record`` as ``kind``."""
        maps = batch.maps if batch else None
        if kind in ("invoice", "credit_note"):
            return connection._invoice_mapping_problems(record, maps)
        if kind == "payment":
            return connection._payment_mapping_problems(record, maps)
        return []

    @api.model
    def _record_successes(self, connection, answered, sent=None):
        """Link each record to what the ledger accepted (``answered``: [(job, result)]),
        the batch's new links in one create; a contact's link keeps the values sent
        (``sent``: {item key: values}), the base the next change from the ledger is
        compared with. Returns {job id: why the ledger's copy differs from Odoo's} (""
        when it is equal)."""
        mismatches, planned = {}, []
        for job, result in answered:
            mismatches[job.id] = ""
            if job.ledger_id and job.kind in ("void_invoice", "delete_payment"):
                mismatches[job.id] = self.env["billing_sync.edit"]._done(connection, job, result)
                continue
            batch = self._sent_batch(job)
            record, link = batch.answered(job) if batch else (job._record(), None)
            if not record:
                continue
            checked = {}
            if result.totals is not None and job.kind in ("invoice", "credit_note"):
                checked, mismatches[job.id] = self._totals_verdict(connection, record, result)
            if job.kind == "contact" and (sent or {}).get(result.key):
                checked = synced_values(connection, sent[result.key], link)
            planned.append((job, result, record, batch, checked, {
                "record": record, "ledger_id": result.ledger_id, "number": result.number,
                "version": result.version, "url": result.url, "parts": result.parts,
                "ledger_type": "invoice" if job.kind == "void_invoice" else job.kind,
                "link": link, "values": checked}))
        links = self.env["billing_sync.link"]._record_many(
            connection, [plan[-1] for plan in planned])
        for (job, result, record, batch, checked, _answer), link in zip(planned, links,
                                                                        strict=True):
            if batch:
                batch.keep(record, link)
            if result.adjustment and checked:
                record.sudo().message_post(body=self.env._(
                    "Sent to %(ledger)s with a rounding line of %(amount)s %(currency)s, so "
                    "that its total equals Odoo's.", ledger=connection.name,
                    amount=f"{result.adjustment:.2f}", currency=record.currency_id.name))
            if job.kind == "payment":
                self._note_unapplied(connection, record)
            # an incomplete result parks the job, and the parking tells the record
            if result.error and not result.incomplete and hasattr(record, "message_post"):
                # in the ledger, but part of it was refused (e.g. the allocation of
                # a credit note): say so where people look
                record.sudo().message_post(body=self.env._(
                    "In %(ledger)s, with a warning: %(why)s",
                    ledger=connection.name, why=result.error))
        return mismatches

    @api.model
    def _sent_batch(self, job):
        """The _Batch ``_items`` built for ``job``'s batch in this transaction, or None
        (a result recorded without it: its record and link are read one by one)."""
        key, batch = self.env.cr.cache.get(BATCH_CACHE) or (None, None)
        if batch is None or not job.batch_key or key != job.batch_key or \
                job.id not in batch.records:
            return None
        return batch

    @api.model
    def _totals_verdict(self, connection, move, result):
        """Compare the ledger's total, tax and amount due with Odoo's: (the link's values
        saying so, the mismatch sentence: "" when equal)."""
        odoo = {"total": move.amount_total, "tax": move.amount_tax,
                # payments and credits travel as their own jobs: until they have, the
                # amount due is comparable only for a document nothing was applied to
                "amount_due": move.amount_residual if (
                    move.move_type == "out_invoice" and move.payment_state == "not_paid")
                else None}
        diffs = differences(odoo, result.totals, LEDGER_DIGITS)
        mismatch = describe(diffs, connection.name, move.currency_id.name)
        totals = result.totals
        return {"sync_state": "mismatch" if diffs else "synced",
                "mismatch": mismatch or False,
                "ledger_total": totals.get("total") or 0.0,
                "ledger_tax": totals.get("tax") or 0.0,
                "ledger_amount_due": totals.get("amount_due") or 0.0,
                "adjustment": result.adjustment or 0.0}, mismatch

    # ------------------------------------------------------------------ contacts
    @api.model
    def _ensure_contacts(self, connection, adapter, partners, pacer=None):
        """Link every partner to a ledger contact: match an existing one (tax id, then
        billing email, then exact name; never one whose tax id or email contradicts the
        partner's) before creating any. A partner whose name a different ledger contact
        already has is created under a distinct name: never merged, never held. Returns
        {partner id: why} for the partners the ledger refused."""
        Link = self.env["billing_sync.link"]
        refused = {}
        linked = Link._index(connection, [partners])
        missing = partners.filtered(lambda p: not linked.of(p))
        if not missing:
            return refused
        # One worker at a time matches and creates a ledger's contacts, until its batch is
        # kept: two workers whose invoices share a client would otherwise both link it (or
        # link two clients to one contact). The one that waited sees the other's links
        # (the worker's transactions are READ COMMITTED: billing_sync.job._read_committed).
        self.env.cr.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                            [CONTACT_LOCKS, connection.id])
        linked = Link._index(connection, [partners])
        missing = partners.filtered(lambda p: not linked.of(p))
        if not missing:
            return refused
        # A backfill brings many new customers: match those of the invoices queued
        # behind this batch as well, so matching costs a request per hundreds of
        # customers rather than one per batch.
        missing |= self._queued_customers(connection, adapter.FIND_LIMIT - len(missing)) - missing
        missing = missing.sorted("id")  # the oldest partner keeps the plain name
        token = connection._access_token()
        candidates = [{"key": f"res.partner,{p.id}", "tax_id": p.vat or None,
                       "email": p.billing_sync_invoice_email or p.email or None,
                       "name": p.name} for p in missing]
        found = paced(pacer, adapter, adapter.find_contacts, token, connection.org_id,
                      candidates, batch=adapter.FIND_BATCHED)
        holders = found.name_holders
        # a ledger contact already linked to another partner (same email, say)
        # is that partner's: this one gets its own
        taken = set(Link.search([("connection_id", "=", connection.id),
                                 ("ledger_type", "=", "contact"),
                                 ("ledger_id", "in", list(found.values()))]).mapped("ledger_id"))
        # read again after the lookup: another worker may have linked some meanwhile
        linked = Link._index(connection, [missing])
        to_create = self.env["res.partner"]
        matched = {}
        for partner in missing.filtered(lambda p: not linked.of(p)):
            ledger_id = found.get(f"res.partner,{partner.id}")
            if ledger_id and ledger_id not in taken:
                taken.add(ledger_id)
                matched[partner] = Link._record(
                    connection, partner, ledger_id, link=linked.of(partner),
                    url=adapter.web_url("contact", ledger_id, connection.org_id))
            else:
                to_create |= partner
        self.env["billing_sync.audit.log"]._record_contacts(connection, matched)
        # The name of each new contact is decided before it is sent: the partner's own,
        # unless a ledger contact that is not this partner's (the lookup saw it) or a
        # partner created just before in this run has it.
        names, used = {}, set()
        for partner in to_create:
            clash = (holders.get(f"res.partner,{partner.id}")
                     or norm_name(partner.name) in used)
            names[partner.id] = (self._distinct_contact_name(connection, partner) if clash
                                 else partner.name)
            used.add(norm_name(names[partner.id]))
        again = self._create_contacts(connection, adapter, token, to_create, names, refused,
                                      pacer)
        if again:
            # a name the lookup could not see (QuickBooks' vendors and employees share
            # the customers' display names; a contact created meanwhile): the ledger
            # refused it once, so it goes once more, under its distinct name
            names = {p.id: self._distinct_contact_name(connection, p) for p in again}
            self._create_contacts(connection, adapter, token, again, names, refused, pacer)
        return refused

    @api.model
    def _create_contacts(self, connection, adapter, token, partners, names, refused,
                         pacer=None):
        """Create ``partners`` under ``names`` ({partner id: name}), in batches; fill
        ``refused``. Returns the partners refused only because their plain name is taken."""
        Link = self.env["billing_sync.link"]
        uuid = self.env["ir.config_parameter"].sudo().get_param("database.uuid")
        size = adapter.batch_size("contact")
        retry = self.env["res.partner"]
        batch = _Batch(connection, [partners])
        for start in range(0, len(partners), size):
            chunk = partners[start:start + size]
            items = [PushItem(key=f"res.partner,{p.id}", kind="contact",
                              values=self._values_contact(connection, p, batch, name=names[p.id]))
                     for p in chunk]
            # keyed by the partners AND what is sent: a retry of the same values (after a
            # crash) replays the ledger's answer and creates nothing new, while a fixed
            # partner (renamed, another email) is a new request, not the old refusal again
            key = batch_key(uuid, connection.id, "contact-ensure",
                            [f"{item.key}:{_digest(item.values)}" for item in items])
            results = paced(pacer, adapter, adapter.push, token, connection.org_id,
                            "contact", items, key, batch=adapter.batched("contact", len(items)))
            linked = Link._index(connection, [chunk])  # as the ledger's answer came back
            created = {}
            for partner, item, result in zip(chunk, items, results, strict=True):
                name = names[partner.id]
                if result.ok:
                    link = created[partner] = Link._record(
                        connection, partner, result.ledger_id, number=result.number,
                        version=result.version, url=result.url, link=linked.of(partner),
                        values=synced_values(connection, item.values))
                    if name != partner.name:
                        link.ledger_name = name
                        partner.sudo().message_post(body=self.env._(
                            "Created in %(ledger)s as “%(name)s”: another contact there, a "
                            "different client (its tax id or email differ, or it is linked to "
                            "another partner), already has the name “%(own)s”, and %(ledger)s "
                            "keeps contact names unique. The name in Odoo is unchanged.",
                            ledger=connection.name, name=name, own=partner.name))
                elif adapter.is_duplicate_name(result.error) and name == partner.name:
                    retry |= partner
                elif adapter.is_duplicate_name(result.error):
                    refused[partner.id] = self.env._(
                        "The ledger refused the customer %(name)s: %(why)s Both “%(own)s” and "
                        "“%(distinct)s” are taken by other contacts there: rename the client "
                        "in Odoo, or change the suffix for clients of the same name in the "
                        "Billing Sync settings, then retry.",
                        name=partner.display_name, why=result.error, own=partner.name,
                        distinct=name)
                else:
                    refused[partner.id] = self.env._(
                        "The ledger refused the customer %(name)s: %(why)s",
                        name=partner.display_name, why=result.error)
            self.env["billing_sync.audit.log"]._record_contacts(
                connection, created, key, adapter.last_status)
        return retry

    @api.model
    def _distinct_contact_name(self, connection, partner):
        """The partner's name plus the company's suffix (" (%(ref)s)": "Smith & Co (P00042)"),
        for a ledger where a different contact has the partner's own name."""
        company = connection.company_id or self.env.company
        return distinct_name(partner.name, company.billing_sync_duplicate_name_suffix,
                             ref=partner.ref, partner_id=partner.id)

    @api.model
    def _queued_customers(self, connection, limit):
        """Customers of invoices and credit notes waiting for ``connection``, not linked yet."""
        if limit <= 0:
            return self.env["res.partner"]
        self.env.flush_all()
        self.env.cr.execute("""
            SELECT DISTINCT m.commercial_partner_id
              FROM billing_sync_job j
              JOIN account_move m ON m.id = j.res_id
             WHERE j.connection_id = %s AND j.res_model = 'account.move'
               AND j.kind IN ('invoice', 'credit_note') AND j.state = 'pending'
               AND NOT EXISTS (SELECT 1 FROM billing_sync_link l
                                WHERE l.connection_id = j.connection_id
                                  AND l.res_model = 'res.partner'
                                  AND l.res_id = m.commercial_partner_id)
             LIMIT %s
        """, [connection.id, limit])
        return self.env["res.partner"].browse([row[0] for row in self.env.cr.fetchall()])

    # ------------------------------------------------------------------ values
    # Each _values_<kind>(connection, record, batch=None) is what the ledger is sent for
    # ``record`` as ``kind``; ``batch``: the _Batch being built (without one, a batch of
    # this record alone).
    @api.model
    def _values_contact(self, connection, partner, batch=None, name=None, to_send=True):
        """The contact's values; ``name``: the name to create it under (default: the
        partner's, or its distinct name when it was created under one). ``to_send``: an
        update leaves out the groups of fields the ledger owns (else: all of Odoo's)."""
        partner = partner.commercial_partner_id
        batch = batch or _Batch(connection, [partner])
        if name is None:
            link = _links(batch, [partner]).of(partner)
            # its plain name belongs to another ledger contact: an update keeps a
            # distinct one (following a rename in Odoo)
            name = (self._distinct_contact_name(connection, partner) if link.ledger_name
                    else partner.name)
        term = connection._map_payment_term(partner.property_payment_term_id, batch.maps)
        values = {
            "name": name,
            "email": partner.billing_sync_invoice_email or partner.email or None,
            "phone": partner.phone or partner.mobile or None,
            "tax_id": partner.vat or None,
            "street": partner.street or None,
            "street2": partner.street2 or None,
            "city": partner.city or None,
            "zip": partner.zip or None,
            "state": partner.state_id.name or None,
            "country_code": partner.country_id.code or None,
            "is_company": partner.is_company,
            "term_ref": term.ledger_id or None,
            "currency": None,
        }
        if to_send and _links(batch, [partner]).of(partner):
            # an update: the groups of fields the ledger owns are not Odoo's to send
            owners = connection.company_id._billing_sync_owners()
            for group, keys in CONTACT_GROUPS.items():
                if owners.get(group) == "ledger":
                    for key in keys:
                        values.pop(key, None)
        return values

    @api.model
    def _values_invoice(self, connection, move, batch=None):
        """An invoice or credit note in neutral values, with Odoo's own amounts per line.

        Every line carries its net amount and its tax exactly as Odoo's accounting holds
        them (the posted net, and Odoo's tax per tax spread over its lines: per-line or
        global rounding, included or excluded prices), so the adapters can send the tax
        explicitly and the ledger's totals equal Odoo's. Mappings were checked by
        ``_items`` before (``_mapping_problems``)."""
        batch = batch or _Batch(connection, [move])
        maps = batch.maps
        partner_link = _links(batch, [move]).of(move.commercial_partner_id)
        if not partner_link:
            raise _Skip(self.env._("The customer is not in the ledger yet."))
        currency = move.currency_id
        if move.line_ids.filtered(lambda ln: ln.display_type == "epd"):
            raise _Skip(self.env._(
                "%s has an early payment discount: such terms are not sent to the ledger yet; "
                "book it there by hand or remove the discount terms.", move.name))
        sign = move.direction_sign
        line_taxes = self._line_taxes(move)
        lines = []
        # a cash rounding that Odoo puts on the biggest tax is a tax line (in the tax
        # figures already), not a line of its own
        for line in move.line_ids.filtered(
                lambda ln: ln.display_type == "product" or (
                    ln.display_type == "rounding" and not ln.tax_repartition_line_id)
        ).sorted(lambda ln: (ln.sequence, ln.id)):
            net = currency.round(line.amount_currency * sign)
            tax = currency.round(line_taxes.get(line.id, 0.0))
            if line.display_type == "rounding":
                lines.append(self._rounding_line_values(connection, line, net))
                continue
            item, account = connection._map_product(line.product_id, maps)
            ledger_tax = connection._line_tax(line, maps)
            tracking = connection._map_tracking(connection._analytic_accounts(line),
                                                move.team_id, maps)
            lines.append({
                "description": line.name or line.product_id.display_name,
                "quantity": line.quantity,
                "unit_price": line.price_unit,
                "discount": line.discount or 0.0,
                "price_include": bool(line.tax_ids) and all(
                    t.price_include for t in line.tax_ids),
                "net": net,
                "tax_amount": tax,
                "item_ref": item.ledger_id or None,
                "item_code": item.code or None,
                "account_ref": account.ledger_id or None,
                "account_code": account.code or None,
                "tax_ref": ledger_tax.ledger_id or None,
                "tax_code": ledger_tax.code or None,
                "tracking": [{"ledger_id": t.ledger_id, "category": t.category or None,
                              "option": t.option or None} for t in tracking],
                "line_total": net,
            })
        values = {
            "number": move.name,
            "date": str(move.invoice_date),
            "due_date": str(move.invoice_date_due or move.invoice_date),
            "currency": currency.name,
            "contact_ref": partner_link.ledger_id,
            "reference": move.invoice_origin or move.ref or None,
            # posted in Odoo: approved, a document the client owes (not a draft)
            "approved": True,
            "term_ref": connection._map_payment_term(
                move.invoice_payment_term_id, maps).ledger_id or None,
            "lines": lines,
            "amount_untaxed": currency.round(move.amount_untaxed),
            "amount_tax": currency.round(move.amount_tax),
            "amount_total": currency.round(move.amount_total),
            "rounding_account_ref": connection.rounding_account_id.ledger_id or None,
            "rounding_account_code": connection.rounding_account_id.code or None,
        }
        self._check_ledger_precision(connection, move, values)
        values.update(self._currency_values(connection, move, batch))
        return values

    @api.model
    def _line_taxes(self, move):
        """{invoice line id: its tax} in the document's currency, adding up, tax by tax,
        to the tax lines Odoo posted. Odoo keeps a document's tax per tax, not per line:
        the per-line split comes from Odoo's own computation, and the cents its rounding
        (or a later change of the company's rounding method, or a tax amount edited by
        hand) put elsewhere are spread over the lines of that tax."""
        currency = move.currency_id
        sign = move.direction_sign
        posted = {}
        for tax_line in move.line_ids.filtered("tax_line_id"):
            posted[tax_line.tax_line_id.id] = posted.get(tax_line.tax_line_id.id, 0.0) + (
                tax_line.amount_currency * sign)
        carriers = {}  # tax id -> the invoice lines it is on (a group: its taxes)
        for line in move.line_ids.filtered(lambda ln: ln.display_type == "product"):
            for tax in line.tax_ids.flatten_taxes_hierarchy():
                carriers.setdefault(tax.id, []).append(line.id)
        if posted.keys() <= carriers.keys() and all(len(ids) == 1 for ids in carriers.values()):
            # each tax on one line only: all Odoo posted for it is that line's (what the
            # spreading below would give), without running Odoo's tax computation again
            out = {}
            for tax_id, (line_id,) in carriers.items():
                out[line_id] = out.get(line_id, 0.0) + round(posted.get(tax_id, 0.0),
                                                              currency.decimal_places)
            return out
        base_lines, _tax_lines = move._get_rounded_base_and_tax_lines()
        shares = {}  # tax id -> {line id: amount}
        for base_line in base_lines:
            line = base_line["record"]
            if not line or line.display_type != "product":
                continue
            for data in base_line["tax_details"]["taxes_data"]:
                per_line = shares.setdefault(data["tax"].id, {})
                per_line[line.id] = per_line.get(line.id, 0.0) + data["tax_amount_currency"]
        out = {}
        for tax_id in shares.keys() | posted.keys():
            if tax_id not in shares:
                raise _Skip(self.env._(
                    "%(doc)s has a tax line for %(tax)s on no invoice line; the ledger books "
                    "tax on lines only: put the tax on the lines it belongs to.",
                    doc=move.name, tax=self.env["account.tax"].browse(tax_id).display_name))
            spread_shares = spread(shares[tax_id], posted.get(tax_id, 0.0),
                                   currency.decimal_places)
            for line_id, amount in spread_shares.items():
                out[line_id] = out.get(line_id, 0.0) + amount
        return out

    @api.model
    def _rounding_line_values(self, connection, line, net):
        """Odoo's cash-rounding line, booked on the connection's rounding account."""
        account = connection.rounding_account_id
        if not account:
            raise _Skip(self.env._(
                "%s has a cash-rounding line: set a rounding account on the connection "
                "(Configuration › Ledger connections › Defaults).", line.move_id.name))
        return {"description": line.name or self.env._("Rounding"), "quantity": 1.0,
                "unit_price": net, "discount": 0.0, "price_include": False, "net": net,
                "tax_amount": 0.0, "account_ref": account.ledger_id,
                "account_code": account.code or None, "tax_ref": None, "tax_code": None,
                "tracking": [], "line_total": net}

    @api.model
    def _check_ledger_precision(self, connection, move, values):
        """Both ledgers keep amounts to the cent: a document in a currency with more
        decimals (KWD, BHD...) is sent only when its amounts are whole cents."""
        if move.currency_id.decimal_places <= LEDGER_DIGITS:
            return
        amounts = [values["amount_total"], values["amount_tax"]] + [
            a for ln in values["lines"] for a in (ln["net"], ln["tax_amount"])]
        if any(abs(a - round(a, LEDGER_DIGITS)) > 1e-9 for a in amounts):
            raise _Skip(self.env._(
                "%(ledger)s keeps amounts to %(digits)s decimals; %(doc)s has %(currency)s "
                "amounts to %(places)s, which it cannot hold exactly. Book it in the ledger "
                "by hand, or round its amounts to whole cents.",
                ledger=connection.name, digits=LEDGER_DIGITS, doc=move.name,
                currency=move.currency_id.name, places=move.currency_id.decimal_places))

    @api.model
    def _values_credit_note(self, connection, move, batch=None):
        batch = batch or _Batch(connection, [move])
        values = self._values_invoice(connection, move, batch)
        allocations = []
        origin = move.reversed_entry_id
        if origin:
            origin_link = _links(batch, [move]).of(origin)
            if not origin_link:
                raise _Skip(self.env._("Its invoice %s is not in the ledger yet.", origin.name),
                            waits_for=origin)
            amount = self._credit_applied(move, origin)
            if amount > 0:
                # what Odoo applied; the adapter never allocates more than the ledger's
                # amount due of the invoice either
                allocations.append({"invoice_ref": origin_link.ledger_id,
                                    "invoice_number": origin.name,
                                    "amount": amount, "date": str(move.invoice_date)})
        values["allocations"] = allocations
        return values

    @api.model
    def _credit_applied(self, credit_note, invoice):
        """What of ``credit_note`` Odoo applied to ``invoice``, in the invoice's currency:
        the partial reconciliations between them, or, when they are not reconciled, the
        smaller of the credit note's total and the invoice's residual."""
        currency = invoice.currency_id
        partials = self._receivable_lines(credit_note).matched_debit_ids.filtered(
            lambda p: p.debit_move_id.move_id == invoice)
        if partials:
            return currency.round(sum(partials.mapped("debit_amount_currency")))
        return currency.round(min(credit_note.amount_total, invoice.amount_residual))

    @api.model
    def _values_payment(self, connection, payment, batch=None):
        """One Odoo payment and the invoices it pays, as the ledger's allocations.

        The amount of each allocation is what Odoo reconciled with that invoice, in the
        invoice's currency (a USD payment of a EUR invoice applies EUR), with the rate
        that converts it to the company's currency; what no invoice took stays in Odoo
        as the customer's outstanding credit and is not sent."""
        batch = batch or _Batch(connection, [payment])
        links = _links(batch, [payment])
        applied = self._payment_applications(payment)
        if not applied:
            raise _Skip(self.env._("The payment is not matched with an invoice."))
        bank = connection._map_journal(payment.journal_id, batch.maps)
        if not bank:
            raise _Skip(self.env._("The journal %s is not mapped to a ledger bank account.",
                                   payment.journal_id.display_name))
        allocations = []
        for invoice, amount, rate in applied:
            link = links.of(invoice)
            if not link:
                raise _Skip(self.env._("Its invoice %s is not in the ledger yet.",
                                       invoice.name), waits_for=invoice)
            self._check_currency(connection, invoice.currency_id, invoice.company_id, batch)
            allocations.append({"invoice_ref": link.ledger_id, "invoice_number": invoice.name,
                                "amount": amount, "currency": invoice.currency_id.name,
                                "currency_rate": rate})
        customer = links.of(applied[0][0].commercial_partner_id)
        first = allocations[0]
        own = links.of(payment)
        return {
            "allocations": allocations,
            # the invoices the ledger has this payment's part for already (Xero); a link
            # without parts is a payment the ledger has whole
            "sent_invoice_refs": sorted(own._parts()) if own.ledger_parts else (
                [a["invoice_ref"] for a in allocations] if own else []),
            "invoice_ref": first["invoice_ref"],
            "contact_ref": customer.ledger_id or None,
            "amount": _money(sum(a["amount"] for a in allocations)),
            "date": str(payment.date),
            "bank_account_ref": bank.ledger_id,
            "bank_account_code": bank.code or None,
            "reference": payment.name,
            "currency": first["currency"],
            "currency_rate": first["currency_rate"],
        }

    @api.model
    def _payment_applications(self, payment):
        """[(invoice, amount in the invoice's currency, rate or None)] of what ``payment``
        pays, read from the partial reconciliations of its receivable line; the rate is
        company currency per invoice-currency unit (None for the company's currency)."""
        company_currency = payment.company_id.currency_id
        by_invoice = {}
        for partial in self._receivable_lines(payment.move_id).matched_debit_ids:
            invoice = partial.debit_move_id.move_id
            if invoice.move_type != "out_invoice":
                continue
            amount, company_amount = by_invoice.get(invoice, (0.0, 0.0))
            by_invoice[invoice] = (amount + partial.debit_amount_currency,
                                   company_amount + partial.amount)
        if not payment.move_id:
            # a payment without a journal entry (no outstanding account): Odoo links it
            # to its invoice alone
            invoices = payment.reconciled_invoice_ids
            if len(invoices) == 1 and invoices.currency_id == payment.currency_id:
                by_invoice[invoices] = (payment.amount, abs(payment.amount_company_currency_signed))
        out = []
        for invoice in sorted(by_invoice, key=lambda m: m.id):
            amount, company_amount = by_invoice[invoice]
            currency = invoice.currency_id
            if currency == company_currency:
                rate = None
            elif payment.currency_id == currency and payment.amount:
                rate = abs(payment.amount_company_currency_signed / payment.amount)
            else:
                rate = abs(company_amount / amount) if amount else None
            out.append((invoice, currency.round(amount), rate and round(rate, RATE_DIGITS)))
        return [row for row in out if row[1] > 0]

    @api.model
    def _receivable_lines(self, move):
        return move.line_ids.filtered(
            lambda ln: ln.account_id.account_type == "asset_receivable")

    @api.model
    def _note_unapplied(self, connection, payment):
        """Say on the payment what the ledger did not get: the part no invoice took."""
        lines = self._receivable_lines(payment.move_id)
        left = payment.currency_id.round(abs(sum(lines.mapped("amount_residual_currency"))))
        if left > 0:
            payment.sudo().message_post(body=self.env._(
                "%(ledger)s got what this payment applied to its invoices; the remaining "
                "%(left)s %(currency)s applies to no invoice and stays in Odoo as the "
                "customer's outstanding credit (not sent).", ledger=connection.name,
                left=f"{left:.2f}", currency=payment.currency_id.name))

    # ------------------------------------------------------------------ currencies
    @api.model
    def _currency_values(self, connection, move, batch=None):
        """The currency of an invoice or credit note and Odoo's rate for it (company
        currency per document unit, None in the company's currency), so that both sides
        book the same company-currency amount. _Skip when the ledger lacks the currency."""
        currency = move.currency_id
        company_currency = move.company_id.currency_id
        self._check_currency(connection, currency, move.company_id, batch)
        if currency == company_currency:
            return {"currency": currency.name, "currency_rate": None}
        if move.amount_total and move.amount_total_signed:
            # the rate Odoo's own company-currency total was booked at
            rate = abs(move.amount_total_signed / move.amount_total)
        else:
            rate = currency._get_conversion_rate(
                currency, company_currency, move.company_id,
                move.invoice_date or move.date or fields.Date.context_today(move))
        return {"currency": currency.name, "currency_rate": round(rate, RATE_DIGITS)}

    @api.model
    def _check_currency(self, connection, currency, company, batch=None):
        """_Skip unless the ledger has ``currency`` enabled (as last imported; before any
        import the ledger itself decides)."""
        enabled = batch.currencies() if batch else _enabled_currencies(connection)
        if enabled and currency.name not in enabled:
            raise _Skip(self.env._(
                "%(currency)s is not enabled in %(org)s; enable it there or invoice in "
                "%(base)s (then import the reference data again).", currency=currency.name,
                org=connection.org_name or connection.name,
                base=company.currency_id.name))

    @api.model
    def _values_void_invoice(self, connection, move, batch=None):
        link = _links(batch, [move]).of(move) if batch else self.env["billing_sync.link"]._of(
            connection, move)
        if not link:
            raise _Skip(self.env._("The invoice never reached the ledger: nothing to void."))
        return {"_ledger_id": link.ledger_id}


def _by_model(records):
    """``records`` (single records) as one recordset per model, in their order."""
    out = {}
    for record in records:
        out[record._name] = out.get(record._name, record.browse()) | record
    return list(out.values())


def _links(batch, records):
    """The batch's LinkIndex, read for ``records`` when the batch has none yet."""
    if batch.links is None:
        batch.load_links(records)
    return batch.links


def _digest(values):
    """A short stable hash of push values (the same values always give the same one)."""
    text = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Skip(Exception):  # noqa: N818 -- an outcome, not an error
    """This record cannot go as it is; the message says why. ``waits_for``: the record
    whose link it needs (its invoice): the job then waits for that link, not for a fix."""

    def __init__(self, message, waits_for=None):
        super().__init__(message)
        self.waits_for = waits_for


def synced_values(connection, values, link=None):
    """The link values that keep a contact's neutral ``values``, as the ledger stores
    them, as last synced (the base of the next three-way comparison, services/ownership);
    a key ``values`` does not name (not sent) keeps ``link``'s."""
    stored = connection._adapter_class().contact_as_stored(values)
    known = json.loads(link.synced_values) if link and link.synced_values else {}
    return {"synced_values": json.dumps(
        {key: stored[key] if key in stored else known.get(key) for key in CONTACT_KEYS},
        sort_keys=True)}
