"""The promotion lists cost a fixed number of queries: the same with two models promoted as with twenty-two.

Every request pays five queries: the key, its ``last_used_at``, and the access log's savepoint, insert and
release; a project's list adds the project (six in all before the list's own)."""

import factory

from governance.accounts.access import Principal
from governance.promotion.services import policy_publish
from tests.factories import (
    DeploymentFactory,
    EnvironmentFactory,
    ExceptionFactory,
    PolicyFactory,
    PromotionRequestFactory,
    RegisteredVersionFactory,
    bulk,
    promoted_in_bulk,
)
from tests.list_queries import queries_of

MANY = 22
ENVIRONMENTS = 7  # the six, the environments (not paginated)
POLICIES = 8  # the six, the count, the page (with their publishers)
EXCEPTIONS = 8  # the six, the count, the page (with version, model, environment, requester, granter)
REQUESTS = 10  # the six, the count, the page (with version, model, environment, people), decisions, reviewers
# The officer's queue: the five, the count, the page, decisions, reviewers; then every open request's gates
# evaluated together: policies, cards, dataset links, metrics, decisions, the reviewers' roles, lineage runs and
# their datasets, one statement for card authors, requesters and usernames (exceptions only where a gate they
# waive fails: none here).
QUEUE_OPEN = 18
QUEUE_ALL = 18
DEPLOYMENTS = 8  # the six, the count, the page (with model, environment, version)
HISTORY = 8  # the six, the count, the page (with deployment, model, environment, version, executor)


def promoted(project, ml_engineer, officer, name):
    """``name`` v1 (ready) runs in production; an approved request for staging is open; its metric gate in
    staging is waived."""
    version = RegisteredVersionFactory(
        project=project, created_by=ml_engineer, model_name=name, ready=True, confirmed_by=officer
    )
    DeploymentFactory(version=version, officer=officer)
    PromotionRequestFactory(version=version, environment="staging", approved_by=[officer])
    ExceptionFactory(version=version, granted_by=officer, environment="staging")


def test_the_promotion_lists(api, project, admin_user, ml_engineer, officer, officer2, django_assert_max_num_queries):
    def lists(rows):
        def count(user, path, pinned, listed=rows, params=None):
            return queries_of(django_assert_max_num_queries, api(user), path, pinned, rows=listed, params=params)

        p = f"/api/v1/projects/{project.slug}/"
        return [
            count(admin_user, f"{p}environments/", ENVIRONMENTS),
            count(officer, f"{p}policies/", POLICIES),
            count(officer, f"{p}exceptions/", EXCEPTIONS),
            count(officer, f"{p}promotion-requests/", REQUESTS, listed=2 * rows),
            count(officer2, "/api/v1/promotion-requests/", QUEUE_OPEN, listed=rows, params={"state": "open"}),
            count(officer2, "/api/v1/promotion-requests/", QUEUE_ALL, listed=2 * rows),
            count(ml_engineer, f"{p}deployments/", DEPLOYMENTS),
            count(ml_engineer, f"{p}deployments/history/", HISTORY),
        ]

    current = project.policies.get().document
    policy_publish(actor=Principal(officer), project=project, source=current, comment="a second version")
    for i in range(2):  # two models through the services
        promoted(project, ml_engineer, officer, f"model-{i}")
    few = lists(2)

    promoted_in_bulk(project, engineer=ml_engineer, officer=officer, n=MANY - 2)
    bulk(EnvironmentFactory, MANY - 2, project=project)  # with production and staging
    bulk(PolicyFactory, MANY - 2, project=project, version=factory.Iterator(range(3, MANY + 1)), document=current,
         published_by=officer)  # fmt: skip
    assert lists(MANY) == few
