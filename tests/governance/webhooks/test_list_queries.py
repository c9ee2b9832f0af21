"""The webhook lists cost a fixed number of queries: the same with two rows as with twenty-two.

Every request pays five queries: the key, its ``last_used_at``, and the access log's savepoint, insert and
release; a project's list adds the project (six before the list's own)."""

import factory

from tests.factories import WebhookDeliveryFactory, WebhookFactory, bulk
from tests.list_queries import queries_of

MANY = 22
WEBHOOKS = 9  # the six, the caller's roles, the count, the page (with their creators)
DELIVERIES = 11  # the six, roles, the webhook and its project, the count, the page


def test_the_webhook_lists(api, project, admin_user, django_assert_max_num_queries):
    def lists(rows):
        def count(path, pinned):
            return queries_of(django_assert_max_num_queries, api(admin_user), path, pinned, rows=rows)

        p = f"/api/v1/projects/{project.slug}/webhooks/"
        return [count(p, WEBHOOKS), count(f"{p}{hook.pk}/deliveries/", DELIVERIES)]

    hook, _ = WebhookFactory.create_batch(2, project=project, created_by=admin_user)
    first = WebhookDeliveryFactory(webhook=hook)
    WebhookDeliveryFactory(webhook=hook, redelivery_of=first, requested_by=admin_user, state="failed",
                           last_status_code=500, last_error="HTTP 500")  # fmt: skip
    few = lists(2)

    WebhookFactory.create_batch(MANY - 2, project=project, created_by=admin_user)
    originals = bulk(WebhookDeliveryFactory, (MANY - 2) // 2, webhook=hook)
    bulk(WebhookDeliveryFactory, (MANY - 2) // 2, webhook=hook, redelivery_of=factory.Iterator(originals),
         requested_by=admin_user)  # fmt: skip
    assert lists(MANY) == few
