import datetime
import json
import time

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL

from ..services.ledger.errors import ERROR_CLASSES

# what a push or an applied ledger change came to
OUTCOMES = [
    ("in_ledger", "In the ledger"),
    ("differs", "Ledger differs"),
    ("needs_fix", "Needs a fix"),
    ("given_up", "Given up"),
    ("applied", "Applied"),
    ("not_applied", "Not applied"),
]
INITIATORS = [("user", "An Odoo user"), ("cron", "A scheduled action"),
              ("xero", "Xero"), ("qbo", "QuickBooks Online")]
# columns that may change after a row is written: its archiving, and the references
# PostgreSQL empties itself when what they name is deleted (ON DELETE SET NULL)
MUTABLE = ("active", "job_id", "inbox_id", "connection_id", "company_id", "initiator_id",
           "authorized_by_id", "create_uid", "write_uid")
# what an outbound entry shows of a link, before and after its push
LINK_FIELDS = ("ledger_id", "ledger_number", "ledger_version", "ledger_total", "ledger_tax",
               "ledger_amount_due", "sync_state", "mismatch")
# the job states that are an outcome of the attempt (a job given back or retrying is not)
JOB_OUTCOMES = {"done": "in_ledger", "dead": "given_up"}
# the columns the engine writes, with their SQL types (_log's one INSERT)
COLUMNS = {
    "company_id": "int", "connection_id": "int", "connection_name": "varchar",
    "direction": "varchar", "kind": "varchar", "outcome": "varchar",
    "res_model": "varchar", "res_id": "int", "record_name": "varchar",
    "ledger_id": "varchar", "ledger_number": "varchar", "values_before": "text",
    "values_after": "text", "initiated_by": "varchar", "initiator_id": "int",
    "authorized_by_id": "int", "job_id": "int", "inbox_id": "int",
    "idempotency_key": "varchar", "duration_ms": "int", "http_status": "int",
    "error_class": "varchar", "message": "text",
}
# the transaction's notes of what applying ledger changes wrote (cursor cache)
NOTES = "billing_sync_audit_notes"


class BillingSyncAuditLog(models.Model):
    """The audit trail: one row per outcome of the sync, either way, written by the engine
    where it records that outcome (a push's in ``billing_sync.job._send_batch``, a ledger
    change's in ``billing_sync.inbox._applied`` and ``_failed``).

    Append-only: no group may create, change or delete a row (Managers and Administrators
    read them, in their companies); ``write`` and ``unlink`` refuse even the superuser,
    and a database trigger refuses any UPDATE but archiving (retention) and the emptying
    of a reference whose target was deleted, and every DELETE."""

    _name = "billing_sync.audit.log"
    _description = "Ledger sync audit trail"
    _order = "logged_at desc, id desc"
    _rec_name = "record_name"

    logged_at = fields.Datetime(string="When", required=True, readonly=True, index=True,
                                default=fields.Datetime.now)
    active = fields.Boolean(default=True, readonly=True,
                            help="Archived by the retention scheduled action; never deleted.")
    company_id = fields.Many2one("res.company", readonly=True, index=True,
                                 ondelete="set null")
    connection_id = fields.Many2one("billing_sync.connection", readonly=True, index=True,
                                    ondelete="set null", string="Ledger connection")
    connection_name = fields.Char(string="Ledger", readonly=True)
    direction = fields.Selection([("outbound", "To the ledger"), ("inbound", "From the ledger")],
                                 required=True, readonly=True, index=True)
    kind = fields.Char(readonly=True, help="What was sent or read: contact, invoice, credit "
                                           "note, payment, a void, a payment removed.")
    outcome = fields.Selection(OUTCOMES, required=True, readonly=True, index=True)
    res_model = fields.Char(string="Model", readonly=True, index=True)
    res_id = fields.Many2oneReference(model_field="res_model", string="Record ID",
                                      readonly=True, index=True)
    record_name = fields.Char(string="Record", readonly=True,
                              help="The record's name when the entry was written.")
    ledger_id = fields.Char(string="Ledger ID", readonly=True, index=True)
    ledger_number = fields.Char(readonly=True)
    values_before = fields.Text(string="Before", readonly=True,
                                help="The fields before, as JSON: the ledger's copy (a push) "
                                     "or the Odoo record (a ledger change).")
    values_after = fields.Text(string="After", readonly=True,
                               help="The same fields after the outcome, as JSON.")
    initiated_by = fields.Selection(INITIATORS, required=True, readonly=True,
                                    help="The system that started the change.")
    initiator_id = fields.Many2one("res.users", string="Changed by", readonly=True,
                                   ondelete="set null",
                                   help="The Odoo user whose change was sent.")
    authorized_by_id = fields.Many2one(
        "res.users", string="Authorized by", readonly=True, ondelete="set null",
        help="The user who made the change, or, for a scheduled action or a ledger's "
             "change, the administrator who connected the ledger.")
    job_id = fields.Many2one("billing_sync.job", string="Sync job", readonly=True,
                             ondelete="set null", index="btree_not_null")
    inbox_id = fields.Many2one("billing_sync.inbox", string="Ledger change", readonly=True,
                               ondelete="set null", index="btree_not_null")
    idempotency_key = fields.Char(readonly=True)
    duration_ms = fields.Integer(string="Duration (ms)", readonly=True)
    http_status = fields.Integer(string="HTTP status", readonly=True)
    error_class = fields.Selection(ERROR_CLASSES, readonly=True)
    message = fields.Text(readonly=True)

    def init(self):
        # append-only below the ORM too: only archiving and ON DELETE SET NULL change a row
        self.env.cr.execute("""
            CREATE OR REPLACE FUNCTION billing_sync_audit_log_guard() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION 'billing_sync: audit records are never deleted'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                IF (to_jsonb(NEW) - TG_ARGV) IS DISTINCT FROM (to_jsonb(OLD) - TG_ARGV) THEN
                    RAISE EXCEPTION 'billing_sync: audit records are never changed'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql
        """)
        self.env.cr.execute(
            "DROP TRIGGER IF EXISTS billing_sync_audit_log_guard ON billing_sync_audit_log")
        self.env.cr.execute(SQL(
            "CREATE TRIGGER billing_sync_audit_log_guard BEFORE UPDATE OR DELETE "
            "ON billing_sync_audit_log FOR EACH ROW EXECUTE FUNCTION "
            "billing_sync_audit_log_guard(%s)", SQL(", ").join(SQL("%s", c) for c in MUTABLE)))

    # ------------------------------------------------------------------ append-only
    @api.model_create_multi
    def create(self, vals_list):
        # the engine appends with _log (one INSERT); nobody creates an entry by hand
        raise AccessError(self._refusal())

    def write(self, vals):
        raise AccessError(self._refusal())

    def unlink(self):
        raise AccessError(self._refusal())

    def _refusal(self):
        return self.env._("The sync audit trail is written by the sync engine only: nobody, "
                          "administrators included, adds, changes or deletes an entry. "
                          "Old entries are archived by the retention setting.")

    @api.model
    def _log(self, entries):
        """Append ``entries`` (field values), in one INSERT: the engine writes a batch's
        outcomes at the cost of one statement (a log is never read back by its writer)."""
        if not entries:
            return self.browse()
        now = fields.Datetime.to_string(fields.Datetime.now())
        rows = [{column: _sql_value(entry.get(column)) for column in COLUMNS}
                for entry in entries]
        self.env.cr.execute(SQL(
            """INSERT INTO billing_sync_audit_log (%s, logged_at, active, create_uid,
                                                   write_uid, create_date, write_date)
               SELECT %s, %s, true, %s, %s, %s, %s
                 FROM jsonb_to_recordset(%s::jsonb) AS v(%s)
               RETURNING id""",
            SQL(", ").join(SQL.identifier(column) for column in COLUMNS),
            SQL(", ").join(SQL.identifier("v", column) for column in COLUMNS),
            now, self.env.uid, self.env.uid, now, now, json.dumps(rows, default=str),
            SQL(", ").join(SQL("%s %s", SQL.identifier(column), SQL(COLUMNS[column]))
                           for column in COLUMNS)))
        return self.browse([row[0] for row in self.env.cr.fetchall()])

    # ------------------------------------------------------------------ pushes
    @api.model
    def _link_states(self, jobs):
        """{(res_model, res_id): fields} of the active links of ``jobs``' records on their
        connection: what the ledger held before the push."""
        states = {}
        Link = self.env["billing_sync.link"].sudo()
        for (connection, model), group in jobs.grouped(
                lambda j: (j.connection_id, j.res_model)).items():
            for link in Link.search_fetch(
                    [("connection_id", "=", connection.id), ("res_model", "=", model),
                     ("res_id", "in", group.mapped("res_id"))],
                    ["res_id", "synced_values", *LINK_FIELDS]):
                states[(model, link.res_id)] = _link_values(link)
        return states

    @api.model
    def _record_pushes(self, jobs, keys, before, started, status=None):
        """One entry per job of a sent batch whose attempt came to an outcome: in the
        ledger, differs, needs a fix, or given up (a job given back, or retrying, is
        not yet an outcome). ``keys``: {job id: idempotency key sent}; ``before``: the
        links' states before (_link_states); ``started``: time.monotonic() at the start;
        ``status``: the HTTP status of the ledger's answer, when it answered."""
        duration = int((time.monotonic() - started) * 1000)
        concluded = jobs.filtered(lambda j: j.state in ("done", "blocked", "dead"))
        after = self._link_states(concluded) if concluded else {}
        names = _record_names(concluded)
        entries = []
        for job in concluded:
            record = (job.res_model, job.res_id)
            outcome = JOB_OUTCOMES.get(job.state) or (
                "differs" if job.block_reason == "mismatch" else "needs_fix")
            linked = after.get(record, {}) if outcome in ("in_ledger", "differs") else {}
            entries.append({
                **self._origin_values(job.connection_id, job.create_uid),
                "direction": "outbound", "kind": job.kind, "outcome": outcome,
                "res_model": job.res_model, "res_id": job.res_id,
                "record_name": names.get(record, record[0]), "job_id": job.id,
                "ledger_id": linked.get("ledger_id") or job.ledger_id or False,
                "ledger_number": linked.get("ledger_number") or job.ledger_number or False,
                "values_before": _json(before.get(record)),
                "values_after": _json(linked) if linked else False,
                "idempotency_key": keys.get(job.id) or False,
                "duration_ms": duration,
                # the batch's answer is this job's only when the ledger took the job
                "http_status": job.error_status or (
                    status if outcome in ("in_ledger", "differs") else False),
                "error_class": job.error_class if job.state != "done" else False,
                "message": job.last_error if job.state != "done" else False,
            })
        return self._log(entries)

    @api.model
    def _record_contacts(self, connection, links, key=None, status=None):
        """The clients a push linked on its way (an invoice's customer): found in the
        ledger (no ``key``) or created there under ``key``; ``links``: {partner: link}."""
        return self._log([{
            **self._origin_values(connection, None),
            "direction": "outbound", "kind": "contact", "outcome": "in_ledger",
            "res_model": partner._name, "res_id": partner.id,
            "record_name": partner.display_name, "ledger_id": link.ledger_id,
            "ledger_number": link.ledger_number or False,
            "values_after": _json(_link_values(link)),
            "idempotency_key": key or False, "http_status": status or False,
            "message": False if key else self.env._("Found in the ledger and linked."),
        } for partner, link in links.items()])

    # ------------------------------------------------------------------ ledger changes
    @api.model
    def _notes(self):
        """The changes applying ledger changes wrote in this transaction, not yet logged:
        [((connection id, kind, ledger id), (model, id, name, before, after))]."""
        return self.env.cr.cache.setdefault(NOTES, [])

    @api.model
    def _note_change(self, connection, kind, ledger_id, record, before, after):
        """Applying the ledger's ``kind`` object ``ledger_id`` wrote ``record``
        (``before`` / ``after``: the fields it changed): logged with that change's outcome
        (_record_ledger_changes). A savepoint rolled back takes its notes with it
        (billing_sync.inbound._savepoint)."""
        self._notes().append(((connection.id, kind, str(ledger_id)), (
            record._name, record.id, record.display_name, before, after)))

    @api.model
    def _drop_notes(self, connection=None, mark=None):
        """Forget the notes after ``mark`` (a len(_notes()) taken before a savepoint that
        was rolled back), or those of ``connection`` (a run starting afresh)."""
        notes = self._notes()
        if mark is not None:
            del notes[mark:]
        if connection is not None:
            notes[:] = [note for note in notes if note[0][0] != connection.id]

    @api.model
    def _record_ledger_changes(self, connection, rows=None, started=None):
        """Log what applying ``connection``'s ledger changes came to: one entry per record
        written for each inbox row of ``rows`` applied (one saying nothing changed where
        none was), then the records written for ledger objects no row announced (read
        along, or found by a pull)."""
        notes = self._notes()
        mine = [note for note in notes if note[0][0] == connection.id]
        notes[:] = [note for note in notes if note[0][0] != connection.id]
        duration = int((time.monotonic() - started) * 1000) if started else 0
        common = {**self._origin_values(connection, None, ledger=connection.provider),
                  "direction": "inbound", "outcome": "applied", "duration_ms": duration}
        entries = []
        for row in rows or ():
            key = (connection.id, row.kind, row.ledger_id)
            changes = [change for k, change in mine if k == key] or [
                (False, False, False, None, None)]
            mine = [note for note in mine if note[0] != key]
            entries += [_change_entry(common, row.kind, row.ledger_id, change, row.id)
                        for change in changes]
        entries += [_change_entry(common, key[1], key[2], change) for key, change in mine]
        return self._log(entries)

    @api.model
    def _record_not_applied(self, rows):
        """Log the inbox ``rows`` given up (failed for good), with their reason."""
        entries = []
        for row in rows:
            connection = row.connection_id
            entries.append({
                **self._origin_values(connection, None, ledger=connection.provider),
                "direction": "inbound", "kind": row.kind, "outcome": "not_applied",
                "inbox_id": row.id, "ledger_id": row.ledger_id,
                "error_class": row.error_class or False, "message": row.last_error})
        return self._log(entries)

    @api.model
    def _origin_values(self, connection, user, ledger=None):
        """Who started a change and who authorized it: an Odoo user (``user``) for their
        own change; a scheduled action (the superuser's) or the ledger (``ledger``: its
        provider) under the authority of the administrator who connected it."""
        person = user and user.id != SUPERUSER_ID and user
        return {
            "company_id": connection.company_id.id, "connection_id": connection.id,
            "connection_name": connection.name,
            "initiated_by": ledger or ("user" if person else "cron"),
            "initiator_id": person.id if person else False,
            "authorized_by_id": person.id if person else connection.connected_by_id.id,
        }

    # ------------------------------------------------------------------ retention
    @api.model
    def _cron_archive(self):
        """Archive, in bulk, the entries older than the retention setting (days; 0 keeps
        every entry active). Archived entries stay, searchable under *Archived*."""
        days = int(self.env["ir.config_parameter"].sudo().get_param(
            "billing_sync.audit_retention_days", "365") or 0)
        if days <= 0:
            return 0
        self.env.cr.execute(
            "UPDATE billing_sync_audit_log SET active = false WHERE active AND logged_at < %s",
            [fields.Datetime.now() - datetime.timedelta(days=days)])
        archived = self.env.cr.rowcount
        self.invalidate_model(["active"])
        return archived


def _sql_value(value):
    """A field value as _log's JSON carries it (Odoo's False for empty is NULL)."""
    return None if value is False else value


def _change_entry(common, kind, ledger_id, change, inbox_id=False):
    model, res_id, name, before, after = change
    return {**common, "kind": kind, "ledger_id": ledger_id, "inbox_id": inbox_id,
            "res_model": model, "res_id": res_id, "record_name": name,
            "values_before": _json(before), "values_after": _json(after)}


def _record_names(jobs):
    """{(model, id): display name} of the records of ``jobs``, read per model at once."""
    names = {}
    for model, group in jobs.grouped("res_model").items():
        records = jobs.env[model].sudo().browse(set(group.mapped("res_id"))).exists()
        names.update({(model, rec.id): rec.display_name for rec in records})
    return names


def _link_values(link):
    """What a link says the ledger holds: its ids and figures, and a contact's values."""
    values = {name: link[name] for name in LINK_FIELDS}
    if link.synced_values:
        values["values"] = json.loads(link.synced_values)
    return {name: value for name, value in values.items() if value not in (False, None, "")}


def _json(values):
    return json.dumps(values, sort_keys=True, default=str) if values else False
