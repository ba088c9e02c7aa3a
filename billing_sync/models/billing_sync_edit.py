from odoo import api, fields, models
from odoo.exceptions import UserError

from ..services.ledger.base import PushItem
from .billing_sync_job import PRIORITY

RETIRE = "void_invoice"
REMOVE_PAYMENT = "delete_payment"
EDIT_KINDS = (RETIRE, REMOVE_PAYMENT)
UNFINISHED = ("pending", "started", "blocked", "dead")
WARNING = "mail.mail_activity_data_warning"


class BillingSyncEdit(models.AbstractModel):
    """Edits after sync: what becomes of the ledger's copy of a document Odoo takes back.

    An invoice the ledger holds that is reset to draft, posted again with another total,
    cancelled or deleted, and a payment the ledger holds that is reset, cancelled or
    unmatched, follow the company's policy (``billing_sync_edit_policy``):

    - ``credit_replace``: a job retires the ledger's copy (the adapter voids it, or credits
      it when the ledger cannot void it) and the link is archived at once, so the invoice,
      posted again, goes to the ledger as a new document, never as an edit of the old one;
    - ``hold``: the job is written held, with a message and one activity for a person; its
      Retry lets the worker retire the copy as above.

    Called from the account.move and account.payment hooks, inside the user's transaction:
    it writes jobs and archives links, and never calls a ledger. What a job needs is kept
    on it (ledger id, type, number, payments), so it outlives a deleted record.
    """

    _name = "billing_sync.edit"
    _description = "Ledger sync: edits after sync"

    # ------------------------------------------------------------------ invoices
    @api.model
    def _taken_back(self, moves, event, payments=None):
        """``moves`` were taken back in Odoo (``event``: "reset", "cancel" or "delete"):
        retire their ledger copies. ``payments``: {move id: account.payment} the reset
        unmatched from each move (read before the reset)."""
        moves = moves.filtered(lambda m: m.move_type == "out_invoice")
        if not moves or self.env.context.get("billing_sync_no_push"):
            return
        self._cancel_unsent(moves)
        for link in self._links(moves, "invoice"):
            move = moves.browse(link.res_id)
            removed, payment_links = self._payments_of(link, (payments or {}).get(move.id))
            if self._policy(move) == "hold":
                if event != "delete":  # a held deletion is refused (_check_unlink)
                    self._hold(link, move, event, removed, payment_links)
            else:
                self._job(link, move, RETIRE, removed)
                link.active = False

    @api.model
    def _reposted(self, moves):
        """``moves`` were posted again while the ledger still holds them (their links are
        active: held, or reset without our hook): replace, hold, or let the update go."""
        moves = moves.filtered(lambda m: m.move_type == "out_invoice")
        if not moves or self.env.context.get("billing_sync_no_push"):
            return
        for link in self._links(moves, "invoice"):
            move = moves.browse(link.res_id)
            held = self._jobs(link.connection_id, move, RETIRE, ("pending", "blocked"),
                              link.ledger_id)[:1]
            changed = abs(move.amount_total - link.ledger_total) >= 0.005
            if self._policy(move) != "hold":
                if held or changed:
                    self._job(link, move, RETIRE)
                    link.active = False
                continue
            if not changed and not (held.ledger_payment_ids if held else False):
                # posted again as the ledger holds it: nothing is left to decide
                if held:
                    held.action_cancel()
                    move.sudo().activity_unlink([WARNING])
                continue
            reason = self._hold(link, move, "repost", [], self.env["billing_sync.link"])
            invoice_job = self._jobs(link.connection_id, move, "invoice", ("pending",))
            for job in invoice_job:
                job._park(reason, decision=True)

    @api.model
    def _check_unlink(self, moves):
        """Refuse to delete an invoice the ledger still holds when its company holds such
        edits for a person (the reason says what to do)."""
        moves = moves.filtered(lambda m: m.move_type == "out_invoice")
        held = [(link, moves.browse(link.res_id)) for link in self._links(moves, "invoice")
                if self._policy(moves.browse(link.res_id)) == "hold"]
        if held:
            raise UserError("\n".join(self.env._(
                "%(doc)s cannot be deleted: %(ledger)s still holds it as %(held)s, and this "
                "company holds edits after sync for a person. Void or credit it in "
                "%(ledger)s first (or press Retry on its “Void invoice” ledger job), then "
                "delete it.", doc=move.display_name, ledger=link.connection_id.name,
                held=self._held_text(link, move)) for link, move in held))

    @api.model
    def _waiting_all(self, connection, moves):
        """{move id: why it cannot go to ``connection`` yet} of the ``moves`` whose
        earlier ledger copy is not retired yet (one query for all of them)."""
        if not moves:
            return {}
        jobs = self.env["billing_sync.job"].sudo().search([
            ("connection_id", "=", connection.id), ("res_model", "=", moves._name),
            ("res_id", "in", moves.ids), ("kind", "=", RETIRE), ("state", "in", UNFINISHED)],
            order="id desc")
        out = {}
        for job in jobs:
            out.setdefault(job.res_id, self.env._(
                "Waits until %(ledger)s has voided (or credited) its earlier copy %(number)s: "
                "see its “Void invoice” ledger job.", ledger=connection.name,
                number=job.ledger_number or job.ledger_id))
        return out

    # ------------------------------------------------------------------ payments
    @api.model
    def _payments_taken_back(self, payments, event, invoice=None):
        """Customer ``payments`` the ledger holds were reset, cancelled, or (``invoice``
        given) unmatched from an invoice in Odoo: remove them in the ledger."""
        payments = payments.filtered(lambda p: p.payment_type == "inbound"
                                     and p.partner_type == "customer")
        if not payments or self.env.context.get("billing_sync_no_push"):
            return
        Link = self.env["billing_sync.link"].sudo()
        for link in self._links(payments, "payment"):
            payment = payments.browse(link.res_id)
            parts = link._parts()
            ids = list(parts.values()) or [link.ledger_id]
            if invoice:
                invoice_link = Link._of(link.connection_id, invoice)
                ids = ([parts[invoice_link.ledger_id]] if parts.get(invoice_link.ledger_id)
                       else [] if parts else [link.ledger_id])
            if not ids:
                continue
            if invoice and not parts and payment.reconciled_invoice_ids - invoice:
                # one ledger object still paying other invoices in Odoo: deleting it would
                # take those too; a person changes its applications in the ledger
                job = self._job(link, payment, REMOVE_PAYMENT, ids)
                job._park(decision=True, reason=self.env._(
                    "%(doc)s was unmatched from %(invoice)s, but %(ledger)s holds it as one "
                    "payment that still pays %(others)s: nothing was changed there. Remove "
                    "%(invoice)s from the payment in %(ledger)s, then cancel this job.",
                    doc=payment.display_name, invoice=invoice.name,
                    ledger=link.connection_id.name,
                    others=", ".join((payment.reconciled_invoice_ids - invoice).mapped("name"))))
                continue
            whole = set(ids) >= set(parts.values() or [link.ledger_id])
            if self._policy(payment) == "hold":
                job = self._job(link, payment, REMOVE_PAYMENT, ids)
                job._park(decision=True, reason=self.env._(
                    "%(doc)s %(what)s, but %(ledger)s still applies it "
                    "(%(amount)s). This company holds such edits for a person: nothing was "
                    "changed in %(ledger)s. Remove the payment there, then cancel this job; "
                    "or press Retry to let Billing Sync remove it.",
                    doc=payment.display_name, what=self._event_text(event, invoice),
                    ledger=link.connection_id.name,
                    amount=self._money(payment.amount, payment.currency_id)))
            else:
                self._job(link, payment, REMOVE_PAYMENT, ids)
                if whole:
                    link.active = False

    # ------------------------------------------------------------------ worker side
    @api.model
    def _item(self, job):
        """The PushItem of an edit job: everything comes from the job itself."""
        return PushItem(key=f"{job.res_model},{job.res_id}", kind=job.kind,
                        ledger_id=job.ledger_id,
                        values={"number": job.ledger_number or None,
                                "remove_payments": _split(job.ledger_payment_ids),
                                # void it, or credit it when the ledger cannot void it
                                "or_credit": True})

    @api.model
    def _done(self, connection, job, result):
        """The ledger retired what ``job`` asked: archive the links (history), tell the
        record, and send an invoice that is posted again as its new ledger document.
        Returns "" (the engine's "no mismatch")."""
        Link = self.env["billing_sync.link"].sudo().with_context(active_test=False)
        now = fields.Datetime.now()
        removed = set(_split(job.ledger_payment_ids))
        if job.kind == REMOVE_PAYMENT:
            removed = removed or {job.ledger_id}
        else:
            Link.search([("connection_id", "=", connection.id),
                         ("ledger_type", "=", job.ledger_type or "invoice"),
                         ("ledger_id", "=", job.ledger_id)]).write(
                {"active": False, "synced_at": now})
        if removed:
            links = Link.search([("connection_id", "=", connection.id),
                                 ("ledger_type", "=", "payment"), ("active", "=", True),
                                 ("ledger_id", "in", list(removed))])
            if job.kind == REMOVE_PAYMENT:  # its own link, whichever part went
                links |= Link.search([("connection_id", "=", connection.id),
                                      ("res_model", "=", job.res_model),
                                      ("res_id", "=", job.res_id), ("active", "=", True)])
            for link in links:
                parts = link._parts()
                if not (set(parts.values()) | {link.ledger_id}) & removed:
                    continue
                if set(parts.values() or [link.ledger_id]) <= removed:
                    link.write({"active": False, "synced_at": now})
                    continue
                # part of it is gone: the link keeps what the ledger still holds
                left = {inv: pid for inv, pid in parts.items() if pid not in removed}
                link.write({"ledger_parts": ",".join(f"{k}:{v}" for k, v in left.items()),
                            "ledger_id": next(iter(left.values())), "synced_at": now})
        record = job._record()
        if not record:
            return ""
        what = job.ledger_number or job.ledger_id
        body = self.env._("%(what)s in %(ledger)s: %(done)s.", what=what,
                          ledger=connection.name, done=result.note or self.env._("done"))
        if result.error:
            body += " " + str(result.error)
        if hasattr(record, "message_post"):
            record.sudo().message_post(body=body)
        Job = self.env["billing_sync.job"].sudo()
        if (job.kind == RETIRE and record.state == "posted"
                and not self.env["billing_sync.link"]._of(connection, record)):
            # the replacement: a new ledger document under Odoo's number (an invoice job
            # held meanwhile goes again)
            Job._enqueue_one(connection, record, "invoice", now)
        others = Job.search_count([
            ("res_model", "=", record._name), ("res_id", "=", record.id),
            ("state", "in", ("blocked", "dead")), ("id", "!=", job.id)])
        if not others and hasattr(record, "activity_unlink"):
            record.sudo().activity_unlink([WARNING])
        return ""

    # ------------------------------------------------------------------ helpers
    @api.model
    def _policy(self, record):
        return record.company_id.billing_sync_edit_policy or "credit_replace"

    @api.model
    def _links(self, records, ledger_type):
        """Active links of ``records`` on the connections jobs go to."""
        if not records:
            return self.env["billing_sync.link"]
        return self.env["billing_sync.link"].sudo().search([
            ("res_model", "=", records._name), ("res_id", "in", records.ids),
            ("ledger_type", "=", ledger_type),
            ("connection_id", "any",
             self.env["billing_sync.connection"]._SYNCING_DOMAIN)])

    @api.model
    def _jobs(self, connection, record, kind, states, ledger_id=None):
        domain = [("connection_id", "=", connection.id), ("res_model", "=", record._name),
                  ("res_id", "=", record.id), ("kind", "=", kind), ("state", "in", states)]
        if ledger_id:
            domain.append(("ledger_id", "=", ledger_id))
        return self.env["billing_sync.job"].sudo().search(domain, order="id desc")

    @api.model
    def _cancel_unsent(self, moves):
        """A draft (or cancelled, or deleted) invoice is not sent: its unsent jobs go."""
        self.env["billing_sync.job"].sudo().search([
            ("res_model", "=", moves._name), ("res_id", "in", moves.ids),
            ("kind", "in", ("invoice", "credit_note")), ("state", "in", ("pending", "blocked")),
            ("batch_key", "=", False)]).write({"state": "cancelled"})

    @api.model
    def _payments_of(self, link, payments):
        """(ledger payment ids, their links) of ``payments`` on ``link``'s invoice."""
        Link = self.env["billing_sync.link"]
        if not payments:
            return [], Link
        links = Link.sudo().search([
            ("connection_id", "=", link.connection_id.id), ("res_model", "=", payments._name),
            ("res_id", "in", payments.ids), ("ledger_type", "=", "payment")])
        ids = []
        for payment_link in links:
            parts = payment_link._parts()
            ledger_id = parts.get(link.ledger_id) if parts else payment_link.ledger_id
            if ledger_id:
                ids.append(ledger_id)
        return ids, links

    @api.model
    def _job(self, link, record, kind, payment_ids=()):
        """The pending job retiring ``link``'s ledger object (one per object: a second
        call adds to it, and releases it when it was held)."""
        Job = self.env["billing_sync.job"].sudo()
        job = self._jobs(link.connection_id, record, kind, ("pending", "blocked"),
                         link.ledger_id).filtered(lambda j: not j.batch_key)[:1]
        payments = ",".join(dict.fromkeys(
            [*_split(job.ledger_payment_ids if job else ""), *payment_ids]))
        if job:
            job.write({"ledger_payment_ids": payments or False, "state": "pending",
                       "attempts": 0, "next_attempt_at": fields.Datetime.now()})
        else:
            # one unsent job per record and kind (the coalescing index): a second ledger
            # object of the same record waits for the first one's job
            busy = self._jobs(link.connection_id, record, kind, ("pending",)).filtered(
                lambda j: not j.batch_key)[:1]
            job = Job.create({
                "connection_id": link.connection_id.id, "res_model": record._name,
                "res_id": record.id, "kind": kind, "priority": PRIORITY[kind],
                "state": "blocked" if busy else "pending",
                "ledger_id": link.ledger_id, "ledger_type": link.ledger_type,
                "ledger_org_id": link.connection_id.org_id,
                "ledger_number": link.ledger_number or record.display_name,
                "ledger_payment_ids": payments or False,
                "last_error": self.env._("Retry once the job retiring %s is done.",
                                         busy.ledger_number) if busy else False})
        self.env["billing_sync.job"]._trigger_push()
        return job

    @api.model
    def _hold(self, link, move, event, removed, payment_links):
        """Write (or update) the held job for ``link``'s ledger invoice and tell a person
        what differs and what the ledger holds. Returns the message."""
        ledger = link.connection_id.name
        reason = self.env._(
            "%(doc)s %(what)s, but %(ledger)s still holds it open as %(held)s. This company "
            "holds such edits for a person: nothing was changed in %(ledger)s. Void or "
            "credit it there, then cancel this job; or press Retry on its “Void invoice” "
            "ledger job to let Billing Sync void it (credit it when it has payments) and "
            "send the invoice, once posted, as a new document.",
            doc=move.display_name, what=self._event_text(event, total=move),
            ledger=ledger, held=self._held_text(link, move, payment_links))
        job = self._job(link, move, RETIRE, removed)
        job._park(reason, decision=True)
        return reason

    @api.model
    def _event_text(self, event, invoice=None, total=None):
        if event == "repost":
            return self.env._("was posted again in Odoo with a total of %s",
                              self._money(total.amount_total, total.currency_id))
        if event == "unmatch" and invoice:
            return self.env._("was unmatched from %s in Odoo", invoice.display_name)
        return {"reset": self.env._("was reset to draft in Odoo"),
                "cancel": self.env._("was cancelled in Odoo"),
                "delete": self.env._("was deleted in Odoo")}.get(event, event)

    @api.model
    def _held_text(self, link, move, payment_links=None):
        """What the ledger holds, as far as Odoo knows: number, total, payments."""
        total = link.ledger_total or move.amount_total
        text = self.env._("%(number)s for %(total)s", number=link.ledger_number or link.ledger_id,
                          total=self._money(total, move.currency_id))
        paid = sum(self.env["account.payment"].browse(
            (payment_links or self.env["billing_sync.link"]).mapped("res_id")).exists()
            .mapped("amount"))
        if paid:
            text += self.env._(", with %s paid", self._money(paid, move.currency_id))
        return text

    @api.model
    def _money(self, amount, currency):
        return f"{amount:,.2f} {currency.name or ''}".strip()


def _split(text):
    return [part for part in (text or "").split(",") if part]
