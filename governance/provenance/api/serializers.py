"""Serializers of the provenance API: datasets, their versions and datasheets, and OpenLineage events.


No package ships the OpenLineage JSON schema, so the 2-0-2 RunEvent structure is written out here as strict
serializers: required fields and their types, eventType values, run ids as UUIDs, times with a zone, and
the facets Tollgate interprets (schema, dataSource, version, parent, sourceCodeLocation, columnLineage, and its
own two: the run facet tollgate_modelVersion and the dataset facet tollgate_artifact); other facets only need
the base facet's ``_producer`` and ``_schemaURL``. A facet named like Tollgate's (``tollgate...``, any case) that
is not one of those two where it belongs is refused, naming the right one: such a facet is a link attempt that
would otherwise be stored and silently ignored. The body is read as bytes, so the event is stored exactly as
received.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from datetime import datetime

from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import ParseError, UnsupportedMediaType

from controlplane.api.serializers import NAME, SHA256, CachedFieldsModelSerializer, Sha256Field, StrictSerializer
from controlplane.exceptions import PayloadTooLarge
from governance.provenance import ingest
from governance.provenance.models import Classification, Dataset, DatasetVersion

COLUMN_TYPES = ["integer", "float", "string", "boolean", "datetime", "category", "binary", "list", "struct", "other"]


LABEL = r"^[^\s/\\]{1,200}$"


DATASHEET_HELP = "Datasheet field (Gebru et al., 'Datasheets for Datasets')."

EVENT_TYPES = ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
MAX_BATCH = 1000
MAX_DATASETS = 1000

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MODEL_NAME = re.compile(NAME)


# Facets ----------------------------------------------------------------------------------------------------
# A checker takes a value and returns None (valid), a message, or nested errors (dict by key, list by index).


def _string(value):
    return None if isinstance(value, str) else "A string is required."


def _text(value):
    return None if isinstance(value, str) and value else "A non-empty string is required."


def _uri(value):
    return None if isinstance(value, str) and _URI.match(value) else "A URI (with a scheme) is required."


def _uuid(value):
    return None if isinstance(value, str) and _UUID.match(value) else "A UUID is required."


def _label(value):
    if not isinstance(value, str) or not value or len(value) > 200:
        return "A version label of 1 to 200 characters is required."
    return None


def _model_name(value):
    return None if isinstance(value, str) and _MODEL_NAME.match(value) else "A registered model's name is required."


def _sha256(value):
    ok = isinstance(value, str) and re.fullmatch(SHA256, value) is not None
    return None if ok else "The artifact's SHA-256 as 64 lowercase hexadecimal digits is required."


def _positive(value):
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "A whole number, 1 or more, is required."


def _object(required: dict, optional: dict | None = None):
    optional = optional or {}

    def check(value):
        if not isinstance(value, dict):
            return "An object is required."
        errors = {}
        for name, checker in required.items():
            if name not in value:
                errors[name] = "This field is required."
            elif (error := checker(value[name])) is not None:
                errors[name] = error
        for name, checker in optional.items():
            if name in value and value[name] is not None and (error := checker(value[name])) is not None:
                errors[name] = error
        return errors or None

    return check


def _list_of(checker):
    def check(value):
        if not isinstance(value, list):
            return "A list is required."
        errors = [checker(item) for item in value]
        if all(error is None for error in errors):
            return None
        return [error if isinstance(error, dict | list) else ({} if error is None else [error]) for error in errors]

    return check


def _map_of(checker):
    def check(value):
        if not isinstance(value, dict):
            return "An object is required."
        errors = {key: error for key, item in value.items() if (error := checker(item)) is not None}
        return errors or None

    return check


def _schema_field(value):
    return _object({"name": _string}, {"type": _string, "description": _string, "fields": _list_of(_schema_field)})(
        value
    )


_INPUT_FIELD = _object(
    {"namespace": _string, "name": _string, "field": _string},
    {"transformations": _list_of(_object({"type": _string}, {"subtype": _string, "description": _string}))},
)
_JOB_REF = _object({"namespace": _text, "name": _text})
_RUN_REF = _object({"runId": _uuid})

# The facets Tollgate interprets, by the key producers send them under.
INTERPRETED = {
    "dataset": {
        "schema": _object({}, {"fields": _list_of(_schema_field)}),
        "dataSource": _object({}, {"name": _string, "uri": _uri}),
        "version": _object({"datasetVersion": _label}),
        "datasetVersion": _object({"datasetVersion": _label}),
        "columnLineage": _object(
            {"fields": _map_of(_object({"inputFields": _list_of(_INPUT_FIELD)}))}, {"dataset": _list_of(_INPUT_FIELD)}
        ),
        ingest.ARTIFACT_FACET: _object({"sha256": _sha256}),
    },
    "job": {
        "sourceCodeLocation": _object(
            {"type": _string, "url": _uri},
            {name: _string for name in ("repoUrl", "path", "version", "tag", "branch", "pullRequestNumber")},
        ),
    },
    "run": {
        "parent": _object({"run": _RUN_REF, "job": _JOB_REF}, {"root": _object({"run": _RUN_REF, "job": _JOB_REF})}),
        ingest.MODEL_VERSION_FACET: _object({"model": _model_name, "version": _positive}),
    },
    "input": {},
    "output": {},
}
DELETABLE = ("dataset", "job")  # the spec gives only dataset and job facets a ``_deleted`` flag
# Tollgate's own facets, by where they belong.
TOLLGATE_FACETS = {ingest.MODEL_VERSION_FACET: "run", ingest.ARTIFACT_FACET: "dataset"}
KIND_NAMES = {"run": "run.facets", "job": "job.facets", "dataset": "the facets of an input or output",
              "input": "inputFacets", "output": "outputFacets"}  # fmt: skip


def _tollgate_facet_error(kind: str, name: str) -> str | None:
    """A facet named like Tollgate's that is not one of its facets where it belongs: what to send instead."""
    if not name.lower().replace("_", "").replace("-", "").startswith("tollgate"):
        return None
    if TOLLGATE_FACETS.get(name) == kind:
        return None
    known = (
        f"Tollgate reads two facets of its own: the run facet {ingest.MODEL_VERSION_FACET} "
        '({"model": "<model name>", "version": <version number>}) in run.facets, and the dataset facet '
        f'{ingest.ARTIFACT_FACET} ({{"sha256": "<hex>"}}) in the facets of an output that is the model artifact.'
    )
    if name in TOLLGATE_FACETS:
        return f"{name} is not read in {KIND_NAMES[kind]}. {known}"
    return f"'{name}' is not a Tollgate facet (names are case-sensitive). {known}"


class FacetsField(serializers.Field):
    """A facets object: each facet an object with the base facet's ``_producer`` and ``_schemaURL`` URIs;
    the interpreted ones checked field by field. The value is kept as sent."""

    def __init__(self, *, kind: str, **kwargs):
        self.kind = kind
        super().__init__(required=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("A facets object is required.")
        errors = {}
        for name, facet in data.items():
            if (misplaced := _tollgate_facet_error(self.kind, name)) is not None:
                errors[name] = [misplaced]
                continue
            if not isinstance(facet, dict):
                errors[name] = ["A facet is an object."]
                continue
            error = _object({"_producer": _uri, "_schemaURL": _uri})(facet) or {}
            deleted = facet.get("_deleted")
            if "_deleted" in facet and self.kind in DELETABLE and not isinstance(deleted, bool):
                error["_deleted"] = "A boolean is required."
            checker = INTERPRETED[self.kind].get(name)
            if checker is not None and deleted is not True and (specific := checker(facet)):
                error.update(specific if isinstance(specific, dict) else {"": specific})
            if error:
                errors[name] = error
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def to_representation(self, value):
        return value


# The RunEvent ----------------------------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """A JSON string, nothing coerced into one, kept exactly (no trimming)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("A string is required.", code="invalid")
        return super().to_internal_value(data)


class UriField(StrictCharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not _URI.match(value):
            raise serializers.ValidationError("A URI (with a scheme) is required.", code="invalid")
        return value


class RunIdField(StrictCharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not _UUID.match(value):
            raise serializers.ValidationError("A UUID (8-4-4-4-12 hexadecimal digits) is required.", code="invalid")
        return uuid.UUID(value)


class ZonedDateTimeField(StrictCharField):
    """An RFC 3339 date-time: a date, 'T', a time and a zone (``Z`` or an offset)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise serializers.ValidationError("An ISO 8601 date-time is required.", code="invalid") from None
        if "T" not in value.upper():
            raise serializers.ValidationError("A date-time with a time ('T') is required.", code="invalid")
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise serializers.ValidationError("The time needs a zone: 'Z' or an offset like +02:00.", code="no_zone")
        return parsed


class EventPartSerializer(StrictSerializer):
    """Strict, and reporting unknown fields together with every other error of the object."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        errors = {name: ["Unknown field."] for name in unknown}
        try:
            value = serializers.Serializer.to_internal_value(self, data)
        except serializers.ValidationError as error:
            detail = error.detail if isinstance(error.detail, dict) else {"non_field_errors": error.detail}
            errors = {**detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return value


class DatasetSerializer(EventPartSerializer):
    namespace = StrictCharField(max_length=255)
    name = StrictCharField(max_length=255)
    facets = FacetsField(kind="dataset")


class InputDatasetSerializer(DatasetSerializer):
    inputFacets = FacetsField(kind="input")  # noqa: N815 - the spec's name


class OutputDatasetSerializer(DatasetSerializer):
    outputFacets = FacetsField(kind="output")  # noqa: N815


class JobSerializer(EventPartSerializer):
    namespace = StrictCharField(max_length=255)
    name = StrictCharField(max_length=255)
    facets = FacetsField(kind="job")


class RunSerializer(EventPartSerializer):
    runId = RunIdField()  # noqa: N815
    facets = FacetsField(kind="run")


class RunEventSerializer(EventPartSerializer):
    """An OpenLineage 2-0-2 RunEvent. Unknown fields are refused, as everywhere in this API; facets are open."""

    eventTime = ZonedDateTimeField()  # noqa: N815
    producer = UriField()
    schemaURL = UriField()  # noqa: N815
    eventType = serializers.ChoiceField(choices=EVENT_TYPES, required=False)  # noqa: N815
    run = RunSerializer()
    job = JobSerializer()
    inputs = InputDatasetSerializer(many=True, required=False, max_length=MAX_DATASETS)
    outputs = OutputDatasetSerializer(many=True, required=False, max_length=MAX_DATASETS)

    def to_internal_value(self, data):
        if isinstance(data, dict) and "run" not in data and ("dataset" in data or "job" in data):
            raise serializers.ValidationError(
                {"run": ["Tollgate ingests RunEvents; DatasetEvents and JobEvents (no run) are not accepted."]}
            )
        return super().to_internal_value(data)


def _indexed(detail):
    """DRF reports a list's errors as ``{index: errors}``; name them ``inputs[0]`` as the facets' lists do."""
    if isinstance(detail, list):
        return [_indexed(value) for value in detail]
    if not isinstance(detail, dict):
        return detail
    named = {}
    for key, value in detail.items():
        value = _indexed(value)
        if isinstance(value, dict) and value and all(isinstance(index, int) for index in value):
            named.update({f"{key}[{index}]": errors for index, errors in value.items()})
        else:
            named[key] = value
    return named


def validate_event(value) -> dict:
    """The validated event, or a ValidationError naming each bad field (``run.runId``, ``inputs[0].name``)."""
    serializer = RunEventSerializer(data=value)
    if not serializer.is_valid():
        raise serializers.ValidationError(_indexed(serializer.errors))
    return serializer.validated_data


# Reading the body ------------------------------------------------------------------------------------------


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
_WS = re.compile(r"[ \t\n\r]*")


def _body_text(request) -> str:
    """The body as text, exactly as sent (after gzip, which the OpenLineage client may use)."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(request.content_type or "none")
    raw = request.body
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "gzip":
        limit = settings.TOLLGATE_MAX_JSON_BODY_BYTES
        inflater = zlib.decompressobj(wbits=31)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise ParseError("The gzip body could not be decompressed.") from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"The decompressed body is larger than {limit} bytes.")
    elif encoding != "identity":
        raise UnsupportedMediaType(request.content_type, detail=f"Content-Encoding '{encoding}' is not supported.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("The body is not UTF-8.") from None


def _parse(text: str):
    try:
        value, end = _DECODER.raw_decode(text, _WS.match(text).end())
    except ValueError as error:
        raise ParseError(f"The body is not valid JSON: {error}") from None
    if _WS.match(text, end).end() != len(text):
        raise ParseError("The body has content after its JSON value.")
    return value


def _array_items(text: str) -> list[tuple[str, object]]:
    """Each element of a JSON array with its own text, exactly as it appears in the body."""
    position = _WS.match(text).end()
    if text[position : position + 1] != "[":
        raise ParseError("The batch body is a JSON array of RunEvents.")
    position = _WS.match(text, position + 1).end()
    items: list[tuple[str, object]] = []
    if text[position : position + 1] == "]":
        position += 1
    else:
        try:
            while True:
                value, end = _DECODER.raw_decode(text, position)
                items.append((text[position:end], value))
                position = _WS.match(text, end).end()
                separator = text[position : position + 1]
                if separator == "]":
                    position += 1
                    break
                if separator != ",":
                    raise ParseError("The batch body is not a valid JSON array.")
                position = _WS.match(text, position + 1).end()
        except ValueError as error:
            raise ParseError(f"The body is not valid JSON: {error}") from None
    if _WS.match(text, position).end() != len(text):
        raise ParseError("The body has content after its JSON array.")
    return items


# Datasets and their versions ----------------------------------------------------------------------------------


def _text_field(**kwargs):
    return serializers.CharField(required=False, allow_blank=True, max_length=20000, **kwargs)


class DatasetSerializer(CachedFieldsModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None, read_only=True)
    version_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Dataset
        fields = [
            "id", "namespace", "name", "owner", "description", "license", "classification", "contains_pii",
            "pii_justification", "version_count", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class DatasetCreateSerializer(StrictSerializer):
    namespace = serializers.CharField(max_length=255, help_text="As in OpenLineage: e.g. s3://bucket, postgres://db")
    name = serializers.CharField(max_length=255)
    description = _text_field(default="")
    license = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    classification = serializers.ChoiceField(choices=Classification.choices, required=False, allow_blank=True)
    contains_pii = serializers.BooleanField(required=False, default=False)
    pii_justification = _text_field(default="")


class DatasetUpdateSerializer(StrictSerializer):
    """The editable fields; ``namespace`` and ``name`` may be sent, but only unchanged (else 409)."""

    namespace = serializers.CharField(max_length=255, required=False)
    name = serializers.CharField(max_length=255, required=False)
    description = _text_field()
    license = serializers.CharField(required=False, allow_blank=True, max_length=200)
    classification = serializers.ChoiceField(choices=Classification.choices, required=False, allow_blank=True)
    contains_pii = serializers.BooleanField(required=False)
    pii_justification = _text_field()


class ColumnSerializer(StrictSerializer):
    name = serializers.CharField(max_length=500)
    type = serializers.ChoiceField(choices=COLUMN_TYPES)


class DatasetVersionSerializer(CachedFieldsModelSerializer):
    dataset = serializers.IntegerField(source="dataset_id", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    schema = ColumnSerializer(many=True, read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "id", "dataset", "version", "kind", "uri", "storage_path", "sha256", "size_bytes", "row_count", "schema",
            "motivation", "composition", "collection_process", "known_biases", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class DatasheetSerializer(StrictSerializer):
    motivation = _text_field(help_text=DATASHEET_HELP)
    composition = _text_field(help_text=DATASHEET_HELP)
    collection_process = _text_field(help_text=DATASHEET_HELP)
    known_biases = _text_field(help_text=DATASHEET_HELP)


class DatasetVersionRegisterSerializer(DatasheetSerializer):
    """Registration by reference: the location and the hash the caller computed over its bytes."""

    uri = serializers.CharField(
        max_length=2000, help_text="s3://, gs://, az://, abfs://, hdfs://, https://, storage://"
    )
    sha256 = Sha256Field(help_text="SHA-256 of the data's bytes, 64 hex characters.")
    version = serializers.RegexField(LABEL, required=False, help_text="Default: the next number (1, 2, ...).")
    row_count = serializers.IntegerField(required=False, min_value=0, allow_null=True)
    schema = ColumnSerializer(many=True, required=False, max_length=10000)


class DatasetVersionUploadSerializer(DatasheetSerializer):
    """Upload (multipart/form-data): a Parquet or CSV ``file``; row count and schema are read from it."""

    file = serializers.FileField(help_text="Parquet, or CSV (named .csv or sent as text/csv).")
    version = serializers.RegexField(LABEL, required=False, help_text="Default: the next number (1, 2, ...).")
    sha256 = Sha256Field(required=False, help_text="If given, the upload must hash to it.")


class DatasetVersionUpdateSerializer(DatasheetSerializer):
    """The datasheet fields; the immutable ones may be sent, but only unchanged (else 409)."""

    uri = serializers.CharField(max_length=2000, required=False)
    sha256 = serializers.CharField(max_length=64, required=False)
    version = serializers.CharField(max_length=200, required=False)
    row_count = serializers.IntegerField(required=False, allow_null=True)
    schema = ColumnSerializer(many=True, required=False, max_length=10000)
