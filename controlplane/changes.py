"""Updating a governed row: a field-level diff (the shape every audit event's ``diff`` uses) and the one update
helper that computes it."""

from collections.abc import Mapping
from typing import Any


def changes(before: dict, after: dict) -> dict:
    """``{field: {"from": old, "to": new}}`` for the fields that differ."""
    return {
        field: {"from": before.get(field), "to": after.get(field)}
        for field in sorted(set(before) | set(after))
        if before.get(field) != after.get(field)
    }


def model_update(instance, data: Mapping[str, Any], *, also: Mapping[str, Any] | None = None) -> dict:
    """Set ``data``'s fields on ``instance``; if any value changed, also set ``also``'s (what goes with a change:
    ``updated_at``, say), save exactly those fields and return the diff of ``data``'s; else write nothing and
    return ``{}``. The caller has locked the row, checked the caller's rights and refused immutable fields;
    ``governance.audit.services.audited_update`` adds the audit event."""
    before = {field: getattr(instance, field) for field in data}
    for field, value in data.items():
        setattr(instance, field, value)
    diff = changes(before, {field: getattr(instance, field) for field in data})
    if diff:
        for field, value in (also or {}).items():
            setattr(instance, field, value)
        instance.save(update_fields=[*diff, *(also or {})])
    return diff
