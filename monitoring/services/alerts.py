"""Acknowledging alerts. Alerts are raised where their cause is found: by a finished check run
(``execution``) or by the freshness check (``schedules``)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from controlplane.exceptions import Conflict
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Role
from governance.audit.services import audit_record
from monitoring.models import Alert

ACKNOWLEDGERS = (Role.ML_ENGINEER, Role.GOVERNANCE_OFFICER, Role.ADMIN)


@transaction.atomic
def alert_acknowledge(*, actor: Principal, alert: Alert, comment: str = "") -> Alert:
    require_role(actor, alert.project, ACKNOWLEDGERS, action="acknowledge alerts")
    alert = Alert.objects.select_for_update().select_related("project").get(pk=alert.pk)
    if alert.acknowledged_at is not None:
        raise Conflict("This alert is acknowledged already.", code="already_acknowledged")
    alert.acknowledged_by, alert.acknowledged_at, alert.acknowledgement = actor.user, timezone.now(), comment
    alert.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledgement"])
    audit_record(action="alert.acknowledged", actor=actor, project=alert.project, target=alert,
                 diff={"check_run": alert.check_run_id, "comment": comment})  # fmt: skip
    return alert
