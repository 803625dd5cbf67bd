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

from featgeom_core.access import configured_token, require_store_access
from featgeom_core.config import cache_dir
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
    from featgeom_core.models import load_model
    from featgeom_core.probing import feature_geometry
    from featgeom_core.probing.jobs import FeatureGeometryJob
    from featgeom_core.store import Store

    checked = FeatureGeometryJob.parse(params)
    model = load_model(checked.model)
    feature_set = load_feature_set(checked.feature_set, tokenizer=model.tokenizer)
    progress = _stderr_progress() if not args.quiet else None
    result = feature_geometry(model, feature_set, checked.layers, checked.geometry(), store=Store(), progress=progress)
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


def cmd_perturbation(args: argparse.Namespace) -> int:
    """The Perturbation page headless: probes and controls of a feature set at some layers, the
    default sweep grid over every target, and the per-layer summary against the controls."""
    from featgeom_core import jobs
    from featgeom_core.data import load_feature_set
    from featgeom_core.energy.controls import CONTROLS, control_summary
    from featgeom_core.models import load_model
    from featgeom_core.probing import GeometryParams
    from featgeom_core.probing.controls import ControlParams, controls_by_layer
    from featgeom_core.store import Store

    controls = ControlParams(shuffled_labels=not args.no_shuffled, permutation_seeds=args.seeds, label_seeds=args.seeds)
    similarities = [part.strip() for part in args.similarities.split(",") if part.strip()]
    model = load_model(args.model)
    feature_set = load_feature_set(args.features, tokenizer=model.tokenizer)
    progress = _stderr_progress() if not args.quiet else None
    _, by_layer, _ = controls_by_layer(model, feature_set, _parse_layers(args.layers), GeometryParams(hook=args.hook), controls,
                                       store=Store(), progress=progress)
    params = jobs.job_kind("energy.sweep").validate({
        "targets": [spec for layer in by_layer for spec in layer.sweep_targets(similarities)], "similarities": similarities,
        "label": f"{args.model} · {args.features} · layers {args.layers} · {args.hook}",
    })
    job_id = jobs.submit("energy.sweep", params)
    record = jobs.wait(job_id, timeout_s=24 * 3600)
    if progress is not None:
        print(file=sys.stderr)
    if record.status != "done":
        print(f"featgeom: sweep {job_id} {record.status}: {record.error or record.message}", file=sys.stderr)
        return 1
    summary = control_summary(jobs.load_result(job_id).rows)
    if args.json:
        print(json.dumps({"job": job_id, "summary": summary}))
        return 0
    print(f"sweep {job_id} (open it on the Perturbation page with ?job={job_id})")
    header = f"{'layer':>5} {'similarity':<10} {'real':>8}" + "".join(f" {c:>24} {'real-' + c[:8]:>26} {'rank p':>7}" for c in CONTROLS)
    print(header)
    for row in summary:
        line = f"{row['layer']:>5} {row['similarity']:<10} {row['real']:>8.4f}"
        for c in CONTROLS:
            if c in row:
                line += (f" {row[c]:>8.4f} [{row[c + '_low']:.4f},{row[c + '_high']:.4f}]"
                         f" {row['real_minus_' + c]:>+8.4f} [{row['real_minus_' + c + '_low']:+.4f},{row['real_minus_' + c + '_high']:+.4f}]"
                         f" {row['rank_p_' + c]:>7.3f}")
        print(line)
    return 0


def _stderr_progress():
    def report(fraction: float, message: str) -> None:
        print(f"\r[{fraction:4.0%}] {message[:70]:<70}", end="", file=sys.stderr, flush=True)

    return report


def cmd_jobs(args: argparse.Namespace) -> int:
    from featgeom_core import jobs

    if args.action == "kinds":
        return _print_kinds(args.json)
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
    from featgeom_core.jobs import job_kind

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


def _print_kinds(as_json: bool) -> int:
    """Every registered job kind with its parameters, generated from the params models."""
    from featgeom_core.jobs import job_kinds
    from featgeom_core.params import schema_rows

    kinds = job_kinds()
    if as_json:
        print(json.dumps({name: {"description": kind.description, "page": kind.page, "wants_gpu": kind.wants_gpu,
                                 "params": kind.params.model_json_schema()} for name, kind in sorted(kinds.items())}, indent=2, default=str))
        return 0
    for name, kind in sorted(kinds.items()):
        where = f"opens on {kind.page}" if kind.page else "no page"
        print(f"{name}: {kind.description} ({where}{', GPU when available' if kind.wants_gpu else ''})")
        for row in schema_rows(kind.params):
            default = json.dumps(row["default"], default=str) if row["default"] != "(required)" else "(required)"
            allowed = f" [{row['allowed']}]" if row["allowed"] else ""
            print(f"  {row['name']:<20} {row['type']:<26} {default[:24]:<24} {row['description']}{allowed}")
        print()
    return 0


def parse_assignments(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs as params: each value is read as YAML (numbers, lists, booleans, text);
    ``key=@file`` reads the value from a JSON or YAML file (e.g. a PSM)."""
    import yaml

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise FeatgeomError(f"parameters are key=value, got {pair!r}")
        try:
            if text.startswith("@"):
                text = Path(text[1:]).read_text()
            params[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except OSError as exc:
            raise FeatgeomError(f"cannot read the value of {key}: {exc}") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise FeatgeomError(f"cannot parse the value of {key} as YAML: {problem}{where}") from exc
    return params


def cmd_run(args: argparse.Namespace) -> int:
    from featgeom_core import jobs

    kind = jobs.job_kind(args.kind)
    params = kind.validate(parse_assignments(args.params))
    if args.inline:
        from featgeom_core.store import Store

        entries = kind.execute(params, _stderr_progress() if not args.quiet else (lambda f, m: None))
        if not args.quiet:
            print(file=sys.stderr)
        store = Store()
        for key, arrays, meta in entries:
            store.put(key, arrays, meta)
        return _print_summary(kind.load_result(entries[0][1], entries[0][2]).summary(), entries[0][0], args.json)
    job_id = jobs.submit(args.kind, params)
    if not args.wait:
        print(job_id)
        return 0
    record = jobs.wait(job_id, timeout_s=24 * 3600)
    if record.status != "done":
        print(f"featgeom: job {job_id} {record.status}: {record.error or record.message}", file=sys.stderr)
        return 1
    return _print_summary(jobs.load_result(job_id).summary(), job_id, args.json)


def _print_summary(summary: dict[str, Any], reference: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"id": reference, "summary": summary}, default=str))
    else:
        print(reference)
        for key, value in summary.items():
            print(f"  {key}: {json.dumps(value, default=str)}")
    return 0


def _wait_and_report(ids: Sequence[str]) -> int:
    from featgeom_core import jobs

    failed = 0
    for job_id in ids:
        record = jobs.wait(job_id, timeout_s=24 * 3600)
        print(f"{job_id}  {record.status:<11} {record.error or record.result_key or ''}", file=sys.stderr)
        failed += record.status != "done"
    return 1 if failed else 0


def cmd_store(args: argparse.Namespace) -> int:
    """What an upgrade must recompute: entries of a store format this featgeom does not read, and
    the jobs whose results they are."""
    from collections import Counter

    from featgeom_core import jobs
    from featgeom_core.store import Store

    store = Store()
    stamps = store.audit()
    unreadable = [stamp for stamp in stamps if not stamp.readable]
    formats = Counter(stamp.format for stamp in stamps)
    print(f"{store.root}: {len(stamps)} results, by store format: " + ", ".join(f"{f}: {n}" for f, n in sorted(formats.items())))
    by_key = {stamp.key: stamp for stamp in unreadable}
    for record in jobs.list_jobs(store):
        if record.status == "done" and record.result_key in by_key:
            print(f"recompute job {record.job_id} ({record.kind}): {by_key[record.result_key].problem()}")
    for stamp in unreadable:
        print(f"unreadable {stamp.key}: {stamp.problem()}")
    if not unreadable:
        print("every stored result is readable by this featgeom")
    return 1 if unreadable else 0


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
    psm.add_argument("--hook", default="mlp_post", choices=["mlp_post", "resid_post"], help="see `featgeom jobs kinds` (feature_geometry)")
    psm.add_argument("--seed", type=int, default=0)
    psm.add_argument("--csv", help="also write every PSM to this CSV file")
    psm.add_argument("--job", action="store_true", help="run as a job on the Dask backend")
    psm.add_argument("--wait", action="store_true", help="with --job: wait for it")
    psm.add_argument("--quiet", action="store_true")
    psm.set_defaults(func=cmd_psm)
    pert = sub.add_parser("perturbation", help="the perturbation analysis against both controls, per layer (as the Perturbation page)")
    pert.add_argument("--model", default="minilm")
    pert.add_argument("--features", default="world_country")
    pert.add_argument("--layers", default="0")
    pert.add_argument("--hook", default="mlp_post", choices=["mlp_post", "resid_post"])
    pert.add_argument("--similarities", default="cosine,rbf")
    pert.add_argument("--seeds", type=int, default=5, help="seeds per control (permuted and label-shuffle)")
    pert.add_argument("--no-shuffled", action="store_true", help="leave out the shuffled-label control")
    pert.add_argument("--json", action="store_true")
    pert.add_argument("--quiet", action="store_true")
    pert.set_defaults(func=cmd_perturbation)
    job = sub.add_parser("jobs", help="list jobs, show, cancel or delete one, or list the job kinds")
    job.add_argument("action", nargs="?", default="list", choices=["list", "status", "cancel", "delete", "kinds"])
    job.add_argument("job_id", nargs="?")
    job.add_argument("--json", action="store_true", help="with kinds: print each kind's JSON schema")
    job.set_defaults(func=cmd_jobs)
    run = sub.add_parser("run", help="run any job kind: featgeom run KIND key=value ... (see `featgeom jobs kinds`)")
    run.add_argument("kind")
    run.add_argument("params", nargs="*", help="key=value (value read as YAML) or key=@file")
    run.add_argument("--wait", action="store_true", help="wait for the job and print its result summary")
    run.add_argument("--inline", action="store_true", help="run in this process instead of on the Dask backend (implies waiting)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("store", help="check the result store after an upgrade: what this featgeom must recompute")
    check.add_argument("action", nargs="?", default="check", choices=["check"])
    check.set_defaults(func=cmd_store)
    sweep = sub.add_parser("sweep", help="run a YAML grid of analysis parameters as jobs")
    sweep.add_argument("file")
    sweep.add_argument("--no-wait", action="store_true", help="submit and return")
    sweep.set_defaults(func=cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``featgeom`` console script."""
    args = build_parser().parse_args(argv)
    try:
        require_store_access(cache_dir(), configured_token())
        return int(args.func(args))
    except FeatgeomError as exc:
        print(f"featgeom: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("featgeom: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
