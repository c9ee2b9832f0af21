import copy
import re
import types
from collections.abc import Mapping

from rest_framework import serializers

from controlplane.patterns import NAME, SHA256

__all__ = ["NAME", "SHA256", "CachedFieldsModelSerializer", "Sha256Field", "StrictSerializer"]


class CachedFieldsModelSerializer(serializers.ModelSerializer):
    """DRF's ``ModelSerializer``, with the fields it derives from the model's ``Meta`` built once per class.

    DRF derives them again for every instance -- for a version's representation that was a fifth of the request's
    CPU (bench/README.md, issue 19). They depend only on the class, so each instance gets a copy of the first
    one's (unbound, as DRF's own declared fields are copied). A subclass whose fields depend on the instance or its
    context must not derive from this one."""

    def get_fields(self):
        cls = type(self)
        fields = cls.__dict__.get("_tollgate_fields")
        if fields is None:
            fields = super().get_fields()
            cls._tollgate_fields = fields
        return {name: field_copy(field) for name, field in fields.items()}


# What a copied field may share with the field it is copied from: values that cannot change, functions, classes.
_SHARED = (str, bytes, int, float, bool, type(None), re.Pattern, type, types.FunctionType, types.BuiltinFunctionType)


def field_copy(field: serializers.Field) -> serializers.Field:
    """What DRF's ``Field.__deepcopy__`` makes -- a new, unbound field from the same arguments -- without
    deep-copying the arguments that cannot change (strings, numbers, functions; validators and patterns, which DRF
    does not copy either); nested fields are copied the same way. DRF copies its declared fields for every
    serializer instance: about a sixth of the CPU of a request that validates and renders a version."""

    def argument(key, value):
        if isinstance(value, serializers.Field):
            return field_copy(value)
        if key in ("validators", "regex") or isinstance(value, _SHARED):
            return value
        return copy.deepcopy(value)

    args = [argument(None, value) for value in field._args]
    return field.__class__(*args, **{key: argument(key, value) for key, value in field._kwargs.items()})


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is a 400 that names it instead of a silent no-op."""

    def get_fields(self):
        return {name: field_copy(field) for name, field in self._declared_fields.items()}

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
