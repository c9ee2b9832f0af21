"""Verify every audit chain (or the named projects' chains) against the stored bytes and the checkpoints."""

from django.core.management.base import BaseCommand, CommandError

from governance.accounts.models import Project
from governance.audit.chain import verify_chain
from governance.audit.models import SYSTEM_CHAIN, AuditChainHead, AuditEvent, chain_of


class Command(BaseCommand):
    help = "Verify audit chains; exits non-zero and names the first event that does not match."

    def add_arguments(self, parser):
        parser.add_argument("--project", action="append", default=[], help="Project slug (repeatable).")
        parser.add_argument("--system", action="store_true", help="Only the system chain.")

    def handle(self, *, project, system, **options):
        if project:
            found = dict(Project.objects.filter(slug__in=project).values_list("slug", "pk"))
            missing = sorted(set(project) - set(found))
            if missing:
                raise CommandError(f"No such project: {', '.join(missing)}")
            chains = [chain_of(found[slug]) for slug in project]
        elif system:
            chains = [SYSTEM_CHAIN]
        else:
            chains = sorted(set(AuditChainHead.objects.values_list("chain", flat=True)))
        failed = []
        for chain in chains:
            total = AuditEvent.objects.filter(chain=chain).count()

            def progress(checked, chain=chain, total=total):
                self.stderr.write(f"  {chain}: {checked}/{total} events checked")

            result = verify_chain(chain, progress=progress)
            if result["ok"]:
                self.stdout.write(
                    f"{chain}: OK — {result['events_checked']} events, last checkpoint at "
                    f"{result['last_checkpoint_sequence']} ({result['unanchored_events']} events after it are "
                    "not yet anchored by a checkpoint)"
                )
            else:
                failure = result["first_failure"]
                self.stdout.write(
                    f"{chain}: FAILED at sequence {failure['sequence']} (event id {failure['event_id']}): "
                    f"{failure['reason']}"
                )
                failed.append(chain)
        if failed:
            raise CommandError(f"{len(failed)} chain(s) failed verification: {', '.join(failed)}")
