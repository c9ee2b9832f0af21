"""Request throttling backed by the cache (Redis when configured). If the cache is unreachable the
request goes through: throttling protects the service, it must not take it down."""

import logging

from django.conf import settings
from rest_framework import throttling

log = logging.getLogger(__name__)


class _FailOpen:
    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 - a cache outage must not refuse requests
            log.warning("throttle cache unavailable; request allowed", exc_info=True)
            return True


class UserThrottle(_FailOpen, throttling.UserRateThrottle):
    def get_rate(self):
        return settings.TOLLGATE_THROTTLE_USER


class AnonThrottle(_FailOpen, throttling.AnonRateThrottle):
    def get_rate(self):
        return settings.TOLLGATE_THROTTLE_ANON
