import functools

from odoo import api, models
from odoo.exceptions import AccessError
from odoo.osv import expression

# the models the engine syncs, and which of their records it syncs: rows about anything
# else are nobody's but the engine's
RECORD_MODELS = {
    "res.partner": [],
    "account.move": [("move_type", "in", ("out_invoice", "out_refund"))],
    "account.payment": [],
}


class BillingSyncRecordAccess(models.AbstractModel):
    """Rows about an Odoo record (``res_model``, ``res_id``) are seen only by whoever can
    read that record.

    A job's error names the invoice's lines and taxes, a link its ledger id and URL: both
    are the record's data. Besides their company rule, lists (``_search``: the web client,
    search_read, read_group, exports) show only rows whose record the user can read, and
    reading or acting on a row by id (``_check_access``) refuses the others, as
    ``mail.message`` does for its documents. A row whose record was deleted (a void of a
    deleted credit note, flagged ``record_gone`` by the engine) stays under the company
    rule alone. The engine works as superuser and sees everything.
    """

    _name = "billing_sync.record.access"
    _description = "Ledger sync rows readable with their record, written by the engine"

    # What these rows say decides what the superuser worker sends where: only the engine
    # (superuser) creates, writes or deletes them, whoever asks.
    @api.model_create_multi
    def create(self, vals_list):
        self._check_engine_only()
        return super().create(vals_list)

    def write(self, vals):
        self._check_engine_only()
        return super().write(vals)

    def unlink(self):
        self._check_engine_only()
        return super().unlink()

    def _check_engine_only(self):
        if not self.env.su:
            raise AccessError(self._engine_only_message())

    def _engine_only_message(self):
        return self.env._("%s rows are written by the sync engine only.", self._description)

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None):
        if not self.env.su:
            domain = expression.AND([domain or [], self._readable_records_domain()])
        return super()._search(domain, offset=offset, limit=limit, order=order)

    @api.model
    def _readable_records_domain(self):
        """Rows whose record the current user can read, or whose record the engine found
        deleted (``record_gone``, on models that have it)."""
        branches = []
        for model, scope in RECORD_MODELS.items():
            Model = self.env[model].with_context(active_test=False)
            if Model.has_access("read"):
                # the subquery keeps to the kind of records synced (invoices, not every
                # journal entry): it is hashed once per query
                branches.append([("res_model", "=", model),
                                 ("res_id", "in", Model._search(scope))])
        if "record_gone" in self._fields:
            branches.append([("record_gone", "=", True)])
        return expression.OR(branches) if branches else expression.FALSE_DOMAIN

    def _check_access(self, operation):
        result = super()._check_access(operation)
        if result or self.env.su or not self._ids:
            return result
        forbidden = self - self._with_readable_record()
        if forbidden:
            return forbidden, functools.partial(self._record_access_error, forbidden)
        return None

    def _with_readable_record(self):
        """The rows of ``self`` whose record the current user can read, or that the
        engine flagged ``record_gone`` (the same rows as ``_readable_records_domain``)."""
        rows = self.sudo()
        allowed = rows.filtered("record_gone") if "record_gone" in self._fields \
            else self.browse()
        for model in set(rows.mapped("res_model")) & set(RECORD_MODELS):
            mine = rows.filtered(lambda r, m=model: r.res_model == m)
            Model = self.env[model].with_context(active_test=False)
            if not Model.has_access("read"):
                continue
            records = Model.browse(mine.mapped("res_id")).sudo().exists()
            readable = records.with_env(Model.env).filtered_domain(
                RECORD_MODELS[model])._filtered_access("read")
            allowed |= mine.filtered(lambda r, ids=set(readable.ids): r.res_id in ids)
        return self.browse(allowed.ids)

    def _record_access_error(self, forbidden):
        return AccessError(self.env._(
            "You cannot see %(what)s: it is about a record you are not allowed to read.",
            what=forbidden._description))
