"""The ``check`` gate (DESIGN §4, §5): the latest terminal check run of a kind for the version -- latest by its
batch's window -- passed, and finished no longer ago than ``max_age_hours``. ``error`` and ``timed_out`` count
as not passed. With no run of a kind that needs reference data and none linked, it says so and how to link it.
Registered in the gate registry from ``MonitoringConfig.ready()``."""

from __future__ import annotations

import datetime

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from governance.promotion.gates import FAILED, PASSED, PENDING, Gate, register
from governance.provenance.models import DatasetRole, ModelVersionDataset

from .models import REFERENCE_KINDS, TERMINAL_STATES, CheckRun, CheckState, MonitorKind
from .selectors import readable_reference_links, reference_link_hint, reference_missing

DEFAULT_MAX_AGE_HOURS = 168
MAX_AGE_HOURS_LIMIT = 24 * 366


@register
class CheckGate(Gate):
    """``{"kind": "check", "check_kind": "data_drift", "max_age_hours": 168}``"""

    kind = "check"
    description = "the latest check run of a kind for this version passed and is recent enough"

    @classmethod
    def spec_fields(cls):
        return ("check_kind", "max_age_hours")

    @classmethod
    def validate_spec(cls, spec, *, environment_kind):
        problems = super().validate_spec(spec, environment_kind=environment_kind)
        if spec.get("check_kind") not in MonitorKind.values:
            problems.append(("check_kind", f"one of {', '.join(MonitorKind.values)}"))
        age = spec.get("max_age_hours", DEFAULT_MAX_AGE_HOURS)
        if not isinstance(age, int | float) or isinstance(age, bool) or not 0 < age <= MAX_AGE_HOURS_LIMIT:
            problems.append(("max_age_hours", f"a number of hours, above 0 and at most {MAX_AGE_HOURS_LIMIT}"))
        return problems

    @property
    def target(self):
        return self.spec.get("check_kind", "")

    @classmethod
    def prefetch(cls, contexts):
        """Per context: the latest terminal run of each kind for its version (by batch window), the kinds with
        a run still to finish, and whether the version has (readable) reference data -- four queries for every
        context together."""
        versions = {ctx.version.pk for ctx in contexts}
        latest = (
            CheckRun.objects.filter(model_version__in=versions, state__in=TERMINAL_STATES)
            .annotate(rank=Window(RowNumber(), partition_by=[F("model_version_id"), F("kind")],
                                  order_by=[F("batch__window_end").desc(), F("finished_at").desc(), F("id").desc()]))
            .filter(rank=1)
            .select_related("batch")
        )  # fmt: skip
        found: dict[int, dict[str, CheckRun]] = {}
        for run in latest:
            found.setdefault(run.model_version_id, {})[run.kind] = run
        unfinished: dict[int, set[str]] = {}
        for version_id, kind in (
            CheckRun.objects.filter(
                model_version__in=versions, state__in=(CheckState.DEFERRED, CheckState.QUEUED, CheckState.RUNNING)
            )
            .values_list("model_version_id", "kind")
            .order_by()
            .distinct()
        ):
            unfinished.setdefault(version_id, set()).add(kind)
        readable = set(
            readable_reference_links().filter(model_version__in=versions).values_list("model_version_id", flat=True)
        )
        linked = set(
            ModelVersionDataset.objects.filter(model_version__in=versions, role=DatasetRole.REFERENCE).values_list(
                "model_version_id", flat=True
            )
        )
        for ctx in contexts:
            ctx.prefetched[cls.kind] = {"latest": found.get(ctx.version.pk, {}),
                                        "unfinished": unfinished.get(ctx.version.pk, set()),
                                        "reference": ctx.version.pk in readable,
                                        "reference_linked": ctx.version.pk in linked}  # fmt: skip

    def evaluate(self, ctx):
        check_kind = self.spec["check_kind"]
        max_age = float(self.spec.get("max_age_hours", DEFAULT_MAX_AGE_HOURS))
        if self.kind not in ctx.prefetched:
            type(self).prefetch([ctx])
        runs = ctx.prefetched[self.kind]
        latest = runs["latest"].get(check_kind)
        if latest is None:
            if check_kind in runs["unfinished"]:
                return self.result(PENDING, f"a {check_kind} check of this version is running")
            if check_kind in REFERENCE_KINDS and not runs["reference"]:
                why = reference_missing(ctx.version, check_kind, linked=runs["reference_linked"])
                return self.result(FAILED, why,
                                   link_reference=reference_link_hint(ctx.version))  # fmt: skip
            return self.result(
                FAILED,
                f"no {check_kind} check has run on this version's data: a {check_kind} monitor of the version "
                f'("version": {ctx.version.version}; before it is deployed too) or of its deployment checks each '
                "batch sent for the version",
            )
        evidence = {
            "check_run": latest.pk,
            "state": latest.state,
            "batch": latest.batch_id,
            "window_end": latest.batch.window_end.isoformat(),
            "finished_at": latest.finished_at.isoformat() if latest.finished_at else None,
        }
        if latest.state != CheckState.PASSED:
            why = latest.verdict or latest.error or latest.state
            if latest.below_reliable_size:
                why += " -- " + " ".join(w["message"] for w in latest.warnings)
            return self.result(FAILED, f"the latest {check_kind} check (run {latest.pk}) ended {latest.state}: {why}",
                               **evidence)  # fmt: skip
        age = ctx.now - latest.finished_at
        if age > datetime.timedelta(hours=max_age):
            return self.result(
                FAILED,
                f"the latest {check_kind} check (run {latest.pk}) passed {age.total_seconds() / 3600:.0f} hours ago; "
                f"it must be at most {max_age:g} hours old",
                **evidence,
            )
        return self.result(PASSED, f"the latest {check_kind} check (run {latest.pk}) passed: {latest.verdict}",
                           **evidence)  # fmt: skip
