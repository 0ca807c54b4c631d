"""`tradebot admin llm`: LLM calls, errors, tokens and cost per provider per UTC day (the llm_usage_daily
view, the same numbers as the admin /llm chat command and ai_provider_stats_by_user)."""

from __future__ import annotations

import click

from .admin import admin
from .common import _config, _open_db_readonly, clean_errors, format_table

COLUMNS = ["day", "provider", "calls", "errors", "error_%", "input_tokens", "output_tokens", "cost_usd",
           "avg_latency_ms"]


@admin.command("llm")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 3650), help="UTC days to show")
@click.pass_context
@clean_errors
def admin_llm(ctx, days):
    """LLM calls, errors, tokens and cost per provider per day."""
    from ..services.llm import llm_usage

    _open_db_readonly(_config(ctx))
    rows = llm_usage(days)
    if not rows:
        click.echo(f"No LLM calls in the last {days} day(s).")
        return
    click.echo(format_table(COLUMNS, rows))
