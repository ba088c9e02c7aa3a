from odoo import api, fields, models


class BillingSyncLink(models.Model):
    """An Odoo record and the ledger object it is, for one connection.

    The link is what makes a retry an update rather than a second create, and
    what the record shows: its ledger number, when it last reached the ledger,
    and a link that opens it there.
    """

    _name = "billing_sync.link"
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
    synced_at = fields.Datetime(string="Last synced")

    _sql_constraints = [
        ("record_uniq", "unique(connection_id, res_model, res_id)",
         "A record is linked once per ledger."),
        ("ledger_uniq", "unique(connection_id, ledger_type, ledger_id)",
         "A ledger object is linked to one record."),
    ]

    @api.model
    def _of(self, connection, record):
        """The link of ``record`` for ``connection`` (empty if it never reached the ledger)."""
        return self.search([("connection_id", "=", connection.id),
                            ("res_model", "=", record._name), ("res_id", "=", record.id)],
                           limit=1)

    @api.model
    def _record(self, connection, record, ledger_id, number=None, version=None, url=None,
                ledger_type="contact"):
        """Create or refresh the link after the ledger accepted ``record``."""
        values = {"ledger_id": ledger_id, "synced_at": fields.Datetime.now(),
                  "ledger_type": ledger_type}
        if number:
            values["ledger_number"] = number
        if version:
            values["ledger_version"] = version
        if url:
            values["ledger_url"] = url
        link = self._of(connection, record)
        if link:
            link.write(values)
            return link
        return self.create({**values, "connection_id": connection.id,
                            "res_model": record._name, "res_id": record.id})
