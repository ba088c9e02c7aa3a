from odoo import api, models

from ..services.idempotency import batch_key
from ..services.ledger.base import PushItem

# partner fields the ledger's contact carries: a change to one of them is pushed
CONTACT_FIELDS = ("name", "email", "billing_sync_billing_email", "phone", "vat", "street",
                  "street2", "city", "zip", "state_id", "country_id", "is_company",
                  "property_payment_term_id")


# customers matched in one go when the queue is long
LOOKAHEAD = 1000


def _money(value):
    return round(float(value or 0.0), 2)


class BillingSyncPush(models.AbstractModel):
    """What an Odoo record is, in the provider-neutral words the adapters take.

    Reads records and mappings and writes links; never calls a ledger itself,
    except to make sure a partner exists there before its invoices do.
    """

    _name = "billing_sync.push"
    _description = "Ledger push: Odoo records to ledger values"

    # ------------------------------------------------------------------ items
    @api.model
    def _items(self, connection, adapter, jobs, pacer=None):
        """(PushItem list, [(job, reason)] for jobs that cannot go) for one batch.

        ``pacer`` spaces the calls made to match or create customers first."""
        items, skipped = [], []
        records = {job: job._record() for job in jobs}
        gone = [job for job, rec in records.items() if not rec]
        skipped += [(job, self.env._("The record was deleted.")) for job in gone]
        kind = jobs[0].kind
        refused = {}
        if kind in ("invoice", "credit_note"):
            partners = self.env["res.partner"].browse(
                {rec.commercial_partner_id.id for rec in records.values() if rec})
            refused = self._ensure_contacts(connection, adapter, partners, pacer)
        Link = self.env["billing_sync.link"]
        for job, record in records.items():
            if not record:
                continue
            if kind in ("invoice", "credit_note") and record.commercial_partner_id.id in refused:
                skipped.append((job, refused[record.commercial_partner_id.id]))
                continue
            try:
                values = getattr(self, f"_values_{kind}")(connection, record)
            except _Skip as skip:
                skipped.append((job, str(skip)))
                continue
            link = Link._of(connection, record)
            ledger_id = link.ledger_id or (values.pop("_ledger_id", None))
            items.append(PushItem(key=f"{record._name},{record.id}", kind=kind, values=values,
                                  ledger_id=ledger_id or None,
                                  version=link.ledger_version or None))
        return items, skipped

    @api.model
    def _record_success(self, connection, job, result):
        record = job._record()
        if record:
            ledger_type = "invoice" if job.kind == "void_invoice" else job.kind
            self.env["billing_sync.link"]._record(connection, record, result.ledger_id,
                                                  result.number, result.version, result.url,
                                                  ledger_type=ledger_type)
            if result.error and hasattr(record, "message_post"):
                # in the ledger, but part of it was refused (e.g. the allocation of
                # a credit note): say so where people look
                record.sudo().message_post(body=self.env._(
                    "In %(ledger)s, with a warning: %(why)s",
                    ledger=connection.name, why=result.error))

    # ------------------------------------------------------------------ contacts
    @api.model
    def _ensure_contacts(self, connection, adapter, partners, pacer=None):
        """Link every partner to a ledger contact: match an existing one (tax id, then
        billing email, then exact name) before creating any. Returns {partner id: why}
        for the partners the ledger refused."""
        Link = self.env["billing_sync.link"]
        refused = {}
        missing = partners.filtered(lambda p: not Link._of(connection, p))
        if not missing:
            return refused
        # A backfill brings many new customers: match those of the invoices queued
        # behind this batch as well, so matching costs a request per hundreds of
        # customers rather than one per batch.
        lookahead = getattr(adapter, "FIND_LIMIT", LOOKAHEAD)
        missing |= self._queued_customers(connection, lookahead - len(missing)) - missing
        token = connection._access_token()
        candidates = [{"key": f"res.partner,{p.id}", "tax_id": p.vat or None,
                       "email": p.billing_sync_invoice_email or p.email or None,
                       "name": p.name} for p in missing]
        found = _paced(pacer, adapter, adapter.find_contacts, token, connection.org_id,
                       candidates)
        # a ledger contact already linked to another partner (same email, say)
        # is that partner's: this one gets its own
        taken = set(Link.search([("connection_id", "=", connection.id),
                                 ("ledger_type", "=", "contact"),
                                 ("ledger_id", "in", list(found.values()))]).mapped("ledger_id"))
        for partner in missing:
            ledger_id = found.get(f"res.partner,{partner.id}")
            if ledger_id and ledger_id not in taken:
                taken.add(ledger_id)
                Link._record(connection, partner, ledger_id,
                             url=adapter.web_url("contact", ledger_id, connection.org_id))
        to_create = missing.filtered(lambda p: not Link._of(connection, p))
        size = adapter.batch_size("contact")
        uuid = self.env["ir.config_parameter"].sudo().get_param("database.uuid")
        for start in range(0, len(to_create), size):
            chunk = to_create[start:start + size]
            items = [PushItem(key=f"res.partner,{p.id}", kind="contact",
                              values=self._values_contact(connection, p)) for p in chunk]
            # keyed by the partners: a retry re-sends the same key and creates nothing new
            key = batch_key(uuid, connection.id, "contact-ensure", chunk.ids)
            results = _paced(pacer, adapter, adapter.push, token, connection.org_id,
                             "contact", items, key)
            for partner, result in zip(chunk, results, strict=True):
                if result.ok:
                    Link._record(connection, partner, result.ledger_id, result.number,
                                 result.version, result.url)
                else:
                    refused[partner.id] = self.env._(
                        "The ledger refused the customer %(name)s: %(why)s",
                        name=partner.display_name, why=result.error)
        return refused

    @api.model
    def _queued_customers(self, connection, limit):
        """Customers of invoices and credit notes waiting for ``connection``, not linked yet."""
        if limit <= 0:
            return self.env["res.partner"]
        self.env.flush_all()
        self.env.cr.execute("""
            SELECT DISTINCT m.commercial_partner_id
              FROM billing_sync_job j
              JOIN account_move m ON m.id = j.res_id
             WHERE j.connection_id = %s AND j.res_model = 'account.move'
               AND j.kind IN ('invoice', 'credit_note') AND j.state = 'pending'
               AND NOT EXISTS (SELECT 1 FROM billing_sync_link l
                                WHERE l.connection_id = j.connection_id
                                  AND l.res_model = 'res.partner'
                                  AND l.res_id = m.commercial_partner_id)
             LIMIT %s
        """, [connection.id, limit])
        return self.env["res.partner"].browse([row[0] for row in self.env.cr.fetchall()])

    # ------------------------------------------------------------------ values
    @api.model
    def _values_contact(self, connection, partner):
        partner = partner.commercial_partner_id
        term = connection._map_payment_term(partner.property_payment_term_id)
        return {
            "name": partner.name,
            "email": partner.billing_sync_invoice_email or partner.email or None,
            "phone": partner.phone or partner.mobile or None,
            "tax_id": partner.vat or None,
            "street": partner.street or None,
            "street2": partner.street2 or None,
            "city": partner.city or None,
            "zip": partner.zip or None,
            "state": partner.state_id.name or None,
            "country_code": partner.country_id.code or None,
            "is_company": partner.is_company,
            "term_ref": term.ledger_id or None,
            "currency": None,
        }

    @api.model
    def _values_invoice(self, connection, move):
        problems = connection._invoice_mapping_problems(move)
        if problems:
            raise _Skip(" ".join(problems))
        partner_link = self.env["billing_sync.link"]._of(connection, move.commercial_partner_id)
        if not partner_link:
            raise _Skip(self.env._("The customer is not in the ledger yet."))
        lines = []
        for line in move.invoice_line_ids.filtered(lambda ln: ln.display_type == "product"):
            if len(line.tax_ids) > 1:
                raise _Skip(self.env._(
                    "Line “%s” has several taxes; the ledger takes one tax per line.",
                    line.name))
            item, account = connection._map_product(line.product_id)
            tax = connection._map_tax(line.tax_ids) if line.tax_ids else None
            analytic = self.env["account.analytic.account"].browse(
                [int(k) for key in (line.analytic_distribution or {}) for k in key.split(",")])
            tracking = connection._map_tracking(analytic, move.team_id)
            lines.append({
                "description": line.name or line.product_id.display_name,
                "quantity": line.quantity,
                "unit_price": line.price_unit,
                "discount": line.discount or 0.0,
                "item_ref": item.ledger_id or None,
                "item_code": item.code or None,
                "account_ref": account.ledger_id or None,
                "account_code": account.code or None,
                "tax_ref": tax.ledger_id if tax else None,
                "tax_code": tax.code if tax else None,
                "tracking": [{"ledger_id": t.ledger_id, "category": t.name.split(" / ")[0],
                              "option": t.name.split(" / ", 1)[-1]} for t in tracking],
                "line_total": _money(line.price_subtotal),
            })
        term = connection._map_payment_term(move.invoice_payment_term_id)
        return {
            "number": move.name,
            "date": str(move.invoice_date),
            "due_date": str(move.invoice_date_due or move.invoice_date),
            "currency": move.currency_id.name,
            "contact_ref": partner_link.ledger_id,
            "reference": move.invoice_origin or move.ref or None,
            "status": "AUTHORISED",
            "term_ref": term.ledger_id or None,
            "lines": lines,
            "amount_untaxed": _money(move.amount_untaxed),
            "amount_tax": _money(move.amount_tax),
            "amount_total": _money(move.amount_total),
        }

    @api.model
    def _values_credit_note(self, connection, move):
        values = self._values_invoice(connection, move)
        allocations = []
        origin = move.reversed_entry_id
        if origin:
            origin_link = self.env["billing_sync.link"]._of(connection, origin)
            if not origin_link:
                raise _Skip(self.env._("Its invoice %s is not in the ledger yet.", origin.name))
            allocations.append({"invoice_ref": origin_link.ledger_id,
                                "amount": min(_money(move.amount_total),
                                              _money(origin.amount_total)),
                                "date": str(move.invoice_date)})
        values["allocations"] = allocations
        return values

    @api.model
    def _values_payment(self, connection, payment):
        invoices = payment.reconciled_invoice_ids
        if not invoices:
            raise _Skip(self.env._("The payment is not matched with an invoice."))
        if len(invoices) > 1:
            raise _Skip(self.env._(
                "A payment covering several invoices is not sent yet: register one payment "
                "per invoice."))
        link = self.env["billing_sync.link"]._of(connection, invoices)
        if not link:
            raise _Skip(self.env._("Its invoice %s is not in the ledger yet.", invoices.name))
        customer = self.env["billing_sync.link"]._of(connection,
                                                     invoices.commercial_partner_id)
        bank = connection._map_journal(payment.journal_id)
        if not bank:
            raise _Skip(self.env._("The journal %s is not mapped to a ledger bank account.",
                                   payment.journal_id.display_name))
        return {
            "invoice_ref": link.ledger_id,
            "contact_ref": customer.ledger_id or None,
            "amount": _money(payment.amount),
            "date": str(payment.date),
            "bank_account_ref": bank.ledger_id,
            "bank_account_code": bank.code or None,
            "reference": payment.name,
            "currency": payment.currency_id.name,
        }

    @api.model
    def _values_void_invoice(self, connection, move):
        link = self.env["billing_sync.link"]._of(connection, move)
        if not link:
            raise _Skip(self.env._("The invoice never reached the ledger: nothing to void."))
        return {"_ledger_id": link.ledger_id}


def _paced(pacer, adapter, call, *args):
    """``call(*args)`` within the organisation's rate limits, then believe its headers."""
    if pacer is None:
        return call(*args)
    with pacer:
        result = call(*args)
    headroom = getattr(adapter, "last_headroom", None) or {}
    pacer.observe(headroom.get("minute_remaining"), headroom.get("day_remaining"))
    return result


class _Skip(Exception):  # noqa: N818 -- an outcome, not an error
    """This record cannot go as it is; the message says why."""
