"""What audit records of the concerns below it: account changes (``accounts.signals.account_changed``) and
console logins (Django's auth signals: a login enters the system chain; a failed one goes to the access log
only)."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from governance.accounts.access import Principal
from governance.accounts.models import User
from governance.accounts.signals import account_changed

from .middleware import access_log_mark
from .services import audit_record


@receiver(account_changed)
def record_account_change(sender, signal, **event):
    audit_record(**event)


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    audit_record(action="auth.login", actor=Principal(user), target=user)


@receiver(user_login_failed)
def mark_failed_login(sender, credentials, request=None, **kwargs):
    """The access log entry of this request says the login failed, and for which account if it exists.
    An unknown name is not repeated: people type their password into the username box."""
    if request is None:
        return
    username = str(credentials.get("username", ""))
    known = bool(username) and User.objects.filter(username=username).exists()
    access_log_mark(request, f"login_failed user={username}" if known else "login_failed unknown_user")
