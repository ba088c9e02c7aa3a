"""Plain Python services of billing_sync (no ORM): tested without a database."""
