from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.osv import expression

from .billing_sync_connection import check_kept

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
# every ledger-code field of a mapping, and the connection's defaults
REF_FIELDS = tuple(dict.fromkeys(f for spec in KINDS.values() for f in spec[1]))
DEFAULT_FIELDS = ("default_item_id", "default_account_id", "default_term_id")
# what the sync reads of the ledger codes a mapping names
REF_READ = ("ledger_id", "code", "name", "kind", "rate", "active", "category", "option")


def _key(record):
    return f"{record._name},{record.id}"


class MappingIndex:
    """The live mappings of one connection, by the Odoo record each maps, loaded at once
    for the records a batch of documents names (``_mapping_index``): one query for the
    mappings and one for the ledger codes they name, instead of one per lookup.

    A record the loading did not foresee is looked up when asked, so an index is never
    wrong, only slower. One is built per batch (or per call) and dropped with it: nothing
    is kept between batches, so nothing needs invalidating."""

    def __init__(self, connection, keys):
        Mapping = connection.env["billing_sync.mapping"]
        self._connection = connection
        self._empty = Mapping.browse()
        self._by_key = dict.fromkeys(keys, self._empty)
        found = self._search(list(keys)) if keys else self._empty
        for mapping in found:
            self._by_key[mapping.source_key] = mapping
        codes = connection.env["billing_sync.ledger.ref"].browse(
            {mapping[fname].id for mapping in found for fname in REF_FIELDS
             if mapping[fname]} | {connection[fname].id for fname in DEFAULT_FIELDS
                                   if connection[fname]})
        codes.fetch(REF_READ)

    def _search(self, keys):
        return self._empty.search([("connection_id", "=", self._connection.id),
                                   ("source_key", "in", keys)])

    def of(self, record):
        """The mapping of ``record`` (empty when it has none)."""
        if not record:
            return self._empty
        key = _key(record)
        if key not in self._by_key:
            self._by_key[key] = self._search([key])[:1]
        return self._by_key[key]


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
    target_name = fields.Char(string="Ledger code", compute="_compute_target_name",
                              help="What the Odoo record is called in the ledger.")

    # archived when its connection moved to another ledger organisation (its codes are
    # the old organisation's): kept for history, never used
    active = fields.Boolean(default=True)

    def init(self):
        # one live mapping per Odoo record and connection; archived ones are history
        self.env.cr.execute("ALTER TABLE billing_sync_mapping "
                            "DROP CONSTRAINT IF EXISTS billing_sync_mapping_source_uniq")
        self.env.cr.execute("""
            CREATE UNIQUE INDEX IF NOT EXISTS billing_sync_mapping_active_source_uniq
                ON billing_sync_mapping (connection_id, source_key) WHERE active
        """)

    @api.constrains("connection_id", "source_key", "active")
    def _check_one_live_mapping(self):
        for rec in self.filtered(lambda m: m.active and m.source_key):
            if self.search_count([("connection_id", "=", rec.connection_id.id),
                                  ("source_key", "=", rec.source_key), ("id", "!=", rec.id)]):
                raise ValidationError(self.env._(
                    "%s is already mapped for this connection.", rec.source_name))

    @api.model_create_multi
    def create(self, vals_list):
        mappings = super().create(vals_list)
        # a new mapping may be the fix a held document waits for
        self.env["billing_sync.job"].sudo()._release_mapping_holds(mappings.connection_id)
        return mappings

    def write(self, vals):
        check_kept(self, vals, ("connection_id",))
        result = super().write(vals)
        self.env["billing_sync.job"].sudo()._release_mapping_holds(self.connection_id)
        return result

    @api.depends("kind", *[spec[0] for spec in KINDS.values()])
    def _compute_source(self):
        for rec in self:
            source = rec[KINDS[rec.kind][0]] if rec.kind else False
            rec.source_key = f"{source._name},{source.id}" if source else False
            rec.source_name = source.display_name if source else False

    @api.depends("kind", "item_id", "account_id", "tax_ref_id", "tracking_id",
                 "bank_account_id", "term_id")
    def _compute_target_name(self):
        for rec in self:
            ledger_fields = KINDS[rec.kind][1] if rec.kind else {}
            rec.target_name = " / ".join(
                rec[fname].display_name for fname in ledger_fields if rec[fname]) or False

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

    # ------------------------------------------------------------------ lookups
    # Each takes ``maps``, the MappingIndex of the batch being sent; without one it loads
    # what it needs itself (one query).
    def _mapping_index(self, records):
        """The MappingIndex of every mapping sending ``records`` (recordsets: invoices and
        credit notes, payments, partners) may read, loaded in a few queries."""
        self.ensure_one()
        keys = {_key(rec) for recs in self._mapping_sources(records) for rec in recs
                if rec.id}
        return MappingIndex(self, keys)

    @api.model
    def _mapping_sources(self, records):
        """The Odoo records whose mappings sending ``records`` may read: the products
        (templates and their categories), taxes, analytic accounts, sales teams and payment
        terms of documents, the payment terms of customers, the journals of payments."""
        out = []
        for recs in records:
            if recs._name == "account.move":
                lines = recs.line_ids.filtered(lambda ln: ln.display_type == "product")
                templates = lines.product_id.product_tmpl_id
                categs = templates.categ_id
                while categs:
                    out.append(categs)
                    categs = categs.parent_id - categs
                out += [templates, lines.tax_ids, self._analytic_accounts(lines),
                        recs.team_id, recs.invoice_payment_term_id,
                        recs.commercial_partner_id.property_payment_term_id]
            elif recs._name == "account.payment":
                out.append(recs.journal_id)
            elif recs._name == "res.partner":
                out.append(recs.commercial_partner_id.property_payment_term_id)
        return out

    @api.model
    def _analytic_accounts(self, lines):
        """The analytic accounts of ``lines``' analytic distributions."""
        return self.env["account.analytic.account"].browse(dict.fromkeys(
            int(k) for line in lines for key in (line.analytic_distribution or {})
            for k in key.split(",")))

    def _map_tax(self, tax, maps=None):
        """The ledger tax of ``tax``; never guessed, never defaulted."""
        maps = maps or self._mapping_index_of([tax])
        return maps.of(tax).tax_ref_id

    def _product_mappings(self, product, maps=None):
        """The mappings that may name a product's item or account: its own, then its
        categories', nearest first."""
        tmpl = product.product_tmpl_id if product._name == "product.product" else product
        categs = []
        categ = tmpl.categ_id
        while categ and categ not in categs:
            categs.append(categ)
            categ = categ.parent_id
        maps = maps or MappingIndex(self, {_key(rec) for rec in [tmpl, *categs] if rec})
        candidates = maps.of(tmpl)
        for categ in categs:
            candidates |= maps.of(categ)
        return candidates

    def _map_product(self, product, maps=None):
        """(item, revenue account) of a product: its own mapping, its category's
        (nearest first), then the connection's defaults."""
        candidates = self._product_mappings(product, maps)
        item = next((m.item_id for m in candidates if m.item_id), self.default_item_id)
        account = next((m.account_id for m in candidates if m.account_id),
                       self.default_account_id)
        return item, account

    def _map_tracking(self, analytic_accounts=None, team=None, maps=None):
        """Tracking options for the given analytic accounts and sales team."""
        accounts = analytic_accounts or self.env["account.analytic.account"]
        team = team or self.env["crm.team"]
        maps = maps or self._mapping_index_of([accounts, team])
        refs = self.env["billing_sync.ledger.ref"]
        for account in accounts:
            refs |= maps.of(account).tracking_id
        if team:
            refs |= maps.of(team).tracking_id
        return refs

    def _map_journal(self, journal, maps=None):
        maps = maps or self._mapping_index_of([journal])
        return maps.of(journal).bank_account_id

    def _map_payment_term(self, term, maps=None):
        maps = maps or self._mapping_index_of([term])
        return maps.of(term).term_id or self.default_term_id

    def _mapping_index_of(self, sources):
        """The MappingIndex of the mappings of ``sources`` themselves (recordsets)."""
        return MappingIndex(self, {_key(rec) for recs in sources for rec in recs if rec.id})

    def _line_tax(self, line, maps=None):
        """The one ledger tax of an invoice line (empty for an untaxed line). A line with
        several Odoo taxes needs them all mapped to one ledger tax (a combined rate):
        a ledger line carries one tax code."""
        maps = maps or self._mapping_index_of([line.tax_ids])
        refs = self.env["billing_sync.ledger.ref"]
        for tax in line.tax_ids:
            refs |= self._map_tax(tax, maps)
        return refs if len(refs) == 1 else refs[:0]

    @staticmethod
    def _percent_rate(taxes):
        """The summed percent rate of ``taxes`` (group taxes count their children), or None
        when one of them is not a plain percentage (fixed or division taxes)."""
        total = 0.0
        for tax in taxes:
            if tax.amount_type == "group":
                rate = BillingSyncConnectionMapping._percent_rate(tax.children_tax_ids)
                if rate is None:
                    return None
                total += rate
            elif tax.amount_type == "percent":
                total += tax.amount
            else:
                return None
        return total

    def _line_tax_problems(self, line, maps=None):
        """Why the taxes of ``line`` cannot be named in this ledger (empty when they can)."""
        maps = maps or self._mapping_index_of([line.tax_ids])
        label = line.name or line.product_id.display_name
        problems = []
        unmapped = line.tax_ids.filtered(lambda t: not self._map_tax(t, maps))
        for tax in unmapped:
            problems.append(self.env._(
                "Tax “%(tax)s” (line “%(line)s”) has no %(ledger)s tax mapped.",
                tax=tax.display_name, line=label, ledger=self.name))
        if problems or not line.tax_ids:
            return problems
        ledger_tax = self._line_tax(line, maps)
        if not ledger_tax:
            return [self.env._(
                "Line “%(line)s” has the taxes %(taxes)s, mapped to different %(ledger)s taxes; "
                "a ledger line takes one tax: map them all to one combined rate.",
                line=label, taxes=", ".join(line.tax_ids.mapped("display_name")),
                ledger=self.name)]
        rate = self._percent_rate(line.tax_ids)
        if rate is not None and abs(ledger_tax.rate - rate) > 1e-6:
            # the amounts are sent, but the ledger's tax reports must read the same rate
            problems.append(self.env._(
                "Line “%(line)s” is taxed at %(rate)s%% in Odoo (%(taxes)s) but the tax is "
                "mapped to %(ref)s in %(ledger)s; map it to a tax of the same rate.",
                line=label, rate=f"{rate:g}", taxes=", ".join(line.tax_ids.mapped("display_name")),
                ref=ledger_tax.display_name, ledger=self.name))
        return problems

    def _invoice_mapping_problems(self, move, maps=None):
        """What is missing before ``move`` can be pushed, one readable sentence each."""
        self.ensure_one()
        maps = maps or self._mapping_index([move])
        problems = []
        for line in move.invoice_line_ids.filtered(lambda ln: ln.display_type == "product"):
            problems += self._line_tax_problems(line, maps)
            item, account = self._map_product(line.product_id, maps)
            if not item and not account:
                problems.append(self.env._(
                    "Product “%(product)s” has neither an item nor a revenue account mapped, "
                    "and the connection has no default.",
                    product=line.product_id.display_name or line.name))
        if move.invoice_payment_term_id and not self._map_payment_term(
                move.invoice_payment_term_id, maps):
            problems.append(self.env._("Payment terms “%s” are not mapped and there is no default.",
                              move.invoice_payment_term_id.display_name))
        problems += self._inactive_code_problems(move, maps)
        return list(dict.fromkeys(problems))

    def _check_invoice_mappable(self, move):
        """Raise a UserError naming every unmapped tax, product or term of ``move``."""
        problems = self._invoice_mapping_problems(move)
        if problems:
            raise UserError(self.env._(
                "%(invoice)s cannot be sent to %(ledger)s yet:\n%(problems)s",
                              invoice=move.display_name, ledger=self.name,
                              problems="\n".join(f"• {p}" for p in problems)))

    # ------------------------------------------------------------------ archived codes
    def write(self, vals):
        result = super().write(vals)
        if set(DEFAULT_FIELDS) & set(vals):
            # a new default may be the fix a held document waits for
            self.env["billing_sync.job"].sudo()._release_mapping_holds(self)
        return result

    def _product_refs(self, product, maps=None):
        """The (item, revenue account) ``_map_product`` picks, each as
        (ledger code, the mapping naming it or None, the default field or None)."""
        candidates = self._product_mappings(product, maps)
        refs = []
        for fname, default in (("item_id", "default_item_id"),
                               ("account_id", "default_account_id")):
            mapping = next((m for m in candidates if m[fname]), None)
            refs.append((mapping[fname], mapping, None) if mapping
                        else (self[default], None, default))
        return refs

    def _inactive_problem(self, ref, mapping=None, default_field=None):
        """The sentence naming the Odoo mapping (or connection default) to fix because
        its ledger code ``ref`` is archived (or gone) in the ledger."""
        adapter = self._adapter_class()
        noun, code = adapter.describe_reference(ref.kind, ref.display_name, ref.category,
                                                ref.option)
        words = {"ledger": adapter.label, "noun": noun, "code": code,
                 "state": adapter.INACTIVE_WORD}
        if mapping:
            kinds = dict(mapping._fields["kind"]._description_selection(self.env))
            return self.env._(
                "%(kind)s “%(record)s” is mapped to %(ledger)s %(noun)s “%(code)s”, which is "
                "%(state)s in %(ledger)s: map it to an active %(noun)s (Billing Sync › "
                "Configuration › Mappings).",
                kind=kinds[mapping.kind], record=mapping.source_name, **words)
        return self.env._(
            "%(field)s of %(connection)s is %(ledger)s %(noun)s “%(code)s”, which is "
            "%(state)s in %(ledger)s: choose an active %(noun)s on the connection (Billing "
            "Sync › Configuration › Ledger connections).",
            field=self._fields[default_field]._description_string(self.env),
            connection=self.display_name, **words)

    def _inactive_code_problems(self, move, maps=None):
        """One sentence per mapping (or default) ``move`` needs whose ledger code the
        ledger archived: the ledger would refuse it, so it is not sent."""
        self.ensure_one()
        maps = maps or self._mapping_index([move])
        used = []  # (ledger code, mapping, default field)
        lines = move.invoice_line_ids.filtered(lambda ln: ln.display_type == "product")
        for line in lines:
            for tax in line.tax_ids:
                mapping = maps.of(tax)
                used.append((mapping.tax_ref_id, mapping, None))
            used += self._product_refs(line.product_id, maps)
            for account in self._analytic_accounts(line):
                mapping = maps.of(account)
                used.append((mapping.tracking_id, mapping, None))
        if move.team_id:
            mapping = maps.of(move.team_id)
            used.append((mapping.tracking_id, mapping, None))
        mapping = maps.of(move.invoice_payment_term_id)
        used.append((mapping.term_id, mapping, None) if mapping.term_id
                    else (self.default_term_id, None, "default_term_id"))
        problems = [self._inactive_problem(ref, mapping, default)
                    for ref, mapping, default in used if ref and not ref.active]
        return list(dict.fromkeys(problems))

    def _payment_mapping_problems(self, payment, maps=None):
        """What is missing before ``payment`` can be pushed: its journal's bank account."""
        self.ensure_one()
        maps = maps or self._mapping_index_of([payment.journal_id])
        mapping = maps.of(payment.journal_id)
        if not mapping.bank_account_id:
            return [self.env._("The journal %s is not mapped to a ledger bank account.",
                               payment.journal_id.display_name)]
        if not mapping.bank_account_id.active:
            return [self._inactive_problem(mapping.bank_account_id, mapping)]
        return []

    def _archived_reference_problems(self, refs):
        """A sentence per mapping (or default) of this connection naming one of ``refs``."""
        mappings = self.env["billing_sync.mapping"].search(expression.AND([
            [("connection_id", "=", self.id)],
            expression.OR([[(fname, "in", refs.ids)] for fname in REF_FIELDS]),
        ])) if refs else []
        problems = []
        for mapping in mappings:
            for fname in KINDS[mapping.kind][1]:
                if mapping[fname] and mapping[fname] in refs:
                    problems.append(self._inactive_problem(mapping[fname], mapping))
        for fname in DEFAULT_FIELDS:
            if self[fname] and self[fname] in refs:
                problems.append(self._inactive_problem(self[fname], default_field=fname))
        return problems

    def _report_archived_references(self, refs):
        """Tell the administrators, once, which mappings use the codes ``refs`` the
        ledger just archived: one message on the connection, one activity."""
        self.ensure_one()
        problems = self._archived_reference_problems(refs)
        if not problems:
            return problems
        adapter = self._adapter_class()

        def listing(sentences):
            return Markup("<ul>%s</ul>") % Markup().join(
                Markup("<li>%s</li>") % sentence for sentence in sentences)

        intro = self.env._(
            "The reference data refresh found codes %(state)s in %(ledger)s that mappings "
            "still use. Invoices, credit notes and payments needing them are held, unsent, "
            "until they are remapped; saving the mapping sends them:",
            ledger=adapter.label, state=adapter.INACTIVE_WORD)
        admins = self._admin_users()
        self._note(body=Markup("<p>%s</p>%s") % (intro, listing(problems)),
                   partner_ids=admins.partner_id.ids, subtype_xmlid="mail.mt_comment")
        responsible = self.connected_by_id if self.connected_by_id in admins else admins[:1]
        if responsible:
            summary = self.env._("Remap codes %(state)s in %(ledger)s",
                                 state=adapter.INACTIVE_WORD, ledger=adapter.label)
            # one open activity, listing every mapping still to fix (earlier ones included)
            archived = self.env["billing_sync.ledger.ref"].with_context(
                active_test=False).search([("connection_id", "=", self.id),
                                           ("active", "=", False)])
            self.activity_ids.filtered(lambda a: a.summary == summary).unlink()
            self.activity_schedule(
                "mail.mail_activity_data_warning", user_id=responsible.id, summary=summary,
                note=listing(self._archived_reference_problems(archived)))
        return problems
