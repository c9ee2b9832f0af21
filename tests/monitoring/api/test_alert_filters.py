"""Alerts filter by model, environment, monitor and acknowledgement (issue 14, item 8): ``?model=`` was
silently ignored and showed every model's alerts."""

import pytest

from tests.monitoring.conftest import create_monitor, drifted, upload, url

pytestmark = pytest.mark.usefixtures("celery_eager")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # checks run after commit
def test_alerts_filter_by_model_environment_and_monitor(api, project, ml_engineer, officer, reference):
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project)
    assert upload(engineer, project, drifted(), environment="production").status_code == 201
    reader = api(officer)

    def ids(**params):
        response = reader.get(url(project, "alerts/"), params)
        assert response.status_code == 200, response.json()
        return [alert["id"] for alert in response.json()["results"]]

    raised = ids()
    assert len(raised) == 1
    assert ids(model="fraud-gbm") == raised
    assert ids(model="another-model") == []
    assert ids(environment="production") == raised
    assert ids(environment="staging") == []
    assert ids(monitor=monitor["id"], acknowledged="false") == raised
    assert ids(acknowledged="true") == []

    refused = reader.get(url(project, "alerts/"), {"acknowledged": "maybe"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("Invalid value 'maybe' for query parameter 'acknowledged'")
