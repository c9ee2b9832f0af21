"""A field-level diff, the shape every audit event's ``diff`` uses for an update."""


def changes(before: dict, after: dict) -> dict:
    """``{field: {"from": old, "to": new}}`` for the fields that differ."""
    return {
        field: {"from": before.get(field), "to": after.get(field)}
        for field in sorted(set(before) | set(after))
        if before.get(field) != after.get(field)
    }
