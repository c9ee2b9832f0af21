"""Audit: the hash-chained event trail (one chain per project plus the system chain), its signed checkpoints
and verification, the database's append-only enforcement (``db``), the access log and its daily digest, the
one vocabulary of actions, the auditor's API, and a listener registry (``signals.event_recorded``) through
which concerns above it (webhooks) hear of each event. It records what accounts announce (``receivers``)."""
