"""Reads of promotion, scoped to the requesting principal: the governance officer's queue of open requests."""

from django.db.models import QuerySet

from governance.accounts.access import Principal
from governance.promotion.models import PromotionRequest
from governance.promotion.services import gates_evaluate_many


class PromotionRequestQueue(QuerySet):
    """Promotion requests that come with their gates evaluated: whatever rows a fetch loads (a page, one row)
    are evaluated together by ``gates_evaluate_many`` -- the same evaluation as the request's page, made when
    the rows are read, nothing stored -- and each carries it as ``evaluation``. Counting does not evaluate;
    ``values()`` and ``iterator()`` give rows without it."""

    def _fetch_all(self):
        fresh = self._result_cache is None
        super()._fetch_all()
        rows = self._result_cache
        if fresh and rows and isinstance(rows[0], PromotionRequest):
            subjects = [(row.model_version, row.environment, row) for row in rows]
            for row, evaluation in zip(rows, gates_evaluate_many(subjects), strict=True):
                row.evaluation = evaluation


def promotion_request_queue(*, principal: Principal, filters: dict | None = None) -> PromotionRequestQueue:
    """Promotion requests across every project where the caller holds a role, oldest first, each with its risk
    tier and gates evaluated (see ``PromotionRequestQueue``) so an officer can triage without opening each one.
    The API's ``promotion-requests/`` and the console's queue read it. Filters: ``state``."""
    filters = filters or {}
    requests = PromotionRequestQueue(model=PromotionRequest).filter(project__in=principal.project_ids())
    if filters.get("state"):
        requests = requests.filter(state=filters["state"])
    return (
        requests.select_related(
            "project", "model_version__model__project", "environment",
            "requested_by", "closed_by",
        )
        .prefetch_related("decisions__reviewer")
        .order_by("created_at", "id")
    )  # fmt: skip
