from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

USER_GROUP = "billing_sync.group_billing_sync_user"
MANAGER_GROUP = "billing_sync.group_billing_sync_manager"

STATUSES = ("none", "pending", "synced", "mismatch", "error")
# what decides a record's status, per row of its table (``rid``: its id column), in the
# companies being worked in: the newest job under way, then its active links
_JOB = """SELECT j.%(column)s FROM billing_sync_job j
           WHERE j.res_model = %(model)s AND j.res_id = %(rid)s
             AND j.company_id = ANY(%(companies)s)
             AND j.state IN ('pending', 'started', 'blocked', 'dead')
           ORDER BY j.id DESC LIMIT 1"""
_LINKS = """l.res_model = %(model)s AND l.res_id = %(rid)s
            AND l.company_id = ANY(%(companies)s) AND l.active"""


def _status_sql(model, rid, companies):
    """The ledger status of the row whose id is ``rid`` (SQL), the one rule behind the
    badge, the filters, grouping and sorting: the newest job under way decides between
    "pending" and "error" (an error hidden by a difference shows "mismatch": a difference
    is never hidden); then any link whose ledger differs makes "mismatch", any link
    "synced", and none "none"."""
    where = {"model": model, "rid": rid, "companies": companies}
    links = SQL(_LINKS, **where)
    differs = SQL("EXISTS (SELECT 1 FROM billing_sync_link l WHERE %s "
                  "AND l.sync_state = 'mismatch')", links)
    linked = SQL("EXISTS (SELECT 1 FROM billing_sync_link l WHERE %s)", links)
    job_state = SQL(_JOB, column=SQL("state"), **where)
    return SQL("""COALESCE(
        (SELECT CASE WHEN s.state IN ('pending', 'started') THEN 'pending'
                     WHEN NOT %(differs)s THEN 'error' END FROM (%(job)s) s),
        CASE WHEN %(differs)s THEN 'mismatch' WHEN %(linked)s THEN 'synced'
             ELSE 'none' END)""", differs=differs, linked=linked, job=job_state)


def _shown_sql(model, table, ids, companies):
    """(id, status, link shown, job shown) of the rows ``ids`` of ``table``: the link
    synced last, and the newest job under way (their figures and messages)."""
    rid = SQL.identifier("t", "id")
    where = {"model": model, "rid": rid, "companies": companies}
    return SQL("""SELECT t.id, %(status)s,
                         (SELECT l.id FROM billing_sync_link l WHERE %(links)s
                           ORDER BY l.synced_at DESC NULLS LAST, l.id DESC LIMIT 1),
                         (%(job)s)
                    FROM %(table)s t WHERE t.id = ANY(%(ids)s)""",
               status=_status_sql(model, rid, companies), links=SQL(_LINKS, **where),
               job=SQL(_JOB, column=SQL("id"), **where), table=SQL.identifier(table),
               ids=ids)


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

    def _flush_sync_state(self):
        self.env["billing_sync.link"].flush_model()
        self.env["billing_sync.job"].flush_model()

    def _field_to_sql(self, alias, fname, query=None, flush=True):
        """The ledger status as an SQL expression (_status_sql), so that lists group and
        sort by it (it is computed per company being worked in, so it is not stored)."""
        if fname != "billing_sync_status":
            return super()._field_to_sql(alias, fname, query, flush)
        self.check_field_access_rights("read", [fname])
        if flush:
            self._flush_sync_state()
        return _status_sql(self._name, SQL.identifier(alias, "id"), self.env.companies.ids)

    def _compute_billing_sync_status(self):
        ids = [r.id for r in self if isinstance(r.id, int)]
        found = {}
        if ids:
            self._flush_sync_state()
            self.env.cr.execute(_shown_sql(self._name, self._table, ids,
                                           self.env.companies.ids))
            found = {res_id: shown for res_id, *shown in self.env.cr.fetchall()}
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
        """Records by ledger status ("Needs a fix", "Ledger differs"...), by the badge's
        own rule (_status_sql), in the database: =, !=, in, not in."""
        if operator not in ("=", "!=", "in", "not in"):
            raise UserError(self.env._("Ledger status can be searched with =, !=, in and "
                                       "not in only."))
        values = set(value) if isinstance(value, (list, tuple, set)) else {value}
        if operator in ("!=", "not in"):
            values = set(STATUSES) - values
        self._flush_sync_state()
        return [("id", "in", SQL(
            "(SELECT t.id FROM %s t WHERE %s IN %s)", SQL.identifier(self._table),
            _status_sql(self._name, SQL.identifier("t", "id"), self.env.companies.ids),
            tuple(values) or ("",)))]

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
