"""Environments, policies, exceptions, gates, the risk tier's confirmation, promotion requests and deployments
(DESIGN §5, §8)."""

from functools import cached_property

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from controlplane.api.filters import ZonedDateTimeFilter
from controlplane.exceptions import NotFound
from governance.accounts.access import require_role
from governance.accounts.api.base import ListApiView, ProjectApiView, ProjectListApiView
from governance.accounts.models import Role
from governance.accounts.selectors import user_by_username
from governance.promotion import selectors, services
from governance.promotion.api.serializers import (
    CommentSerializer,
    DeploymentDetailSerializer,
    DeploymentSerializer,
    EnvironmentCreateSerializer,
    EnvironmentSerializer,
    ExceptionGrantSerializer,
    ExceptionSerializer,
    HistorySerializer,
    PolicyPublishSerializer,
    PolicySerializer,
    PromotionRequestCreateSerializer,
    PromotionRequestSerializer,
    QueueEntrySerializer,
    RiskTierConfirmSerializer,
    SuspendSerializer,
    VerifySerializer,
)
from governance.promotion.models import (
    Decision,
    Deployment,
    DeploymentHistory,
    Environment,
    Policy,
    PolicyException,
    PromotionRequest,
)
from governance.registry.api.serializers import ModelCardSerializer
from governance.registry.api.views import VersionMixin
from governance.registry.models import ModelVersion
from governance.registry.selectors import model_get, model_version_get


def _version(principal, project, model: str, version: int):
    found = model_get(principal=principal, project=project, name=model)
    return model_version_get(principal=principal, model=found, version=version)


class GateEvaluationFilter(django_filters.FilterSet):
    environment = django_filters.CharFilter(
        required=True, error_messages={"required": "Name the environment: ?environment=production"}
    )


class PromotionRequestFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=PromotionRequest.State.choices)
    environment = django_filters.CharFilter(help_text="An environment's name.")
    model = django_filters.CharFilter(help_text="A model's name.")


class OfficerQueueFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=PromotionRequest.State.choices)


class DeploymentFilter(django_filters.FilterSet):
    environment = django_filters.CharFilter(help_text="An environment's name.")
    model = django_filters.CharFilter(help_text="A model's name.")


class DeploymentHistoryFilter(DeploymentFilter):
    at = ZonedDateTimeFilter(help_text="What was deployed at this moment (ISO 8601 with a zone).")


# Views ----------------------------------------------------------------------------------------------------


class EnvironmentListView(ProjectListApiView):
    serializer_class = EnvironmentSerializer
    queryset = Environment.objects.none()
    pagination_class = None

    def scoped_queryset(self):
        return selectors.environment_list(project=self.project)

    @extend_schema(request=EnvironmentCreateSerializer, responses={201: EnvironmentSerializer})
    def post(self, request, project):
        data = self.validated(EnvironmentCreateSerializer)
        environment = services.environment_create(actor=self.principal, project=self.project, **data)
        return Response(self.get_serializer(environment).data, status=status.HTTP_201_CREATED)


class EnvironmentDetailView(ProjectApiView):
    serializer_class = EnvironmentSerializer

    def environment(self):
        return selectors.environment_get(project=self.project, name=self.kwargs["name"])

    def get(self, request, project, name):
        return Response(self.get_serializer(self.environment()).data)

    def delete(self, request, project, name):
        services.environment_delete(actor=self.principal, environment=self.environment())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicyListView(ProjectListApiView):
    serializer_class = PolicySerializer
    queryset = Policy.objects.none()

    def scoped_queryset(self):
        return selectors.policy_list(project=self.project)

    @extend_schema(request=PolicyPublishSerializer, responses={201: PolicySerializer})
    def post(self, request, project):
        data = self.validated(PolicyPublishSerializer)
        policy = services.policy_publish(
            actor=self.principal, project=self.project, source=data.get("document", data.get("source")),
            comment=data["comment"],
        )  # fmt: skip
        return Response(self.get_serializer(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetailView(ProjectApiView):
    serializer_class = PolicySerializer

    def get(self, request, project, version):
        return Response(self.get_serializer(selectors.policy_get(project=self.project, version=version)).data)


class ExceptionListView(ProjectListApiView):
    serializer_class = ExceptionSerializer
    queryset = PolicyException.objects.none()

    def scoped_queryset(self):
        return selectors.exception_list(project=self.project)

    @extend_schema(request=ExceptionGrantSerializer, responses={201: ExceptionSerializer})
    def post(self, request, project):
        data = self.validated(ExceptionGrantSerializer)
        require_role(self.principal, self.project, [Role.GOVERNANCE_OFFICER], action="grant policy exceptions")
        exception = services.exception_grant(
            actor=self.principal,
            version=_version(self.principal, self.project, data["model"], data["version"]),
            environment=selectors.environment_get(project=self.project, name=data["environment"], field="environment"),
            gate=data["gate"], target=data["target"], name=data["name"], justification=data["justification"],
            requested_by=user_by_username(data["requested_by"], field="requested_by"),
            expires_at=data["expires_at"],
        )  # fmt: skip
        return Response(self.get_serializer(exception).data, status=status.HTTP_201_CREATED)


class ExceptionRevokeView(ProjectApiView):
    serializer_class = ExceptionSerializer

    @extend_schema(request=None, responses={200: ExceptionSerializer})
    def post(self, request, project, pk):
        exception = selectors.exception_get(project=self.project, exception_id=pk)
        return Response(self.get_serializer(services.exception_revoke(actor=self.principal, exception=exception)).data)


class GateEvaluationView(VersionMixin, ProjectApiView):
    """Dry run: every gate with passed / failed / pending / waived, the reason and the evidence. Not audited."""

    version_representation = False
    queryset = ModelVersion.objects.none()  # for the schema's filter parameters
    filterset_class = GateEvaluationFilter
    pagination_class = None

    @extend_schema(responses={200: dict})
    def get(self, request, project, model, version):
        name = self.filters["environment"]
        version = self.version  # first: it loads the project with it, in the same query
        environment = selectors.environment_get(project=self.project, name=name, field="environment", with_policy=True)
        evaluation = services.gates_evaluate(version=version, environment=environment)
        return Response(evaluation.as_dict())


class PromotionRequestListView(ProjectListApiView):
    serializer_class = PromotionRequestSerializer
    queryset = PromotionRequest.objects.none()
    filterset_class = PromotionRequestFilter

    def scoped_queryset(self):
        return selectors.promotion_request_list(project=self.project, filters=self.filters)

    @extend_schema(request=PromotionRequestCreateSerializer, responses={201: PromotionRequestSerializer})
    def post(self, request, project):
        data = self.validated(PromotionRequestCreateSerializer)
        created = services.promotion_request_create(
            actor=self.principal,
            version=_version(self.principal, self.project, data["model"], data["version"]),
            environment=selectors.environment_get(project=self.project, name=data["environment"], field="environment"),
            comment=data["comment"], emergency=data["emergency"],
        )  # fmt: skip
        fresh = selectors.promotion_request_get(project=self.project, request_id=created.pk)
        return Response(self.get_serializer(fresh).data, status=status.HTTP_201_CREATED)


class OfficerQueueView(ListApiView):
    """The officer's queue: promotion requests across every project where the caller holds a role, oldest
    first (``?state=open``), each with its risk tier and, while open, a summary of its gates evaluated as the
    list is read."""

    serializer_class = QueueEntrySerializer
    queryset = PromotionRequest.objects.none()
    filterset_class = OfficerQueueFilter

    def scoped_queryset(self):
        return selectors.promotion_request_queue(principal=self.principal, filters=self.filters)


class RequestMixin:
    @cached_property
    def promotion_request(self) -> PromotionRequest:
        return selectors.promotion_request_get(project=self.project, request_id=self.kwargs["pk"])

    def respond(self):
        fresh = selectors.promotion_request_get(project=self.project, request_id=self.promotion_request.pk)
        body = PromotionRequestSerializer(fresh, context=self.get_serializer_context()).data
        if fresh.state == PromotionRequest.State.OPEN:
            evaluation = services.gates_evaluate(
                version=fresh.model_version, environment=fresh.environment, request=fresh
            )
            body["gates"] = evaluation.as_dict()
            body["ready_to_execute"] = evaluation.passed
        return Response(body)


class PromotionRequestDetailView(RequestMixin, ProjectApiView):
    serializer_class = PromotionRequestSerializer

    def get(self, request, project, pk):
        return self.respond()


class DecisionView(RequestMixin, ProjectApiView):
    serializer_class = PromotionRequestSerializer
    outcome = ""

    @extend_schema(request=CommentSerializer, responses={200: PromotionRequestSerializer})
    def post(self, request, project, pk):
        data = self.validated(CommentSerializer)
        services.decision_record(
            actor=self.principal, request=self.promotion_request, outcome=self.outcome, comment=data["comment"]
        )
        return self.respond()


class ApproveView(DecisionView):
    outcome = Decision.Outcome.APPROVE


class RejectView(DecisionView):
    outcome = Decision.Outcome.REJECT


class WithdrawView(RequestMixin, ProjectApiView):
    serializer_class = PromotionRequestSerializer

    @extend_schema(request=None, responses={200: PromotionRequestSerializer})
    def post(self, request, project, pk):
        services.promotion_request_withdraw(actor=self.principal, request=self.promotion_request)
        return self.respond()


class ExecuteView(RequestMixin, ProjectApiView):
    serializer_class = DeploymentDetailSerializer

    @extend_schema(request=None, responses={200: DeploymentDetailSerializer})
    def post(self, request, project, pk):
        deployment = services.promotion_execute(actor=self.principal, request=self.promotion_request)
        fresh = selectors.deployment_get(project=self.project, deployment_id=deployment.pk)
        return Response(self.get_serializer(fresh).data)


class DeploymentListView(ProjectListApiView):
    serializer_class = DeploymentSerializer
    queryset = Deployment.objects.none()
    filterset_class = DeploymentFilter

    def scoped_queryset(self):
        return selectors.deployment_list(project=self.project, filters=self.filters)


class DeploymentHistoryView(ProjectListApiView):
    """``?at=`` answers what ran where at that moment, approved by whom, under which policy version."""

    serializer_class = HistorySerializer
    queryset = DeploymentHistory.objects.none()
    filterset_class = DeploymentHistoryFilter

    def scoped_queryset(self):
        return selectors.deployment_history_list(project=self.project, filters=self.filters)


class DeploymentMixin:
    def deployment(self) -> Deployment | None:
        deployment = selectors.deployment_at(
            principal=self.principal, project=self.kwargs["project"], model=self.kwargs["model"],
            environment=self.kwargs["environment"],
        )  # fmt: skip
        if deployment is not None:
            self.__dict__.setdefault("project", deployment.project)
        return deployment

    def existing(self) -> Deployment:
        deployment = self.deployment()
        if deployment is None:
            raise NotFound("Nothing is deployed there.")
        return deployment


class DeploymentDetailView(DeploymentMixin, ProjectApiView):
    """The enforcement point: the approved artifact's uri and sha256 for a (model, environment)."""

    serializer_class = DeploymentDetailSerializer

    def get(self, request, project, model, environment):
        return Response(self.get_serializer(self.existing()).data)


class DeploymentVerifyView(DeploymentMixin, ProjectApiView):
    """May an artifact with this hash run here? Read-only callers (auditors, read-only keys) may ask."""

    read_like = True

    @extend_schema(request=VerifySerializer, responses={200: dict})
    def post(self, request, project, model, environment):
        data = self.validated(VerifySerializer)
        deployment = self.deployment()
        answer = services.deployment_verify(deployment=deployment, artifact_sha256=data["artifact_sha256"])
        answer["version"] = deployment.model_version.version if deployment else None
        return Response(answer)


class DeploymentStateView(DeploymentMixin, ProjectApiView):
    serializer_class = DeploymentDetailSerializer
    state = ""

    @extend_schema(request=SuspendSerializer, responses={200: DeploymentDetailSerializer})
    def post(self, request, project, model, environment):
        data = self.validated(SuspendSerializer)
        services.deployment_set_state(
            actor=self.principal, deployment=self.existing(), state=self.state, reason=data["reason"]
        )
        return Response(self.get_serializer(self.existing()).data)


class SuspendView(DeploymentStateView):
    state = Deployment.State.SUSPENDED


class ResumeView(DeploymentStateView):
    state = Deployment.State.ACTIVE


class RiskTierConfirmView(VersionMixin, ProjectApiView):
    version_representation = False
    serializer_class = ModelCardSerializer

    @extend_schema(request=RiskTierConfirmSerializer, responses={200: ModelCardSerializer})
    def post(self, request, project, model, version):
        data = self.validated(RiskTierConfirmSerializer)
        card = services.model_card_confirm_risk_tier(
            actor=self.principal, version=self.version, risk_tier=data["risk_tier"], comment=data["comment"],
            revision=data["revision"],
        )  # fmt: skip
        card.model_version = self.version
        return Response(self.get_serializer(card).data)
