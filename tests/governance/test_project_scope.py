"""Services check the project of every object they are given (DESIGN §6), not only the views: the console, the
CLI and the management commands call services too. Another project's object is answered like an out-of-scope
one, 404, and nothing changes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.exceptions import NotFound
from governance.accounts.access import Principal
from governance.accounts.models import ApiKey, RoleBinding, User
from governance.accounts.services import api_key_issue, role_grant, service_account_create
from governance.audit.models import AuditEvent
from governance.promotion.models import Environment, PolicyException, PromotionRequest
from governance.promotion.services import exception_grant, gates_evaluate, promotion_request_create
from governance.registry.models import ModelVersion
from tests.factories import ModelVersionFactory, RegisteredModelFactory, sha


def make_version(project, user) -> ModelVersion:
    model = RegisteredModelFactory(project=project, name="fraud-gbm", owner=user)
    return ModelVersionFactory(
        model=model, artifact_uri=f"s3://models/{project.slug}/1", artifact_sha256=sha(project.slug), signature={}
    )


@pytest.fixture
def version(project, ml_engineer):
    return make_version(project, ml_engineer)


@pytest.fixture
def their_production(other_project):
    return Environment.objects.get(project=other_project, name="production")


@pytest.fixture
def their_account(other_project):
    account, _, _ = service_account_create(
        actor=Principal(User.objects.get(username="other-admin")), project=other_project, name="ci",
        role="ml_engineer",
    )  # fmt: skip
    return account


def grant(officer, version, **overrides):
    arguments = {
        "actor": Principal(officer), "version": version,
        "environment": Environment.objects.get(project=version.model.project, name="production"), "gate": "metric",
        "name": "AUC waiver", "justification": "Holiday traffic", "requested_by": version.created_by,
        "expires_at": timezone.now() + timedelta(days=7), "target": "auc", **overrides,
    }  # fmt: skip
    return exception_grant(**arguments)


def test_an_exception_is_not_granted_for_another_projects_environment(officer, version, their_production):
    with pytest.raises(NotFound) as refused:
        grant(officer, version, environment=their_production)
    assert refused.value.details == [{"field": "environment"}]
    assert not PolicyException.objects.exists()
    assert not AuditEvent.objects.filter(action="exception.granted").exists()


def test_an_exception_is_not_requested_by_another_projects_service_account(officer, version, their_account):
    with pytest.raises(NotFound) as refused:
        grant(officer, version, requested_by=their_account)
    assert refused.value.details == [{"field": "requested_by"}]
    assert not PolicyException.objects.exists()


def test_the_same_exception_in_the_versions_own_project_is_granted(officer, version):
    assert grant(officer, version).environment.project_id == version.model.project_id


def test_gates_are_not_evaluated_against_another_projects_environment(version, their_production):
    with pytest.raises(NotFound) as refused:
        gates_evaluate(version=version, environment=their_production)
    assert refused.value.details == [{"field": "environment"}]


def test_gates_are_not_evaluated_with_another_projects_request(version, other_project, outsider):
    theirs = make_version(other_project, outsider)
    environment = Environment.objects.get(project=other_project, name="staging")
    request = promotion_request_create(actor=Principal(outsider), version=theirs, environment=environment)
    ours = Environment.objects.get(project=version.model.project, name="staging")
    with pytest.raises(NotFound) as refused:
        gates_evaluate(version=version, environment=ours, request=request)
    assert refused.value.details == [{"field": "request"}]


def test_a_promotion_is_not_requested_into_another_projects_environment(ml_engineer, version, their_production):
    with pytest.raises(NotFound):
        promotion_request_create(actor=Principal(ml_engineer), version=version, environment=their_production)
    assert not PromotionRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="promotion.requested").exists()


def test_another_projects_service_account_is_granted_no_role(project, admin_user, their_account):
    with pytest.raises(NotFound) as refused:
        role_grant(actor=Principal(admin_user), project=project, principal=their_account, role="auditor")
    assert refused.value.details == [{"field": "principal"}]
    assert not RoleBinding.objects.filter(principal=their_account, project=project).exists()


@pytest.mark.parametrize("pinned_to", ["project", None])
def test_a_service_accounts_key_is_pinned_to_its_own_project(request, admin_user, their_account, pinned_to):
    project = request.getfixturevalue(pinned_to) if pinned_to else None
    keys = ApiKey.objects.filter(owner=their_account).count()
    with pytest.raises(NotFound) as refused:
        api_key_issue(actor=Principal(admin_user), owner=their_account, project=project, name="stray",
                      read_only=False, expires_at=None)  # fmt: skip
    assert refused.value.details == [{"field": "owner"}]
    assert ApiKey.objects.filter(owner=their_account).count() == keys
