{
    "name": "Billing Sync",
    "summary": "From accepted proposal to ledger: engagement billing kept in sync "
    "with Xero and QuickBooks Online",
    "version": "18.0.1.0.0",
    "category": "Accounting/Accounting",
    "author": "billing_sync",
    "website": "https://github.com/billing-sync/billing_sync",
    "license": "LGPL-3",
    "depends": ["sale_management", "account", "mail"],
    "external_dependencies": {
        "python": [
            "xero-python>=15.0,<16",
            "python-quickbooks>=0.9.10,<0.10",
            "intuit-oauth>=1.2.4,<2",
            "requests>=2.25,<3",
        ],
    },
    "data": [
        "security/billing_sync_security.xml",
        "security/ir.model.access.csv",
        "views/res_config_settings_views.xml",
        "views/billing_sync_menus.xml",
    ],
    "demo": [
        "demo/billing_sync_demo.xml",
    ],
    "application": True,
}
