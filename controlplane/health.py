"""Liveness and readiness probes: public, and exempt from the HTTPS redirect (DESIGN §6)."""

import redis
from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class HealthView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(auth=[], responses={200: dict})
    def get(self, request):
        return Response({"status": "ok"})


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _broker() -> str:
    if not settings.REDIS_URL:
        return "eager"  # no broker configured: tasks run in process
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


class ReadyView(HealthView):
    """200 when the database and the broker answer; 503 naming the one that does not."""

    @extend_schema(auth=[], responses={200: dict, 503: dict})
    def get(self, request):
        checks, ready = {}, True
        for name, probe in (("database", _database), ("broker", _broker)):
            try:
                checks[name] = probe()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                checks[name] = f"error: {type(exc).__name__}"
                ready = False
        return Response({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
