"""Monitoring services (DESIGN §4 Monitoring, §5, §7), one module per concern; callers import from the module.

``monitors`` (configuration, revisions, beat entries), ``batches`` (uploads, signature checks, labels), ``runs``
(requesting check runs), ``execution`` (the worker side, and the reaper), ``inputs`` (what a run reads),
``reports`` (Evidently reports), ``alerts``, ``schedules`` (scheduled runs, freshness), ``retention`` (data
policy, downloads, purge).
"""
