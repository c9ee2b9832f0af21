from collections.abc import Mapping

from rest_framework import serializers

from controlplane.patterns import NAME, SHA256

__all__ = ["NAME", "SHA256", "Sha256Field", "StrictSerializer"]


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is a 400 that names it instead of a silent no-op."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class Sha256Field(serializers.RegexField):
    """The one SHA-256 field of every serializer: either case in, lowercase out."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "SHA-256, 64 hex characters (either case).")
        super().__init__(SHA256, **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data).lower()
