"""A monitor's configuration, validated by one DRF serializer per kind (DESIGN §4 Monitoring).

The services run them (``monitor_config_validate``), so the API, the console and a management command refuse the
same configurations with the same problems: a ``DomainError`` (``invalid_config``) whose details name every
problem with its path (``config.per_column.amount.method``). The configuration is stored as it was sent (its hash
makes the revision), so the fields check JSON values and never convert them: a number is a JSON number, not a
string or a boolean. What the keys mean: ``monitoring.checks.quality`` (data_quality, model_quality) and
``monitoring.checks.engine`` (data_drift).
"""

from __future__ import annotations

import math
from typing import Any

from celery.schedules import crontab
from rest_framework import serializers
from rest_framework.settings import api_settings

from controlplane.exceptions import DomainError
from governance.registry.models import ModelVersion
from monitoring.checks import definitions, engine
from monitoring.models import MonitorKind

from ._common import CHECKED_AS, _invalid, _signature_columns

UNKNOWN_KEY = "unknown key"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def crontab_fields(text: str) -> dict:
    """``"m h dom mon dow"`` as django-celery-beat's fields; ValueError when one is not valid."""
    minute, hour, day_of_month, month_of_year, day_of_week = text.split()
    fields = {"minute": minute, "hour": hour, "day_of_month": day_of_month, "month_of_year": month_of_year,
              "day_of_week": day_of_week}  # fmt: skip
    crontab(**fields)  # parses every field
    return fields


# --- Fields: a JSON value checked as it is, with one message for every way it can be wrong ---


class Checked(serializers.Field):
    """A value ``accepts`` takes, kept as given; otherwise ``message`` -- for a null or missing value too, where
    the field does not allow them."""

    message = ""

    def __init__(self, message: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.message = message or self.message
        escaped = self.message.replace("{", "{{").replace("}", "}}")  # DRF formats these
        self.error_messages = {**self.error_messages, "required": escaped, "null": escaped}

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def to_internal_value(self, data):
        if not self.accepts(data):
            raise serializers.ValidationError(self.message)
        return data

    def to_representation(self, value):
        return value


class Number(Checked):
    """A finite JSON number (not a boolean) within the bounds given: above ``gt``, at least ``gte``, below
    ``lt``, at most ``lte``."""

    def __init__(self, message: str, *, gt=None, gte=None, lt=None, lte=None, **kwargs):
        super().__init__(message, **kwargs)
        self.gt, self.gte, self.lt, self.lte = gt, gte, lt, lte

    def accepts(self, value) -> bool:
        return self._number(value) and all(
            (
                self.gt is None or value > self.gt,
                self.gte is None or value >= self.gte,
                self.lt is None or value < self.lt,
                self.lte is None or value <= self.lte,
            )
        )

    def _number(self, value) -> bool:
        return _is_number(value)


class WholeNumber(Number):
    def _number(self, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)


class Share(Number):
    def __init__(self, **kwargs):
        super().__init__("a share from 0 to 1", gte=0, lte=1, **kwargs)


class Anything(Checked):
    """Any value: the serializer's ``validate_<field>`` checks it."""

    def accepts(self, value) -> bool:
        return True


class Text(Checked):
    """A non-empty string."""

    def accepts(self, value) -> bool:
        return isinstance(value, str) and bool(value)


class Label(Checked):
    message = "a label value (text, number or boolean)"

    def accepts(self, value) -> bool:
        return isinstance(value, str | int | bool)


class Object(Checked):
    """A JSON object, whatever it holds (its own checks go in the serializer's ``validate_<field>``)."""

    def accepts(self, value) -> bool:
        return isinstance(value, dict)


class Range(Checked):
    message = "[low, high], two numbers, low <= high"

    def accepts(self, value) -> bool:
        return isinstance(value, list) and len(value) == 2 and all(map(_is_number, value)) and value[0] <= value[1]


class Crontab(Checked):
    message = 'five crontab fields, e.g. "0 * * * *" (UTC)'

    def accepts(self, value) -> bool:
        try:
            crontab_fields(value)
        except (ValueError, TypeError, AttributeError):
            return False
        return True


class Columns(Checked):
    """Column names; with a signature (the ``signature`` in the context), names it has."""

    message = "a non-empty list of column names"

    def to_internal_value(self, data):
        super().to_internal_value(data)
        signature = self.context.get("signature")
        unknown = [c for c in data if signature and c not in signature]
        if unknown:
            raise serializers.ValidationError(f"not in the model's signature: {', '.join(unknown)}")
        return data

    def accepts(self, value) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(c, str) for c in value)


class Method(Checked):
    """A drift method the engine computes for the column type (Evidently's names: its report tests the column the
    same way): ``column_type``, else the context's (a column of the signature), else any."""

    def __init__(self, column_type: str | None = None, **kwargs):
        super().__init__("", **kwargs)
        self.column_type = column_type

    def known(self) -> list[str]:
        column_type = self.column_type or self.context.get("column_type")
        return sorted(name for name, m in engine.METHODS.items() if column_type is None or column_type in m.kinds)

    def to_internal_value(self, data):
        known = self.known()
        if data not in known:
            raise serializers.ValidationError(f"one of {', '.join(known)}")
        return data


class PerColumn(Checked):
    """``{column: its settings}``, each column's settings validated by ``child`` (with the column's type as the
    signature has it, in the context); with a signature, columns it has."""

    message = "a mapping of column name to its settings"

    def __init__(self, child: type[serializers.Serializer], **kwargs):
        super().__init__(**kwargs)
        self.child = child

    def accepts(self, value) -> bool:
        return isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())

    def to_internal_value(self, data):
        super().to_internal_value(data)
        signature = self.context.get("signature") or {}
        errors = {}
        for column, own in data.items():
            context = {**self.context, "column_type": CHECKED_AS.get(signature.get(column, ""))}
            settings = self.child(data=own, context=context)
            problems = {} if settings.is_valid() else dict(settings.errors)
            if signature and column not in signature:
                problems.setdefault(api_settings.NON_FIELD_ERRORS_KEY, []).append("not in the model's signature")
            if problems:
                errors[column] = problems
        if errors:
            raise serializers.ValidationError(errors)
        return data


# --- Serializers, one per kind ---


class Strict(serializers.Serializer):
    """Names every problem at once: each unknown key, and each field's."""

    def to_internal_value(self, data):
        unknown = {key: [UNKNOWN_KEY] for key in sorted(set(data) - set(self.fields))}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({**unknown, **exc.detail}) from None
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class ScheduleConfig(Strict):
    """``{"every_minutes": N}`` or ``{"crontab": "m h dom mon dow"}`` (UTC)."""

    SHAPE = '{"every_minutes": N} or {"crontab": "m h dom mon dow"}'

    every_minutes = WholeNumber("a whole number of minutes, 1 to 10080", gte=1, lte=7 * 24 * 60, required=False)
    crontab = Crontab(required=False)

    def to_internal_value(self, data):
        if not isinstance(data, dict) or len(data) != 1 or not set(data) <= set(self.fields):
            raise serializers.ValidationError(self.SHAPE)
        return super().to_internal_value(data)


class MonitorConfig(Strict):
    """The keys of every kind: when the monitor runs, and after how long without data it alerts."""

    schedule = ScheduleConfig(required=False, allow_null=True)
    freshness_hours = Number("a number of hours above 0", gt=0, lte=24 * 366, required=False, allow_null=True)

    def validate_freshness_hours(self, hours):
        if hours is not None and self.initial_data.get("schedule") is None:
            raise serializers.ValidationError("needs a schedule: freshness is evaluated when it runs")
        return hours


class DriftColumnConfig(Strict):
    method = Method(required=False, allow_null=True)
    threshold = Number("a positive number", gt=0, required=False, allow_null=True)


class DataDriftConfig(MonitorConfig):
    columns = Columns(required=False, allow_null=True)
    per_column = PerColumn(DriftColumnConfig, required=False)
    num_method = Method(definitions.NUMERICAL, required=False, allow_null=True)
    num_threshold = Number("a positive number", gt=0, required=False, allow_null=True)
    cat_method = Method(definitions.CATEGORICAL, required=False, allow_null=True)
    cat_threshold = Number("a positive number", gt=0, required=False, allow_null=True)
    max_drifted_columns = WholeNumber("a whole number, 0 or more", gte=0, required=False)
    fdr = Number("a false discovery rate between 0 and 1, or null (no correction)", gt=0, lt=1, required=False,
                 allow_null=True)  # fmt: skip
    drift_share = Number("a share above 0, at most 1", gt=0, lte=1, required=False, allow_null=True)


class QualityColumnConfig(Strict):
    max_missing_share = Share(required=False)
    max_out_of_range_share = Share(required=False)
    max_unseen_share = Share(required=False)
    range = Range(required=False, allow_null=True)


class DataQualityConfig(MonitorConfig):
    columns = Columns(required=False, allow_null=True)
    per_column = PerColumn(QualityColumnConfig, required=False)
    max_missing_share = Share(required=False)
    max_out_of_range_share = Share(required=False)
    max_unseen_share = Share(required=False)
    min_rows = WholeNumber("a whole number, 0 or more", gte=0, required=False, allow_null=True)
    max_rows = WholeNumber("a whole number, 0 or more", gte=0, required=False, allow_null=True)


class ModelQualityConfig(MonitorConfig):
    """task, target (a column of the labels), prediction (an output of the signature; default its first),
    pos_label, probas_threshold, thresholds ``{metric: {condition: bound}}``. The context's ``outputs`` are the
    signature's (None: no version to check against)."""

    task = serializers.ChoiceField(
        choices=[definitions.CLASSIFICATION, definitions.REGRESSION],
        error_messages={key: "classification or regression" for key in ("invalid_choice", "required", "null")},
    )
    target = Text("the name of the label column (in the labels or the batch)")
    prediction = Anything(required=False, allow_null=True, default=None)
    pos_label = Label(required=False)
    probas_threshold = Number("a probability between 0 and 1", gt=0, lt=1, required=False, allow_null=True)
    thresholds = Object("a mapping of metric to {condition: bound}", required=False)

    def validate_prediction(self, prediction):
        outputs = self.context.get("outputs")
        if prediction is None:
            if outputs is not None and not outputs:
                raise serializers.ValidationError("the signature has no output: name the prediction column")
        elif not isinstance(prediction, str) or (outputs and prediction not in outputs):
            raise serializers.ValidationError(f"one of the signature's outputs: {', '.join(outputs or []) or 'none'}")
        return prediction

    def validate_thresholds(self, thresholds):
        task = self.initial_data.get("task")
        known = definitions.QUALITY_METRICS.get(task, {}) if isinstance(task, str) else {}
        conditions = ", ".join(definitions.CONDITIONS)
        errors = {}
        for name, spec in thresholds.items():
            if known and name not in known:
                errors[name] = [f"one of {', '.join(known)} for {task}"]
            elif not (
                isinstance(spec, dict)
                and len(spec) == 1
                and set(spec) <= set(definitions.CONDITIONS)
                and all(map(_is_number, spec.values()))
            ):
                errors[name] = [f"one condition ({conditions}) and its bound"]
        if errors:
            raise serializers.ValidationError(errors)
        return thresholds


CONFIGS: dict[str, type[MonitorConfig]] = {
    MonitorKind.DATA_DRIFT: DataDriftConfig,
    MonitorKind.DATA_QUALITY: DataQualityConfig,
    MonitorKind.MODEL_QUALITY: ModelQualityConfig,
}


def _problems(detail, path: str):
    """(path, message) for each error of a DRF error detail; a serializer's own errors are its path's."""
    if isinstance(detail, dict):
        for key, inner in detail.items():
            yield from _problems(inner, path if key == api_settings.NON_FIELD_ERRORS_KEY else f"{path}.{key}")
    elif isinstance(detail, list):
        for inner in detail:
            yield from _problems(inner, path)
    else:
        yield path, str(detail)


def monitor_config_validate(kind: str, config: Any, *, version: ModelVersion | None) -> dict:
    """The configuration as given, once the kind's serializer accepts it; else a DomainError that lists every
    problem with its path. ``version``: the watched version, whose signature the columns must be in."""
    if not isinstance(config, dict):
        raise _invalid("config", "a mapping")
    context = {
        "signature": _signature_columns(version) if version is not None else {},
        "outputs": None if version is None else [c["name"] for c in (version.signature or {}).get("outputs") or []],
    }
    serializer = CONFIGS.get(kind, MonitorConfig)(data=config, context=context)
    if not serializer.is_valid():
        raise DomainError(
            "The monitor's configuration is not valid.",
            code="invalid_config",
            details=[{"field": path, "message": message} for path, message in _problems(serializer.errors, "config")],
        )
    return config
