"""Raw data (issue 10): the project's data policy (who may download, how long it is kept), downloads in the
access log, and the prune that deletes expired files while hashes, results and audit events stay."""

import datetime
import io

import pandas as pd
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from governance.audit.models import AccessLogEntry, AuditEvent
from governance.provenance.models import DatasetVersion
from monitoring.models import Batch, CheckRun
from monitoring.selectors import reference_of
from monitoring.services.retention import raw_data_prune
from tests.monitoring.conftest import create_monitor, same_as_reference, upload, url

pytestmark = pytest.mark.usefixtures("celery_eager")
flow = pytest.mark.django_db(transaction=True)


@pytest.mark.django_db
def test_admins_set_the_data_policy(api, project, admin_user, ml_engineer, auditor):
    policy_url = url(project, "data-policy/")
    assert api(auditor).get(policy_url).json() | {"updated_at": None} == {
        "batch_retention_days": 90, "reference_retention_days": None, "download_roles": ["ml_engineer"],
        "updated_by": None, "updated_at": None}  # fmt: skip
    assert api(ml_engineer).patch(policy_url, {"batch_retention_days": 7}, format="json").status_code == 403
    bad = api(admin_user).patch(policy_url, {"download_roles": ["root"]}, format="json")
    assert bad.status_code == 400
    changed = api(admin_user).patch(policy_url, {"batch_retention_days": 30, "download_roles": ["auditor",
                                    "ml_engineer"]}, format="json")  # fmt: skip
    assert changed.status_code == 200
    assert changed.json()["download_roles"] == ["auditor", "ml_engineer"] and changed.json()["updated_by"] == "admin"
    event = AuditEvent.objects.get(action="data_policy.updated")
    assert "batch_retention_days" in str(event.diff)


@flow
def test_downloads_follow_the_policy_and_are_logged(api, project, admin_user, ml_engineer, auditor, reference):
    engineer = api(ml_engineer)
    batch = upload(engineer, project, same_as_reference(), environment="production").json()
    download = url(project, f"batches/{batch['id']}/download/")
    response = engineer.get(download)
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    frame = pd.read_parquet(io.BytesIO(b"".join(response.streaming_content)))
    assert len(frame) == 300 and set(frame.columns) == {"amount", "country", "score"}
    assert api(auditor).get(download).status_code == 403
    entry = AccessLogEntry.objects.filter(path=download, status=200).get()
    assert (entry.principal_name, entry.detail) == ("mlengineer", "download batch")

    dataset_download = url(project, f"datasets/{reference.dataset_id}/versions/{reference.pk}/download/")
    assert api(auditor).get(dataset_download).status_code == 403
    api(admin_user).patch(url(project, "data-policy/"), {"download_roles": ["auditor"]}, format="json")
    assert api(auditor).get(dataset_download).status_code == 200
    assert engineer.get(download).status_code == 403


@flow
def test_expired_raw_data_is_deleted_and_its_traces_stay(api, project, admin_user, ml_engineer, reference):
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    old = upload(engineer, project, same_as_reference(1), environment="production").json()
    new = upload(engineer, project, same_as_reference(2), environment="production").json()
    Batch.objects.filter(pk=old["id"]).update(created_at=timezone.now() - datetime.timedelta(days=91))
    old_run = CheckRun.objects.get(batch_id=old["id"])
    stored = Batch.objects.get(pk=old["id"]).storage_path
    assert raw_data_prune() == {"batches": 1, "dataset_versions": 0}
    assert raw_data_prune() == {"batches": 0, "dataset_versions": 0}

    purged = Batch.objects.get(pk=old["id"])
    assert purged.purged_at is not None and purged.sha256 == old["sha256"]  # the hash stays
    assert not default_storage.exists(stored) and not default_storage.exists(old_run.report_html_path)
    old_run.refresh_from_db()
    assert (old_run.state, old_run.report_state, len(old_run.results)) == ("passed", "purged", 3)
    assert engineer.get(url(project, f"batches/{old['id']}/download/")).status_code == 410
    rerun = engineer.post(url(project, "check-runs/"), {"monitor": old_run.monitor_id, "batch": old["id"]},
                          format="json")  # fmt: skip
    assert rerun.status_code == 410
    assert engineer.get(url(project, f"batches/{new['id']}/download/")).status_code == 200
    event = AuditEvent.objects.get(action="raw_data.purged")
    assert old["sha256"] in str(event.diff)

    # Reference data has its own retention (none by default: checks need it).
    api(admin_user).patch(url(project, "data-policy/"), {"reference_retention_days": 1}, format="json")
    DatasetVersion.objects.filter(pk=reference.pk).update(created_at=timezone.now() - datetime.timedelta(days=2))
    assert raw_data_prune() == {"batches": 0, "dataset_versions": 1}
    assert not default_storage.exists(reference.storage_path)
    assert reference_of(purged.model_version) is None
    dataset_download = url(project, f"datasets/{reference.dataset_id}/versions/{reference.pk}/download/")
    assert engineer.get(dataset_download).status_code == 410
