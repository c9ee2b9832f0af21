"""Request throttling backed by the cache (Redis when configured). If the cache is unreachable the
request goes through: throttling protects the service, it must not take it down.

On Redis the window is DRF's own (the requests of the last ``duration`` seconds, refused ones not counted),
kept as a sorted set and decided by one Lua script: one round trip per request, and atomic, where DRF's
``SimpleRateThrottle`` reads and writes a list (two round trips, and concurrent requests can both pass).
With any other cache (the local-memory default without ``REDIS_URL``) DRF's implementation runs."""

import logging
import math
import secrets

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling

log = logging.getLogger(__name__)

# KEYS[1]: the window; ARGV: now, duration (s), the allowed number, a unique member. Returns -1 when the request
# is allowed (and recorded), else the oldest recorded time, from which the caller tells how long to wait. A window
# that DRF's implementation left (a pickled list, written before Redis was configured) is dropped.
_WINDOW = """
if redis.call('TYPE', KEYS[1]).ok == 'string' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
  return -1
end
return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
"""
_SCRIPT_ATTRIBUTE = "_tollgate_throttle_window"


class _Throttle(throttling.SimpleRateThrottle):
    wait_seconds: float | None = None

    def allow_request(self, request, view):
        try:
            backend = caches[DEFAULT_CACHE_ALIAS]  # the backend itself: ``cache`` is a proxy of it
            if not isinstance(backend, RedisCache):
                return super().allow_request(request, view)
            return self._allow_on_redis(request, view, backend)
        except Exception:  # noqa: BLE001 - a cache outage must not refuse requests
            log.warning("throttle cache unavailable; request allowed", exc_info=True)
            return True

    def _allow_on_redis(self, request, view, backend: RedisCache) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        key = backend.make_key(self.key)
        script = backend.__dict__.get(_SCRIPT_ATTRIBUTE)
        if script is None:
            # Registered once per backend (one per thread): its client and connection pool are reused.
            client = backend._cache.get_client(write=True)
            script = backend.__dict__[_SCRIPT_ATTRIBUTE] = client.register_script(_WINDOW)
        now = self.timer()
        oldest = script(keys=[key], args=[now, self.duration, self.num_requests, f"{now}:{secrets.token_hex(4)}"])
        if int(float(oldest)) == -1:
            return True
        self.wait_seconds = max(0.0, self.duration - (now - float(oldest)))
        return False

    def wait(self):
        if self.wait_seconds is not None:
            return math.ceil(self.wait_seconds) or 1
        return super().wait()


class UserThrottle(_Throttle, throttling.UserRateThrottle):
    def get_rate(self):
        return settings.TOLLGATE_THROTTLE_USER


class AnonThrottle(_Throttle, throttling.AnonRateThrottle):
    def get_rate(self):
        return settings.TOLLGATE_THROTTLE_ANON
