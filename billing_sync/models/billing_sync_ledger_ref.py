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
    # a tracking option's category and its own name, as the ledger gives them at import:
    # what a document line sends, never parsed back out of the display name
    category = fields.Char(
        string="Tracking category", readonly=True,
        help="For a tracking option: its category as the ledger names it (Xero: the "
             "tracking category; QuickBooks: Class or Department).")
    option = fields.Char(string="Option", readonly=True,
                         help="For a tracking option: its own name, without its category.")
    active = fields.Boolean(default=True)
    ledger_org_id = fields.Char(string="Ledger organisation", readonly=True,
                                help="The organisation this code was imported from.")

    def init(self):
        # one code per organisation: a connection moved to another organisation keeps the
        # old one's codes, archived, beside the new one's (whose ids may be the same)
        self.env.cr.execute("ALTER TABLE billing_sync_ledger_ref "
                            "DROP CONSTRAINT IF EXISTS billing_sync_ledger_ref_ledger_id_uniq")
        self.env.cr.execute("""
            UPDATE billing_sync_ledger_ref r SET ledger_org_id = c.org_id
              FROM billing_sync_connection c
             WHERE r.connection_id = c.id AND r.ledger_org_id IS NULL
        """)
        # tracking options imported before category and option were fields were named
        # "<category> / <option>" (both ledgers): filled once from it; the next import
        # (daily) writes them from the ledger itself
        self.env.cr.execute("""
            UPDATE billing_sync_ledger_ref
               SET category = split_part(name, ' / ', 1),
                   option = substr(name, strpos(name, ' / ') + 3)
             WHERE kind = 'tracking' AND category IS NULL AND strpos(name, ' / ') > 0
        """)
        self.env.cr.execute("""
            CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_ledger_ref_org_uniq
                ON billing_sync_ledger_ref (connection_id, COALESCE(ledger_org_id, ''), kind,
                                            ledger_id)
        """)

    def write(self, vals):
        check_kept(self, vals, ("connection_id", "kind", "ledger_id", "ledger_org_id"))
        return super().write(vals)

    @api.depends("code", "name", "rate", "kind")
    def _compute_display_name(self):
        for ref in self:
            label = f"[{ref.code}] {ref.name}" if ref.code and ref.code != ref.name else ref.name
            if ref.kind == "tax":
                label = f"{label} ({ref.rate:g}%)"
            ref.display_name = label
