"""Prepared queries (controlplane.prepared): compiled once per connection, they answer what the queryset they
are built from answers, with its select_related objects, and cache no row: a revoked key, a removed role or a
suspended deployment is refused by the next request on the same, already compiled, connection."""

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from controlplane.prepared import Prepared
from governance.accounts.access import Principal
from governance.accounts.models import ApiKey
from governance.accounts.services import _key_by_prefix, api_key_issue, api_key_revoke, role_revoke
from governance.promotion.services import deployment_set_state
from governance.provenance.models import LineageJob, LineageRun
from governance.registry.api.serializers import ModelVersionSerializer
from governance.registry.models import ModelVersion
from governance.registry.selectors import _version_at, model_version_at, model_version_get, model_version_list
from tests.factories import DeploymentFactory, MetricFactory, RegisteredVersionFactory
from tests.prepared import fields_of


def test_a_prepared_lookup_answers_what_its_queryset_answers(project, ml_engineer, django_assert_num_queries):
    version = RegisteredVersionFactory(project=project, created_by=ml_engineer)
    scope = Principal(ml_engineer).scope()
    values = {"project": project.slug, "model": version.model.name, "version": version.version, **scope}
    relations = ("model", "model.project", "model.owner", "created_by")

    with django_assert_num_queries(1):
        prepared = _version_at(**values)
        rows = [fields_of(v, *relations) for v in prepared]  # the related objects came with the row
    expected = list(_version_at.build(**values))
    assert rows == [fields_of(v, *relations) for v in expected]
    assert len(prepared) == 1

    # Compiled once per connection: the second call (other values) reuses the SQL and still reads nothing lazily.
    compiled = dict(connection.__dict__["_tollgate_prepared"])
    other = RegisteredVersionFactory(project=project, created_by=ml_engineer)
    with django_assert_num_queries(1):
        found = _version_at.first(**{**values, "version": other.version})
        assert (found.pk, found.model.project.slug, found.created_by.username) == (
            other.pk,
            project.slug,
            ml_engineer.username,
        )
    assert connection.__dict__["_tollgate_prepared"] == compiled
    assert _version_at.first(**{**values, "version": 999}) is None


def test_a_version_read_through_prepared_queries_renders_as_through_the_orm(
    project, ml_engineer, training_data, django_assert_num_queries
):
    version = RegisteredVersionFactory(project=project, created_by=ml_engineer, trained_on=training_data)
    MetricFactory(model_version=version, name="f1", value=0.5, subgroup="eu")
    job = LineageJob.objects.create(project=project, namespace="airflow", name="train")
    for state in ("START", "COMPLETE"):
        LineageRun.objects.create(
            project=project, job=job, run_id=uuid.uuid4(), state=state, agent=ml_engineer, model_version=version,
            model_version_link="facet", started_at=timezone.now(),
        )  # fmt: skip
    principal = Principal(ml_engineer)

    through_orm = ModelVersionSerializer(model_version_get(principal=principal, model=version.model, version=1)).data
    with django_assert_num_queries(4):  # the version with its model, project, registrant and card; its children
        prepared = model_version_at(principal=principal, project=project.slug, model=version.model.name, version=1)
        rendered = ModelVersionSerializer(prepared).data
    assert rendered == through_orm
    assert [m["name"] for m in rendered["metrics"]] == ["auc", "f1"]
    assert len(rendered["datasets"]) == 1 and len(rendered["lineage_runs"]) == 2
    # The children are querysets, as prefetch_related leaves them: they filter like the related manager.
    assert list(prepared.metrics.filter(name="f1").values_list("value", flat=True)) == [0.5]


def test_a_pinned_key_is_another_shape_of_the_same_query(project, other_project, ml_engineer):
    version = RegisteredVersionFactory(project=project, created_by=ml_engineer)
    key, _ = api_key_issue(
        actor=Principal(ml_engineer), owner=ml_engineer, project=other_project, name="pinned", read_only=False,
        expires_at=None,
    )  # fmt: skip
    pinned = Principal(ml_engineer, key)
    assert "pinned" in pinned.scope()
    values = {"project": project.slug, "model": version.model.name, "version": 1}
    assert _version_at.first(**values, **Principal(ml_engineer).scope()).pk == version.pk
    assert _version_at.first(**values, **pinned.scope()) is None  # pinned elsewhere: out of scope
    assert list(model_version_list(principal=pinned, model=version.model)) == []


@pytest.mark.django_db
def test_misuse_is_refused_when_compiled():
    if connection.vendor != "postgresql":
        pytest.skip("queries are prepared on PostgreSQL only")
    contains = Prepared(lambda name: ModelVersion.objects.filter(artifact_uri__contains=name), name="")
    with pytest.raises(ValueError, match="not a plain value"):
        contains(name="x")
    unknown = Prepared(lambda version: ModelVersion.objects.filter(version=version), version=0)
    with pytest.raises(TypeError, match="not among"):
        unknown(name="x")


@pytest.mark.django_db
def test_revocation_takes_effect_on_the_next_request(api, project, ml_engineer, admin_user, ready_version):
    """The deterministic interleaving the issue asks for: request, revoke (committed), request -- on one
    connection whose prepared lookups are compiled by the first request."""
    client = api(ml_engineer)
    path = f"/api/v1/projects/{project.slug}/models/{ready_version.model.name}/versions/1/"
    assert client.get(path).status_code == 200

    prefix = client._credentials["HTTP_AUTHORIZATION"].split("_")[1]
    key = ApiKey.objects.get(prefix=prefix)
    assert _key_by_prefix.first(prefix=prefix).pk == key.pk
    api_key_revoke(actor=Principal(ml_engineer), key=key)
    assert client.get(path).status_code == 401

    client = api(ml_engineer)
    assert client.get(path).status_code == 200
    binding = ml_engineer.role_bindings.get(project=project)
    role_revoke(actor=Principal(admin_user), binding=binding)
    assert client.get(path).status_code == 404


def test_a_suspension_takes_effect_on_the_next_verify(api, project, officer, ready_version):
    deployment = DeploymentFactory(version=ready_version, officer=officer)
    client = api(officer)
    path = f"/api/v1/projects/{project.slug}/deployments/{ready_version.model.name}/production/verify/"
    body = {"artifact_sha256": ready_version.artifact_sha256}
    assert client.post(path, body, format="json").json()["allowed"] is True

    deployment_set_state(actor=Principal(officer), deployment=deployment, state="suspended", reason="drift")
    answer = client.post(path, body, format="json").json()
    assert answer["allowed"] is False and "suspended: drift" in answer["reason"]
