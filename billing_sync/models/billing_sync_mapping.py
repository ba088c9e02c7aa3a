from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

# kind -> (Odoo field, ledger fields required, ledger kind of each ledger field)
KINDS = {
    "product": ("product_tmpl_id", {"item_id": "item", "account_id": "revenue_account"}),
    "product_category": ("categ_id", {"item_id": "item", "account_id": "revenue_account"}),
    "tax": ("tax_id", {"tax_ref_id": "tax"}),
    "analytic": ("analytic_account_id", {"tracking_id": "tracking"}),
    "team": ("team_id", {"tracking_id": "tracking"}),
    "journal": ("journal_id", {"bank_account_id": "bank_account"}),
    "payment_term": ("payment_term_id", {"term_id": "term"}),
}
# For products and categories, either the item or the account suffices.
ANY_OF = {"product", "product_category"}


def _ledger_ref(string, kind):
    """A pick from this connection's imported ledger codes of one kind."""
    return fields.Many2one(
        "billing_sync.ledger.ref", string=string,
        domain=f"[('connection_id', '=', connection_id), ('kind', '=', '{kind}')]")


class BillingSyncMapping(models.Model):
    """Odoo's vocabulary mapped to one ledger's: products, taxes, tracking, banks, terms."""

    _name = "billing_sync.mapping"
    _description = "Ledger mapping"
    _order = "connection_id, kind, id"

    connection_id = fields.Many2one("billing_sync.connection", required=True,
                                    ondelete="cascade", index=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True)
    kind = fields.Selection(
        [
            ("product", "Product"),
            ("product_category", "Product category"),
            ("tax", "Tax"),
            ("analytic", "Analytic account"),
            ("team", "Sales team"),
            ("journal", "Payment journal"),
            ("payment_term", "Payment terms"),
        ],
        required=True, index=True,
    )
    product_tmpl_id = fields.Many2one("product.template", string="Product", ondelete="cascade")
    categ_id = fields.Many2one("product.category", string="Product category",
                               ondelete="cascade")
    tax_id = fields.Many2one("account.tax", string="Tax", ondelete="cascade",
                             domain="[('type_tax_use', '=', 'sale')]")
    analytic_account_id = fields.Many2one("account.analytic.account", ondelete="cascade")
    team_id = fields.Many2one("crm.team", string="Sales team", ondelete="cascade")
    journal_id = fields.Many2one("account.journal", string="Payment journal",
                                 ondelete="cascade",
                                 domain="[('type', 'in', ('bank', 'cash'))]")
    payment_term_id = fields.Many2one("account.payment.term", ondelete="cascade")

    item_id = _ledger_ref("Ledger item", "item")
    account_id = _ledger_ref("Revenue account", "revenue_account")
    tax_ref_id = _ledger_ref("Ledger tax", "tax")
    tracking_id = _ledger_ref("Tracking", "tracking")
    bank_account_id = _ledger_ref("Ledger bank account", "bank_account")
    term_id = _ledger_ref("Ledger terms", "term")
    source_key = fields.Char(compute="_compute_source", store=True, index=True)
    source_name = fields.Char(string="Odoo record", compute="_compute_source", store=True)

    _sql_constraints = [
        ("source_uniq", "unique(connection_id, source_key)",
         "This Odoo record is already mapped for this connection."),
    ]

    @api.depends("kind", *[spec[0] for spec in KINDS.values()])
    def _compute_source(self):
        for rec in self:
            source = rec[KINDS[rec.kind][0]] if rec.kind else False
            rec.source_key = f"{source._name},{source.id}" if source else False
            rec.source_name = source.display_name if source else False

    @api.depends("source_name", "kind")
    def _compute_display_name(self):
        labels = dict(self._fields["kind"].selection)
        for rec in self:
            rec.display_name = f"{labels.get(rec.kind, '')}: {rec.source_name or ''}"

    @api.constrains("kind", "connection_id", *[spec[0] for spec in KINDS.values()],
                    "item_id", "account_id", "tax_ref_id", "tracking_id", "bank_account_id",
                    "term_id")
    def _check_consistent(self):
        for rec in self:
            source_field, ledger_fields = KINDS[rec.kind]
            if not rec[source_field]:
                raise ValidationError(self.env._("Choose the %s to map.",
                                        rec._fields[source_field].string))
            present = [f for f in ledger_fields if rec[f]]
            if not present or (rec.kind not in ANY_OF and len(present) < len(ledger_fields)):
                raise ValidationError(self.env._(
                    "Map %(what)s to %(targets)s imported from the ledger.",
                    what=rec[source_field].display_name,
                    targets=self.env._(" or ").join(rec._fields[f].string for f in ledger_fields)))
            for fname, kind in ledger_fields.items():
                ref = rec[fname]
                if ref and (ref.connection_id != rec.connection_id or ref.kind != kind):
                    raise ValidationError(self.env._(
                        "%(ref)s does not come from %(conn)s's %(what)s list.",
                        ref=ref.display_name, conn=rec.connection_id.display_name,
                        what=rec._fields[fname].string))

    @api.model
    def _lookup(self, connection, kind, record):
        """The mapping of ``record`` (an Odoo record of the kind) for ``connection``."""
        if not record:
            return self.browse()
        return self.search([("connection_id", "=", connection.id),
                            ("source_key", "=", f"{record._name},{record.id}")], limit=1)


class BillingSyncConnectionMapping(models.Model):
    """The lookups the sync uses: what a given Odoo record is called in this ledger."""

    _inherit = "billing_sync.connection"

    def _map_tax(self, tax):
        """The ledger tax of ``tax``; never guessed, never defaulted."""
        return self.env["billing_sync.mapping"]._lookup(self, "tax", tax).tax_ref_id

    def _map_product(self, product):
        """(item, revenue account) of a product: its own mapping, its category's
        (nearest first), then the connection's defaults."""
        Mapping = self.env["billing_sync.mapping"]
        tmpl = product.product_tmpl_id if product._name == "product.product" else product
        candidates = Mapping._lookup(self, "product", tmpl)
        categ = tmpl.categ_id
        while categ:
            candidates |= Mapping._lookup(self, "product_category", categ)
            categ = categ.parent_id
        item = next((m.item_id for m in candidates if m.item_id), self.default_item_id)
        account = next((m.account_id for m in candidates if m.account_id),
                       self.default_account_id)
        return item, account

    def _map_tracking(self, analytic_accounts=None, team=None):
        """Tracking options for the given analytic accounts and sales team."""
        Mapping = self.env["billing_sync.mapping"]
        refs = self.env["billing_sync.ledger.ref"]
        for account in analytic_accounts or []:
            refs |= Mapping._lookup(self, "analytic", account).tracking_id
        if team:
            refs |= Mapping._lookup(self, "team", team).tracking_id
        return refs

    def _map_journal(self, journal):
        return self.env["billing_sync.mapping"]._lookup(self, "journal", journal).bank_account_id

    def _map_payment_term(self, term):
        found = self.env["billing_sync.mapping"]._lookup(self, "payment_term", term).term_id
        return found or self.default_term_id

    def _invoice_mapping_problems(self, move):
        """What is missing before ``move`` can be pushed, one readable sentence each."""
        self.ensure_one()
        problems = []
        for line in move.invoice_line_ids.filtered(lambda ln: ln.display_type == "product"):
            for tax in line.tax_ids:
                ledger_tax = self._map_tax(tax)
                if not ledger_tax:
                    problems.append(self.env._(
                        "Tax “%(tax)s” (line “%(line)s”) has no %(ledger)s tax mapped.",
                        tax=tax.display_name, line=line.name or line.product_id.display_name,
                        ledger=self.name))
                elif tax.amount_type == "percent" and abs(ledger_tax.rate - tax.amount) > 1e-6:
                    # the ledger computes its own tax: a different rate is a different total
                    problems.append(self.env._(
                        "Tax “%(tax)s” is %(rate)s%% in Odoo but is mapped to %(ref)s in "
                        "%(ledger)s; map it to a tax of the same rate.",
                        tax=tax.display_name, rate=f"{tax.amount:g}",
                        ref=ledger_tax.display_name, ledger=self.name))
            item, account = self._map_product(line.product_id)
            if not item and not account:
                problems.append(self.env._(
                    "Product “%(product)s” has neither an item nor a revenue account mapped, "
                    "and the connection has no default.",
                    product=line.product_id.display_name or line.name))
        if move.invoice_payment_term_id and not self._map_payment_term(
                move.invoice_payment_term_id):
            problems.append(self.env._("Payment terms “%s” are not mapped and there is no default.",
                              move.invoice_payment_term_id.display_name))
        return list(dict.fromkeys(problems))

    def _check_invoice_mappable(self, move):
        """Raise a UserError naming every unmapped tax, product or term of ``move``."""
        problems = self._invoice_mapping_problems(move)
        if problems:
            raise UserError(self.env._(
                "%(invoice)s cannot be sent to %(ledger)s yet:\n%(problems)s",
                              invoice=move.display_name, ledger=self.name,
                              problems="\n".join(f"• {p}" for p in problems)))
