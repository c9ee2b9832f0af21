"""Target labels: a governed row names itself as a path of ``kind:name`` parts (``model:fraud/v:3``), which
the audit trail stores and filters by prefix."""

import re

_LABEL_ESCAPES = re.compile(r"[%/\s\x00-\x1f\x7f-\x9f]")


def label_part(value) -> str:
    """A name as one part of a target label: ``%``, ``/``, whitespace and control characters percent-encoded."""
    return _LABEL_ESCAPES.sub(lambda m: "".join(f"%{byte:02X}" for byte in m[0].encode("utf-8")), str(value))
