from odoo import models


class AccountPayment(models.Model):
    _name = "account.payment"
    _inherit = ["account.payment", "billing_sync.status.mixin"]

    def action_post(self):
        res = super().action_post()
        # customer receipts become ledger payments against their invoice; which
        # invoice is read when the job runs, after the reconciliation
        self.env["billing_sync.job"].sudo()._enqueue(
            self.filtered(lambda p: p.payment_type == "inbound" and p.partner_type == "customer"
                          and p.state in ("in_process", "paid")),
            "payment")
        return res

    # Edits after sync (billing_sync.edit): a payment the ledger holds that Odoo takes back
    # is removed there (or held for a person, per the company's policy)
    def action_draft(self):
        res = super().action_draft()
        self.env["billing_sync.edit"].sudo()._payments_taken_back(self, "reset")
        return res

    def action_cancel(self):
        res = super().action_cancel()
        self.env["billing_sync.edit"].sudo()._payments_taken_back(self, "cancel")
        return res
