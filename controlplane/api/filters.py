"""Query strings: one mechanism for every list (STYLE.md: "one filter style, unknown filters are 400").

A view names its filters with a django-filter ``FilterSet`` (``filterset_class``). ``query_filters(view)``
checks the query string against it: a parameter that is neither a filter nor one of the view's pagination or
format parameters, a filter given twice, and a value its filter does not accept are each a 400 in the one
error shape that names the parameter. What remains are the cleaned values of the filters that were given,
which the view passes to its selector (``view.filters``). The same FilterSet documents the filters in the
OpenAPI schema (drf-spectacular's django-filter integration).

``StrictFilterBackend`` (the default filter backend) applies the same check to a view that filters through
``filter_queryset`` and a FilterSet that filters by itself (the audit trail's).
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.utils.dateparse import parse_datetime
from django_filters import filters as django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.settings import api_settings

from .errors import DomainError


def pagination_parameters(view) -> list[str]:
    paginator = getattr(view, "paginator", None)
    if paginator is None:
        return []
    names = [
        getattr(paginator, attribute, None)
        for attribute in ("page_query_param", "cursor_query_param", "page_size_query_param")
    ]
    return [name for name in names if name]


def format_parameters(view) -> list[str]:
    """``format`` where the view renders more than one format (it is documented only there)."""
    formats = {getattr(renderer, "format", None) for renderer in view.renderer_classes} - {None}
    return [api_settings.URL_FORMAT_OVERRIDE] if api_settings.URL_FORMAT_OVERRIDE and len(formats) > 1 else []


def allowed_parameters(view) -> list[str]:
    filterset_class = getattr(view, "filterset_class", None)
    names = list(filterset_class.base_filters) if filterset_class else []
    if getattr(view, "ordering_fields", None):
        names.append("ordering")
    return names + pagination_parameters(view) + format_parameters(view)


def _listing(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names) if names else "no query parameters"


def _check_pagination(view, params) -> None:
    """``page`` and ``page_size`` are positive integers (a page past the last one is still a 404)."""
    paginator = getattr(view, "paginator", None)
    for attribute in ("page_query_param", "page_size_query_param"):
        name = getattr(paginator, attribute, None)
        if not name or name not in params:
            continue
        value = params[name]
        if attribute == "page_query_param" and value in getattr(paginator, "last_page_strings", ()):
            continue
        if not value.isdigit() or int(value) < 1:
            raise DomainError(
                f"Query parameter '{name}' must be a positive integer, not '{value}'.",
                code="invalid_query_parameter",
                details=[{"field": name, "message": "A positive integer is required.", "code": "invalid"}],
            )


def query_filters(view) -> dict:
    """The cleaned values of the filters given in ``view.request``'s query string; 400 for anything else."""
    params = view.request.query_params
    allowed = allowed_parameters(view)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise DomainError(
            f"Unknown query parameter '{unknown[0]}'. This endpoint takes {_listing(allowed)}.",
            code="unknown_query_parameter",
            details=[{"field": name, "message": "Unknown query parameter.", "code": "unknown"} for name in unknown],
        )
    filterset_class = getattr(view, "filterset_class", None)
    base_filters = filterset_class.base_filters if filterset_class else {}
    repeated = sorted(
        name
        for name in set(params)
        if len(params.getlist(name)) > 1 and not isinstance(base_filters.get(name), django_filters.MultipleChoiceFilter)
    )
    if repeated:
        raise DomainError(
            f"Query parameter '{repeated[0]}' is given {len(params.getlist(repeated[0]))} times; give it once.",
            code="invalid_query_parameter",
            details=[{"field": name, "message": "Given more than once.", "code": "repeated"} for name in repeated],
        )
    _check_pagination(view, params)
    if filterset_class is None:
        return {}
    filterset = filterset_class(data=params, queryset=_queryset(view, filterset_class), request=view.request)
    if not filterset.is_valid():
        details = [
            {"field": name, "message": message, "code": error.code or "invalid"}
            for name, errors in filterset.form.errors.as_data().items()
            for error in errors
            for message in error.messages
        ]
        first = details[0]
        given = params.get(first["field"])
        value = f" '{given}'" if given is not None else ""
        raise DomainError(
            f"Invalid value{value} for query parameter '{first['field']}': {first['message']}",
            code="invalid_query_parameter",
            details=details,
        )
    view._validated_filterset = filterset
    return {
        name: value
        for name, value in filterset.form.cleaned_data.items()
        if name in params and value not in (None, "", [])
    }


def _queryset(view, filterset_class):
    """An empty queryset of the view's model (the view's, or the FilterSet's ``Meta.model``): a FilterSet
    needs one to be built; the filtering itself happens in the selector or the backend."""
    queryset = getattr(view, "queryset", None)
    if queryset is not None:
        return queryset.none()
    if filterset_class._meta.model is not None:
        return filterset_class._meta.model.objects.none()
    raise ImproperlyConfigured(f"{type(view).__name__} has a filterset_class: give it queryset = Model.objects.none()")


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend after ``query_filters``: unknown parameters and invalid values are a 400 that
    names them (django-filter alone ignores unknown parameters)."""

    def filter_queryset(self, request, queryset, view):
        if hasattr(view, "filters"):
            view.filters  # noqa: B018 -- validates once (a cached property of the API views)
        else:
            query_filters(view)
        filterset = getattr(view, "_validated_filterset", None)
        if filterset is None:
            return queryset
        return filterset.filter_queryset(queryset)


class ZonedDateTimeField(forms.CharField):
    """An ISO 8601 date-time with a zone (``2026-05-01T12:00:00Z``): a naive time would mean a different
    moment on every server."""

    default_error_messages = {"invalid": "An ISO 8601 date-time with a zone is required, e.g. 2026-05-01T12:00:00Z."}

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        when = parse_datetime(value.strip().replace(" ", "+", 1) if "T" in value else value.strip())
        if when is None or when.tzinfo is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return when


class ZonedDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = ZonedDateTimeField


class IntegerFilter(django_filters.NumberFilter):
    """A whole number (an id, a version): ``1.5`` is refused rather than rounded."""

    field_class = forms.IntegerField


class StrictBooleanField(forms.NullBooleanField):
    """``true``/``false`` (or ``1``/``0``, ``yes``/``no``); anything else is invalid instead of ignored."""

    VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    widget = forms.TextInput  # NullBooleanSelect would turn an unknown value into "not given"
    default_error_messages = {"invalid": "Give true or false."}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        try:
            return self.VALUES[str(value).strip().lower()]
        except KeyError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def validate(self, value):
        pass


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField
