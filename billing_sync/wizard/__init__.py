from . import billing_sync_audit_export
