"""The results as a table, with the ratios and the goals the project set itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GOAL_VS_NAIVE = 5.0
STRETCH_VS_CEILING = 1 / 3
GOAL_IMPORT_ROWS_PER_S = 50_000
GOAL_IMPORT_PEAK_RSS_MB = 500


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_report(results: dict[str, Any]) -> None:
    _print_setup(results)
    ceiling = results.get("ceiling")
    naive = results.get("naive")
    projects = results.get("project", [])
    rows = _throughput_rows(results)
    if rows:
        print()
        table(("measurement", "messages", "seconds", "msg/s", "notes"), rows)

    _print_cpu(projects, naive)

    if projects and (naive or ceiling):
        _print_ratios_and_goals(projects, naive, ceiling)

    million = results.get("million")
    if million:
        _print_large_list(million)


def _print_setup(results: dict[str, Any]) -> None:
    print()
    print(
        f"Benchmark {results['started_at']}  ({results['machine']['cpus']} CPUs, "
        f"Python {results['machine']['python']}, commit {results['machine']['commit']})"
    )
    print(f"sink:  {results.get('sink', '-')}")
    print(f"redis: {results.get('redis', '-')}")
    sizes = results.get("message_bytes", {})
    print(
        f"list:  {results['recipients_rows']:,} rows -> {results['messages']:,} messages; "
        f"message size project {sizes.get('project', 0):,} B, naive {sizes.get('naive', 0):,} B; "
        f"database {results['database']}"
    )
    if results.get("settings_overrides"):
        print(f"settings: {results['settings_overrides']}")


def _throughput_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    ceiling = results.get("ceiling")
    naive = results.get("naive")
    projects = results.get("project", [])
    if ceiling:
        rows.append(_row(ceiling["name"], ceiling, f"payload {ceiling['payload_bytes']:,} B"))
    elif "ceiling_note" in results:
        rows.append(("ceiling: smtp-source", "-", "-", "-", f"skipped: {results['ceiling_note']}"))
    for project in projects:
        first = project["first_message_s"]
        note = (
            f"schedule cmd {project['schedule_command_s']:.2f} s, first msg "
            f"{first:.2f} s, sink got {project['sink_received']:,}, db sent "
            f"{project['sent_in_database']:,}, {project['campaign_state']}"
            + (
                ""
                if project["sent_in_database"] == project["messages"]
                else f" (job states {project['job_states']})"
            )
            if first is not None
            else ""
        )
        rows.append(_row(project["name"], project, note))
    if naive:
        rows.append(
            _row(
                naive["name"],
                naive,
                f"enqueue {naive['enqueue_s']:.1f} s (not timed), "
                f"sink got {naive['sink_received']:,}",
            )
        )
    return rows


def _print_ratios_and_goals(
    projects: list[dict[str, Any]], naive: dict[str, Any] | None, ceiling: dict[str, Any] | None
) -> None:
    print()
    _warn_about_neighbours(projects, naive)
    ratio_rows = []
    for project in projects:
        rate = project["messages_per_s"]
        vs_naive = f"{rate / naive['messages_per_s']:.2f}x" if naive else "-"
        vs_ceiling = f"{rate / ceiling['messages_per_s']:.3f}" if ceiling else "-"
        ratio_rows.append((f"project {project['workers']}", vs_naive, vs_ceiling))
    table(("", "project / naive", "project / ceiling"), ratio_rows)
    best = max(project["messages_per_s"] for project in projects)
    print()
    if naive:
        ratio = best / naive["messages_per_s"]
        print(
            f"goal    project >= {GOAL_VS_NAIVE:g}x naive:      {ratio:.2f}x  "
            f"{verdict(ratio >= GOAL_VS_NAIVE)}"
        )
    if naive and naive.get("cpu") and all(project.get("cpu") for project in projects):
        leanest = min(project["cpu"]["measured_ms_per_message"] for project in projects)
        ratio = naive["cpu"]["measured_ms_per_message"] / leanest
        print(
            f"        CPU per message, naive / project: {ratio:.2f}x  "
            "(less sensitive to load than msg/s)"
        )
    if ceiling:
        ratio = best / ceiling["messages_per_s"]
        print(
            f"stretch project >= 1/3 of ceiling:  {ratio:.3f}  "
            f"{verdict(ratio >= STRETCH_VS_CEILING)}"
        )


def _print_large_list(million: dict[str, Any]) -> None:
    print()
    imported = million["import"]
    schedule = million["schedule"]
    rows = [
        (
            "import (edm lists import, own process)",
            f"{imported['rows']:,} rows",
            f"{imported['seconds']:.1f}",
            f"{imported['rows_per_s']:,.0f} rows/s",
            f"peak RSS {imported['peak_rss_mb']:,.0f} MB, CPU "
            f"{imported['user_cpu_s'] + imported['system_cpu_s']:.1f} s "
            f"({imported['rows_per_cpu_s']:,.0f} rows per CPU s), machine "
            f"{imported['machine_busy_percent']:.0f}% busy",
        ),
        (
            "create jobs (schedule_campaign)",
            f"{schedule['jobs']:,} jobs",
            f"{schedule['seconds']:.1f}",
            f"{schedule['jobs_per_s']:,.0f} jobs/s",
            "template check on every recipient + INSERT ... SELECT",
        ),
    ]
    for key, label in (
        ("dispatch_counting", "dispatch, publish only counts"),
        ("dispatch_redis", "dispatch, Celery send_task to Redis"),
    ):
        dispatch = million[key]
        rows.append(
            (
                label,
                f"{dispatch['jobs']:,} jobs",
                f"{dispatch['seconds']:.1f}",
                f"{dispatch['jobs_per_s']:,.0f} jobs/s",
                f"{dispatch['passes']} passes, mean {dispatch['mean_pass_s'] * 1000:.0f} ms "
                f"(first 10 {dispatch['first_passes_mean_s'] * 1000:.0f} ms, last 10 "
                f"{dispatch['last_passes_mean_s'] * 1000:.0f} ms), slowest "
                f"{dispatch['slowest_pass_s'] * 1000:.0f} ms",
            )
        )
    table(("large list", "count", "seconds", "rate", "notes"), rows)
    print()
    fast = imported["rows_per_s"] >= GOAL_IMPORT_ROWS_PER_S
    small = imported["peak_rss_mb"] < GOAL_IMPORT_PEAK_RSS_MB
    print(
        f"goal    import >= {GOAL_IMPORT_ROWS_PER_S:,} rows/s: "
        f"{imported['rows_per_s']:,.0f}  {verdict(fast)}"
    )
    print(
        f"goal    import peak RSS < {GOAL_IMPORT_PEAK_RSS_MB} MB:  "
        f"{imported['peak_rss_mb']:,.0f} MB  {verdict(small)}"
    )


NEIGHBOUR_SHARE_WARNING = 0.2


def _warn_about_neighbours(projects: list[dict[str, Any]], naive: dict[str, Any] | None) -> None:
    """Say so when other programs took a large share of the machine during a measurement."""
    measured = [(f"project {project['workers']}", project) for project in projects]
    if naive:
        measured.append(("naive", naive))
    for label, result in measured:
        cpu = result.get("cpu")
        if not cpu or not cpu["machine_ms_per_message"]:
            continue
        share = cpu["other_processes_ms_per_message"] / cpu["machine_ms_per_message"]
        if share > NEIGHBOUR_SHARE_WARNING:
            print(
                f"warning: other processes used {share:.0%} of the CPU during '{label}': "
                "its msg/s is lower than on a quiet machine, and ratios with it are skewed"
            )


def _print_cpu(projects: list[dict[str, Any]], naive: dict[str, Any] | None) -> None:
    measured = [(f"project {project['workers']}", project) for project in projects]
    if naive:
        measured.append(("naive", naive))
    measured = [(label, result) for label, result in measured if result.get("cpu")]
    if not measured:
        return
    groups: list[str] = []
    for _, result in measured:
        for group in result["cpu"]["ms_per_message"]:
            if group not in groups:
                groups.append(group)
    rows = []
    for label, result in measured:
        cpu = result["cpu"]
        per_group = cpu["ms_per_message"]
        rows.append(
            (
                label,
                *(f"{per_group[group]:.3f}" if group in per_group else "-" for group in groups),
                f"{cpu['measured_ms_per_message']:.3f}",
                f"{cpu['machine_ms_per_message']:.3f}",
                f"{cpu['machine_busy_percent']:.0f}%",
            )
        )
    print()
    print("CPU milliseconds per message (user + system), by process group:")
    table(("", *groups, "all measured", "whole machine", "machine busy"), rows)


def _row(name: str, result: dict[str, Any], note: str) -> tuple[str, str, str, str, str]:
    return (
        name,
        f"{result['messages']:,}",
        f"{result['elapsed_s']:.2f}",
        f"{result['messages_per_s']:,.0f}",
        note,
    )


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, tuple("-" * width for width in widths), *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
