from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from controlplane.exceptions import NotFound
from governance.access import require_role
from governance.accounts.api.base import ProjectApiView
from governance.models import AuditVerification
from governance.services.audit import AUDIT_READERS, audit_verification_start


class AuditVerificationSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", default=None)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = AuditVerification
        fields = [
            "id",
            "chain",
            "state",
            "requested_by",
            "requested_at",
            "finished_at",
            "total",
            "checked",
            "progress",
            "result",
        ]
        read_only_fields = fields

    def get_progress(self, verification) -> float:
        if verification.state == AuditVerification.State.DONE:
            return 1.0
        return round(verification.checked / verification.total, 4) if verification.total else 0.0


class AuditVerifyView(ProjectApiView):
    """Recompute the project's chain from the stored bytes and compare it with the signed checkpoints.

    A small chain answers 200 with the result; a large one answers 202 and is verified by a worker: poll
    the returned URL for progress and the result."""

    serializer_class = AuditVerificationSerializer
    read_like = True

    @extend_schema(request=None, responses={200: AuditVerificationSerializer, 202: AuditVerificationSerializer})
    def post(self, request, project):
        verification = audit_verification_start(actor=self.principal, project=self.project)
        body = self.get_serializer(verification).data
        if verification.state in (AuditVerification.State.DONE, AuditVerification.State.ERROR):
            return Response(body)
        location = f"/api/v1/projects/{self.project.slug}/audit-events/verify/{verification.pk}/"
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class AuditVerificationDetailView(ProjectApiView):
    serializer_class = AuditVerificationSerializer

    def get(self, request, project, pk):
        require_role(self.principal, self.project, AUDIT_READERS, action="see audit verifications", write=False)
        verification = AuditVerification.objects.filter(project=self.project, pk=pk).select_related("requested_by")
        if not verification:
            raise NotFound("No such verification in this project.")
        return Response(self.get_serializer(verification[0]).data)
