"""The registry lists cost a fixed number of queries: the same with two rows as with twenty-two.

Every request pays five queries: the key, its ``last_used_at``, and the access log's savepoint, insert and
release; a project's list adds the project (six before the list's own; the card history loads its version with
the project in one query)."""

import factory

from governance.accounts.access import Principal
from governance.registry.services import model_card_edit
from tests.factories import (
    CARD,
    DatasetLinkFactory,
    DatasetVersionFactory,
    MetricFactory,
    ModelCardRevisionFactory,
    ModelVersionFactory,
    RegisteredVersionFactory,
    bulk,
    promoted_in_bulk,
)
from tests.list_queries import queries_of

MANY = 22
MODELS = 8  # the six, the count, the page (with owners and version counts)
VERSIONS = 12  # the six, the model, the count, the page; metrics, dataset links, lineage runs (prefetched)
CARD_HISTORY = 8  # the five, the version (with its model and project, in one), the count, the page (+ authors)


def test_the_registry_lists(api, project, ml_engineer, officer, django_assert_max_num_queries):
    def lists(rows):
        def count(path, pinned, listed=rows):
            return queries_of(django_assert_max_num_queries, api(ml_engineer), path, pinned, rows=listed)

        p = f"/api/v1/projects/{project.slug}/models/"
        return [
            count(p, MODELS),
            count(f"{p}fraud-gbm/versions/", VERSIONS),
            count(f"{p}fraud-gbm/versions/1/model-card/history/", CARD_HISTORY),
        ]

    # Through the services: fraud-gbm v1 (ready) and v2 (trained on the same data), churn v1; v1's card edited.
    first = RegisteredVersionFactory(project=project, created_by=ml_engineer, ready=True, confirmed_by=officer)
    RegisteredVersionFactory(
        project=project, created_by=ml_engineer, trained_on=first.dataset_links.get().dataset_version
    )
    RegisteredVersionFactory(project=project, created_by=ml_engineer, model_name="churn")
    model_card_edit(actor=Principal(ml_engineer), version=first, fields={"limitations": "EU data only"})
    few = lists(2)

    promoted_in_bulk(project, engineer=ml_engineer, officer=officer, n=MANY - 2)
    data = DatasetVersionFactory(project=project, created_by=ml_engineer, dataset__name="more", sha256="0" * 64)
    versions = bulk(ModelVersionFactory, MANY - 2, model=first.model, version=factory.Iterator(range(3, MANY + 1)))
    bulk(MetricFactory, MANY - 2, model_version=factory.Iterator(versions))
    bulk(DatasetLinkFactory, MANY - 2, model_version=factory.Iterator(versions), dataset_version=data)
    bulk(
        ModelCardRevisionFactory, MANY - 2, card=first.card, revision=factory.Iterator(range(3, MANY + 1)), content=CARD
    )
    assert lists(MANY) == few
