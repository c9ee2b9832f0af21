"""``.../monitors/{id}/series/`` (issue 10): per-column drift scores and quality metrics per batch over time,
aligned arrays ready for charts, in one query whatever the number of batches."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.monitoring.conftest import create_monitor, drifted, same_as_reference, upload, url

pytestmark = pytest.mark.usefixtures("celery_eager")
flow = pytest.mark.django_db(transaction=True)


def queries(client, path) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.json()
    return len(captured), response.json()


@flow
def test_the_series_is_chart_ready_in_constant_queries(api, project, ml_engineer, auditor, reference):
    engineer = api(ml_engineer)
    drift = create_monitor(engineer, project)
    quality = create_monitor(engineer, project, kind="data_quality")
    start = timezone.now() - datetime.timedelta(days=10)

    def batch(day: int, frame):
        end = start + datetime.timedelta(days=day)
        upload(engineer, project, frame, environment="production", window_start=(end - datetime.timedelta(days=1))
               .isoformat(), window_end=end.isoformat())  # fmt: skip

    batch(2, same_as_reference(1))
    batch(1, drifted())  # arrives later, but its window is older
    reader = api(auditor)
    reader.get(url(project, "monitors/"))  # the first request of a key records its use
    few, series = queries(reader, url(project, f"monitors/{drift['id']}/series/"))
    assert [b["window_end"] < series["batches"][1]["window_end"] for b in series["batches"][:1]] == [True]
    assert [b["state"] for b in series["batches"]] == ["failed", "passed"]
    assert set(series["columns"]) == {"amount", "country", "score"}
    assert series["columns"]["amount"][0] < 0.05 < series["columns"]["amount"][1]  # p-values: drift, then none
    assert series["metrics"] == {}

    for day in range(3, 9):
        batch(day, same_as_reference(day))
    many, series = queries(reader, url(project, f"monitors/{drift['id']}/series/"))
    assert many == few  # one query for the series, however many batches
    assert len(series["batches"]) == 8 and all(len(v) == 8 for v in series["columns"].values())

    limited = reader.get(url(project, f"monitors/{drift['id']}/series/"), {"limit": 3}).json()
    assert [b["batch"] for b in limited["batches"]] == [b["batch"] for b in series["batches"][-3:]]
    measures = reader.get(url(project, f"monitors/{quality['id']}/series/")).json()
    assert measures["columns"] == {} and {"amount.missing_share", "country.unseen_share", "row_count"} <= set(
        measures["metrics"]
    )
    assert measures["metrics"]["row_count"] == [300.0] * 8
