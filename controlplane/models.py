"""The outbox (DESIGN §7): work to enqueue, written in the same transaction as the change that needs it."""

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    """One task to publish after commit. ``kwargs`` carries ids only, never large data (DESIGN §2).

    ``pending`` until a worker has run the task (successfully or not: retrying is the task's business);
    then ``done``. The sweeper re-publishes a pending row once ``republish_after`` has passed, whether or not
    its message ever reached the broker, so every task enqueued through the outbox must be safe to run twice.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        DONE = "done"

    task_name = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    queue = models.CharField(max_length=64, blank=True, help_text="Blank: the task's route (CELERY_TASK_ROUTES).")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    publish_count = models.PositiveIntegerField(default=0, help_text="Publishes the broker accepted.")
    last_published_at = models.DateTimeField(null=True, blank=True)
    republish_after = models.DateTimeField(help_text="When the sweeper publishes this row again if still pending.")
    done_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=["pending", "done"]), name="outbox_state_valid"),
        ]
        indexes = [
            # The sweeper: pending rows that are due.
            models.Index(fields=["republish_after"], condition=models.Q(state="pending"), name="outbox_due_idx"),
            # The retention cleanup: done rows by age.
            models.Index(fields=["done_at"], condition=models.Q(state="done"), name="outbox_done_idx"),
        ]

    def __str__(self):
        return f"outbox #{self.pk} {self.task_name} ({self.state})"
