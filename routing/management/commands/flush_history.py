"""Write buffered routing decisions and outcomes to the database now."""

from django.core.management.base import BaseCommand

from routing.history import flush_history


class Command(BaseCommand):
    help = "Drain the routing-history buffer (spool files and Redis stream) into the database."

    def handle(self, *args, **options):
        result = flush_history()
        self.stdout.write(
            f"flushed {result.decisions} decisions, {result.outcomes} outcomes"
            f" ({result.carried} outcomes waiting for their decision)"
        )
