from collections.abc import Mapping

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is a 400 that names it instead of a silent no-op."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


# A name that appears in a URL path (a registered model's, for one): a letter or digit, then letters, digits,
# dots, underscores and hyphens, 200 at most.
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
