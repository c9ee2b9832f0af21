"""Querysets compiled to SQL once per connection: for the few lookups that every API request makes.

Django builds a queryset and compiles its SQL at every evaluation; for a request that runs three small lookups
(the API key, the version of the path, its children) that is about half of the request's CPU (bench/README.md,
issue 19). A ``Prepared`` query is a function that builds the queryset from keyword parameters. It is built and
compiled once per database connection (and per set of parameters given, for ``build``'s optional ones, which
change the structure of the queryset), with unique placeholder values; each call then runs the compiled SQL with
the real values and turns the rows into model instances -- with their ``select_related`` objects and annotations -- as
Django's own ``ModelIterable`` does. What a call returns is what ``list(build(**values))`` returns; the test of
each prepared query compares the two (tests/controlplane/test_prepared.py).

Rules for ``build``: every value that changes between calls is a parameter (the current time too: nothing
computed inside ``build`` may vary), each parameter is used as a plain value (``field=value``,
``field__lte=value``: not ``__contains`` or ``__in``, which transform or expand it), and the queryset has no
``prefetch_related`` (prefetch on the result). Only on PostgreSQL: elsewhere (the embedded SQLite default) a
call builds and evaluates the queryset as usual.
"""

from collections.abc import Callable
from dataclasses import dataclass
from itertools import count

from django.db import connection
from django.db.models import QuerySet
from django.db.models.query import get_related_populators

_CACHE_ATTRIBUTE = "_tollgate_prepared"
_sentinel_numbers = count(1)


@dataclass
class _Compiled:
    sql: str
    params: list
    slots: dict  # parameter name -> (position in ``params``, the type the compiler gave the value there)
    model: type
    init_list: list
    fields_start: int
    fields_end: int
    populators: list
    annotations: dict
    converters: dict
    compiler: object
    trim: int | None

    def instances(self, rows: list) -> list:
        if self.trim is not None:
            rows = [row[: self.trim] for row in rows]
        if self.converters:
            rows = self.compiler.apply_converters(rows, self.converters)
        found = []
        for row in rows:
            obj = self.model.from_db(connection.alias, self.init_list, row[self.fields_start : self.fields_end])
            for populator in self.populators:
                populator.populate(row, obj)
            for name, position in self.annotations.items():
                setattr(obj, name, row[position])
            found.append(obj)
        return found


class Prepared:
    """``build(**values) -> QuerySet``, compiled once per connection; ``samples`` gives each parameter a value of
    its type (a string, an int, a datetime): the placeholder is derived from it."""

    def __init__(self, build: Callable[..., QuerySet], **samples):
        self.build = build
        self.samples = samples

    def __call__(self, **values) -> list:
        if connection.vendor != "postgresql":
            return list(self.build(**values))
        compiled = self._compiled(values)
        params = list(compiled.params)
        for name, positions in compiled.slots.items():
            value = values[name]
            for position, kind in positions:
                params[position] = value if type(value) is kind else kind(value)  # psycopg's Int4 as compiled
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return compiled.instances(rows)

    def first(self, **values):
        found = self(**values)
        return found[0] if found else None

    def _compiled(self, values: dict) -> _Compiled:
        cache = connection.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
        key = (id(self), *sorted(values))  # an optional parameter left out is another shape
        compiled = cache.get(key)
        if compiled is None:
            compiled = cache[key] = self._compile(values)
        return compiled

    def _compile(self, values: dict) -> _Compiled:
        if not set(values) <= set(self.samples):
            raise TypeError(f"parameters {sorted(values)} are not among {sorted(self.samples)}")
        placeholders = {name: _placeholder(self.samples[name]) for name in values}
        queryset = self.build(**placeholders)
        if queryset._prefetch_related_lookups or queryset._known_related_objects:
            raise ValueError("a prepared queryset has no prefetch_related and no known related objects")
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        params = list(params)
        slots = {
            name: [(i, type(p)) for i, p in enumerate(params) if _same(p, value)]
            for name, value in placeholders.items()
        }
        for name, positions in slots.items():
            if not positions:
                raise ValueError(f"parameter {name!r} is not a plain value of the compiled query")
        klass_info, select = compiler.klass_info, compiler.select
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        fields = [s[0] for s in select[0 : compiler.col_count]]
        return _Compiled(
            sql=sql,
            params=params,
            slots=slots,
            model=klass_info["model"],
            init_list=[f[0].target.attname for f in select[start:end]],
            fields_start=start,
            fields_end=end,
            populators=get_related_populators(klass_info, select, connection.alias),
            annotations=dict(compiler.annotation_col_map or {}),
            converters=compiler.get_converters(fields),
            compiler=compiler,
            trim=compiler.col_count if compiler.has_extra_select else None,
        )


def _placeholder(sample):
    """A value of ``sample``'s type that no real parameter has: a distinct number, string or moment."""
    n = next(_sentinel_numbers)
    if isinstance(sample, bool):
        raise TypeError("a boolean is a shape, not a parameter")
    if isinstance(sample, int):  # within a 32-bit column's range: Django refuses a lookup outside it
        return 2_147_480_000 + n
    if isinstance(sample, str):
        return f"\x1fprepared-placeholder-{n}\x1f"
    if hasattr(sample, "replace") and hasattr(sample, "microsecond"):  # a datetime
        return sample.replace(year=1, month=1, day=1, hour=0, minute=0, second=0, microsecond=n % 1_000_000)
    raise TypeError(f"no placeholder for a {type(sample).__name__}")


def _same(param, placeholder) -> bool:
    return isinstance(param, type(placeholder)) and param == placeholder
