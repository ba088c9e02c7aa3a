from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

USER_GROUP = "billing_sync.group_billing_sync_user"
MANAGER_GROUP = "billing_sync.group_billing_sync_manager"

STATUSES = ("none", "pending", "synced", "mismatch", "error")
STATUS_QUERY = """
    WITH j AS (
        SELECT DISTINCT ON (res_id) res_id, id, state FROM billing_sync_job
         WHERE res_model = %(model)s AND company_id = ANY(%(companies)s)
           AND state IN ('pending', 'started', 'blocked', 'dead')
           AND (%(all)s OR res_id = ANY(%(ids)s))
         ORDER BY res_id, id DESC
    ), l AS (
        SELECT DISTINCT ON (res_id) res_id, id,
               bool_or(sync_state = 'mismatch') OVER (PARTITION BY res_id) AS differs
          FROM billing_sync_link
         WHERE res_model = %(model)s AND company_id = ANY(%(companies)s) AND active
           AND (%(all)s OR res_id = ANY(%(ids)s))
         ORDER BY res_id, synced_at DESC NULLS LAST, id DESC
    )
    SELECT COALESCE(j.res_id, l.res_id),
           CASE WHEN j.state IN ('blocked', 'dead') AND NOT COALESCE(l.differs, false)
                     THEN 'error'
                WHEN j.state IN ('pending', 'started') THEN 'pending'
                WHEN l.differs THEN 'mismatch'
                WHEN l.id IS NOT NULL THEN 'synced'
                ELSE 'none' END,
           l.id, j.id
      FROM j FULL JOIN l ON l.res_id = j.res_id
"""

# The same status for one row of the model's table (%(id)s: its id column), as an SQL
# expression: grouping and sorting by status run in the database, as for a stored field.
STATUS_SQL = """(
    CASE WHEN (SELECT j.state FROM billing_sync_job j
                WHERE j.res_model = %(model)s AND j.res_id = %(id)s
                  AND j.company_id = ANY(%(companies)s)
                  AND j.state IN ('pending', 'started', 'blocked', 'dead')
                ORDER BY j.id DESC LIMIT 1) IN ('blocked', 'dead')
              AND NOT EXISTS (SELECT 1 FROM billing_sync_link l
                               WHERE l.res_model = %(model)s AND l.res_id = %(id)s
                                 AND l.company_id = ANY(%(companies)s) AND l.active
                                 AND l.sync_state = 'mismatch') THEN 'error'
         WHEN (SELECT j.state FROM billing_sync_job j
                WHERE j.res_model = %(model)s AND j.res_id = %(id)s
                  AND j.company_id = ANY(%(companies)s)
                  AND j.state IN ('pending', 'started', 'blocked', 'dead')
                ORDER BY j.id DESC LIMIT 1) IN ('pending', 'started') THEN 'pending'
         WHEN EXISTS (SELECT 1 FROM billing_sync_link l
                       WHERE l.res_model = %(model)s AND l.res_id = %(id)s
                         AND l.company_id = ANY(%(companies)s) AND l.active
                         AND l.sync_state = 'mismatch') THEN 'mismatch'
         WHEN EXISTS (SELECT 1 FROM billing_sync_link l
                       WHERE l.res_model = %(model)s AND l.res_id = %(id)s
                         AND l.company_id = ANY(%(companies)s) AND l.active) THEN 'synced'
         ELSE 'none' END)"""


class BillingSyncStatusMixin(models.AbstractModel):
    """Whether and when a record reached the ledger, for those who may see it."""

    _name = "billing_sync.status.mixin"
    _description = "Ledger sync status"

    billing_sync_status = fields.Selection(
        [("none", "Not in the ledger"), ("pending", "Waiting to sync"),
         ("synced", "In the ledger"), ("mismatch", "Ledger differs"),
         ("error", "Needs a fix")],
        string="Ledger status", compute="_compute_billing_sync_status",
        search="_search_billing_sync_status", groups=USER_GROUP)
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

    def _billing_sync_statuses(self, ids=None):
        """{record id: (status, link id, job id)} of this model's records that have an
        active link or a job under way (pending, sending, blocked, failed) in the
        companies being worked in: those of ``ids``, or all of them (None). A record
        absent is "none". One query, shared by the compute and the search, so that a
        filter finds exactly what the badge says.

        The newest job under way decides between "error" and "pending"; the link shown
        is the one synced last, and any link whose ledger differs makes "mismatch" (a
        difference is never hidden behind another company's match)."""
        self.env["billing_sync.link"].flush_model()
        self.env["billing_sync.job"].flush_model()
        self.env.cr.execute(STATUS_QUERY, {
            "model": self._name, "companies": self.env.companies.ids,
            "all": ids is None, "ids": list(ids or [])})
        return {res_id: (status, link_id, job_id)
                for res_id, status, link_id, job_id in self.env.cr.fetchall()}

    def _field_to_sql(self, alias, fname, query=None, flush=True):
        """The ledger status as an SQL expression (STATUS_SQL), so that lists group and
        sort by it (it is computed per company being worked in, so it is not stored)."""
        if fname != "billing_sync_status":
            return super()._field_to_sql(alias, fname, query, flush)
        self.check_field_access_rights("read", [fname])
        if flush:
            self.env["billing_sync.link"].flush_model()
            self.env["billing_sync.job"].flush_model()
        return SQL(STATUS_SQL, model=self._name, id=SQL.identifier(alias, "id"),
                   companies=self.env.companies.ids)

    def _compute_billing_sync_status(self):
        ids = [r.id for r in self if isinstance(r.id, int)]
        found = self._billing_sync_statuses(ids) if ids else {}
        links = self.env["billing_sync.link"].sudo().browse(
            [link_id for _s, link_id, _j in found.values() if link_id])
        jobs = self.env["billing_sync.job"].sudo().browse(
            [job_id for _s, _l, job_id in found.values() if job_id])
        link_of = {link.id: link for link in links}
        job_of = {job.id: job for job in jobs}
        for rec in self:
            status, link_id, job_id = found.get(rec.id, ("none", None, None))
            link, job = link_of.get(link_id), job_of.get(job_id)
            rec.billing_sync_status = status
            rec.billing_sync_synced_at = link.synced_at if link else False
            rec.billing_sync_ledger_number = link.ledger_number if link else False
            rec.billing_sync_ledger_url = link.ledger_url if link else False
            if status == "mismatch":
                rec.billing_sync_error = link.mismatch
            else:
                rec.billing_sync_error = (job.hint or job.last_error) if status == "error" \
                    else False

    def _search_billing_sync_status(self, operator, value):
        """Records by ledger status ("Needs a fix", "Ledger differs"...), as the badge
        says it (_billing_sync_statuses): =, !=, in, not in."""
        if operator not in ("=", "!=", "in", "not in"):
            raise UserError(self.env._("Ledger status can be searched with =, !=, in and "
                                       "not in only."))
        values = set(value) if isinstance(value, (list, tuple, set)) else {value}
        if operator in ("!=", "not in"):
            values = set(STATUSES) - values
        found = self._billing_sync_statuses()
        ids = [res_id for res_id, (status, _l, _j) in found.items() if status in values]
        if "none" in values:
            return ["|", ("id", "in", ids), ("id", "not in", list(found))]
        return [("id", "in", ids)]

    def action_billing_sync_retry(self):
        """Send these records to the ledger again now, after a fix: their stopped jobs
        (needs a fix, failed) go again through the jobs' own Retry, as the current user,
        so that one rule decides who may (a Billing Sync Manager of the ledger's company
        who reads the record) and what goes (billing_sync.job.action_retry)."""
        if not self.env.su and not self.env.user.has_group(MANAGER_GROUP):
            raise AccessError(self.env._(
                "Only a Billing Sync Manager may send a record to the ledger again: ask one "
                "to press Retry, here or in Billing Sync › Sync jobs."))
        self.check_access("read")  # one's own records only: nothing said of the others
        jobs = self.env["billing_sync.job"].search([
            ("res_model", "=", self._name), ("res_id", "in", self.ids),
            ("state", "in", ("blocked", "dead"))])
        if not jobs:
            raise UserError(self.env._(
                "Nothing to send again: none of these records waits for a fix in the "
                "ledger sync (of the companies you are working in)."))
        jobs.action_retry()
        return True
