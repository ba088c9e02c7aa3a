from odoo import api, fields, models

USER_GROUP = "billing_sync.group_billing_sync_user"


class BillingSyncStatusMixin(models.AbstractModel):
    """Whether and when a record reached the ledger, for those who may see it."""

    _name = "billing_sync.status.mixin"
    _description = "Ledger sync status"

    billing_sync_status = fields.Selection(
        [("none", "Not in the ledger"), ("pending", "Waiting to sync"),
         ("synced", "In the ledger"), ("mismatch", "Ledger differs"),
         ("error", "Needs a fix")],
        string="Ledger status", compute="_compute_billing_sync_status", groups=USER_GROUP)
    billing_sync_synced_at = fields.Datetime(
        string="Last synced", compute="_compute_billing_sync_status", groups=USER_GROUP)
    billing_sync_ledger_number = fields.Char(
        string="Ledger number", compute="_compute_billing_sync_status", groups=USER_GROUP)
    billing_sync_ledger_url = fields.Char(
        string="Open in ledger", compute="_compute_billing_sync_status", groups=USER_GROUP)
    billing_sync_error = fields.Text(
        string="Ledger message", compute="_compute_billing_sync_status", groups=USER_GROUP)

    @api.ondelete(at_uninstall=False)
    def _flag_sync_jobs_gone(self):
        # a job kept for a person (a held edit) outlives its record: it is then seen under
        # its company's rule alone (billing_sync.record.access), never lost from sight
        self.env["billing_sync.job"].sudo().search([
            ("res_model", "=", self._name), ("res_id", "in", self.ids),
            ("record_gone", "=", False)]).write({"record_gone": True})

    def _compute_billing_sync_status(self):
        ids = [r.id for r in self if isinstance(r.id, int)]
        # the ledgers of the companies being worked in: a partner shared by every company
        # must not show another company's ledger number or error
        companies = ("company_id", "in", self.env.companies.ids)
        links = self.env["billing_sync.link"].sudo().search(
            [("res_model", "=", self._name), ("res_id", "in", ids), companies])
        jobs = self.env["billing_sync.job"].sudo().search(
            [("res_model", "=", self._name), ("res_id", "in", ids), companies,
             ("state", "in", ("pending", "started", "blocked", "dead"))])
        link_of = {link.res_id: link for link in links}
        jobs_of = {}
        for job in jobs:
            jobs_of.setdefault(job.res_id, job)
        for rec in self:
            link, job = link_of.get(rec.id), jobs_of.get(rec.id)
            if job and job.state in ("blocked", "dead") and not (
                    link and link.sync_state == "mismatch"):
                status = "error"
            elif job and job.state in ("pending", "started"):
                status = "pending"
            elif link:
                # "In the ledger" is a promise that the ledger's figures equal Odoo's
                status = "mismatch" if link.sync_state == "mismatch" else "synced"
            else:
                status = "none"
            rec.billing_sync_status = status
            rec.billing_sync_synced_at = link.synced_at if link else False
            rec.billing_sync_ledger_number = link.ledger_number if link else False
            rec.billing_sync_ledger_url = link.ledger_url if link else False
            if status == "mismatch":
                rec.billing_sync_error = link.mismatch
            else:
                rec.billing_sync_error = (job.hint or job.last_error) if status == "error" \
                    else False
