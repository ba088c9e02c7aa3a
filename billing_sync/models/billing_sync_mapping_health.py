from odoo import fields, models, tools


class BillingSyncMappingHealth(models.Model):
    """What open customer invoices need from each connection that is not mapped yet.

    A database view, so it is always current: a row disappears the moment the
    missing mapping is saved. Taxes are never defaulted, so every unmapped tax
    shows; products and payment terms show only when no default covers them.
    A mapping (or a connection default) naming a code the ledger archived shows
    too, with the open invoices using its Odoo record: those are held, unsent,
    until it is remapped.
    """

    _name = "billing_sync.mapping.health"
    _description = "Missing ledger mappings"
    _auto = False
    _order = "invoice_count desc, kind"

    connection_id = fields.Many2one("billing_sync.connection", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    kind = fields.Selection(
        [("tax", "Tax"), ("product", "Product"), ("payment_term", "Payment terms"),
         ("archived", "Archived in the ledger")],
        readonly=True,
    )
    tax_id = fields.Many2one("account.tax", readonly=True)
    product_tmpl_id = fields.Many2one("product.template", string="Product", readonly=True)
    payment_term_id = fields.Many2one("account.payment.term", readonly=True)
    mapping_id = fields.Many2one("billing_sync.mapping", string="Mapping to fix", readonly=True)
    connection_default = fields.Selection(
        [("item", "Default item"), ("account", "Default revenue account"),
         ("term", "Default payment terms")],
        string="Connection default to fix", readonly=True)
    ledger_ref_id = fields.Many2one("billing_sync.ledger.ref", string="Archived ledger code",
                                    readonly=True)
    invoice_count = fields.Integer("Open invoices", readonly=True)

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        # Open = a customer invoice or credit note, draft or posted, not settled.
        self.env.cr.execute(f"""
            CREATE OR REPLACE VIEW {self._table} AS (
            WITH live AS (
                SELECT c.* FROM billing_sync_connection c
                 WHERE c.active AND c.state IN ('connected', 'choose_org', 'needs_reconnect')
            ), open_lines AS (
                SELECT c.id AS connection_id, c.company_id, m.id AS move_id,
                       l.id AS line_id, pp.product_tmpl_id, pt.categ_id,
                       m.invoice_payment_term_id, m.team_id, l.analytic_distribution,
                       c.default_item_id, c.default_account_id, c.default_term_id
                  FROM live c
                  JOIN account_move m ON m.company_id = c.company_id
                       AND m.move_type IN ('out_invoice', 'out_refund')
                       AND m.state IN ('draft', 'posted')
                       AND m.payment_state NOT IN ('paid', 'in_payment', 'reversed')
                  JOIN account_move_line l ON l.move_id = m.id AND l.display_type = 'product'
             LEFT JOIN product_product pp ON pp.id = l.product_id
             LEFT JOIN product_template pt ON pt.id = pp.product_tmpl_id
            ), product_maps AS (
                -- the mappings a line's product takes its item and account from: its own,
                -- its category's and their parents'
                SELECT o.line_id, mp.item_id, mp.account_id
                  FROM open_lines o
                  JOIN billing_sync_mapping mp ON mp.connection_id = o.connection_id AND mp.active
                       AND mp.source_key = 'product.template,' || o.product_tmpl_id
                UNION ALL
                SELECT o.line_id, mp.item_id, mp.account_id
                  FROM open_lines o
                  JOIN product_category pc ON pc.id = o.categ_id
                  JOIN product_category mc ON pc.parent_path LIKE mc.parent_path || '%'
                  JOIN billing_sync_mapping mp ON mp.connection_id = o.connection_id AND mp.active
                       AND mp.source_key = 'product.category,' || mc.id
            ), missing AS (
                SELECT o.connection_id, o.company_id, 'tax' AS kind, r.account_tax_id AS tax_id,
                       NULL::integer AS product_tmpl_id, NULL::integer AS payment_term_id,
                       NULL::integer AS mapping_id, NULL::varchar AS connection_default,
                       NULL::integer AS ledger_ref_id, o.move_id
                  FROM open_lines o
                  JOIN account_move_line_account_tax_rel r ON r.account_move_line_id = o.line_id
                 WHERE NOT EXISTS (
                       SELECT 1 FROM billing_sync_mapping mp
                        WHERE mp.active AND mp.connection_id = o.connection_id
                          AND mp.source_key = 'account.tax,' || r.account_tax_id)
                UNION ALL
                SELECT o.connection_id, o.company_id, 'product', NULL, o.product_tmpl_id, NULL,
                       NULL, NULL, NULL, o.move_id
                  FROM open_lines o
                 WHERE o.default_item_id IS NULL AND o.default_account_id IS NULL
                   AND NOT EXISTS (SELECT 1 FROM product_maps pm WHERE pm.line_id = o.line_id)
                UNION ALL
                SELECT o.connection_id, o.company_id, 'payment_term', NULL, NULL,
                       o.invoice_payment_term_id, NULL, NULL, NULL, o.move_id
                  FROM open_lines o
                 WHERE o.invoice_payment_term_id IS NOT NULL AND o.default_term_id IS NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM billing_sync_mapping mp
                        WHERE mp.active AND mp.connection_id = o.connection_id
                          AND mp.source_key = 'account.payment.term,' || o.invoice_payment_term_id)
                UNION ALL
                -- mappings naming a code the ledger archived, with the open invoices using
                -- their Odoo record (a payment journal's: none, its payments are held)
                SELECT c.id, c.company_id, 'archived', NULL, NULL, NULL, mp.id, NULL, r.id,
                       o.move_id
                  FROM live c
                  JOIN billing_sync_mapping mp ON mp.connection_id = c.id AND mp.active
                  JOIN billing_sync_ledger_ref r ON NOT r.active AND r.id IN (
                       mp.item_id, mp.account_id, mp.tax_ref_id, mp.tracking_id,
                       mp.bank_account_id, mp.term_id)
             LEFT JOIN open_lines o ON o.connection_id = c.id AND (
                       (mp.kind = 'tax' AND EXISTS (
                            SELECT 1 FROM account_move_line_account_tax_rel t
                             WHERE t.account_move_line_id = o.line_id
                               AND t.account_tax_id = mp.tax_id))
                    OR (mp.kind = 'product' AND o.product_tmpl_id = mp.product_tmpl_id)
                    OR (mp.kind = 'product_category' AND EXISTS (
                            SELECT 1 FROM product_category pc, product_category mc
                             WHERE pc.id = o.categ_id AND mc.id = mp.categ_id
                               AND pc.parent_path LIKE mc.parent_path || '%'))
                    OR (mp.kind = 'analytic' AND o.analytic_distribution IS NOT NULL AND EXISTS (
                            SELECT 1 FROM jsonb_object_keys(o.analytic_distribution) k
                             WHERE mp.analytic_account_id::text = ANY(string_to_array(k, ','))))
                    OR (mp.kind = 'team' AND o.team_id = mp.team_id)
                    OR (mp.kind = 'payment_term'
                        AND o.invoice_payment_term_id = mp.payment_term_id))
                UNION ALL
                -- connection defaults naming an archived code, with the open invoices
                -- falling back on them
                SELECT c.id, c.company_id, 'archived', NULL, NULL, NULL, NULL, d.name, r.id,
                       o.move_id
                  FROM live c
                 CROSS JOIN LATERAL (VALUES ('item', c.default_item_id),
                                            ('account', c.default_account_id),
                                            ('term', c.default_term_id)) AS d(name, ref_id)
                  JOIN billing_sync_ledger_ref r ON r.id = d.ref_id AND NOT r.active
             LEFT JOIN open_lines o ON o.connection_id = c.id AND (
                       (d.name = 'item' AND NOT EXISTS (
                            SELECT 1 FROM product_maps pm
                             WHERE pm.line_id = o.line_id AND pm.item_id IS NOT NULL))
                    OR (d.name = 'account' AND NOT EXISTS (
                            SELECT 1 FROM product_maps pm
                             WHERE pm.line_id = o.line_id AND pm.account_id IS NOT NULL))
                    OR (d.name = 'term' AND NOT EXISTS (
                            SELECT 1 FROM billing_sync_mapping mp
                             WHERE mp.active AND mp.connection_id = c.id AND mp.term_id IS NOT NULL
                               AND mp.source_key = 'account.payment.term,'
                                                   || o.invoice_payment_term_id)))
            )
            SELECT row_number() OVER (ORDER BY connection_id, kind, tax_id, product_tmpl_id,
                                               payment_term_id, mapping_id, connection_default,
                                               ledger_ref_id) AS id,
                   connection_id, company_id, kind, tax_id, product_tmpl_id, payment_term_id,
                   mapping_id, connection_default, ledger_ref_id,
                   count(DISTINCT move_id) AS invoice_count
              FROM missing
          GROUP BY connection_id, company_id, kind, tax_id, product_tmpl_id, payment_term_id,
                   mapping_id, connection_default, ledger_ref_id
            )
        """)  # noqa: S608 -- the table name is the model's own
