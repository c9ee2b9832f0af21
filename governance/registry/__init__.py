"""Registry: registered models, their versions (an artifact with its SHA-256, signature and parameters),
metrics, tags and model cards with their revisions. Registering a version cites its data (``provenance``);
what a change means for approvals is promotion's business, told through ``signals.version_evidence_changed``."""
