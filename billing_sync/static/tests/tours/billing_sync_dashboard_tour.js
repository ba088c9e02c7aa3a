/** @odoo-module **/
/*
 * Issue 19's proof, in a browser: from the sync dashboard a Manager opens the invoices
 * that need a fix, finds the stopped one there (and not the one that reached the
 * ledger), and sends it again from the invoice. tests/test_tour_dashboard.py sets the
 * ledger and the invoices up, and checks the job afterwards.
 */
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("billing_sync_dashboard_tour", {
    steps: () => [
        {
            content: "The dashboard's card of the ledger counts a change to fix",
            trigger: ".o_kanban_record:contains('Needs a fix') button[name='action_open_to_fix']",
            run: "click",
        },
        {
            content: "The invoices list opens with the 'Needs a fix' filter set",
            trigger: ".o_searchview_facet:contains('Needs a fix')",
        },
        {
            content: "The invoice that reached the ledger is not listed",
            trigger: ".o_list_table:not(:has(.o_data_row:contains('Tour Synced Ltd')))",
        },
        {
            content: "Open the stopped invoice",
            trigger: ".o_data_row td.o_data_cell:contains('Tour Stopped Ltd')",
            run: "click",
        },
        {
            content: "The invoice says why it is not in the ledger",
            trigger: ".o_form_view .alert-danger:contains('Not in the ledger')",
        },
        {
            content: "Retry its ledger sync",
            trigger: ".o_form_view button[name='action_billing_sync_retry']",
            run: "click",
        },
        {
            content: "The invoice waits to sync again",
            trigger: ".o_form_view .o_field_widget[name='billing_sync_status'] :contains('Waiting to sync')",
        },
        {
            content: "The retry button is gone with the error",
            trigger: ".o_form_view:not(:has(button[name='action_billing_sync_retry']))",
        },
    ],
});
