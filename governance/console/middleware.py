"""Session lifetime for the console (and any session-authenticated API call): a session ends after
``TOLLGATE_SESSION_IDLE_MINUTES`` without a request, and ``SESSION_COOKIE_AGE`` (8 hours) after the login,
however busy it was. An ended session is logged out; the console then sends the person to the login page."""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse

LOGIN_AT = "_tollgate_login_at"
SEEN_AT = "_tollgate_seen_at"
# The last-seen stamp is written at most this often: a page's requests do not each write the session.
SEEN_RESOLUTION_SECONDS = 30


class SessionLifetimeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.headers.get("Authorization"):
            now = time.time()
            session = request.session
            login_at = session.get(LOGIN_AT)
            seen_at = session.get(SEEN_AT)
            if login_at is None:  # the first request after the login (its POST ran as anonymous here)
                session[LOGIN_AT] = session[SEEN_AT] = login_at = seen_at = now
            idle = settings.TOLLGATE_SESSION_IDLE_MINUTES * 60
            if now - seen_at > idle or now - login_at > settings.SESSION_COOKIE_AGE:
                logout(request)
                if request.path.startswith("/console/"):
                    query = urlencode({"expired": "1", "next": request.get_full_path()})
                    return redirect(f"{reverse('console:login')}?{query}")
            elif now - seen_at >= SEEN_RESOLUTION_SECONDS:
                session[SEEN_AT] = now
        return self.get_response(request)
