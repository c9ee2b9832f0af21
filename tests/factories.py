"""Factories for what the tests build: accounts, datasets, a registered version with its card and data links, a
promotion request ready to execute, a deployment with its history, and the rows the list tests need.

The governed objects are made by their services (``_create`` calls the service as the given actor), so each is a
real one with its audit events: ``RegisteredVersionFactory`` registers through ``model_version_register``,
``PromotionRequestFactory`` requests and approves through the promotion services, ``DeploymentFactory``
executes one. Rows a worker or a sender would write (batches, check runs, alerts, webhook deliveries) are model
factories, so a list test can make twenty in a few inserts (``create_batch``)."""

import hashlib
from datetime import timedelta

import factory
from django.utils import timezone

from governance.accounts.access import Principal
from governance.accounts.models import Project, Role, RoleBinding, User
from governance.provenance.models import Dataset, DatasetVersion

SIGNATURE = {
    "inputs": [{"name": "amount", "type": "float"}, {"name": "country", "type": "string"}],
    "outputs": [{"name": "score", "type": "float"}],
}

CARD = {
    "intended_use": "Score card payments for fraud",
    "out_of_scope_uses": "Wire transfers",
    "users_and_affected_persons": "Fraud analysts; card holders",
    "limitations": "Trained on EU data only",
    "ethical_considerations": "False positives block legitimate payments",
    "evaluation_data": "October 2026 hold-out",
    "human_oversight": "Analysts review every block",
    "proposed_risk_tier": "limited",
    "risk_tier_rationale": "Decisions are reviewed by people",
}

CARD_HIGH = {**CARD, "proposed_risk_tier": "high", "risk_tier_rationale": "Blocks payments automatically"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery staple")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda p: p.slug.replace("-", " ").title())


class RoleBindingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoleBinding

    principal = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory)
    role = Role.ML_ENGINEER


class MemberFactory(factory.Factory):
    """A user granted ``role`` in ``project`` by ``granted_by`` (the system by default), through
    ``role_grant``: returns the user."""

    class Meta:
        model = User

    project = None
    role = Role.ML_ENGINEER
    username = factory.Sequence(lambda n: f"member{n}")
    granted_by = None

    @classmethod
    def _create(cls, model_class, *, project, role, username, granted_by):
        from governance.accounts.services import role_grant

        user = UserFactory(username=username)
        actor = Principal(granted_by) if granted_by is not None else Principal.system()
        role_grant(actor=actor, project=project, principal=user, role=role)
        return user


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    project = None
    owner = None
    namespace = factory.LazyAttribute(lambda d: f"s3://{d.project.slug}")
    name = "train"
    license = "CC-BY-4.0"
    classification = "internal"


class DatasetVersionFactory(factory.django.DjangoModelFactory):
    """A dataset version by URI (``s3://fraud/train.parquet`` for the default dataset). ``dataset`` is made
    from ``project`` and ``created_by`` when not given."""

    class Meta:
        model = DatasetVersion
        exclude = ["project"]

    project = None
    dataset = factory.SubFactory(
        DatasetFactory, project=factory.SelfAttribute("..project"), owner=factory.SelfAttribute("..created_by")
    )
    version = "1"
    kind = "uri"
    uri = factory.LazyAttribute(lambda v: f"{v.dataset.namespace}/{v.dataset.name}.parquet")
    sha256 = factory.LazyAttribute(
        lambda v: sha(v.dataset.name if v.version == "1" else f"{v.dataset.name} {v.version}")
    )
    created_by = None


def _next_version(o) -> int:
    from governance.registry.models import ModelVersion

    last = ModelVersion.objects.filter(model__project=o.project, model__name=o.model_name).order_by("-version").first()
    return (last.version if last else 0) + 1


class RegisteredVersionFactory(factory.Factory):
    """Version ``n`` (the next one) of ``model_name``, registered by ``created_by`` through
    ``model_version_register``: artifact ``sha("artifact n")`` (as ``tests.governance.registry.test_registry.body``
    registers it), an AUC of 0.91, linked ``trained_on`` to ``trained_on`` (a dataset version) when given.
    ``card``: written by ``created_by`` (``model_card_edit``); ``confirmed_by``: an officer who confirms its
    tier. Trait ``ready=True``: training data, ``CARD`` and ``confirmed_by`` required, so the default policy's
    gates (bar the approvals) pass for production."""

    class Meta:
        model = "governance.ModelVersion"

    class Params:
        n = factory.LazyAttribute(_next_version)
        ready = factory.Trait(
            card=CARD,
            trained_on=factory.LazyAttribute(
                lambda o: (
                    DatasetVersion.objects.filter(dataset__project=o.project, dataset__name="train").first()
                    or DatasetVersionFactory(project=o.project, created_by=o.created_by)
                )
            ),
        )

    project = None
    created_by = None
    model_name = "fraud-gbm"
    artifact_uri = factory.LazyAttribute(
        lambda o: (
            f"s3://models/fraud/{o.n}/model.onnx"
            if o.model_name == "fraud-gbm"
            else f"s3://models/{o.model_name}/{o.n}/model.onnx"
        )
    )
    artifact_sha256 = factory.LazyAttribute(
        lambda o: sha(f"artifact {o.n}") if o.model_name == "fraud-gbm" else sha(f"{o.model_name} artifact {o.n}")
    )
    framework = "sklearn"
    signature = SIGNATURE
    params = {"max_depth": 6}
    tags = ["gbm"]
    metrics = [{"name": "auc", "value": 0.91}]
    trained_on = None
    card = None
    confirmed_by = None

    @classmethod
    def _create(cls, model_class, *, project, created_by, model_name, trained_on, card, confirmed_by, **fields):
        from governance.promotion.services import model_card_confirm_risk_tier
        from governance.registry.services import model_card_edit, model_version_register

        actor = Principal(created_by)
        datasets = [{"dataset_version": trained_on.pk, "role": "trained_on"}] if trained_on is not None else []
        version, _ = model_version_register(
            actor=actor, project=project, model_name=model_name, datasets=datasets, **fields
        )
        if card is not None:
            model_card_edit(actor=actor, version=version, fields=card, replace=True)
        if confirmed_by is not None:
            model_card_confirm_risk_tier(
                actor=Principal(confirmed_by), version=version, risk_tier=None, comment="agreed"
            )
        return version


class PromotionRequestFactory(factory.Factory):
    """A request by ``requested_by`` (the version's registrant by default) to promote ``version`` to
    ``environment`` (a name: production by default), through ``promotion_request_create``, approved by each of
    ``approved_by`` (``decision_record``). With a ready version and one approval it is ready to execute."""

    class Meta:
        model = "governance.PromotionRequest"

    version = None
    environment = "production"
    requested_by = factory.LazyAttribute(lambda o: o.version.created_by)
    approved_by = ()
    comment = ""

    @classmethod
    def _create(cls, model_class, *, version, environment, requested_by, approved_by, comment):
        from governance.promotion.models import Decision, Environment
        from governance.promotion.services import decision_record, promotion_request_create

        if isinstance(environment, str):
            environment = Environment.objects.get(project=version.model.project, name=environment)
        request = promotion_request_create(
            actor=Principal(requested_by), version=version, environment=environment, comment=comment
        )
        for officer in approved_by:
            decision_record(actor=Principal(officer), request=request, outcome=Decision.Outcome.APPROVE)
        return request


class DeploymentFactory(factory.Factory):
    """``request`` (ready to execute) executed by its requester through ``promotion_execute``: the deployment,
    with its history row. Without ``request``, one is made for a ready ``version`` approved by ``officer``."""

    class Meta:
        model = "governance.Deployment"

    version = None
    officer = None
    environment = "production"
    request = factory.LazyAttribute(
        lambda o: PromotionRequestFactory(version=o.version, environment=o.environment, approved_by=[o.officer])
    )

    @classmethod
    def _create(cls, model_class, *, request, **_):
        from governance.promotion.services import promotion_execute

        return promotion_execute(actor=Principal(request.requested_by), request=request)


class ExceptionFactory(factory.Factory):
    """A waiver of the metric gate on ``auc`` for ``version`` in production, granted by ``granted_by`` through
    ``exception_grant``, for a week."""

    class Meta:
        model = "governance.PolicyException"

    version = None
    granted_by = None
    environment = "production"
    gate = "metric"
    target = "auc"
    name = factory.Sequence(lambda n: f"AUC waiver {n}")
    justification = "Holiday traffic"
    requested_by = factory.LazyAttribute(lambda o: o.version.created_by)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))

    @classmethod
    def _create(cls, model_class, *, version, granted_by, environment, **fields):
        from governance.promotion.models import Environment
        from governance.promotion.services import exception_grant

        if isinstance(environment, str):
            environment = Environment.objects.get(project=version.model.project, name=environment)
        return exception_grant(actor=Principal(granted_by), version=version, environment=environment, **fields)


class WebhookFactory(factory.Factory):
    """A subscription made by ``created_by`` (an admin) through ``webhook_create``."""

    class Meta:
        model = "governance.Webhook"

    project = None
    created_by = None
    url = factory.Sequence(lambda n: f"https://hooks.example.com/{n}")
    actions = ["deployment.promoted"]

    @classmethod
    def _create(cls, model_class, *, project, created_by, **fields):
        from governance.webhooks.services import webhook_create

        webhook, _ = webhook_create(actor=Principal(created_by), project=project, **fields)
        return webhook


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    """A delivery the sender finished (a 200), as its log shows it."""

    class Meta:
        model = "governance.WebhookDelivery"

    webhook = None
    event_type = "deployment.promoted"
    payload = '{"action": "deployment.promoted"}'
    state = "succeeded"
    attempts = 1
    last_status_code = 200
    last_attempt_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)


class MonitorFactory(factory.Factory):
    """A data-drift monitor of ``model_version`` (or of ``deployment``) through ``monitor_create``."""

    class Meta:
        model = "monitoring.Monitor"

    project = factory.LazyAttribute(lambda o: (o.model_version or o.deployment).model.project)
    created_by = None
    name = factory.Sequence(lambda n: f"drift-{n}")
    kind = "data_drift"
    config = {}
    model_version = None
    deployment = None

    @classmethod
    def _create(cls, model_class, *, created_by, **fields):
        from monitoring.services.monitors import monitor_create

        return monitor_create(actor=Principal(created_by), **fields)


class BatchFactory(factory.django.DjangoModelFactory):
    """A batch registered by URI for ``model_version`` over the last hour (as ``batch_register`` stores it)."""

    class Meta:
        model = "monitoring.Batch"

    model_version = None
    project = factory.LazyAttribute(lambda o: o.model_version.model.project)
    deployment = None
    kind = "uri"
    uri = factory.Sequence(lambda n: f"storage://projects/fraud/batches/{n}.parquet")
    storage_path = factory.LazyAttribute(lambda o: o.uri.removeprefix("storage://"))
    sha256 = factory.LazyAttribute(lambda o: sha(o.uri))
    window_end = factory.LazyFunction(timezone.now)
    window_start = factory.LazyAttribute(lambda o: o.window_end - timedelta(hours=1))
    created_by = factory.LazyAttribute(lambda o: o.model_version.created_by)


class CheckRunFactory(factory.django.DjangoModelFactory):
    """A finished run of ``monitor`` (its current revision) on ``batch``; ``state`` failed by default."""

    class Meta:
        model = "monitoring.CheckRun"

    monitor = None
    batch = None
    project = factory.SelfAttribute("monitor.project")
    monitor_revision = factory.LazyAttribute(lambda o: o.monitor.revisions.get(revision=o.monitor.revision))
    batch_revision = factory.SelfAttribute("batch.revision")
    model_version = factory.SelfAttribute("batch.model_version")
    kind = factory.SelfAttribute("monitor.kind")
    state = "failed"
    attempts = 1
    finished_at = factory.LazyFunction(timezone.now)
    verdict = "amount drifted"
    results = [{"column": "amount", "drifted": True}]


class AlertFactory(factory.django.DjangoModelFactory):
    """The alert a failed ``check_run`` raises."""

    class Meta:
        model = "monitoring.Alert"

    check_run = None
    project = factory.SelfAttribute("check_run.project")
    monitor = factory.SelfAttribute("check_run.monitor")
    deployment = factory.SelfAttribute("check_run.batch.deployment")
    model_version = factory.SelfAttribute("check_run.model_version")
    message = factory.LazyAttribute(lambda o: f"{o.check_run.kind} failed: {o.check_run.verdict}")


# --- Rows, for lists: what the services above write, made in bulk (no audit events) ---------------------------


def bulk(factory_class, n: int, **fields) -> list:
    """``n`` rows of a model factory in one INSERT (PostgreSQL returns their keys). Related rows must exist:
    pass them, one for all or ``factory.Iterator(rows)`` for one each."""
    return factory_class._meta.model.objects.bulk_create(factory_class.build_batch(n, **fields))


def _card_hash(content: dict) -> str:
    from governance.registry.services import card_content_hash

    return card_content_hash(content)


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.RegisteredModel"

    project = None
    name = factory.Sequence(lambda n: f"model-{n}")
    owner = None


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.ModelVersion"

    model = None
    version = 1
    artifact_uri = factory.LazyAttribute(lambda o: f"s3://models/{o.model.name}/{o.version}/model.onnx")
    artifact_sha256 = factory.LazyAttribute(lambda o: sha(f"{o.model.name} artifact {o.version}"))
    framework = "sklearn"
    signature = SIGNATURE
    created_by = factory.LazyAttribute(lambda o: o.model.owner)


class MetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.Metric"

    model_version = None
    name = "auc"
    value = 0.91


class DatasetLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.ModelVersionDataset"

    model_version = None
    dataset_version = None
    role = "trained_on"
    created_by = factory.LazyAttribute(lambda o: o.model_version.created_by)


class ModelCardFactory(factory.django.DjangoModelFactory):
    """``CARD`` at revision 1, its tier confirmed by ``confirmed_by`` (when given)."""

    class Meta:
        model = "governance.ModelCard"

    model_version = None
    content = CARD
    revision = 1
    content_hash = factory.LazyAttribute(lambda o: _card_hash(o.content))
    confirmed_by = None
    confirmed_risk_tier = factory.LazyAttribute(lambda o: o.content["proposed_risk_tier"] if o.confirmed_by else "")
    confirmed_revision = factory.LazyAttribute(lambda o: o.revision if o.confirmed_by else None)
    confirmed_at = factory.LazyAttribute(lambda o: timezone.now() if o.confirmed_by else None)
    confirmation_comment = factory.LazyAttribute(lambda o: "agreed" if o.confirmed_by else "")


class ModelCardRevisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.ModelCardRevision"

    card = None
    revision = factory.SelfAttribute("card.revision")
    content = factory.SelfAttribute("card.content")
    content_hash = factory.SelfAttribute("card.content_hash")
    author = factory.LazyAttribute(lambda o: o.card.model_version.created_by)


class PromotionRequestRowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.PromotionRequest"

    model_version = None
    environment = None
    project = factory.SelfAttribute("environment.project")
    requested_by = factory.LazyAttribute(lambda o: o.model_version.created_by)
    state = "open"


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.Decision"

    request = None
    reviewer = None
    outcome = "approve"
    evidence = {}
    evidence_digest = factory.LazyAttribute(lambda o: sha(f"evidence {o.request.pk}"))


class DeploymentRowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.Deployment"

    model_version = None
    environment = None
    project = factory.SelfAttribute("environment.project")
    model = factory.SelfAttribute("model_version.model")


class DeploymentHistoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.DeploymentHistory"

    deployment = None
    request = None
    model_version = factory.SelfAttribute("request.model_version")
    approvers = factory.LazyAttribute(lambda o: [])
    policy_version = 1
    executed_by = factory.SelfAttribute("request.requested_by")
    from_at = factory.LazyFunction(timezone.now)


class ExceptionRowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.PolicyException"

    model_version = None
    environment = None
    project = factory.SelfAttribute("environment.project")
    gate = "metric"
    target = "auc"
    name = "AUC waiver"
    justification = "Holiday traffic"
    requested_by = factory.LazyAttribute(lambda o: o.model_version.created_by)
    granted_by = None
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


def promoted_in_bulk(project, *, engineer, officer, n: int, prefix: str = "bulk") -> list:
    """``n`` models of ``project`` as the promotion services leave them (without their audit events), in a few
    INSERTs: each v1 registered by ``engineer`` with an AUC, linked ``trained_on`` to one dataset version, its
    card complete and its tier confirmed by ``officer``; deployed to production (executed, with its history
    row) and with an open request for staging approved by ``officer``, whose metric gate there is waived.
    Returns the versions."""
    from governance.promotion.models import Environment

    production = Environment.objects.get(project=project, name="production")
    staging = Environment.objects.get(project=project, name="staging")
    data = DatasetVersionFactory(
        project=project, created_by=engineer, dataset__name=f"{prefix}-train", sha256=sha(f"{prefix} train")
    )
    models = bulk(RegisteredModelFactory, n, project=project, owner=engineer,
                  name=factory.Iterator([f"{prefix}-{i}" for i in range(n)]))  # fmt: skip
    versions = bulk(ModelVersionFactory, n, model=factory.Iterator(models))
    each = factory.Iterator(versions)
    bulk(MetricFactory, n, model_version=each)
    bulk(DatasetLinkFactory, n, model_version=factory.Iterator(versions), dataset_version=data)
    cards = bulk(ModelCardFactory, n, model_version=factory.Iterator(versions), confirmed_by=officer)
    bulk(ModelCardRevisionFactory, n, card=factory.Iterator(cards))
    executed = bulk(PromotionRequestRowFactory, n, model_version=factory.Iterator(versions), environment=production,
                    state="executed", closed_at=timezone.now(), closed_by=engineer)  # fmt: skip
    waiting = bulk(PromotionRequestRowFactory, n, model_version=factory.Iterator(versions), environment=staging)
    bulk(DecisionFactory, 2 * n, request=factory.Iterator(executed + waiting), reviewer=officer)
    deployments = bulk(DeploymentRowFactory, n, model_version=factory.Iterator(versions), environment=production)
    bulk(DeploymentHistoryFactory, n, deployment=factory.Iterator(deployments), request=factory.Iterator(executed),
         approvers=[officer.username])  # fmt: skip
    bulk(ExceptionRowFactory, n, model_version=factory.Iterator(versions), environment=staging, granted_by=officer)
    return versions


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "governance.Environment"

    project = None
    name = factory.Sequence(lambda n: f"region-{n}")
    kind = "staging"


class PolicyFactory(factory.django.DjangoModelFactory):
    """A published version: ``document`` as the project's current one by default, published by ``published_by``."""

    class Meta:
        model = "governance.Policy"

    project = None
    version = factory.Sequence(lambda n: n + 2)
    document = factory.LazyAttribute(lambda o: o.project.policies.order_by("-version").first().document)
    source = ""
    document_hash = factory.LazyAttribute(lambda o: sha(f"{o.document} {o.version}"))
    published_by = None


class AccessLogEntryFactory(factory.django.DjangoModelFactory):
    """A GET of the project's page answered 200, as the access log middleware writes it."""

    class Meta:
        model = "governance.AccessLogEntry"

    principal = None
    principal_name = factory.LazyAttribute(lambda o: o.principal.username if o.principal else "")
    method = "GET"
    project_slug = "fraud"
    path = factory.LazyAttribute(lambda o: f"/api/v1/projects/{o.project_slug}/")
    status = 200
