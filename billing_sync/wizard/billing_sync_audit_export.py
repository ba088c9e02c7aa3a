import base64
import csv
import io

import xlsxwriter

from odoo import fields, models

# the columns of an export, in order: the audit trail's own fields
COLUMNS = ("logged_at", "company_id", "connection_name", "direction", "kind", "outcome",
           "res_model", "res_id", "record_name", "ledger_id", "ledger_number",
           "values_before", "values_after", "initiated_by", "initiator_id",
           "authorized_by_id", "job_id", "inbox_id", "idempotency_key", "duration_ms",
           "http_status", "error_class", "message")


class BillingSyncAuditExport(models.TransientModel):
    """The audit trail of a period as a CSV or XLSX file, for an accountant or an auditor:
    the rows the user reads (their companies), archived ones included."""

    _name = "billing_sync.audit.export"
    _description = "Export the sync audit trail"

    date_from = fields.Datetime(string="From")
    date_to = fields.Datetime(string="To")
    file_format = fields.Selection([("csv", "CSV"), ("xlsx", "Excel (XLSX)")],
                                   required=True, default="xlsx")
    data = fields.Binary(readonly=True, attachment=False)
    filename = fields.Char(readonly=True)
    count = fields.Integer(string="Entries", readonly=True)

    def _entries(self):
        domain = [("active", "in", (True, False))]
        if self.date_from:
            domain.append(("logged_at", ">=", self.date_from))
        if self.date_to:
            domain.append(("logged_at", "<=", self.date_to))
        return self.env["billing_sync.audit.log"].search(domain, order="logged_at, id")

    def _sheet(self, entries):
        """The header (field labels) and the rows, as text a spreadsheet reads."""
        Log = self.env["billing_sync.audit.log"]
        header = [Log._fields[name].get_description(self.env)["string"] for name in COLUMNS]
        rows = []
        for values in entries.read(list(COLUMNS)):
            row = []
            for name in COLUMNS:
                value, field = values[name], Log._fields[name]
                if field.type == "many2one":
                    value = value[1] if value else ""
                elif field.type == "selection":
                    value = dict(field._description_selection(self.env)).get(value, "")
                elif field.type == "datetime":
                    value = fields.Datetime.to_string(value) if value else ""
                row.append("" if value is False or value is None else value)
            rows.append(row)
        return header, rows

    def action_export(self):
        self.ensure_one()
        entries = self._entries()
        header, rows = self._sheet(entries)
        if self.file_format == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows([[_cell(value) for value in row] for row in rows])
            content = out.getvalue().encode("utf-8-sig")
        else:
            out = io.BytesIO()
            book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False,
                                             "strings_to_urls": False})
            sheet = book.add_worksheet(self.env._("Audit trail"))
            bold = book.add_format({"bold": True})
            sheet.write_row(0, 0, header, bold)
            for index, row in enumerate(rows, start=1):
                sheet.write_row(index, 0, row)
            book.close()
            content = out.getvalue()
        stamp = fields.Datetime.now().strftime("%Y%m%d-%H%M%S")
        self.write({"data": base64.b64encode(content), "count": len(entries),
                    "filename": f"billing_sync_audit_{stamp}.{self.file_format}"})
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id,
                "view_mode": "form", "target": "new"}


def _cell(value):
    """A CSV cell a spreadsheet shows as text: a value a ledger or a user wrote that starts
    like a formula (=, +, -, @) is quoted, never run (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
