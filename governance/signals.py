"""Console logins enter the audit trail (system chain); failed ones go to the access log only."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    from .access import Principal
    from .audit import audit_record

    audit_record(action="auth.login", actor=Principal(user), target=user)
