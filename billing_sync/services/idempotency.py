"""Deterministic idempotency keys for outbound writes.

A retry after a timeout or a crash must send the very same key, so the ledger
answers with what it did the first time instead of doing it again; a new
change must send a new one. The key is a hash of the database's uuid (two
databases never collide), the connection and the ids of the jobs in the
batch: the worker records the batch before sending and re-sends it whole.
"""

import hashlib


def batch_key(database_uuid, connection_id, kind, job_ids):
    """The Idempotency-Key / requestid of one batch of jobs (at most 64 characters)."""
    ids = ",".join(str(i) for i in sorted(job_ids))
    digest = hashlib.sha256(f"{database_uuid}:{connection_id}:{kind}:{ids}".encode()).hexdigest()
    return f"bs-{kind[:10]}-{digest[:40]}"
