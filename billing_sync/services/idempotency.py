"""Deterministic idempotency keys for outbound writes.

A retry after a timeout or a crash must send the very same key, so the ledger
answers with what it did the first time instead of doing it again; a new
change, or a new attempt after a refusal, must send a new one. The key is a hash
of the database's uuid (two databases never collide), the connection, the ids of
the jobs in the batch and the attempt: the worker records the batch's key before
sending and re-sends it whole while its outcome is unknown.
"""

import hashlib


def batch_key(database_uuid, connection_id, kind, job_ids, attempt=""):
    """The Idempotency-Key / requestid of one batch of jobs (at most 64 characters).

    ``attempt`` tells a new attempt from a re-send: the worker records the key before
    sending and re-sends a batch whose outcome is unknown under the recorded key, while a
    batch claimed afresh (after a refusal and a fix) gets a new ``attempt`` and so a new
    key."""
    ids = ",".join(str(i) for i in sorted(job_ids))
    text = f"{database_uuid}:{connection_id}:{kind}:{ids}:{attempt}"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"bs-{kind[:10]}-{digest[:40]}"
