"""Every refusal of an authenticated principal is an ``access.denied`` audit event, whatever refused it (a
permission class, a service, Django), in the chain of the project the URL names when the caller belongs to it."""

import pytest
from django.test import Client

from governance.accounts.access import Principal
from governance.accounts.models import Project
from governance.audit.models import AuditEvent, chain_of
from governance.promotion.models import Decision, Environment, PromotionRequest
from governance.promotion.services import environment_create, promotion_request_create
from governance.registry.services import model_version_register
from governance.webhooks.models import Webhook
from governance.webhooks.services import webhook_create
from tests.governance.registry.test_registry import SIGNATURE, sha


@pytest.fixture
def targets(project, admin_user, ml_engineer):
    """A promotion request, a webhook and an environment of the project: what read-only keys try to change."""
    version, _ = model_version_register(
        actor=Principal(ml_engineer), project=project, model_name="fraud-gbm", artifact_uri="s3://models/fraud/1",
        artifact_sha256=sha("artifact 1"), signature=SIGNATURE,
    )  # fmt: skip
    production = project.environments.get(name="production")
    request = promotion_request_create(actor=Principal(ml_engineer), version=version, environment=production)
    webhook, _ = webhook_create(
        actor=Principal(admin_user), project=project, url="https://hooks.example.com/x", actions=["project.updated"]
    )
    environment = environment_create(actor=Principal(admin_user), project=project, name="canary", kind="staging")
    return {"request": request, "webhook": webhook, "environment": environment}


def _path(template: str, targets: dict) -> str:
    names = {"request": targets["request"].pk, "webhook": targets["webhook"].pk, "environment": "canary"}
    return f"/api/v1/projects/fraud/{template.format(**names)}"


def _denied(project: Project | None, actor):
    chain = chain_of(project.pk if project else None)
    return AuditEvent.objects.filter(chain=chain, action="access.denied", actor=actor)


@pytest.mark.parametrize(
    ("user", "method", "path"),
    [
        ("officer", "post", "promotion-requests/{request}/approve/"),
        ("admin_user", "delete", "webhooks/{webhook}/"),
        ("admin_user", "delete", "environments/{environment}/"),
        ("admin_user", "patch", ""),
    ],
)
def test_a_read_only_keys_refusal_is_audited_in_the_projects_chain(request, api, project, targets, user, method, path):
    principal = request.getfixturevalue(user)
    url = _path(path, targets)
    response = getattr(api(principal, read_only=True), method)(url, {}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "read_only_key"
    denied = _denied(project, principal).get()
    assert denied.diff == {"operation": f"{method.upper()} {url}", "reason": "This API key is read-only."}
    assert denied.request_id == response["X-Request-ID"]
    assert not _denied(None, principal).exists()
    # Nothing changed.
    assert PromotionRequest.objects.get(pk=targets["request"].pk).state == "open"
    assert not Decision.objects.exists()
    assert Webhook.objects.filter(pk=targets["webhook"].pk).exists()
    assert Environment.objects.filter(pk=targets["environment"].pk).exists()
    assert Project.objects.get(pk=project.pk).name == "Fraud detection"


def test_a_services_refusal_is_audited_once_in_the_projects_chain(api, project, targets, ml_engineer):
    url = _path("promotion-requests/{request}/approve/", targets)
    response = api(ml_engineer).post(url, {}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    denied = _denied(project, ml_engineer).get()
    assert denied.diff["reason"] == response.json()["error"]["message"]
    assert not Decision.objects.exists()


def test_a_refusal_under_someone_elses_project_goes_to_the_system_chain(api, project, targets, outsider):
    """An outsider's read-only key is refused before the project is looked up: their attempt must not write
    into a chain of a project they do not belong to."""
    url = _path("webhooks/{webhook}/", targets)
    response = api(outsider, read_only=True).delete(url)

    assert response.status_code == 403
    assert _denied(None, outsider).get().diff["operation"] == f"DELETE {url}"
    assert not AuditEvent.objects.filter(action="access.denied", actor=outsider).exclude(chain=chain_of(None)).exists()
    assert Webhook.objects.filter(pk=targets["webhook"].pk).exists()


def test_a_refusal_by_django_itself_is_audited(project, officer):
    """The console's CSRF check refuses a logged-in officer's POST without a token: a 403 no view raised."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(officer)
    response = client.post("/console/logout/")

    assert response.status_code == 403
    denied = _denied(None, officer).get()
    assert denied.diff == {"operation": "POST /console/logout/", "reason": "Forbidden"}
    assert client.get("/console/").status_code == 200  # still logged in: the refused logout did nothing
