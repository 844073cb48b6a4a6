"""Benchmark: does starting a cohort keep memory flat as the cohort grows?

Starts its own PostgreSQL (embedded) and Temporal dev server on free loopback
ports, writes made-up cohorts of 1,000 and 10,000 leads, and imports each in a
child process of its own (so each peak RSS is its own), with no worker running:
this measures the starter, not the journeys. In the same run it measures a bare
ceiling: `start_workflow` for a workflow that does nothing, with the same number
of starts in flight. Prints one table.

    .venv/bin/python -m bench.cohort_memory [--sizes 1000 10000] [--concurrency 32]
"""

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.db import upgrade
from core.settings import Settings
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import temporal_binary
from models import search_attributes

REPO = Path(__file__).resolve().parent.parent


@workflow.defn(name="BenchNothing")
class Nothing:
    @workflow.run
    async def run(self) -> None:
        return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_cohort(path: Path, size: int, run: str) -> Path:
    """A made-up cohort in the project's plain format."""
    zones = ["Europe/London", "America/New_York", "", "Asia/Tokyo"]
    sources = ["Google", "Reference", "Direct Traffic", "Olark Chat"]
    with path.open("w", encoding="utf-8") as handle:
        handle.write(
            "email,external_id,first_name,time_zone,do_not_email,lead_source\n"
        )
        for number in range(size):
            handle.write(
                f"bench-{run}-{number}@example.com,B{run}-{number},Person{number},"
                f"{zones[number % 4]},{'yes' if number % 13 == 0 else 'no'},"
                f"{sources[number % 4]}\n"
            )
    return path


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def child_cohort(args: argparse.Namespace) -> dict[str, object]:
    from starter.cohort import run_cohort

    settings = Settings(
        database_url=args.database_url,
        temporal_address=args.temporal,
        temporal_task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        journeys_dir=REPO / "journeys",
        log_level="WARNING",
    )
    client = await Client.connect(args.temporal, data_converter=pydantic_data_converter)
    rss_before = peak_rss_mib()
    tracemalloc.start()
    began = time.monotonic()
    await run_cohort(
        settings,
        Path(args.file),
        "welcome",
        concurrency=args.concurrency,
        client=client,
    )
    seconds = time.monotonic() - began
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "what": f"cohort of {args.size:,}",
        "leads": args.size,
        "seconds": seconds,
        "per_second": args.size / seconds,
        "traced_peak_mib": traced_peak / 2**20,
        "rss_before_mib": rss_before,
        "rss_peak_mib": peak_rss_mib(),
    }


async def child_ceiling(args: argparse.Namespace) -> dict[str, object]:
    """Bare `start_workflow` calls at the same concurrency: the ceiling."""
    client = await Client.connect(args.temporal, data_converter=pydantic_data_converter)
    run = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(args.concurrency)

    async def start(number: int) -> None:
        try:
            await client.start_workflow(
                Nothing.run, id=f"bench-{run}-{number}", task_queue=f"bench-{run}"
            )
        finally:
            gate.release()

    rss_before = peak_rss_mib()
    began = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for number in range(args.size):
            await gate.acquire()
            group.create_task(start(number))
    seconds = time.monotonic() - began
    return {
        "what": f"bare start_workflow x {args.size:,}",
        "leads": args.size,
        "seconds": seconds,
        "per_second": args.size / seconds,
        "traced_peak_mib": None,
        "rss_before_mib": rss_before,
        "rss_peak_mib": peak_rss_mib(),
    }


def run_child(*arguments: str) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.cohort_memory", "--child", *arguments],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


async def parent(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cohort-bench-") as scratch:
        folder = Path(scratch)
        postgres = EmbeddedPostgres(folder / "postgres", free_port())
        postgres.start()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            search_attributes=search_attributes.ALL,
            ui=False,
        )
        try:
            database_url = postgres.create_database("bench")
            upgrade(database_url)
            temporal = env.client.service_client.config.target_host
            common = ["--temporal", temporal, "--concurrency", str(args.concurrency)]
            results = [
                run_child("--ceiling", "--size", str(args.ceiling_size), *common)
            ]
            for size in args.sizes:
                cohort = write_cohort(folder / f"cohort-{size}.csv", size, str(size))
                results.append(
                    run_child(
                        "--size",
                        str(size),
                        "--file",
                        str(cohort),
                        "--database-url",
                        database_url,
                        *common,
                    )
                )
        finally:
            await env.shutdown()
            postgres.stop()

    print(
        f"\n{'what':<30}{'s':>8}{'/s':>8}{'traced peak':>13}{'RSS before':>12}"
        f"{'RSS peak':>10}"
    )
    for row in results:
        traced = row["traced_peak_mib"]
        traced_text = f"{traced:.1f} MiB" if isinstance(traced, float) else "-"
        print(
            f"{row['what']!s:<30}{row['seconds']:>8.1f}{row['per_second']:>8.0f}"
            f"{traced_text:>13}{row['rss_before_mib']:>8.0f} MiB"
            f"{row['rss_peak_mib']:>6.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--ceiling-size", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ceiling", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--temporal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child:
        asyncio.run(parent(args))
        return
    measure = child_ceiling if args.ceiling else child_cohort
    result = asyncio.run(measure(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
