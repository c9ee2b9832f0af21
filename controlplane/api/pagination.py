from django.conf import settings
from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=`` and ``?page_size=`` (capped). Every list view orders by a unique key, so pages are stable."""

    page_size_query_param = "page_size"

    @property
    def page_size(self):
        return settings.TOLLGATE_PAGE_SIZE

    @property
    def max_page_size(self):
        return settings.TOLLGATE_MAX_PAGE_SIZE


class CursorPagination(pagination.CursorPagination):
    """``?cursor=`` and ``?page_size=`` (capped), for append-only logs: no COUNT, no OFFSET, and pages stay
    put while rows are appended. Subclasses (or the view) set ``ordering`` to a unique, indexed key."""

    page_size_query_param = "page_size"

    def __init__(self):
        # Read per request (tests override the settings); DRF assigns page_size while paginating.
        self.page_size = settings.TOLLGATE_PAGE_SIZE
        self.max_page_size = settings.TOLLGATE_MAX_PAGE_SIZE
