from odoo import fields, models

# the jobs Retry sends again (the others are on their way, or done)
RETRYABLE = ("blocked", "dead", "cancelled")


class BillingSyncJob(models.Model):
    """What a Manager does to several jobs at once, from the jobs list (its header
    buttons) or from the records they are about: the same rule as for one job
    (``_as_engine``), and the same outcome whatever the selection holds."""

    _inherit = "billing_sync.job"

    def action_retry(self):
        """As one job's Retry, for a selection that may hold several stopped jobs of one
        record, kind and ledger: only one of them may wait unsent (the coalescing index
        would refuse the others), and the newest carries the record as it is now. The
        older ones are cancelled, as a newer unsent job cancels them (_cancel_superseded);
        one retiring another ledger object (a void of an earlier copy) is left for a
        Retry once the first is done, as the engine leaves it."""
        stopped = self._as_engine().filtered(lambda j: j.state in RETRYABLE)
        newest = {}
        for job in stopped.sorted("id", reverse=True):
            newest.setdefault(job._retry_key(), job)
        older = stopped.filtered(lambda j: newest[j._retry_key()] != j)
        older.filtered(
            lambda j: j.state != "cancelled"
            and j.ledger_id == newest[j._retry_key()].ledger_id
        ).write({"state": "cancelled"})
        return super(BillingSyncJob, self - older).action_retry()

    def _retry_key(self):
        """The jobs of which only one may wait unsent (billing_sync_job_coalesce)."""
        self.ensure_one()
        return (self.connection_id.id, self.res_model, self.res_id, self.kind)

    def action_send_now(self):
        """Send these waiting jobs now rather than at the end of their backoff (the ledger
        is back, a limit was lifted). Their attempts stay counted: one that fails again
        backs off from where it was, and is given up as it would have been. Jobs due
        already, sending, stopped or waiting for another record to reach the ledger
        first (that record's link wakes them) are left as they are."""
        now = fields.Datetime.now()
        jobs = self._as_engine().filtered(
            lambda j: j.state == "pending" and not j.wait_res_model
            and j.next_attempt_at and j.next_attempt_at > now)
        if jobs:
            jobs.write({"next_attempt_at": now})
            self._trigger_push()
        return True
