"""Job backend overhead and parallel speed-up on the local Dask cluster.

1. A trivial job (diagnostic.echo), submit -> result written to the store, median of 50.
   Target (issue 3): under 200 ms.
2. A sweep of 16 CPU-bound tasks (diagnostic.spin, pure Python, one core each) on 1 worker vs
   2 workers, each measured from submit to all results stored. Target: at least 1.6x with 2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def run_overhead(n: int) -> list[float]:
    from featgeom_core import jobs

    jobs.get_client()
    jobs.wait(jobs.submit("diagnostic.echo", {"value": "warm-up"}))
    samples = []
    for i in range(n):
        start = time.perf_counter()
        job_id = jobs.submit("diagnostic.echo", {"value": i})
        record = jobs.wait(job_id, poll_s=0.002)
        samples.append(time.perf_counter() - start)
        assert record.status == "done"
    return samples


def run_sweep(workers: int, tasks: int, iterations: int, tag: str) -> float:
    from featgeom_core import jobs

    jobs.shutdown()
    os.environ["FEATGEOM_LOCAL_WORKERS"] = str(workers)
    jobs.get_client()
    jobs.wait(jobs.submit("diagnostic.echo", {"value": f"warm-up {workers}"}))
    start = time.perf_counter()
    ids = [jobs.submit("diagnostic.spin", {"iterations": iterations, "steps": 10, "tag": f"{tag}-{workers}-{i}"}) for i in range(tasks)]
    statuses = [jobs.wait(job_id, timeout_s=3600, poll_s=0.01).status for job_id in ids]
    elapsed = time.perf_counter() - start
    assert set(statuses) == {"done"}, statuses
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trivial", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=8_000_000, help="per task; ~1 s of one core here")
    args = parser.parse_args()
    os.environ["FEATGEOM_CACHE_DIR"] = tempfile.mkdtemp(prefix="featgeom-bench-jobs-")
    os.environ.pop("FEATGEOM_SCHEDULER", None)
    os.environ["FEATGEOM_LOCAL_WORKERS"] = "2"

    from featgeom_core import jobs

    samples = run_overhead(args.trivial)
    tag = str(time.time())
    one = run_sweep(1, args.tasks, args.iterations, tag)
    two = run_sweep(2, args.tasks, args.iterations, tag)
    jobs.shutdown()
    print(
        f"trivial job, submit -> stored result, local cluster: median {statistics.median(samples) * 1000:.1f} ms, "
        f"p90 {sorted(samples)[int(0.9 * len(samples))] * 1000:.1f} ms over {len(samples)} (target < 200 ms)"
    )
    print(f"{args.tasks} CPU-bound tasks: 1 worker {one:.2f} s, 2 workers {two:.2f} s -> {one / two:.2f}x (target >= 1.6x)")


if __name__ == "__main__":
    main()
