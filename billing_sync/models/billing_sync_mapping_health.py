from odoo import fields, models, tools


class BillingSyncMappingHealth(models.Model):
    """What open customer invoices need from each connection that is not mapped yet.

    A database view, so it is always current: a row disappears the moment the
    missing mapping is saved. Taxes are never defaulted, so every unmapped tax
    shows; products and payment terms show only when no default covers them.
    """

    _name = "billing_sync.mapping.health"
    _description = "Missing ledger mappings"
    _auto = False
    _order = "invoice_count desc, kind"

    connection_id = fields.Many2one("billing_sync.connection", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    kind = fields.Selection(
        [("tax", "Tax"), ("product", "Product"), ("payment_term", "Payment terms")],
        readonly=True,
    )
    tax_id = fields.Many2one("account.tax", readonly=True)
    product_tmpl_id = fields.Many2one("product.template", string="Product", readonly=True)
    payment_term_id = fields.Many2one("account.payment.term", readonly=True)
    invoice_count = fields.Integer("Open invoices", readonly=True)

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        # Open = a customer invoice or credit note, draft or posted, not settled.
        self.env.cr.execute(f"""
            CREATE OR REPLACE VIEW {self._table} AS (
            WITH open_lines AS (
                SELECT c.id AS connection_id, c.company_id, m.id AS move_id,
                       l.id AS line_id, pp.product_tmpl_id, pt.categ_id,
                       m.invoice_payment_term_id, c.default_item_id, c.default_account_id,
                       c.default_term_id
                  FROM billing_sync_connection c
                  JOIN account_move m ON m.company_id = c.company_id
                       AND m.move_type IN ('out_invoice', 'out_refund')
                       AND m.state IN ('draft', 'posted')
                       AND m.payment_state NOT IN ('paid', 'in_payment', 'reversed')
                  JOIN account_move_line l ON l.move_id = m.id AND l.display_type = 'product'
             LEFT JOIN product_product pp ON pp.id = l.product_id
             LEFT JOIN product_template pt ON pt.id = pp.product_tmpl_id
                 WHERE c.active AND c.state IN ('connected', 'choose_org', 'needs_reconnect')
            ), missing AS (
                SELECT o.connection_id, o.company_id, 'tax' AS kind, r.account_tax_id AS tax_id,
                       NULL::integer AS product_tmpl_id, NULL::integer AS payment_term_id,
                       o.move_id
                  FROM open_lines o
                  JOIN account_move_line_account_tax_rel r ON r.account_move_line_id = o.line_id
                 WHERE NOT EXISTS (
                       SELECT 1 FROM billing_sync_mapping mp
                        WHERE mp.connection_id = o.connection_id
                          AND mp.source_key = 'account.tax,' || r.account_tax_id)
                UNION ALL
                SELECT o.connection_id, o.company_id, 'product', NULL, o.product_tmpl_id, NULL,
                       o.move_id
                  FROM open_lines o
                 WHERE o.default_item_id IS NULL AND o.default_account_id IS NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM billing_sync_mapping mp
                        WHERE mp.connection_id = o.connection_id
                          AND mp.source_key = 'product.template,' || o.product_tmpl_id)
                   AND NOT EXISTS (
                       SELECT 1 FROM billing_sync_mapping mp
                         JOIN product_category mc ON mp.source_key = 'product.category,' || mc.id
                         JOIN product_category pc ON pc.id = o.categ_id
                        WHERE mp.connection_id = o.connection_id
                          AND pc.parent_path LIKE mc.parent_path || '%')
                UNION ALL
                SELECT o.connection_id, o.company_id, 'payment_term', NULL, NULL,
                       o.invoice_payment_term_id, o.move_id
                  FROM open_lines o
                 WHERE o.invoice_payment_term_id IS NOT NULL AND o.default_term_id IS NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM billing_sync_mapping mp
                        WHERE mp.connection_id = o.connection_id
                          AND mp.source_key = 'account.payment.term,' || o.invoice_payment_term_id)
            )
            SELECT row_number() OVER (ORDER BY connection_id, kind, tax_id, product_tmpl_id,
                                               payment_term_id) AS id,
                   connection_id, company_id, kind, tax_id, product_tmpl_id, payment_term_id,
                   count(DISTINCT move_id) AS invoice_count
              FROM missing
          GROUP BY connection_id, company_id, kind, tax_id, product_tmpl_id, payment_term_id
            )
        """)  # noqa: S608 -- the table name is the model's own
