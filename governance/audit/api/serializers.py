"""The auditor's API: audit events, access-log entries and chain verifications as the API shows them."""

from rest_framework import serializers

from controlplane.api.serializers import CachedFieldsModelSerializer
from governance.audit.models import AccessLogEntry, AuditEvent, AuditVerification


class AuditEventSerializer(CachedFieldsModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "sequence",
            "occurred_at",
            "actor",
            "actor_role",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "request_id",
            "client_address",
            "diff",
        ]
        read_only_fields = fields


class AuditEventDetailSerializer(AuditEventSerializer):
    class Meta(AuditEventSerializer.Meta):
        fields = [*AuditEventSerializer.Meta.fields, "prev_hash", "hash", "payload"]
        read_only_fields = fields


class AccessLogEntrySerializer(CachedFieldsModelSerializer):
    principal = serializers.CharField(source="principal_name", read_only=True)
    project = serializers.CharField(source="project_slug", read_only=True)

    class Meta:
        model = AccessLogEntry
        fields = [
            "id",
            "at",
            "principal",
            "key_prefix",
            "method",
            "path",
            "project",
            "object",
            "status",
            "request_id",
            "client_address",
            "detail",
        ]
        read_only_fields = fields


class AuditVerificationSerializer(CachedFieldsModelSerializer):
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
