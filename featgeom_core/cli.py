"""``featgeom``: the same analyses as the app, headless. Exit code 0 on success, 2 on a user error
(one line on stderr), 1 when a job fails."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from featgeom_core.errors import FeatgeomError


def _parse_layers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise FeatgeomError(f"--layers takes comma-separated integers like 0,2,4, got {text!r}") from exc


def cmd_models(args: argparse.Namespace) -> int:
    from featgeom_core.models import list_models

    for info in list_models():
        print(f"{info.model_id:<32} {'offline' if info.available_offline else 'needs network':<14} {info.description}")
    return 0


def cmd_feature_sets(args: argparse.Namespace) -> int:
    from featgeom_core.data import list_feature_sets

    for info in list_feature_sets():
        print(f"{info.name:<16} {info.kind:<11} {info.description}")
    return 0


def cmd_psm(args: argparse.Namespace) -> int:
    params = {"model": args.model, "feature_set": args.features, "layers": _parse_layers(args.layers), "hook": args.hook, "seed": args.seed}
    if args.job:
        from featgeom_core import jobs

        job_id = jobs.submit("feature_geometry", params)
        print(job_id)
        return _wait_and_report([job_id]) if args.wait else 0
    from featgeom_core.data import load_feature_set
    from featgeom_core.feature_geometry import GeometryParams, feature_geometry
    from featgeom_core.jobs.kinds import validate_geometry
    from featgeom_core.models import load_model
    from featgeom_core.store import Store

    params = validate_geometry(params)
    model = load_model(params["model"])
    feature_set = load_feature_set(params["feature_set"], tokenizer=model.tokenizer)
    progress = _stderr_progress() if not args.quiet else None
    result = feature_geometry(model, feature_set, params["layers"], GeometryParams(hook=params["hook"], seed=params["seed"]), Store(), progress)
    if progress is not None:
        print(file=sys.stderr)
    real, shuffled = result.mean_off_diagonal("cosine", "real"), result.mean_off_diagonal("cosine", "shuffled_labels")
    print(f"{'layer':>5} {'mean acc':>9} {'cos real':>9} {'cos shuffled':>13} {'|real-shuf|':>12}")
    for i, layer in enumerate(result.layers):
        print(f"{layer:>5} {result.test_accuracy[i].mean():>9.3f} {real[i]:>9.3f} {shuffled[i]:>13.3f} {result.departure('cosine')[i]:>12.3f}")
    if args.csv:
        Path(args.csv).write_text(result.psm_csv())
        print(f"PSMs written to {args.csv}")
    return 0


def _stderr_progress():
    def report(fraction: float, message: str) -> None:
        print(f"\r[{fraction:4.0%}] {message[:70]:<70}", end="", file=sys.stderr, flush=True)

    return report


def cmd_jobs(args: argparse.Namespace) -> int:
    from featgeom_core import jobs

    if args.action == "list":
        now = time.time()
        rows = jobs.list_jobs()
        if not rows:
            print("no jobs")
        for r in rows:
            print(f"{r.job_id}  {r.kind:<18} {r.status:<11} {r.progress:4.0%}  {r.elapsed(now):7.1f}s  {json.dumps(r.params)[:60]}")
        return 0
    if not args.job_id:
        raise FeatgeomError(f"'featgeom jobs {args.action}' needs a job id")
    if args.action == "status":
        r = jobs.status(args.job_id)
        print(json.dumps({"job_id": r.job_id, "kind": r.kind, "status": r.status, "progress": r.progress, "message": r.message, "error": r.error, "result_key": r.result_key}, indent=2))
        return 0 if r.status != "failed" else 1
    if args.action == "cancel":
        print(jobs.cancel(args.job_id).status)
        return 0
    if args.action == "delete":
        jobs.delete(args.job_id)
        print("deleted")
        return 0
    raise FeatgeomError(f"unknown jobs action {args.action!r}")


def expand_sweep(spec: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A sweep file's (kind, list of params): ``params`` fixed, ``grid`` lists crossed."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise FeatgeomError("a sweep file needs a 'kind' and optionally 'params' (fixed) and 'grid' (lists to cross)")
    fixed = spec.get("params") or {}
    grid = spec.get("grid") or {}
    if not isinstance(fixed, dict) or not isinstance(grid, dict):
        raise FeatgeomError("'params' and 'grid' must be mappings")
    bad = [name for name, values in grid.items() if not isinstance(values, list) or not values]
    if bad:
        raise FeatgeomError(f"grid entries must be non-empty lists: {bad}")
    names = list(grid)
    combos = [dict(fixed, **dict(zip(names, values))) for values in itertools.product(*(grid[n] for n in names))]
    return str(spec["kind"]), combos


def cmd_sweep(args: argparse.Namespace) -> int:
    import yaml

    from featgeom_core import jobs
    from featgeom_core.jobs.kinds import job_kind

    try:
        spec = yaml.safe_load(Path(args.file).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FeatgeomError(f"cannot read sweep file {args.file}: {exc}") from exc
    kind, combos = expand_sweep(spec)
    validated = [job_kind(kind).validate(params) for params in combos]  # refuse the whole sweep before submitting any
    ids = [jobs.submit(kind, params) for params in validated]
    print(f"submitted {len(ids)} {kind} job(s)", file=sys.stderr)
    for job_id in ids:
        print(job_id)
    return _wait_and_report(ids) if not args.no_wait else 0


def _wait_and_report(ids: Sequence[str]) -> int:
    from featgeom_core import jobs

    failed = 0
    for job_id in ids:
        record = jobs.wait(job_id, timeout_s=24 * 3600)
        print(f"{job_id}  {record.status:<11} {record.error or record.result_key or ''}", file=sys.stderr)
        failed += record.status != "done"
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The ``featgeom`` argument parser."""
    parser = argparse.ArgumentParser(prog="featgeom", description="featgeom analyses from the command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list models usable offline and known hub ids").set_defaults(func=cmd_models)
    sub.add_parser("feature-sets", help="list feature sets").set_defaults(func=cmd_feature_sets)
    psm = sub.add_parser("psm", help="probe a feature set and print PSM summaries per layer")
    psm.add_argument("--model", default="minilm")
    psm.add_argument("--features", default="athlete_sport")
    psm.add_argument("--layers", default="0")
    psm.add_argument("--hook", default="mlp_post", choices=["mlp_post", "resid_post"])
    psm.add_argument("--seed", type=int, default=0)
    psm.add_argument("--csv", help="also write every PSM to this CSV file")
    psm.add_argument("--job", action="store_true", help="run as a job on the Dask backend")
    psm.add_argument("--wait", action="store_true", help="with --job: wait for it")
    psm.add_argument("--quiet", action="store_true")
    psm.set_defaults(func=cmd_psm)
    job = sub.add_parser("jobs", help="list jobs, or show, cancel or delete one")
    job.add_argument("action", nargs="?", default="list", choices=["list", "status", "cancel", "delete"])
    job.add_argument("job_id", nargs="?")
    job.set_defaults(func=cmd_jobs)
    sweep = sub.add_parser("sweep", help="run a YAML grid of analysis parameters as jobs")
    sweep.add_argument("file")
    sweep.add_argument("--no-wait", action="store_true", help="submit and return")
    sweep.set_defaults(func=cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``featgeom`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FeatgeomError as exc:
        print(f"featgeom: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("featgeom: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
