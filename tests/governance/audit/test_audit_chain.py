"""Tampering behind the application's back, and what the verifier says about it."""

import json
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.accounts.services import role_grant, role_revoke
from governance.audit.chain import canonical, checkpoint_all, checkpoint_list, digest, verify_chain
from governance.audit.db import audit_maintenance
from governance.audit.models import AuditEvent, chain_of
from governance.audit.services import audit_record
from tests.factories import UserFactory


@pytest.fixture
def chain(project, admin_user):
    """A project chain of a dozen events."""
    admin = Principal(admin_user)
    for n in range(6):
        user = UserFactory(username=f"member{n}")
        binding = role_grant(actor=admin, project=project, principal=user, role=Role.ML_ENGINEER)
        if n % 2:
            role_revoke(actor=admin, binding=binding)
    return chain_of(project.pk)


def events(chain):
    return list(AuditEvent.objects.filter(chain=chain).order_by("sequence"))


def update(chain, sequence, **fields):
    with audit_maintenance():
        AuditEvent.objects.filter(chain=chain, sequence=sequence).update(**fields)


def rewrite_from(chain, start, change):
    """A consistent rewrite: change the events from ``start`` on and recompute every hash after them."""
    rows = events(chain)
    prev = rows[start - 2].hash if start > 1 else "0" * 64
    with audit_maintenance():
        for event in rows[start - 1 :]:
            body = json.loads(event.payload)
            if event.sequence == start:
                change(body)
            body["prev_hash"] = prev
            payload = canonical(body)
            prev = digest(payload)
            AuditEvent.objects.filter(pk=event.pk).update(
                payload=payload, hash=prev, prev_hash=body["prev_hash"], diff=body["diff"], action=body["action"]
            )


def test_an_untouched_chain_verifies(chain):
    checkpoint_all()
    result = verify_chain(chain)
    assert result["ok"], result
    assert result["events_checked"] == len(events(chain)) >= 9
    assert result["last_checkpoint_sequence"] == result["last_sequence"]
    assert result["unanchored_events"] == 0


def test_a_changed_column_is_caught(chain):
    checkpoint_all()
    update(chain, 4, action="role.forged")
    failure = verify_chain(chain)["first_failure"]
    assert failure["sequence"] == 4
    assert "'action' disagrees" in failure["reason"]


def test_changed_bytes_are_caught(chain):
    checkpoint_all()
    event = events(chain)[5]
    update(chain, 6, payload=event.payload.replace('"role":"ml_engineer"', '"role":"admin"'))
    failure = verify_chain(chain)["first_failure"]
    assert failure == {"sequence": 6, "event_id": event.pk, "reason": failure["reason"]}
    assert "altered" in failure["reason"]


def test_a_removed_event_is_caught(chain):
    checkpoint_all()
    with audit_maintenance():
        AuditEvent.objects.filter(chain=chain, sequence=5).delete()
    failure = verify_chain(chain)["first_failure"]
    assert failure["sequence"] == 5
    assert "missing" in failure["reason"]


def test_an_inserted_event_is_caught(chain):
    checkpoint_all()
    rows = events(chain)
    forged = json.loads(rows[2].payload)
    forged.update(sequence=4, action="role.granted", prev_hash=rows[2].hash)
    payload = canonical(forged)
    with audit_maintenance():
        # Make room at sequence 4 by moving every later event one place up.
        for event in reversed(rows[3:]):
            AuditEvent.objects.filter(pk=event.pk).update(sequence=event.sequence + 1)
    AuditEvent.objects.create(
        chain=chain, sequence=4, occurred_at=rows[2].occurred_at, project_id=rows[2].project_id,
        actor_id=rows[2].actor_id, actor_name=rows[2].actor_name, actor_role=rows[2].actor_role,
        action="role.granted", target_type=rows[2].target_type, target_id=rows[2].target_id,
        target_label=rows[2].target_label, diff=forged["diff"], prev_hash=rows[2].hash, hash=digest(payload),
        payload=payload,
    )  # fmt: skip
    failure = verify_chain(chain)["first_failure"]
    assert failure["sequence"] == 5
    assert failure["event_id"] == rows[3].pk


def test_a_deleted_tail_is_caught(chain):
    checkpoint_all()
    last = events(chain)[-1].sequence
    with audit_maintenance():
        AuditEvent.objects.filter(chain=chain, sequence__gte=last - 1).delete()
    result = verify_chain(chain)
    assert not result["ok"]
    assert result["first_failure"]["sequence"] == last - 1
    assert "deleted from the tail" in result["first_failure"]["reason"]


def test_a_consistent_rewrite_reaching_before_a_checkpoint_is_caught(chain):
    checkpoint_all()
    anchored = checkpoint_list(chain)[-1]["sequence"]

    def grant_admin(body):
        body["diff"]["role"] = "admin"

    rewrite_from(chain, 3, grant_admin)
    result = verify_chain(chain)
    assert not result["ok"]
    assert result["first_failure"]["sequence"] == anchored
    assert "checkpoint" in result["first_failure"]["reason"]


def test_a_consistent_rewrite_after_the_last_checkpoint_is_the_documented_limit(chain, project, admin_user):
    checkpoint_all()
    anchored = checkpoint_list(chain)[-1]["sequence"]
    role_grant(actor=Principal(admin_user), project=project, principal=UserFactory(username="late"), role="auditor")

    def grant_admin(body):
        body["diff"]["role"] = "admin"

    rewrite_from(chain, anchored + 1, grant_admin)
    result = verify_chain(chain)
    assert result["ok"], "a rewrite after the last checkpoint cannot be seen: the documented limit"
    assert result["unanchored_events"] >= 1
    # ... but the next checkpoint anchors what is there, and an inconsistent edit is still caught.
    update(chain, anchored + 1, action="role.revoked")
    assert not verify_chain(chain)["ok"]


def test_a_forged_checkpoint_is_caught(chain, settings):
    checkpoint_all()
    settings.TOLLGATE_AUDIT_SIGNING_KEY = "another key"
    result = verify_chain(chain)
    assert not result["ok"]
    assert "bad signature" in result["first_failure"]["reason"]


def test_checkpoints_are_written_only_when_the_head_moved(chain, project, admin_user):
    assert checkpoint_all() >= 1
    assert checkpoint_all() == 0
    role_grant(actor=Principal(admin_user), project=project, principal=UserFactory(username="new"), role="auditor")
    assert checkpoint_all() == 1
    assert len(checkpoint_list(chain)) == 2


def test_the_command_names_the_first_bad_event(chain, project, capsys):
    checkpoint_all()
    call_command("verify_audit_chain", "--project", project.slug)
    assert "OK" in capsys.readouterr().out
    update(chain, 3, actor_name="someone-else")
    with pytest.raises(CommandError):
        call_command("verify_audit_chain")
    out = capsys.readouterr().out
    assert f"{chain}: FAILED at sequence 3" in out
    assert "'actor_name' disagrees" in out


def test_an_auditor_verifies_over_http(api, project, auditor, chain):
    response = api(auditor, read_only=True).post(f"/api/v1/projects/{project.slug}/audit-events/verify/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "done"
    assert body["result"]["ok"] is True
    assert body["progress"] == 1.0

    update(chain, 2, action="forged")
    body = api(auditor).post(f"/api/v1/projects/{project.slug}/audit-events/verify/").json()
    assert body["result"]["ok"] is False
    assert body["result"]["first_failure"]["sequence"] == 2


def test_a_large_chain_is_verified_by_a_task_with_progress(
    api, project, auditor, chain, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.TOLLGATE_AUDIT_VERIFY_INLINE_MAX = 3
    with django_capture_on_commit_callbacks(execute=True):
        response = api(auditor).post(f"/api/v1/projects/{project.slug}/audit-events/verify/")
    assert response.status_code == 202  # above the inline maximum: a task verifies it
    body = response.json()
    detail = api(auditor).get(f"/api/v1/projects/{project.slug}/audit-events/verify/{body['id']}/").json()
    assert detail["state"] == "done"  # eager here; tests/controlplane/test_outbox.py runs it on a real worker
    assert detail["checked"] == detail["total"] == len(events(chain))


def test_only_auditors_and_admins_verify(api, project, ml_engineer, outsider):
    url = f"/api/v1/projects/{project.slug}/audit-events/verify/"
    assert api(ml_engineer).post(url).status_code == 403
    assert api(outsider).post(url).status_code == 404
    denied = AuditEvent.objects.filter(project=project, action="access.denied", actor_name="mlengineer")
    assert denied.exists()


def _in_threads(write, n: int) -> list:
    """Run ``write(0)`` .. ``write(n - 1)`` each in its own thread (and database connection); the errors raised."""
    errors = []

    def run(k):
        try:
            write(k)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_a_chain(staff, admin_user):
    from governance.accounts.services import project_create

    project = project_create(actor=Principal(staff), slug="busy", name="Busy", admin=admin_user)
    before = AuditEvent.objects.filter(project=project).count()

    def write(n):
        for i in range(15):
            audit_record(action="test.concurrent", actor=Principal.system(), project=project, diff={"w": n, "i": i})

    assert _in_threads(write, 6) == []
    chain = chain_of(project.pk)
    sequences = list(AuditEvent.objects.filter(chain=chain).values_list("sequence", flat=True).order_by("sequence"))
    assert sequences == list(range(1, len(sequences) + 1))
    assert len(sequences) == before + 6 * 15
    assert verify_chain(chain)["ok"]
    assert connection.vendor == "postgresql"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_writers_that_wait_for_the_head_link_to_the_event_they_waited_for(staff, admin_user):
    """Each writer holds the head a while before committing, so the others wait on its lock inside the one
    statement that appends (``_append_to_head``) and must then number and link after what it committed."""
    import time

    from django.db import transaction

    from governance.accounts.services import project_create

    project = project_create(actor=Principal(staff), slug="queue", name="Queue", admin=admin_user)
    before = AuditEvent.objects.filter(project=project).count()
    barrier = threading.Barrier(5)

    def write(n):
        barrier.wait()
        for i in range(8):
            with transaction.atomic():
                audit_record(action="test.waiting", actor=Principal.system(), project=project, diff={"w": n, "i": i})
                time.sleep(0.005)

    assert _in_threads(write, 5) == []
    chain = chain_of(project.pk)
    sequences = list(AuditEvent.objects.filter(chain=chain).values_list("sequence", flat=True).order_by("sequence"))
    assert sequences == list(range(1, before + 5 * 8 + 1))
    assert verify_chain(chain)["ok"]
