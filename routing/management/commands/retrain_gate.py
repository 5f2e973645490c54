"""Retrain the learned gate now, in this process, and print what happened as JSON.

    python manage.py retrain_gate                     # the server's default number of examples
    python manage.py retrain_gate --max-examples 5000

The same work as the ``routing.retrain_gate`` Celery job, without a broker or worker: handy
on a fresh install, in a shell on the server, or when the queue is down.
"""

import argparse
import json

from django.core.management.base import BaseCommand

from routing.training import retrain_gate


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class Command(BaseCommand):
    help = (
        "Retrain the learned gate from recent routing history (synchronously, in this "
        "process); activate the new version only if it beats the active one. Prints the "
        "result as JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-examples",
            type=positive_int,
            default=None,
            help="Most recent decisions with outcomes to learn from (default: the server's).",
        )

    def handle(self, *args, **options):
        result = retrain_gate(max_examples=options["max_examples"])
        self.stdout.write(json.dumps(result, indent=2, sort_keys=True, default=str))
