import json

from odoo import fields, models
from odoo.exceptions import UserError

GROUP_LABELS = [("name", "Client name"), ("email", "Billing email"), ("phone", "Phone"),
                ("tax_id", "Tax ID"), ("address", "Address")]


class BillingSyncConflict(models.Model):
    """Both Odoo and the ledger changed the same fields of a record since they last
    agreed: the values on both sides, what the ownership policy decided, and a button to
    take the other value instead. Written by the engine; Managers read them and
    override a decision."""

    _name = "billing_sync.conflict"
    _description = "Sync conflict"
    _order = "id desc"

    connection_id = fields.Many2one("billing_sync.connection", required=True, index=True,
                                    ondelete="cascade", readonly=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True, index=True)
    partner_id = fields.Many2one("res.partner", string="Client", required=True, index=True,
                                 ondelete="cascade", readonly=True)
    group = fields.Selection(GROUP_LABELS, string="Fields", required=True, readonly=True)
    base_value = fields.Text(string="Last synced", readonly=True)
    odoo_value = fields.Text(string="In Odoo", readonly=True)
    ledger_value = fields.Text(string="In the ledger", readonly=True)
    decision = fields.Selection([("ledger", "The ledger's value was kept"),
                                 ("odoo", "Odoo's value was kept")], required=True,
                                readonly=True)
    policy = fields.Selection([("last", "Last change wins"), ("ledger", "The ledger owns"),
                               ("odoo", "Odoo owns")], required=True, readonly=True)
    state = fields.Selection([("decided", "Decided"), ("overridden", "Overridden")],
                             default="decided", required=True, readonly=True)
    overridden_by_id = fields.Many2one("res.users", readonly=True)
    odoo_values = fields.Text(readonly=True)  # JSON: the neutral values of each side
    ledger_values = fields.Text(readonly=True)

    def action_take_other_value(self):
        """Take the value the policy did not keep. Odoo's: written back on the client,
        which sends it to the ledger as any change does. The ledger's: written on the
        client without sending it back, and kept as synced."""
        Inbound = self.env["billing_sync.inbound"]
        for conflict in self:
            if conflict.state != "decided":
                raise UserError(self.env._("This conflict was already overridden."))
            # a Manager settles what the sync decided, whoever may edit the client: the
            # values are the two sides' own, never typed here
            conflict.partner_id.check_access("read")
            partner = conflict.partner_id.sudo()
            if conflict.decision == "ledger":
                Inbound.sudo()._write_contact(partner, json.loads(conflict.odoo_values),
                                              send=True)
            else:
                link = self.env["billing_sync.link"].sudo()._of(conflict.connection_id,
                                                                partner)
                values = json.loads(conflict.ledger_values)
                Inbound.sudo()._write_contact(partner, values, send=False)
                Inbound.sudo()._keep_synced(link, values)
            conflict.sudo().write({"state": "overridden", "overridden_by_id": self.env.uid})
        return True
