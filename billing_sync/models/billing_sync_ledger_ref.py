from odoo import api, fields, models

from ..services.ledger.base import REFERENCE_KINDS
from .billing_sync_connection import check_kept


class BillingSyncLedgerRef(models.Model):
    """One entry of a ledger's own vocabulary, imported from it, never typed.

    Mappings point at these records, so a code can only be one the ledger
    really has; the ledger's id is kept alongside its code and name.
    """

    _name = "billing_sync.ledger.ref"
    _description = "Ledger reference data"
    _order = "connection_id, kind, code, name"
    _rec_names_search = ["name", "code"]

    connection_id = fields.Many2one("billing_sync.connection", required=True,
                                    ondelete="cascade", index=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True)
    kind = fields.Selection(REFERENCE_KINDS, required=True, index=True)
    ledger_id = fields.Char(string="Ledger ID", required=True)
    code = fields.Char()
    name = fields.Char(required=True)
    rate = fields.Float(digits=(16, 4), help="Tax rate in percent, for taxes.")
    parent_ledger_id = fields.Char(help="The tracking category of a tracking option.")
    active = fields.Boolean(default=True)

    _sql_constraints = [
        ("ledger_id_uniq", "unique(connection_id, kind, ledger_id)",
         "This ledger record is already imported."),
    ]

    def write(self, vals):
        check_kept(self, vals, ("connection_id", "kind", "ledger_id"))
        return super().write(vals)

    @api.depends("code", "name", "rate", "kind")
    def _compute_display_name(self):
        for ref in self:
            label = f"[{ref.code}] {ref.name}" if ref.code and ref.code != ref.name else ref.name
            if ref.kind == "tax":
                label = f"{label} ({ref.rate:g}%)"
            ref.display_name = label
