"""OpenLineage ingest (``POST lineage``, ``POST lineage/batch/``), the lineage graph (``GET lineage/``) and a
model version's PROV-JSON export (``.../versions/{v}/lineage.prov.json``).

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

import django_filters
from django.conf import settings
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.response import Response

from controlplane.api.errors import _flatten
from controlplane.api.filters import IntegerFilter
from controlplane.api.serializers import StrictSerializer
from controlplane.exceptions import DomainError, PayloadTooLarge
from governance import lineage
from governance.accounts.api.base import ApiView, ProjectApiView
from governance.models import LineageEvent
from governance.services import lineage as services

from .registry import NAME, SHA256, VersionMixin

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
        services.ARTIFACT_FACET: _object({"sha256": _sha256}),
    },
    "job": {
        "sourceCodeLocation": _object(
            {"type": _string, "url": _uri},
            {name: _string for name in ("repoUrl", "path", "version", "tag", "branch", "pullRequestNumber")},
        ),
    },
    "run": {
        "parent": _object({"run": _RUN_REF, "job": _JOB_REF}, {"root": _object({"run": _RUN_REF, "job": _JOB_REF})}),
        services.MODEL_VERSION_FACET: _object({"model": _model_name, "version": _positive}),
    },
    "input": {},
    "output": {},
}
DELETABLE = ("dataset", "job")  # the spec gives only dataset and job facets a ``_deleted`` flag
# Tollgate's own facets, by where they belong.
TOLLGATE_FACETS = {services.MODEL_VERSION_FACET: "run", services.ARTIFACT_FACET: "dataset"}
KIND_NAMES = {"run": "run.facets", "job": "job.facets", "dataset": "the facets of an input or output",
              "input": "inputFacets", "output": "outputFacets"}  # fmt: skip


def _tollgate_facet_error(kind: str, name: str) -> str | None:
    """A facet named like Tollgate's that is not one of its facets where it belongs: what to send instead."""
    if not name.lower().replace("_", "").replace("-", "").startswith("tollgate"):
        return None
    if TOLLGATE_FACETS.get(name) == kind:
        return None
    known = (
        f"Tollgate reads two facets of its own: the run facet {services.MODEL_VERSION_FACET} "
        '({"model": "<model name>", "version": <version number>}) in run.facets, and the dataset facet '
        f'{services.ARTIFACT_FACET} ({{"sha256": "<hex>"}}) in the facets of an output that is the model artifact.'
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


# Views -----------------------------------------------------------------------------------------------------


class GraphQueryFilter(django_filters.FilterSet):
    nodeId = django_filters.CharFilter(  # noqa: N815
        required=True, max_length=700, help_text="dataset:{ns}:{name}, job:{ns}:{name} or model:{name}:{version}"
    )
    depth = IntegerFilter(min_value=0, max_value=lineage.MAX_DEPTH, help_text="Default 20.")
    direction = django_filters.ChoiceFilter(choices=[(d, d) for d in lineage.DIRECTIONS], help_text="Default both.")
    project = django_filters.CharFilter(help_text="Needed only when the node exists in several projects.")


def _ingested(result: services.IngestResult) -> dict:
    return {
        "status": "created" if result.created else "duplicate",
        "sha256": result.event.sha256,
        "runId": str(result.event.run_id),
        "changed": result.changed,
        "modelVersion": result.link.as_dict(),
    }


INGEST_ANSWER = (
    " The answer says whether the run is linked to the model version it produced (`modelVersion`: `linked`, "
    "`by` `facet` or `artifact`, `model`, `version`; if not, `reason` -- `run_not_complete`, `no_outputs`, "
    "`no_matching_version`, `several_versions`, `sha256_differs`, `link_pending` -- and a `message` saying "
    "what to do; `outputs`: the run's outputs that name a location, their URIs and the versions with those "
    "artifact URIs). A run is linked by the run facet `tollgate_modelVersion` "
    '(`{"model": "fraud-gbm", "version": 3}`), or when it is COMPLETE and one output is the artifact of exactly '
    "one version of the key's project (namespace + '/' + name, or the name, equal to its artifact_uri; the "
    'dataset facet `tollgate_artifact` `{"sha256": ...}` must then match its artifact_sha256).'
)


class LineageView(ApiView):
    """``POST``: ingest one OpenLineage RunEvent (the OpenLineage clients' default endpoint); the project is
    the one the caller's key is pinned to. ``GET`` (``lineage/``): the lineage graph around ``nodeId``."""

    queryset = LineageEvent.objects.none()  # for the schema of GET's filters
    filterset_class = GraphQueryFilter  # GET's query string
    pagination_class = None

    @extend_schema(
        operation_id="lineage_ingest",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        description="An OpenLineage 2-0-2 RunEvent. 201 when stored, 200 when the same event (these bytes, or the "
        "same JSON) was stored before, 409 naming the stored event when the run has another one with this "
        "eventType and eventTime." + INGEST_ANSWER,
    )
    def post(self, request):
        project = services.lineage_ingest_project(self.principal)
        text = _body_text(request)
        event = validate_event(_parse(text))
        result = services.lineage_event_ingest(actor=self.principal, project=project, body=text, event=event)
        return Response(_ingested(result), status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        """The lineage graph around `nodeId` (Marquez-style), resolved inside your projects, at most `depth`
        steps away, with `truncated` when it was capped."""
        data = self.filters
        return Response(
            lineage.lineage_graph(
                principal=self.principal,
                node_id=data["nodeId"],
                depth=data.get("depth", 20),
                direction=data.get("direction", "both"),
                project_slug=data.get("project"),
            )
        )


class LineageIngestView(LineageView):
    """``POST api/v1/lineage``: the path the OpenLineage clients post to by default (no trailing slash)."""

    http_method_names = ["post", "options"]

    @extend_schema(
        operation_id="lineage_ingest_default_path",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
        description="The same as POST /api/v1/lineage/, at the OpenLineage clients' default path.",
    )
    def post(self, request):
        return super().post(request)


class LineageBatchView(ApiView):
    """``POST`` a JSON array of RunEvents. Each is validated and stored on its own (one bad event does not
    stop the others); the answer is 200 with a result per event, in order (an altered replay of a stored event
    is ``refused`` with the 409's error, ``lineage_event_conflict``)."""

    @extend_schema(request={"application/json": OpenApiTypes.OBJECT}, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        project = services.lineage_ingest_project(self.principal)
        items = _array_items(_body_text(request))
        if len(items) > MAX_BATCH:
            raise DomainError(f"A batch holds at most {MAX_BATCH} events.", details=[{"field": "body"}])
        results = []
        for index, (text, value) in enumerate(items):
            try:
                event = validate_event(value)
                result = services.lineage_event_ingest(actor=self.principal, project=project, body=text, event=event)
            except serializers.ValidationError as error:
                results.append({"index": index, "status": "invalid", "error": {
                    "code": "invalid", "message": "The event is not a valid RunEvent.",
                    "details": _flatten(error.detail)}})  # fmt: skip
                continue
            except DomainError as error:
                results.append({"index": index, "status": "refused", "error": {
                    "code": error.code, "message": error.message, "details": error.details}})  # fmt: skip
                continue
            results.append({"index": index, **_ingested(result)})
        failed = sum(1 for r in results if r["status"] in ("invalid", "refused"))
        overall = "success" if not failed else ("failure" if failed == len(results) else "partial_success")
        return Response(
            {
                "status": overall,
                "summary": {"received": len(results), "successful": len(results) - failed, "failed": failed},
                "results": results,
            }
        )


class ProvExportView(VersionMixin, ProjectApiView):
    """The version's upstream lineage as a W3C PROV-JSON document, for auditors."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, project, model, version):
        base = request.build_absolute_uri(f"/api/v1/projects/{self.project.slug}/")
        response = Response(lineage.prov_document(self.version, base_uri=base))
        response["Content-Disposition"] = f'inline; filename="{model}-v{version}.prov.json"'
        return response
