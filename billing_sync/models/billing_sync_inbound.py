import contextlib
import json
from typing import NamedTuple

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..services import ownership
from ..services import payments as allocation


class NotApplied(UserError):
    """A ledger change Odoo cannot take as it is: the message says what a person does.
    The inbox row waits (retried with backoff) and shows it. ``error_class``: what kind of
    problem (ERROR_CLASSES)."""

    def __init__(self, message, error_class="validation"):
        super().__init__(message)
        self.error_class = error_class


class Failure(NamedTuple):
    """Why one ledger object was not applied: the message, and its error class."""

    text: str
    error_class: str


def _failure(exc):
    """The Failure a NotApplied (or an Odoo UserError / ValidationError) says."""
    return Failure(exc.args[0] if exc.args else str(exc),
                   getattr(exc, "error_class", None) or "validation")


class InFlight(Exception):
    """A ledger payment that looks like Odoo's own, whose push has not recorded its link
    yet: read it again shortly, rather than book it twice."""


class BillingSyncInbound(models.AbstractModel):
    """Applying what a ledger holds to the records linked to it, under the ownership
    policy (services/ownership.py): three values compared, the policy deciding a
    conflict and writing it down, nothing sent back that came from the ledger."""

    _name = "billing_sync.inbound"
    _description = "Ledger changes applied to Odoo"

    @contextlib.contextmanager
    def _savepoint(self):
        """A savepoint for applying one ledger object: rolled back, it takes the audit
        notes of what it wrote with it."""
        Audit = self.env["billing_sync.audit.log"]
        mark = len(Audit._notes())
        try:
            with self.env.cr.savepoint():
                yield
        except Exception:
            Audit._drop_notes(mark=mark)
            raise

    @api.model
    def _apply_contacts(self, connection, states):
        """Apply ``states`` ({ledger id: ContactState}, read from ``connection``'s ledger)
        to the partners linked to them. A contact no partner is linked to is not Odoo's
        business; one the ledger no longer has is left as it is."""
        Link = self.env["billing_sync.link"].sudo()
        links = Link.search([("connection_id", "=", connection.id), ("active", "=", True),
                             ("res_model", "=", "res.partner"),
                             ("ledger_id", "in", list(states))])
        push = self.env["billing_sync.push"].sudo()
        policies = connection.company_id._billing_sync_owners()
        for link in links:
            partner = self.env["res.partner"].sudo().browse(link.res_id).exists()
            state = states[link.ledger_id]
            if not partner:
                continue
            odoo = connection._adapter_class().contact_as_stored(
                push._values_contact(connection, partner, to_send=False))
            base = json.loads(link.synced_values) if link.synced_values else None
            ledger_is_newer = bool(state.updated_at) and (
                state.updated_at > partner.write_date.strftime("%Y-%m-%dT%H:%M:%SZ"))
            if link.ledger_name:
                # created under a distinct name: the plain name stays Odoo's
                state = state.__class__(state.ledger_id, {
                    k: v for k, v in state.values.items() if k != "name"},
                    state.updated_at, state.version)
            decisions = ownership.decide(base, odoo, state.values, policies, ledger_is_newer)
            taken = {}
            for decision in decisions:
                if decision.winner == "ledger":
                    taken.update(decision.ledger)
                if decision.conflict:
                    self._note_conflict(connection, partner, decision, policies)
            if taken:
                before, after = self._write_contact(partner, taken, send=False,
                                                    ledger=connection.name)
                if after:
                    self.env["billing_sync.audit.log"]._note_change(
                        connection, "contact", link.ledger_id, partner, before, after)
            if any(d.winner == "odoo" for d in decisions):
                # Odoo owns it (or changed it last): the ledger gets Odoo's value back
                self.env["billing_sync.job"].sudo()._enqueue(partner, "contact")
            # the ledger's values are the base from now on, whoever won: a change Odoo
            # keeps is then Odoo's alone until its push lands (which sets the base again)
            synced = {**(base or {}), **{k: ownership.normal(v) for k, v in odoo.items()
                                          if k in ownership.CONTACT_KEYS},
                      **{k: ownership.normal(v) for k, v in state.values.items()
                         if k in ownership.CONTACT_KEYS}}
            self._keep_synced(link, synced)

    @api.model
    def _keep_synced(self, link, values):
        merged = {**(json.loads(link.synced_values) if link.synced_values else {}), **values}
        link.write({"synced_values": json.dumps(
            {key: merged.get(key) for key in ownership.CONTACT_KEYS}, sort_keys=True),
            "synced_at": fields.Datetime.now()})

    @api.model
    def _write_contact(self, partner, values, send, ledger=None):
        """Write neutral contact ``values`` on ``partner``; ``send``: as any change, which
        goes to the ledger; else marked as coming from the ledger (nothing sent back)."""
        vals = {}
        if "name" in values and values["name"]:
            vals["name"] = values["name"]
        if "email" in values:
            vals["billing_sync_billing_email"] = values["email"] or False
        if "phone" in values:
            vals["phone"] = values["phone"] or False
        if "tax_id" in values:
            vals["vat"] = values["tax_id"] or False
        for key in ("street", "street2", "city", "zip"):
            if key in values:
                vals[key] = values[key] or False
        if "country_code" in values:
            # an ISO code as Odoo sends it, or a name as a bookkeeper types it (Xero)
            given = (values["country_code"] or "").strip()
            Country = self.env["res.country"]
            country = given and (Country.search([("code", "=ilike", given)], limit=1)
                                 or Country.search([("name", "=ilike", given)], limit=1))
            vals["country_id"] = country.id if country else False
        if "state" in values:
            country_id = vals.get("country_id", partner.country_id.id)
            state = self.env["res.country.state"].search(
                [("country_id", "=", country_id), "|", ("name", "=ilike", values["state"] or ""),
                 ("code", "=ilike", values["state"] or "")], limit=1) if values["state"] else None
            vals["state_id"] = state.id if state else False
        if not vals:
            return {}, {}
        before = {name: _shown(partner[name]) for name in vals}
        target = partner if send else partner.with_context(billing_sync_no_push=True)
        target.write(vals)
        after = {name: _shown(partner[name]) for name in vals}
        if ledger:
            labels = [partner._fields[f].get_description(self.env)["string"] for f in vals]
            partner.message_post(body=self.env._(
                "Updated from %(ledger)s: %(fields)s.", ledger=ledger,
                fields=", ".join(labels)))
        changed = [name for name in vals if before[name] != after[name]]
        return ({n: before[n] for n in changed}, {n: after[n] for n in changed})

    @api.model
    def _note_conflict(self, connection, partner, decision, policies):
        def shown(values):
            return "\n".join(f"{k}: {v or '—'}" for k, v in values.items())

        self.env["billing_sync.conflict"].sudo().create({
            "connection_id": connection.id, "partner_id": partner.id,
            "group": decision.group, "decision": decision.winner,
            "policy": policies.get(decision.group) or "last",
            "base_value": shown(decision.base or {}), "odoo_value": shown(decision.odoo),
            "ledger_value": shown(decision.ledger),
            "odoo_values": json.dumps(decision.odoo), "ledger_values": json.dumps(decision.ledger)})

    # ------------------------------------------------------------------ payments
    @api.model
    def _apply_payments(self, connection, states, asked):
        """Apply the ledger payments ``asked`` (ids) as read (``states``, {id:
        PaymentState}; an id absent is gone from the ledger). The ledger owns what was
        paid: a new payment becomes an Odoo payment matched with its invoices, one deleted
        there is cancelled here, one changed there is replaced. Odoo's own payments coming
        back (their webhook) change nothing. Returns ({ledger id: message} of those not
        applied, [ids to read again shortly]). Each payment is applied alone: one that
        cannot be does not hold the others."""
        links = self._payment_links(connection, asked)
        failures, later = {}, {}
        for ledger_id in asked:
            state, link = states.get(ledger_id), links.get(ledger_id)
            try:
                with self._savepoint():
                    if state is None or state.deleted:
                        if link:
                            self._payment_removed(connection, link, ledger_id)
                    elif link:
                        self._payment_changed(connection, link, state)
                    else:
                        self._payment_received(connection, state)
            except InFlight:
                later[ledger_id] = self.env._(
                    "A payment like Odoo's own %(ref)s, whose sending to %(ledger)s is under "
                    "way: read again shortly.", ref=state.reference, ledger=connection.name)
            except (UserError, ValidationError) as exc:
                failures[ledger_id] = _failure(exc)
        return failures, later

    @api.model
    def _payment_links(self, connection, ids):
        """{ledger payment id: active link} of ``ids``: a link names a payment by its
        ledger id, or as one of its parts (an Odoo payment Xero holds as one payment per
        invoice)."""
        if not ids:
            return {}
        Link = self.env["billing_sync.link"].sudo()
        domain = [("connection_id", "=", connection.id), ("ledger_type", "=", "payment"),
                  ("active", "=", True)]
        found = {link.ledger_id: link for link in Link.search(
            domain + [("ledger_id", "in", list(ids))])}
        rest = [i for i in ids if i not in found]
        if rest:
            parted = Link.search(domain + [("ledger_parts", "!=", False)] + ["|"] * (
                len(rest) - 1) + [("ledger_parts", "ilike", f":{i}") for i in rest])
            for link in parted:
                for ledger_id in link._parts().values():
                    if ledger_id in rest:
                        found[ledger_id] = link
        return found

    @api.model
    def _linked(self, connection, model, ledger_type, ids):
        """{ledger id: record} of the ``model`` records linked to ``ids``."""
        links = self.env["billing_sync.link"].sudo().search([
            ("connection_id", "=", connection.id), ("res_model", "=", model),
            ("ledger_type", "=", ledger_type), ("active", "=", True),
            ("ledger_id", "in", [i for i in ids if i])])
        records = self.env[model].sudo().browse(links.mapped("res_id")).exists()
        return {link.ledger_id: records.browse(link.res_id) for link in links
                if link.res_id in records.ids}

    @api.model
    def _payment_received(self, connection, state):
        """A payment recorded in the ledger: one Odoo payment of what it pays on Odoo's
        invoices (and of what it leaves as credit), matched so that each invoice gets
        exactly the ledger's part."""
        moves = self._linked(connection, "account.move", "invoice", list(state.allocations))
        known = {iid: amount for iid, amount in state.allocations.items() if iid in moves}
        partner = self._linked(connection, "res.partner", "contact",
                               [state.contact_id]).get(state.contact_id)
        if not partner and known:
            partner = next(iter(moves.values())).commercial_partner_id
        unapplied = allocation.money(state.unapplied or 0)
        if not partner or (not known and not unapplied):
            return  # a payment of nothing Odoo holds: not Odoo's business
        ledger = connection.name
        cash = allocation.money(state.total)
        if cash != sum((allocation.money(a) for a in state.allocations.values()), unapplied):
            if not cash:
                # no money moved: QuickBooks applying credit memos to invoices
                self._credit_applied(connection, state, moves)
                return
            raise NotApplied(self.env._(
                "%(ledger)s payment %(ref)s pays its invoices partly with credit: record it "
                "in Odoo by hand.", ledger=ledger, ref=state.reference or state.ledger_id))
        self._check_not_ours(connection, state, partner)
        company = connection.company_id
        currency = self._ledger_currency(
            connection, state.currency,
            self.env._("payment %s", state.reference or state.ledger_id))
        for iid in known:
            if moves[iid].currency_id != currency:
                raise NotApplied(self.env._(
                    "%(ledger)s payment %(ref)s is in %(currency)s but pays %(invoice)s, in "
                    "%(other)s: record it in Odoo by hand.", ledger=ledger,
                    ref=state.reference or state.ledger_id, currency=currency.name,
                    invoice=moves[iid].name, other=moves[iid].currency_id.name),
                    error_class="currency")
        journal = self._ledger_journal(connection, state)
        try:
            order = allocation.matching_order(
                known, {iid: moves[iid].amount_residual for iid in known}, unapplied)
        except allocation.OverAllocated as exc:
            raise NotApplied(self.env._(
                "%(ledger)s applies %(applied)s of payment %(ref)s to %(invoice)s, but Odoo "
                "has only %(open)s open on it (a payment recorded in Odoo and not in "
                "%(ledger)s?): match them by hand, then retry.", ledger=ledger,
                applied=exc.applied, ref=state.reference or state.ledger_id,
                invoice=moves[exc.key].name, open=exc.open_amount)) from None
        except allocation.InexactAllocation:
            raise NotApplied(self.env._(
                "%(ledger)s payment %(ref)s pays part of several invoices (or leaves credit "
                "while paying part of one): one Odoo payment cannot split it the same way. "
                "Record it in Odoo by hand.", ledger=ledger,
                ref=state.reference or state.ledger_id)) from None
        amount = sum((allocation.money(a) for a in known.values()), unapplied)
        payment = self.env["account.payment"].sudo().with_context(
            billing_sync_no_push=True).create({
                "payment_type": "inbound", "partner_type": "customer",
                "partner_id": partner.id, "amount": float(amount),
                "currency_id": currency.id, "date": state.date or fields.Date.today(),
                "journal_id": journal.id, "company_id": company.id,
                "memo": state.reference or self.env._("%s payment", ledger),
                "invoice_ids": [fields.Command.set([moves[i].id for i in order])]})
        payment.action_post()
        self._match(payment.move_id, [moves[i] for i in order])
        push = self.env["billing_sync.push"].sudo()
        applied = {move: allocation.money(amount)
                   for move, amount, _rate in push._payment_applications(payment)}
        for iid in order:
            if applied.get(moves[iid], 0) != allocation.money(known[iid]):
                raise NotApplied(self.env._(
                    "%(ledger)s payment %(ref)s applies %(amount)s to %(invoice)s, which Odoo "
                    "could not match exactly: record it in Odoo by hand.", ledger=ledger,
                    ref=state.reference or state.ledger_id, amount=known[iid],
                    invoice=moves[iid].name))
        self.env["billing_sync.link"].sudo()._record(
            connection, payment, state.ledger_id, ledger_type="payment",
            number=state.reference, values={"synced_values": _payment_snapshot(state)})
        left_out = [iid for iid in state.allocations if iid not in moves]
        body = self.env._("Recorded in %(ledger)s (%(date)s): %(amount)s %(currency)s.",
                          ledger=ledger, date=state.date, amount=amount,
                          currency=currency.name)
        if left_out:
            body += " " + self.env._("It also pays %(count)s invoice(s) Odoo does not hold; "
                                     "that part is not in this payment.", count=len(left_out))
        payment.message_post(body=body)
        self.env["billing_sync.audit.log"]._note_change(
            connection, "payment", state.ledger_id, payment, None, {
                "amount": float(amount), "currency": currency.name, "date": payment.date,
                "journal": journal.name, "state": payment.state,
                "invoices": [moves[i].name for i in order]})
        for iid in order:
            moves[iid].message_post(body=self.env._(
                "Paid in %(ledger)s: %(amount)s (%(payment)s).", ledger=ledger,
                amount=known[iid], payment=payment.name))

    @api.model
    def _check_not_ours(self, connection, state, partner):
        """InFlight when ``state`` looks like an Odoo payment whose push is under way (the
        ledger's webhook can come before the push saved its link): same reference as the
        name of a customer payment of Odoo not linked yet."""
        if not state.reference:
            return
        ours = self.env["account.payment"].sudo().search([
            ("company_id", "=", connection.company_id.id), ("name", "=", state.reference),
            ("partner_id.commercial_partner_id", "=", partner.commercial_partner_id.id),
            ("payment_type", "=", "inbound"), ("state", "not in", ("draft", "canceled"))],
            limit=1)
        if ours and not self.env["billing_sync.link"].sudo()._of(connection, ours):
            raise InFlight(state.ledger_id)

    @api.model
    def _match(self, payer, moves):
        """Match ``payer`` (the journal entry of a payment, or a credit note) with
        ``moves`` one after the other (Odoo gives each the smaller of what both have open:
        services/payments.py chose the order)."""
        push = self.env["billing_sync.push"].sudo()
        for move in moves:
            lines = push._receivable_lines(payer).filtered(lambda ln: not ln.reconciled)
            if not lines:
                break
            invoice_lines = push._receivable_lines(move).filtered(
                lambda ln, acc=lines.account_id: ln.account_id == acc and not ln.reconciled)
            (lines + invoice_lines).reconcile()

    @api.model
    def _ledger_journal(self, connection, state):
        """The Odoo journal of the ledger account ``state`` was paid into: the one mapped
        to it, else the connection's journal for ledger payments."""
        if state.account_id or state.account_code:
            ref = ["|", ("bank_account_id.ledger_id", "=", state.account_id or "-"),
                   ("bank_account_id.code", "=", state.account_code or "-")]
            mapping = self.env["billing_sync.mapping"].sudo().search([
                ("connection_id", "=", connection.id), ("kind", "=", "journal"),
                ("active", "=", True)] + ref, limit=1)
            if mapping.journal_id:
                return mapping.journal_id
        if connection.ledger_payment_journal_id:
            return connection.ledger_payment_journal_id
        raise NotApplied(self.env._(
            "%(ledger)s payment %(ref)s was paid into %(account)s, which no Odoo payment "
            "journal is mapped to: map a journal to it (Mappings) or set the journal for "
            "ledger payments on the connection, then retry.", ledger=connection.name,
            ref=state.reference or state.ledger_id,
            account=state.account_code or state.account_id or self.env._(
                "an account the ledger does not name (QuickBooks: Undeposited Funds)")),
                error_class="mapping")

    @api.model
    def _payment_changed(self, connection, link, state):
        """A payment the ledger holds changed there. One Odoo took from the ledger is
        replaced when what it pays changed; Odoo's own (sent from here) is Odoo's record of
        the payment: left as it is."""
        before = json.loads(link.synced_values) if link.synced_values else None
        if not before or "allocations" not in before or before == json.loads(
                _payment_snapshot(state)):
            return
        self._payment_removed(connection, link, state.ledger_id, changed=True)
        self._payment_received(connection, state)

    @api.model
    def _payment_removed(self, connection, link, ledger_id, changed=False):
        """The ledger deleted (or voided) payment ``ledger_id``: the Odoo payment is
        unmatched and cancelled, as nothing was paid; its link is kept as history. Where
        Xero held an Odoo payment as one payment per invoice and only one of them went,
        only that invoice is unmatched."""
        payment = self.env["account.payment"].sudo().browse(link.res_id).exists()
        ledger = connection.name
        parts = link._parts()
        if payment and len(parts) > 1 and ledger_id in parts.values():
            invoice_id = next(k for k, v in parts.items() if v == ledger_id)
            move = self._linked(connection, "account.move", "invoice",
                                [invoice_id]).get(invoice_id)
            if move:
                partials = (payment.move_id.line_ids.matched_debit_ids
                            | payment.move_id.line_ids.matched_credit_ids).filtered(
                    lambda p: move in (p.debit_move_id.move_id | p.credit_move_id.move_id))
                partials.with_context(billing_sync_no_push=True).unlink()
                move.message_post(body=self.env._(
                    "%(ledger)s no longer applies %(payment)s to this invoice: unmatched.",
                    ledger=ledger, payment=payment.name))
            del parts[invoice_id]
            link.write({"ledger_parts": ",".join(f"{k}:{v}" for k, v in parts.items()),
                        "ledger_id": next(iter(parts.values()))})
            if move:
                self.env["billing_sync.audit.log"]._note_change(
                    connection, "payment", ledger_id, payment,
                    {"invoices": [move.name]}, {"invoices": []})
            return
        if payment and payment.state != "canceled":
            invoices = payment.reconciled_invoice_ids | payment.invoice_ids
            quiet = payment.with_context(billing_sync_no_push=True)
            quiet.action_draft()
            quiet.action_cancel()
            text = (self.env._("Changed in %(ledger)s: cancelled here and recorded again as "
                               "it is now.", ledger=ledger) if changed else
                    self.env._("Deleted in %(ledger)s: cancelled here, nothing is paid by it "
                               "any more.", ledger=ledger))
            payment.message_post(body=text)
            self.env["billing_sync.audit.log"]._note_change(
                connection, "payment", ledger_id, payment, {"state": "paid"},
                {"state": payment.state})
            for move in invoices.filtered(lambda m: m.move_type == "out_invoice"):
                move.message_post(body=self.env._(
                    "%(ledger)s no longer holds %(payment)s: it was cancelled here.",
                    ledger=ledger, payment=payment.name))
        link.write({"active": False})

    # ------------------------------------------------------------------ invoices
    @api.model
    def _apply_invoices(self, connection, states, read_payments):
        """Apply ledger invoices as read (``states``, {id: InvoiceState}): the payments
        they list that Odoo does not hold are read (``read_payments(ids)``: one request
        for all) and taken; Odoo's that they no longer list are read again and removed or
        replaced; a void cancels the Odoo invoice (or reverses it, where its period is
        locked). Returns (failures, later) as _apply_payments, by invoice id."""
        moves = self._linked(connection, "account.move", "invoice", list(states))
        asked, by_invoice = [], {}
        for iid, state in states.items():
            move = moves.get(iid)
            if not move:
                continue
            listed = set(state.payment_ids)
            held = self._payment_links(connection, list(listed))
            odoo = self._invoice_payment_ids(connection, move, iid)
            mine = [p for p in state.payment_ids if p not in held] + sorted(odoo - listed)
            by_invoice[iid] = mine
            asked += [p for p in mine if p not in asked]
        payment_states = read_payments(asked) if asked else {}
        failed, later = self._apply_payments(connection, payment_states, asked)
        failures = {}
        for iid, mine in by_invoice.items():
            wrong = [failed[p] for p in mine if p in failed]
            if wrong:
                failures[iid] = Failure("\n".join(f.text for f in wrong), wrong[0].error_class)
            elif states[iid].status in ("voided", "deleted"):
                try:
                    with self._savepoint():
                        self._document_voided(connection, moves[iid], states[iid])
                except (UserError, ValidationError) as exc:
                    failures[iid] = _failure(exc)
            else:
                self._check_amount_due(connection, moves[iid], states[iid])
        return failures, {iid: "\n".join(later[p] for p in mine if p in later)
                          for iid, mine in by_invoice.items() if any(p in later for p in mine)}

    @api.model
    def _invoice_payment_ids(self, connection, move, invoice_id):
        """The ledger ids of the payments Odoo holds on ``move`` (the one ``invoice_id``
        names) through links: a part for that invoice, else the whole."""
        payments = move._get_reconciled_payments()
        links = self.env["billing_sync.link"].sudo().search([
            ("connection_id", "=", connection.id), ("res_model", "=", "account.payment"),
            ("res_id", "in", payments.ids), ("active", "=", True)])
        ids = set()
        for link in links:
            parts = link._parts()
            ids.add(parts.get(invoice_id) or (link.ledger_id if not parts else None))
        ids.discard(None)
        return ids

    @api.model
    def _document_voided(self, connection, move, state):
        """The ledger voided (or deleted) the invoice or credit note: cancelled in Odoo
        (unmatched first), or, where its period is locked, reversed and matched."""
        if move.state != "posted":
            return
        ledger = connection.name
        quiet = move.with_context(billing_sync_no_push=True)
        reversal = None
        if move._get_reconciled_payments():
            raise NotApplied(self.env._(
                "%(ledger)s voided %(invoice)s, but Odoo still has payments matched with it "
                "that %(ledger)s does not: unmatch or cancel them, then retry.",
                ledger=ledger, invoice=move.name))
        try:
            with self.env.cr.savepoint():
                quiet.button_draft()
                quiet.button_cancel()
                text = self.env._("Voided in %(ledger)s: cancelled here.", ledger=ledger)
        except UserError:
            # a locked period: the accounting is kept, a credit note takes it back
            # dated at the first day the lock leaves open, as Odoo dates such reversals
            quiet.line_ids.remove_move_reconcile()
            reversal = quiet._reverse_moves([{
                "ref": self.env._("Voided in %(ledger)s", ledger=ledger),
                "date": move._get_accounting_date(fields.Date.context_today(self),
                                                  move._affect_tax_report())}], cancel=True)
            text = self.env._("Voided in %(ledger)s: its period is locked, so it was "
                              "reversed by %(credit)s.", ledger=ledger, credit=reversal.name)
        link = self.env["billing_sync.link"].sudo()._of(connection, move)
        link.write({"active": False})
        move.message_post(body=text)
        self.env["billing_sync.audit.log"]._note_change(
            connection, link.ledger_type, link.ledger_id, move, {"state": "posted"},
            {"state": move.state, "reversed_by": reversal.name if reversal else None})

    @api.model
    def _check_amount_due(self, connection, move, state):
        """The ledger's amount due against Odoo's, once the ledger's payments are taken: a
        difference is shown on the invoice's link (unless Odoo still has something on its
        way to the ledger, which will settle it)."""
        link = self.env["billing_sync.link"].sudo()._of(connection, move)
        due = allocation.money(state.amount_due)
        odoo = allocation.money(move.amount_residual)
        values = {"ledger_amount_due": float(due)}
        pending = self.env["billing_sync.job"].sudo().search_count([
            ("state", "in", ("pending", "started", "blocked")), "|", "&",
            ("res_model", "=", "account.move"), ("res_id", "=", move.id), "&",
            ("res_model", "=", "account.payment"),
            ("res_id", "in", move._get_reconciled_payments().ids)])
        prefix = self.env._("Amount due")
        if due != odoo and not pending:
            values.update(sync_state="mismatch", mismatch=self.env._(
                "%(prefix)s: %(ledger)s %(due)s, Odoo %(odoo)s", prefix=prefix,
                ledger=connection.name, due=due, odoo=odoo))
        elif due == odoo and link.sync_state == "mismatch" and (
                link.mismatch or "").startswith(prefix):
            values.update(sync_state="synced", mismatch=False)
        before = {name: link[name] for name in ("sync_state", "ledger_amount_due")}
        link.write(values)
        after = {name: link[name] for name in ("sync_state", "ledger_amount_due")}
        if after != before:
            self.env["billing_sync.audit.log"]._note_change(
                connection, "invoice", link.ledger_id, move, before, after)


    # ------------------------------------------------------------------ credit notes
    @api.model
    def _apply_credit_notes(self, connection, states, asked):
        """Apply the ledger credit notes ``asked`` as read (``states``, {id:
        CreditNoteState}; absent: gone): a new one becomes an Odoo credit note with the
        ledger's lines, equal to the cent, matched with the invoices it is allocated to; a
        voided or deleted one is cancelled (or reversed in a locked period). Odoo's own
        coming back change nothing. Returns (failures, later) as _apply_payments."""
        Link = self.env["billing_sync.link"].sudo()
        links = {link.ledger_id: link for link in Link.search([
            ("connection_id", "=", connection.id), ("ledger_type", "=", "credit_note"),
            ("active", "=", True), ("ledger_id", "in", list(asked))])}
        failures = {}
        for ledger_id in asked:
            state, link = states.get(ledger_id), links.get(ledger_id)
            try:
                with self._savepoint():
                    if state is None or state.status in ("voided", "deleted"):
                        if link:
                            move = self.env["account.move"].sudo().browse(link.res_id).exists()
                            if move:
                                self._document_voided(connection, move, state)
                    elif not link and state.status != "draft":
                        self._credit_note_received(connection, state)
            except (UserError, ValidationError) as exc:
                failures[ledger_id] = _failure(exc)
        return failures, {}

    @api.model
    def _credit_note_received(self, connection, state):
        """A credit note made in the ledger (a credit, a bad-debt write-off): the Odoo
        credit note of the same lines, whose total and tax must equal the ledger's, posted
        and matched with the Odoo invoices it is allocated to."""
        ledger = connection.name
        moves = self._linked(connection, "account.move", "invoice", list(state.allocations))
        partner = self._linked(connection, "res.partner", "contact",
                               [state.contact_id]).get(state.contact_id)
        if not partner and moves:
            partner = next(iter(moves.values())).commercial_partner_id
        if not partner:
            return  # a client Odoo does not hold
        currency = self._ledger_currency(connection, state.currency, state.number)
        lines = [fields.Command.create(self._credit_line(connection, line, state))
                 for line in state.lines]
        credit = self.env["account.move"].sudo().with_context(
            billing_sync_no_push=True, default_move_type="out_refund").create({
                "move_type": "out_refund", "partner_id": partner.id,
                "company_id": connection.company_id.id, "currency_id": currency.id,
                "invoice_date": state.date or fields.Date.today(),
                "ref": state.reference or state.number, "invoice_line_ids": lines})
        total, tax = allocation.money(credit.amount_total), allocation.money(credit.amount_tax)
        if (total, tax) != (allocation.money(state.total), allocation.money(state.tax)):
            raise NotApplied(self.env._(
                "%(ledger)s credit note %(number)s totals %(total)s (tax %(tax)s); the same "
                "lines make %(odoo_total)s (tax %(odoo_tax)s) in Odoo: check the tax "
                "mappings of its lines, or record it by hand.", ledger=ledger,
                number=state.number or state.ledger_id, total=allocation.money(state.total),
                tax=allocation.money(state.tax), odoo_total=total, odoo_tax=tax),
                error_class="mismatch")
        credit.with_context(billing_sync_no_push=True).action_post()
        known = {iid: amount for iid, amount in state.allocations.items() if iid in moves}
        self._apply_credit(connection, credit, known, moves, state.number)
        self.env["billing_sync.link"].sudo()._record(
            connection, credit, state.ledger_id, ledger_type="credit_note",
            number=state.number, values={"ledger_total": float(state.total),
                                         "ledger_tax": float(state.tax)})
        credit.message_post(body=self.env._("Made in %(ledger)s as %(number)s.",
                                            ledger=ledger, number=state.number or ""))
        self.env["billing_sync.audit.log"]._note_change(
            connection, "credit_note", state.ledger_id, credit, None, {
                "name": credit.name, "total": float(total), "tax": float(tax),
                "currency": currency.name, "invoices": [moves[i].name for i in known]})

    @api.model
    def _apply_credit(self, connection, credit, known, moves, number):
        """Match the Odoo ``credit`` note with ``moves`` ({ledger invoice id: invoice}) for
        the ``known`` amounts the ledger applies ({ledger invoice id: amount}), what is
        already matched between them deducted (a repeated read matches nothing twice)."""
        if not known:
            return
        push = self.env["billing_sync.push"].sudo()
        credit_lines = push._receivable_lines(credit)
        wanted = {}
        for iid, amount in known.items():
            matched = sum((credit_lines.matched_debit_ids | credit_lines.matched_credit_ids)
                          .filtered(lambda p, m=moves[iid]: m in (p.debit_move_id.move_id
                                                                  | p.credit_move_id.move_id))
                          .mapped("amount"))
            rest = allocation.money(amount) - allocation.money(matched)
            if rest > 0:
                wanted[iid] = rest
        if not wanted:
            return
        open_credit = allocation.money(-sum(credit_lines.mapped("amount_residual")))
        try:
            order = allocation.matching_order(
                wanted, {iid: moves[iid].amount_residual for iid in wanted},
                open_credit - sum(wanted.values()))
        except (allocation.OverAllocated, allocation.InexactAllocation):
            raise NotApplied(self.env._(
                "%(ledger)s applies credit note %(number)s to %(invoices)s in a way Odoo "
                "cannot match exactly (more than Odoo has open, or part of several): match "
                "it by hand.", ledger=connection.name, number=number or credit.name,
                invoices=", ".join(moves[i].name for i in wanted))) from None
        self._match(credit, [moves[i] for i in order])
        for iid in order:
            moves[iid].message_post(body=self.env._(
                "Credited in %(ledger)s: %(amount)s (%(credit)s).", ledger=connection.name,
                amount=wanted[iid], credit=credit.name))

    @api.model
    def _credit_applied(self, connection, state, moves):
        """A QuickBooks payment of nothing that applies credit memos to invoices: the Odoo
        credit notes matched with the Odoo invoices (one memo at a time, as QuickBooks
        lists them; a memo Odoo does not hold yet fails the read, retried)."""
        notes = self._linked(connection, "account.move", "credit_note", list(state.credits))
        known = {iid: amount for iid, amount in state.allocations.items() if iid in moves}
        if not known or not state.credits:
            return
        missing = [cid for cid in state.credits if cid not in notes]
        if missing:
            raise NotApplied(self.env._(
                "%(ledger)s applies credit memo %(memos)s, which Odoo does not hold (yet): "
                "read again later.", ledger=connection.name, memos=", ".join(missing)))
        if len(notes) > 1:
            raise NotApplied(self.env._(
                "%(ledger)s payment %(ref)s applies several credit memos at once: match them "
                "in Odoo by hand.", ledger=connection.name,
                ref=state.reference or state.ledger_id))
        credit = next(iter(notes.values()))
        self._apply_credit(connection, credit, known, moves, credit.name)

    @api.model
    def _ledger_currency(self, connection, code, what):
        """The Odoo currency of ledger currency ``code`` (None: the company's)."""
        currency = connection.company_id.currency_id
        if code and code != currency.name:
            currency = self.env["res.currency"].with_context(active_test=False).search(
                [("name", "=", code)], limit=1)
            if not currency.active:
                raise NotApplied(self.env._(
                    "%(ledger)s %(what)s is in %(currency)s, which is not active in Odoo: "
                    "activate the currency, then retry.", ledger=connection.name,
                    what=what, currency=code),
                    error_class="currency")
        return currency

    @api.model
    def _credit_line(self, connection, line, state):
        """The Odoo credit note line of ledger ``line``: the product mapped to its ledger
        item or revenue account, else the sales account for the connection's default
        one, else the connection's account for other ledger lines (a write-off's); the
        Odoo tax mapped to its ledger tax, none where none is mapped (the totals check
        tells a difference)."""
        Mapping = self.env["billing_sync.mapping"].sudo()
        base = [("connection_id", "=", connection.id), ("active", "=", True)]
        values = {"name": line.description or state.reference or self.env._("Credit"),
                  "quantity": 1, "price_unit": float(line.net)}
        if line.item_id:
            ref = [("item_id.ledger_id", "=", line.item_id)]
            default = connection.default_item_id.ledger_id == line.item_id
        else:
            ref = ["|", ("account_id.code", "=", line.account_code or "-"),
                   ("account_id.ledger_id", "=", line.account_id or "-")]
            default = bool(line.account_code) and (
                connection.default_account_id.code == line.account_code)
        mapped = Mapping.search(base + [("kind", "=", "product")] + ref, limit=1)
        journal = self.env["account.journal"].sudo().search([
            ("type", "=", "sale"), ("company_id", "=", connection.company_id.id)], limit=1)
        if mapped.product_tmpl_id:
            values["product_id"] = mapped.product_tmpl_id.product_variant_id.id
        elif default and journal.default_account_id:
            values["account_id"] = journal.default_account_id.id
        elif connection.ledger_other_account_id:
            values["account_id"] = connection.ledger_other_account_id.id
        else:
            raise NotApplied(self.env._(
                "%(ledger)s credit note %(number)s has a line on %(what)s, which Odoo sends "
                "nothing to: set the connection's account for other ledger lines (or map a "
                "product to it), then retry.", ledger=connection.name,
                number=state.number or state.ledger_id,
                what=line.account_code or line.item_id or line.account_id),
                error_class="mapping")
        tax = Mapping.search(base + [("kind", "=", "tax"), "|",
                                     ("tax_ref_id.ledger_id", "=", line.tax_ref or "-"),
                                     ("tax_ref_id.code", "=", line.tax_ref or "-")],
                             limit=1).tax_id
        values["tax_ids"] = [fields.Command.set(tax.ids)]
        return values

def _shown(value):
    """A field value as the audit trail shows it (a record by its name)."""
    if isinstance(value, models.BaseModel):
        return value.display_name or False
    return value


def _payment_snapshot(state):
    """What the ledger said of a payment Odoo took from it (JSON): a later read that says
    otherwise is a change."""
    return json.dumps({
        "total": str(allocation.money(state.total)), "date": state.date,
        "unapplied": str(allocation.money(state.unapplied or 0)),
        "allocations": {k: str(allocation.money(v)) for k, v in state.allocations.items()},
        "account": state.account_id or state.account_code}, sort_keys=True)
