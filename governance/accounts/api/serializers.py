"""Serializers of the accounts API (projects, members, API keys, service accounts, users, the caller). Serializers
translate; they hold no rules. State-carrying fields are read-only."""

from django.contrib.auth.password_validation import validate_password
from rest_framework import serializers

from controlplane.api.serializers import CachedFieldsModelSerializer
from governance.accounts.models import SERVICE_ACCOUNT_ROLES, ApiKey, Project, Role, RoleBinding, User


class ProjectSerializer(CachedFieldsModelSerializer):
    roles = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "created_at", "roles"]
        read_only_fields = ["slug", "created_at", "roles"]

    def get_roles(self, project) -> list[str]:
        principal = self.context.get("principal")
        return sorted(principal.roles(project)) if principal else []


class ProjectCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    admin = serializers.CharField(help_text="Username of the project's first admin.")


class ProjectUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class RoleBindingSerializer(CachedFieldsModelSerializer):
    principal = serializers.CharField(source="principal.username")
    service_account = serializers.BooleanField(source="principal.is_service_account")
    granted_by = serializers.CharField(source="granted_by.username", default=None)
    revoked_by = serializers.CharField(source="revoked_by.username", default=None)

    class Meta:
        model = RoleBinding
        fields = [
            "id",
            "principal",
            "service_account",
            "role",
            "state",
            "granted_by",
            "granted_at",
            "expires_at",
            "revoked_at",
            "revoked_by",
        ]
        read_only_fields = fields


class RoleGrantSerializer(serializers.Serializer):
    principal = serializers.CharField(help_text="Username (or service account name) to grant the role to.")
    role = serializers.ChoiceField(choices=Role.choices)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ApiKeySerializer(CachedFieldsModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "owner",
            "project",
            "read_only",
            "state",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The secret. Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, obj) -> str:
        return self.context["raw_key"]


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    project = serializers.SlugField(required=False, allow_null=True, default=None, help_text="Pin to this project.")
    read_only = serializers.BooleanField(default=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ServiceAccountKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    read_only = serializers.BooleanField(default=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ServiceAccountSerializer(CachedFieldsModelSerializer):
    name = serializers.SerializerMethodField()
    roles = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "name", "username", "description", "is_active", "date_joined", "roles"]
        read_only_fields = fields

    def get_name(self, account) -> str:
        return account.username.rsplit("@", 1)[0]

    def get_roles(self, account) -> list[str]:
        return sorted({b.role for b in account.role_bindings.all() if b.state == "active"})


class ServiceAccountCreateSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[a-z0-9][a-z0-9_.-]{0,62}$", help_text="Lowercase letters, digits, . _ -")
    role = serializers.ChoiceField(choices=[(r.value, r.label) for r in SERVICE_ACCOUNT_ROLES])
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ServiceAccountCreatedSerializer(ServiceAccountSerializer):
    key = serializers.SerializerMethodField(help_text="The first key's secret. Shown once.")
    key_prefix = serializers.SerializerMethodField()

    class Meta(ServiceAccountSerializer.Meta):
        fields = [*ServiceAccountSerializer.Meta.fields, "key", "key_prefix"]
        read_only_fields = fields

    def get_key(self, account) -> str:
        return self.context["raw_key"]

    def get_key_prefix(self, account) -> str:
        return self.context["key"].prefix


class UserSerializer(CachedFieldsModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "is_active", "is_staff", "date_joined"]
        read_only_fields = fields


class UserCreateSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.+-]{1,150}$")
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    password = serializers.CharField(required=False, allow_blank=False, write_only=True, default=None)

    def validate_password(self, value):
        if value is not None:
            validate_password(value)
        return value


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    service_account = serializers.BooleanField()
    key = ApiKeySerializer(allow_null=True)
    projects = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
