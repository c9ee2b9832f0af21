"""Raw data (DESIGN §6): the project's data policy, who may download, and the daily purge past retention.
Only files go; hashes, schemas, check results and audit events stay, so the history still holds."""

from __future__ import annotations

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from controlplane.changes import changes
from controlplane.exceptions import Forbidden
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Project, Role
from governance.audit.services import audit_record
from governance.provenance.models import DatasetVersion
from governance.provenance.storage import delete_stored
from monitoring.models import Batch, CheckRun, DataPolicy, DatasetVersionPurge, ReportState

from ._common import _invalid, _system

log = logging.getLogger(__name__)


POLICY_EDITORS = (Role.ADMIN,)


def data_policy_of(project: Project) -> DataPolicy:
    """The project's data policy; the defaults (unsaved) until an admin changes it."""
    policy = DataPolicy.objects.filter(project=project).first()
    return policy or DataPolicy(project=project, download_roles=list(DataPolicy.DEFAULT_DOWNLOAD_ROLES))


@transaction.atomic
def data_policy_update(*, actor: Principal, project: Project, **fields) -> DataPolicy:
    """Admins set who may download raw data (roles) and how many days batches and reference data are kept
    (None: kept). Audited with the change."""
    require_role(actor, project, POLICY_EDITORS, action="change the data policy")
    roles = fields.get("download_roles")
    if roles is not None:
        unknown = sorted(set(roles) - set(Role.values))
        if unknown:
            raise _invalid("download_roles", f"unknown roles: {', '.join(unknown)}")
        fields["download_roles"] = sorted(set(roles))
    current = data_policy_of(project)
    if current.pk:
        current = DataPolicy.objects.select_for_update().get(pk=current.pk)
    keys = ("batch_retention_days", "reference_retention_days", "download_roles")
    before = {k: getattr(current, k) for k in keys}
    for name, value in fields.items():
        setattr(current, name, value)
    after = {k: getattr(current, k) for k in keys}
    if before != after or not current.pk:
        current.updated_by, current.updated_at = actor.user, timezone.now()
        current.save()
        audit_record(action="data_policy.updated", actor=actor, project=project, target=current,
                     diff=changes(before, after))  # fmt: skip
    return current


def raw_data_download_allow(*, actor: Principal, project: Project) -> None:
    """403 unless the caller holds one of the roles the project's data policy lets download raw data."""
    roles = data_policy_of(project).download_roles
    if not roles:
        raise Forbidden("This project's data policy lets nobody download raw data.", code="permission_denied",
                        project=project)  # fmt: skip
    require_role(actor, project, roles, action="download raw data (the project's data policy)", write=False)


def raw_data_prune(*, now: datetime.datetime | None = None) -> dict:
    """Beat, daily: delete the stored files of batches (with their labels and reports, which show the data's
    values) and of reference dataset versions older than their project's retention. Hashes, schemas, check
    runs with their results, and audit events stay; one ``raw_data.purged`` event per project says what went."""
    now = now or timezone.now()
    totals = {"batches": 0, "dataset_versions": 0}
    policies = {p.project_id: p for p in DataPolicy.objects.all()}
    for project in Project.objects.all():
        policy = policies.get(project.pk) or data_policy_of(project)
        batches, versions = [], []
        if policy.batch_retention_days is not None:
            cutoff = now - datetime.timedelta(days=policy.batch_retention_days)
            for batch in Batch.objects.filter(project=project, purged_at__isnull=True, created_at__lt=cutoff):
                if _purge_batch(batch, now):
                    batches.append({"batch": batch.pk, "sha256": batch.sha256})
        if policy.reference_retention_days is not None:
            cutoff = now - datetime.timedelta(days=policy.reference_retention_days)
            expired = (
                DatasetVersion.objects.filter(dataset__project=project, model_links__role="reference",
                                              created_at__lt=cutoff, purge__isnull=True)
                .exclude(storage_path="").distinct()
            )  # fmt: skip
            for version in expired:
                delete_stored(version.storage_path)
                _, created = DatasetVersionPurge.objects.get_or_create(
                    dataset_version=version, defaults={"project": project, "storage_path": version.storage_path,
                                                       "purged_at": now},
                )  # fmt: skip
                if created:
                    versions.append({"dataset_version": version.pk, "sha256": version.sha256})
        if batches or versions:
            audit_record(action="raw_data.purged", actor=_system(), project=project, target=project,
                         diff={"batches": batches, "dataset_versions": versions,
                               "batch_retention_days": policy.batch_retention_days,
                               "reference_retention_days": policy.reference_retention_days})  # fmt: skip
            totals["batches"] += len(batches)
            totals["dataset_versions"] += len(versions)
    if any(totals.values()):
        log.info("raw data pruned: %s", totals)
    return totals


def _purge_batch(batch: Batch, now: datetime.datetime) -> bool:
    """Files first (deleting twice is harmless), then the marks: a failure in between is retried next time."""
    reports = CheckRun.objects.filter(batch=batch, report_state=ReportState.READY)
    paths = [batch.storage_path, *batch.labels.values_list("storage_path", flat=True)]
    for json_path, html_path in reports.values_list("report_json_path", "report_html_path"):
        paths += [json_path, html_path]
    for path in paths:
        if path:
            delete_stored(path)
    with transaction.atomic():
        if not Batch.objects.filter(pk=batch.pk, purged_at__isnull=True).update(purged_at=now):
            return False
        CheckRun.objects.filter(batch=batch, report_state__in=(ReportState.READY, ReportState.PENDING,
                                                               ReportState.FAILED)).update(
            report_state=ReportState.PURGED, report_json_path="", report_html_path=""
        )  # fmt: skip
    return True
