"""Monitoring services check the project of every object they are given, like the governance ones
(tests/governance/test_project_scope.py): another project's deployment, version or batch is a 404 and changes
nothing, whoever calls the service."""

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from controlplane.exceptions import NotFound
from governance.accounts.access import Principal
from governance.audit.models import AuditEvent
from governance.promotion.models import Deployment, Environment
from monitoring.models import Batch, CheckRun, Monitor
from monitoring.services.batches import batch_register, batch_upload
from monitoring.services.monitors import monitor_create
from monitoring.services.runs import check_run_request
from tests.governance.registry.test_registry import SIGNATURE, sha
from tests.governance.test_project_scope import make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def ours(project, ml_engineer):
    version = make_version(project, ml_engineer)
    version.signature = SIGNATURE
    version.save(update_fields=["signature"])
    return version


@pytest.fixture
def theirs(other_project, outsider):
    version = make_version(other_project, outsider)
    deployment = Deployment.objects.create(
        project=other_project, model=version.model, model_version=version,
        environment=Environment.objects.get(project=other_project, name="production"),
    )  # fmt: skip
    batch = Batch.objects.create(
        project=other_project, model_version=version, deployment=deployment, kind=Batch.Kind.URI,
        uri="storage://projects/other/batches/b.parquet", storage_path="projects/other/batches/b.parquet",
        sha256=sha("their batch"), window_start=timezone.now(), window_end=timezone.now(), created_by=outsider,
    )  # fmt: skip
    return {"model_version": version, "deployment": deployment, "batch": batch}


@pytest.mark.parametrize("field", ["model_version", "deployment"])
def test_no_monitor_watches_another_projects_objects(project, ml_engineer, theirs, field):
    with pytest.raises(NotFound) as refused:
        monitor_create(actor=Principal(ml_engineer), project=project, name="drift", kind="data_drift", config={},
                       **{field: theirs[field]})  # fmt: skip
    assert refused.value.details == [{"field": field}]
    assert not Monitor.objects.exists()


@pytest.mark.parametrize("field", ["model_version", "deployment"])
def test_no_batch_is_recorded_for_another_projects_objects(project, ml_engineer, theirs, field):
    with pytest.raises(NotFound) as refused:
        batch_register(actor=Principal(ml_engineer), project=project, uri="storage://projects/fraud/batches/b.parquet",
                       sha256=sha("b"), **{field: theirs[field]})  # fmt: skip
    assert refused.value.details == [{"field": field}]
    with pytest.raises(NotFound):
        batch_upload(actor=Principal(ml_engineer), project=project, file=ContentFile(b"amount\n1\n", name="b.csv"),
                     **{field: theirs[field]})  # fmt: skip
    assert Batch.objects.filter(project=project).count() == 0
    assert not AuditEvent.objects.filter(action="batch.uploaded").exists()


def test_run_now_refuses_another_projects_batch(project, ml_engineer, ours, theirs):
    monitor = monitor_create(actor=Principal(ml_engineer), project=project, name="drift", kind="data_drift",
                             config={}, model_version=ours)  # fmt: skip
    with pytest.raises(NotFound) as refused:
        check_run_request(actor=Principal(ml_engineer), monitor=monitor, batch=theirs["batch"])
    assert refused.value.details == [{"field": "batch"}]
    assert not CheckRun.objects.exists()
