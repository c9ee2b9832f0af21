"""``queries_of``: the number of queries one list request costs, asserted at most ``pinned``. The list tests call
it with a few rows and again with more than twenty (with their relations) and assert the two counts are equal,
so a pinned count also proves that the list does not grow a query per row.

``MEASURE_QUERIES=1`` prints each request's queries instead of asserting (to measure a new pin)."""

import os

from django.db import connection
from django.test.utils import CaptureQueriesContext


def queries_of(django_assert_max_num_queries, client, path, pinned, *, rows, params=None):
    measuring = os.environ.get("MEASURE_QUERIES")
    with CaptureQueriesContext(connection) if measuring else django_assert_max_num_queries(pinned) as captured:
        response = client.get(path, params)
    if measuring:
        print(f"\n{path} rows={rows}: {len(captured)} queries")
        for query in captured.captured_queries:
            print("   ", query["sql"][:160])
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    listed = body["results"] if isinstance(body, dict) else body
    assert len(listed) == rows
    return len(captured)
