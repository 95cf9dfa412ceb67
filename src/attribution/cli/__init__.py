"""The `attribution` command: worker, replay, topics, pixels, line-items, simulate, report, tokens.

Conventions follow Faust's and Kafka's tools: `-l/--loglevel`, `--broker` (env KAFKA_BROKER).
Exit codes: 0 success, 1 a refused request or an unreachable broker, 2 unusable arguments or
unreadable input (with a one-line message).
"""

from __future__ import annotations

import click

from attribution.cli.config_cmd import line_items_group, pixels_group
from attribution.cli.replay_cmd import replay_cmd
from attribution.cli.report_cmd import report_cmd
from attribution.cli.simulate_cmd import simulate_cmd
from attribution.cli.tokens_cmd import tokens_group
from attribution.cli.worker_cmd import topics_group, worker_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="attribution")
def main() -> None:
    """Streaming conversion attribution."""


main.add_command(replay_cmd)
main.add_command(worker_cmd)
main.add_command(topics_group)
main.add_command(pixels_group)
main.add_command(line_items_group)
main.add_command(simulate_cmd)
main.add_command(report_cmd)
main.add_command(tokens_group)
