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
