from odoo import api, fields, models

# what the push reads of a link
LINK_READ = ("res_model", "res_id", "ledger_id", "ledger_version", "ledger_number",
             "ledger_parts", "ledger_name", "ledger_total")


class LinkIndex:
    """The active links of one connection, by record, loaded at once for the records a
    batch needs (``billing_sync.link._index``): one query per model instead of one per
    record. A record the loading did not foresee is looked up when asked, so an index is
    never wrong, only slower. One is built per batch and dropped with it, after the links
    the batch itself writes first (its customers'): nothing needs invalidating."""

    def __init__(self, connection, records):
        Link = connection.env["billing_sync.link"]
        self._connection = connection
        self._empty = Link.browse()
        self._by = {}
        ids = {}
        for recs in records:
            for rec in recs:
                if rec.id:
                    ids.setdefault(rec._name, set()).add(rec.id)
        for model, res_ids in ids.items():
            self._by.update(dict.fromkeys(((model, res_id) for res_id in res_ids), self._empty))
            for link in Link.search_fetch(self._domain(model, list(res_ids)), LINK_READ):
                self._by[(link.res_model, link.res_id)] = link

    def _domain(self, model, res_ids):
        return [("connection_id", "=", self._connection.id), ("res_model", "=", model),
                ("res_id", "in", res_ids)]

    def of(self, record):
        """The active link of ``record`` (empty if it never reached the ledger)."""
        if not record:
            return self._empty
        key = (record._name, record.id)
        if key not in self._by:
            self._by[key] = self._empty.search(self._domain(record._name, [record.id]),
                                               limit=1)
        return self._by[key]

    def keep(self, record, link):
        """``link`` is ``record``'s active link now (the batch just wrote it)."""
        self._by[(record._name, record.id)] = link


class BillingSyncLink(models.Model):
    """An Odoo record and the ledger object it is, for one connection.

    The link is what makes a retry an update rather than a second create, and
    what the record shows: its ledger number, when it last reached the ledger,
    and a link that opens it there.
    """

    _name = "billing_sync.link"
    _inherit = ["billing_sync.record.access"]
    _description = "Ledger link"
    _order = "synced_at desc, id desc"
    _rec_name = "ledger_number"

    connection_id = fields.Many2one("billing_sync.connection", required=True,
                                    ondelete="cascade", index=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True)
    res_model = fields.Char(required=True, index=True)
    res_id = fields.Many2oneReference(model_field="res_model", required=True, index=True)
    ledger_type = fields.Selection(
        [("contact", "Contact"), ("invoice", "Invoice"), ("credit_note", "Credit note"),
         ("payment", "Payment")], required=True, default="contact",
        help="The kind of ledger object: QuickBooks numbers each kind separately.")
    ledger_id = fields.Char(string="Ledger ID", required=True)
    ledger_number = fields.Char(string="Ledger number")
    ledger_version = fields.Char(help="The ledger's version of the object (QuickBooks "
                                      "SyncToken) when it was last written.")
    ledger_url = fields.Char(string="Open in ledger")
    ledger_org_id = fields.Char(string="Ledger organisation", help="The organisation "
                                "(Xero tenant, QuickBooks company) the ledger object is in.")
    # Edits after sync: the link of a ledger document that was voided or credited, or of a
    # payment removed there, is archived (kept for history, never updated again); the
    # record's next push creates a new ledger object with a new, active link.
    active = fields.Boolean(default=True)
    ledger_name = fields.Char(
        string="Name in ledger",
        help="Set when the contact could not bear the partner's own name in the ledger "
             "(another ledger contact, a different client, has it): the distinct name it "
             "was created under. Later updates keep a distinct name.")
    ledger_parts = fields.Char(
        string="Ledger parts",
        help="When the ledger needs several objects for this record, each of them as "
             "'invoice id:object id', comma separated (Xero: one payment per invoice an "
             "Odoo payment covers; Ledger ID is the first of them).")
    synced_at = fields.Datetime(string="Last synced")
    synced_values = fields.Text(
        help="The values last synced, either way (JSON): what a change on either side is "
             "compared with (services/ownership.py).")
    # What the ledger answered for a document, against Odoo's figures at that push: only
    # equal figures make "In the ledger"; anything else is a visible mismatch.
    sync_state = fields.Selection(
        [("synced", "In the ledger"), ("mismatch", "Ledger differs")], default="synced",
        required=True, string="Ledger check")
    ledger_total = fields.Float(digits=(16, 2), string="Ledger total")
    ledger_tax = fields.Float(digits=(16, 2), string="Ledger tax")
    ledger_amount_due = fields.Float(digits=(16, 2), string="Ledger amount due")
    mismatch = fields.Char(string="Difference", help="The ledger's and Odoo's figures that "
                                                     "differ, as checked after the last push.")
    adjustment = fields.Float(digits=(16, 2), string="Rounding adjustment",
                              help="A rounding line sent with the document so that the "
                                   "ledger's total equals Odoo's.")


    def init(self):
        # A record is linked once per ledger, by its active link; archived links (a
        # replaced document's) are its history.
        self.env.cr.execute("ALTER TABLE billing_sync_link "
                            "DROP CONSTRAINT IF EXISTS billing_sync_link_record_uniq")
        self.env.cr.execute("""
            CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_link_active_record_uniq
                ON billing_sync_link (connection_id, res_model, res_id) WHERE active
        """)
        self.env.cr.execute("""
            UPDATE billing_sync_link l SET ledger_org_id = c.org_id
              FROM billing_sync_connection c
             WHERE l.connection_id = c.id AND l.ledger_org_id IS NULL
        """)
        # A ledger object is linked to one record. Archived links are history: after a
        # move to another organisation its ids (QuickBooks counts 1, 2, 3 per company)
        # meet the old organisation's again.
        self.env.cr.execute("ALTER TABLE billing_sync_link "
                            "DROP CONSTRAINT IF EXISTS billing_sync_link_ledger_uniq")
        self.env.cr.execute("""
            CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_link_active_ledger_uniq
                ON billing_sync_link (connection_id, ledger_type, ledger_id) WHERE active
        """)

    # A link says which ledger object a record is (the next push updates it) and whether
    # the ledger's figures equal Odoo's: only the engine, from the ledger's answers,
    # writes it (billing_sync.record.access). Nobody links a record by hand, re-points it
    # or clears its check.
    def _engine_only_message(self):
        return self.env._(
            "Ledger links are written by the sync engine only, from the ledger's answers.")

    @api.model
    def _index(self, connection, records):
        """The LinkIndex of ``records`` (recordsets) for ``connection``."""
        return LinkIndex(connection, records)

    @api.model
    def _of(self, connection, record):
        """The link of ``record`` for ``connection`` (empty if it never reached the ledger)."""
        return self.search([("connection_id", "=", connection.id),
                            ("res_model", "=", record._name), ("res_id", "=", record.id)],
                           limit=1)

    @api.model
    def _record(self, connection, record, ledger_id, number=None, version=None, url=None,
                ledger_type="contact", parts=None, link=None, values=None):
        """Create or refresh the link after the ledger accepted ``record``; ``parts``
        ({invoice id: object id}) adds to the parts already recorded; ``values``: more of
        the link's fields, written with it (the ledger's figures). ``link``: the record's
        active link as the caller already read it (empty: none), looked up if None."""
        return self._record_many(connection, [{
            "record": record, "ledger_id": ledger_id, "number": number, "version": version,
            "url": url, "ledger_type": ledger_type, "parts": parts, "link": link,
            "values": values}])[0]

    @api.model
    def _record_many(self, connection, answers):
        """``_record`` for several records the ledger accepted (each a dict of its
        arguments, ``record`` and ``ledger_id`` required): the new links in one create, the
        jobs waiting for any of them woken at once. Returns the links, in order."""
        now = fields.Datetime.now()
        links, new = [], []
        for answer in answers:
            record, link = answer["record"], answer.get("link")
            if link is None:
                link = self._of(connection, record)
            values = {**(answer.get("values") or {}), "ledger_id": answer["ledger_id"],
                      "synced_at": now, "ledger_type": answer.get("ledger_type") or "contact"}
            if answer.get("parts"):
                known = link._parts()
                known.update(answer["parts"])
                values["ledger_parts"] = ",".join(f"{k}:{v}" for k, v in known.items())
            for field, key in (("ledger_number", "number"), ("ledger_version", "version"),
                               ("ledger_url", "url")):
                if answer.get(key):
                    values[field] = answer[key]
            if link:
                link.write(values)
            else:
                new.append((len(links), {**values, "connection_id": connection.id,
                                         "ledger_org_id": connection.org_id,
                                         "res_model": record._name, "res_id": record.id}))
            links.append(link)
        if new:
            for (index, _values), link in zip(new, self.create([v for _i, v in new]),
                                               strict=True):
                links[index] = link
        # what waited for these records to reach the ledger (payments, credit notes) goes
        self.env["billing_sync.job"]._wake_waiting(self.union(*links))
        return links

    def _parts(self):
        """{invoice id: ledger object id} of ``ledger_parts`` (empty without parts)."""
        parts = {}
        for pair in (self[:1].ledger_parts or "").split(","):
            key, _sep, value = pair.partition(":")
            if key and value:
                parts[key] = value
        return parts
