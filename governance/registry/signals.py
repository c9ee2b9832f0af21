"""What the registry announces to the concerns above it (receivers connect in the app's ``ready()``)."""

from django.dispatch import Signal

# version, actor: a registered version's evidence changed (datasets linked, metrics recorded, its card edited),
# inside the changing transaction; promotion voids the decisions that relied on the old evidence.
version_evidence_changed = Signal()
