import json

from odoo import api, fields, models

from ..services import ownership


class BillingSyncInbound(models.AbstractModel):
    """Applying what a ledger holds to the records linked to it, under the ownership
    policy (services/ownership.py): three values compared, the policy deciding a
    conflict and writing it down, nothing sent back that came from the ledger."""

    _name = "billing_sync.inbound"
    _description = "Ledger changes applied to Odoo"

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
                self._write_contact(partner, taken, send=False, ledger=connection.name)
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
            return
        target = partner if send else partner.with_context(billing_sync_no_push=True)
        target.write(vals)
        if ledger:
            labels = [partner._fields[f].get_description(self.env)["string"] for f in vals]
            partner.message_post(body=self.env._(
                "Updated from %(ledger)s: %(fields)s.", ledger=ledger,
                fields=", ".join(labels)))

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
