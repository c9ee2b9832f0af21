"""The provenance lists cost a fixed number of queries: the same with two rows as with twenty-two.

Every request pays five queries: the key, its ``last_used_at``, and the access log's savepoint, insert and
release; a project's list adds the project (six before the list's own)."""

import factory

from governance.accounts.access import Principal
from governance.provenance.services import dataset_create, dataset_version_register
from tests.factories import (
    DatasetFactory,
    DatasetLinkFactory,
    DatasetVersionFactory,
    RegisteredVersionFactory,
    bulk,
    sha,
)
from tests.list_queries import queries_of

MANY = 22
DATASETS = 8  # the six, the count, the page (with owners and version counts)
DATASET_VERSIONS = 9  # the six, the dataset, the count, the page (with their authors)


def test_the_provenance_lists(api, project, ml_engineer, django_assert_max_num_queries):
    def lists(rows):
        def count(path, pinned):
            return queries_of(django_assert_max_num_queries, api(ml_engineer), path, pinned, rows=rows)

        p = f"/api/v1/projects/{project.slug}/datasets/"
        return [count(p, DATASETS), count(f"{p}{train.pk}/versions/", DATASET_VERSIONS)]

    actor = Principal(ml_engineer)
    train, source = (
        dataset_create(actor=actor, project=project, namespace="s3://fraud", name=name, license="CC-BY-4.0",
                       classification="internal")
        for name in ("train", "source")
    )  # fmt: skip
    for n in range(2):
        dataset_version_register(actor=actor, dataset=train, uri=f"s3://fraud/train-{n}.parquet", sha256=sha(f"{n}"))
    dataset_version_register(actor=actor, dataset=source, uri="s3://fraud/source.parquet", sha256=sha("source"))
    RegisteredVersionFactory(project=project, created_by=ml_engineer, trained_on=train.versions.first())
    few = lists(2)

    datasets = bulk(DatasetFactory, MANY - 2, project=project, owner=ml_engineer, name=factory.Sequence(str))
    bulk(DatasetVersionFactory, MANY - 2, dataset=factory.Iterator(datasets), created_by=ml_engineer)
    versions = bulk(DatasetVersionFactory, MANY - 2, dataset=train, version=factory.Sequence(lambda n: f"v{n}"),
                    created_by=ml_engineer)  # fmt: skip
    model_version = RegisteredVersionFactory(project=project, created_by=ml_engineer)
    bulk(DatasetLinkFactory, MANY - 2, model_version=model_version, dataset_version=factory.Iterator(versions))
    assert lists(MANY) == few
