"""The Celery app. Settings come from Django settings (the ``CELERY_`` namespace, DESIGN §7)."""

import os

from celery import Celery
from celery import Task as CeleryTask
from celery.worker.request import Request

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.base")


class WorkerLimitsRequest(Request):
    """A task as the worker runs it: under the worker's own time limits (the task's ``time_limit`` and
    ``soft_time_limit``, from the worker's settings). Celery stamps the sender's limits into every message and
    prefers them, but the sender -- web, beat, another worker -- does not know this worker's settings."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_limits = (None, None)
        self._request_dict["timelimit"] = None  # nor do the task's context and its retries carry them on


class Task(CeleryTask):
    Request = WorkerLimitsRequest


app = Celery("tollgate", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
