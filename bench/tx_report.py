"""``python -m bench.transactional``'s results as tables, against the aims issue 12 set."""

from __future__ import annotations

from typing import Any

from bench.report import table, verdict

AIM_P50_MS = 100.0
AIM_P99_MS = 500.0
AIM_CAMPAIGN_RATIO = 0.9
AIM_API_ACCEPTED_PER_S = 1000.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_tx_report(results: dict[str, Any]) -> None:
    machine = results["machine"]
    sizes = results["sizes"]
    print()
    print(
        f"Transactional benchmark {results['started_at']}  ({machine['cpus']} CPUs, Python "
        f"{machine['python']}, commit {machine['commit']})"
    )
    print(f"sink:  {results.get('sink', '-')}")
    print(f"redis: {results.get('redis', '-')}")
    print(
        f"campaign: {results.get('campaign_messages', 0):,} messages; transactional: "
        f"{sizes['tx_messages']:,} at {sizes['tx_rate_per_s']:g}/s; API alone: "
        f"{sizes['api_messages']:,} from {sizes['api_clients']} clients"
    )
    runs = results.get("runs", [])
    if not runs:
        return
    print()
    print("Transactional latency (acceptance to the sink's 250) beside a campaign at full speed:")
    table(
        (
            "database",
            "run",
            "campaign msg/s",
            "vs alone",
            "machine busy",
            "others' CPU",
            "tx p50 ms",
            "tx p99 ms",
            "tx max ms",
            "tx during campaign",
        ),
        [row for run in runs for row in _campaign_rows(run)],
    )
    print()
    print("The API alone (closed loop), accepted and delivered to the sink:")
    table(
        ("database", "messages", "clients", "accepted/s", "delivered/s", "p50 ms", "p99 ms"),
        [_api_row(run) for run in runs if "api_alone" in run],
    )
    print()
    _print_aims(runs)


def _campaign_rows(run: dict[str, Any]) -> list[tuple[str, ...]]:
    alone = run["campaign_alone"]
    rows: list[tuple[str, ...]] = [
        (
            run["database"],
            "campaign alone",
            f"{alone['messages_per_s']:,.0f}",
            "1.00",
            f"{alone['cpu'].get('machine_busy_percent', 0):.0f}%",
            _others_share(alone["cpu"]),
            "-",
            "-",
            "-",
            "-",
        )
    ]
    for key in ("campaign_with_api", "campaign_with_submission"):
        if key not in run:
            continue
        beside = run[key]
        campaign = beside["campaign"]
        latency = beside["latency"]
        during = beside["latency_while_campaign_sent"]
        rows.append(
            (
                run["database"],
                f"campaign + {beside['messages']:,} via {beside['path']}",
                f"{campaign['messages_per_s']:,.0f}",
                f"{campaign['ratio_to_alone']:.2f}",
                f"{campaign['cpu'].get('machine_busy_percent', 0):.0f}%",
                _others_share(campaign["cpu"]),
                _ms(latency["p50_ms"]),
                _ms(latency["p99_ms"]),
                _ms(latency["max_ms"]),
                f"{during['accepted']:,} (p50 {_ms(during['p50_ms'])}, p99 "
                f"{_ms(during['p99_ms'])})",
            )
        )
    return rows


def _others_share(cpu: dict[str, Any]) -> str:
    """The share of the machine's CPU that processes outside the measurement took."""
    machine = cpu.get("machine_ms_per_message")
    if not machine:
        return "-"
    return f"{cpu['other_processes_ms_per_message'] / machine:.0%}"


def _api_row(run: dict[str, Any]) -> tuple[str, ...]:
    api = run["api_alone"]
    return (
        run["database"],
        f"{api['messages']:,}",
        str(api["clients"]),
        f"{api['accepted_per_s']:,.0f}",
        f"{api['delivered_per_s']:,.0f}",
        _ms(api["latency"]["p50_ms"]),
        _ms(api["latency"]["p99_ms"]),
    )


def _print_aims(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        database = run["database"]
        for key in ("campaign_with_api", "campaign_with_submission"):
            if key not in run:
                continue
            beside = run[key]
            latency = beside["latency"]
            ratio = beside["campaign"]["ratio_to_alone"]
            label = f"{database}, {beside['path']}:"
            if latency["p50_ms"] is not None:
                print(
                    f"aim {label:<22} p50 < {AIM_P50_MS:.0f} ms: {latency['p50_ms']:,.0f}  "
                    f"{verdict(latency['p50_ms'] < AIM_P50_MS)};  p99 < {AIM_P99_MS:.0f} ms: "
                    f"{latency['p99_ms']:,.0f}  {verdict(latency['p99_ms'] < AIM_P99_MS)};  "
                    f"campaign >= {AIM_CAMPAIGN_RATIO:.0%} of alone: {ratio:.0%}  "
                    f"{verdict(ratio >= AIM_CAMPAIGN_RATIO)}"
                )
        if "api_alone" in run:
            accepted = run["api_alone"]["accepted_per_s"]
            print(
                f"aim {database + ', API alone:':<22} >= {AIM_API_ACCEPTED_PER_S:,.0f} accepted/s: "
                f"{accepted:,.0f}  {verdict(accepted >= AIM_API_ACCEPTED_PER_S)}"
            )
