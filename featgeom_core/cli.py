"""``featgeom``: the same analyses as the app, headless. Exit code 0 on success, 2 on a user error
(one line on stderr), 1 when a job fails."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featgeom_core.access import configured_token, require_store_access
from featgeom_core.config import cache_dir
from featgeom_core.errors import FeatgeomError
from featgeom_core.params import Params, field_spec
from featgeom_core.progress import Progress, silent

if TYPE_CHECKING:
    from featgeom_core.jobs.records import JobRecord


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
    from featgeom_core.probing.jobs import FEATURE_GEOMETRY

    checked = FEATURE_GEOMETRY.parse(
        {
            "model": args.model,
            "feature_set": args.features,
            "layers": args.layers,
            "hook": args.hook,
            "estimator": args.estimator,
            "seed": args.seed,
        }
    )
    if args.job:
        return _run_job(FEATURE_GEOMETRY.name, checked.normalised(), wait=args.wait, quiet=args.quiet, as_json=False)
    from featgeom_core.data import load_feature_set
    from featgeom_core.models import load_model
    from featgeom_core.probing import feature_geometry
    from featgeom_core.store import Store

    model = load_model(checked.model)
    feature_set = load_feature_set(checked.feature_set, tokenizer=model.tokenizer)
    progress = _stderr_progress() if not args.quiet else None
    result = feature_geometry(model, feature_set, checked.layers, checked.geometry(), store=Store(), progress=progress)
    if progress is not None:
        print(file=sys.stderr)
    real, shuffled = result.mean_off_diagonal("cosine", "real"), result.mean_off_diagonal("cosine", "shuffled_labels")
    print(
        f"{'layer':>5} {'bal acc':>8} {'chance':>7} {'needs':>6} {'majority':>9} {'beats':>6} {'mean acc':>9} {'cos real':>9} "
        f"{'cos shuffled':>13} {'|real-shuf|':>12}"
    )
    for i, (layer, q) in enumerate(zip(result.layers, result.quality)):
        print(
            f"{layer:>5} {q.balanced_accuracy:>8.3f} {q.chance:>7.3f} {q.threshold:>6.3f} {q.majority:>9.3f} "
            f"{'yes' if q.encoded else 'no':>6} {result.test_accuracy[i].mean():>9.3f} {real[i]:>9.3f} {shuffled[i]:>13.3f} "
            f"{result.departure('cosine')[i]:>12.3f}"
        )
    warning = result.warning()
    if warning:
        print(f"warning: {warning}")
    if args.csv:
        Path(args.csv).write_text(result.psm_csv())
        print(f"PSMs written to {args.csv}")
    return 0


def cmd_perturbation(args: argparse.Namespace) -> int:
    """The Perturbation page headless: probes and controls of a feature set at some layers, the
    default sweep grid over every target, and the per-layer summary against the controls."""
    from featgeom_core.data import load_feature_set
    from featgeom_core.energy.controls import CONTROLS, control_summary
    from featgeom_core.energy.jobs import ENERGY_SWEEP
    from featgeom_core.energy.params import SweepGrid
    from featgeom_core.models import load_model
    from featgeom_core.probing import ControlParams
    from featgeom_core.probing.controls import controls_by_layer
    from featgeom_core.probing.jobs import FEATURE_GEOMETRY
    from featgeom_core.store import Store

    checked = FEATURE_GEOMETRY.parse(
        {"model": args.model, "feature_set": args.features, "layers": args.layers, "hook": args.hook, "estimator": args.estimator}
    )
    controls = ControlParams.parse({"shuffled_labels": not args.no_shuffled, "permutation_seeds": args.seeds, "label_seeds": args.seeds})
    similarities = list(
        SweepGrid.parse({"similarities": [part.strip() for part in args.similarities.split(",") if part.strip()]}).similarities
    )
    model = load_model(checked.model)
    feature_set = load_feature_set(checked.feature_set, tokenizer=model.tokenizer)
    progress = _stderr_progress() if not args.quiet else None
    geometry, by_layer, _ = controls_by_layer(
        model, feature_set, checked.layers, checked.geometry(), controls, store=Store(), progress=progress
    )
    warning = geometry.warning() or ""
    params = ENERGY_SWEEP.validate(
        {
            "targets": [spec for layer in by_layer for spec in layer.sweep_targets(similarities)],
            "similarities": similarities,
            "label": f"{checked.model} · {checked.feature_set} · layers {','.join(map(str, checked.layers))} · {checked.hook}"
            + ("" if checked.estimator == "logistic" else f" · {checked.estimator}"),
            "probe_warning": warning,
        }
    )
    record = _finish_job(ENERGY_SWEEP.name, params, quiet=args.quiet)
    if progress is not None:
        print(file=sys.stderr)
    job_id = record.job_id
    if record.status != "done":
        print(f"featgeom: sweep {job_id} {record.status}: {record.error or record.message}", file=sys.stderr)
        return 1
    summary = control_summary(ENERGY_SWEEP.load(job_id).rows)
    if args.json:
        print(json.dumps({"job": job_id, "summary": summary, **({"warning": warning} if warning else {})}))
        return 0
    print(f"sweep {job_id} (open it on the Perturbation page with ?job={job_id})")
    if warning:
        print(f"warning: {warning}")
    header = f"{'layer':>5} {'similarity':<10} {'real':>8}" + "".join(f" {c:>24} {'real-' + c[:8]:>26} {'rank p':>7}" for c in CONTROLS)
    print(header)
    for row in summary:
        line = f"{row['layer']:>5} {row['similarity']:<10} {row['real']:>8.4f}"
        for c in CONTROLS:
            if c in row:
                line += (
                    f" {row[c]:>8.4f} [{row[c + '_low']:.4f},{row[c + '_high']:.4f}]"
                    f" {row['real_minus_' + c]:>+8.4f} [{row['real_minus_' + c + '_low']:+.4f},{row['real_minus_' + c + '_high']:+.4f}]"
                    f" {row['rank_p_' + c]:>7.3f}"
                )
        print(line)
    return 0


def _stderr_progress() -> Progress:
    def report(fraction: float, message: str, metrics: Mapping[str, float] | None = None, /) -> None:
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
        print(
            json.dumps(
                {
                    "job_id": r.job_id,
                    "kind": r.kind,
                    "status": r.status,
                    "progress": r.progress,
                    "message": r.message,
                    "error": r.error,
                    "result_key": r.result_key,
                },
                indent=2,
            )
        )
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
    from featgeom_core.jobs.backend import scheduler_address

    try:
        spec = yaml.safe_load(Path(args.file).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FeatgeomError(f"cannot read sweep file {args.file}: {exc}") from exc
    kind, combos = expand_sweep(spec)
    validated = [job_kind(kind).validate(params) for params in combos]  # refuse the whole sweep before submitting any
    if args.no_wait and not scheduler_address():
        raise FeatgeomError(
            "--no-wait needs a Dask scheduler (set FEATGEOM_SCHEDULER): without one the jobs run on a cluster that ends "
            "with this command; leave out --no-wait to run them to their end"
        )
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
        print(
            json.dumps(
                {
                    name: {
                        "description": kind.description,
                        "page": kind.page,
                        "wants_gpu": kind.wants_gpu,
                        "params": kind.params.model_json_schema(),
                    }
                    for name, kind in sorted(kinds.items())
                },
                indent=2,
                default=str,
            )
        )
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
    return _run_job(kind.name, params, wait=args.wait or args.inline, quiet=args.quiet, as_json=args.json, here=args.inline)


def _finish_job(kind: str, params: Mapping[str, Any], quiet: bool, here: bool = False, recompute: bool = False) -> JobRecord:
    """Run a job to its end and return its final record: in this process when no scheduler is
    configured (or ``here``), with progress on stderr; otherwise on the scheduler's workers."""
    from featgeom_core.jobs import manager
    from featgeom_core.jobs.backend import scheduler_address

    if here or not scheduler_address():
        record = manager.run_here(kind, params, report=_stderr_progress() if not quiet else silent, recompute=recompute)
        if not quiet:
            print(file=sys.stderr)
        return record
    return manager.wait(manager.submit(kind, params, recompute=recompute), timeout_s=24 * 3600)


def _run_job(kind: str, params: Mapping[str, Any], wait: bool, quiet: bool, as_json: bool, here: bool = False) -> int:
    """Submit a job and, when asked to wait or when no scheduler would keep it after this command
    exits, run it to its end: its summary, or one line saying why it failed (exit 1)."""
    from featgeom_core.jobs import manager
    from featgeom_core.jobs.backend import scheduler_address

    if scheduler_address() and not wait and not here:
        print(manager.submit(kind, params))
        return 0
    record = _finish_job(kind, params, quiet, here)
    if record.status != "done":
        print(f"featgeom: job {record.job_id} {record.status}: {record.error or record.message}", file=sys.stderr)
        return 1
    return _print_summary(manager.load_result(record.job_id).summary(), record.job_id, as_json)


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


def _ledger_stale(params: Any) -> bool:
    """Whether the stored ledger for ``params`` predates today's declarations (or is not there)."""
    from featgeom_core.errors import FeatgeomError
    from featgeom_core.findings.jobs import LEDGER
    from featgeom_core.findings.run import stale
    from featgeom_core.jobs import manager

    try:
        return bool(stale(LEDGER.load(manager.job_id_for(LEDGER.name, params.normalised())), params))
    except FeatgeomError:
        return False  # not measured yet: the run measures it


def cmd_findings(args: argparse.Namespace) -> int:
    """The findings ledger: measured here (cached per finding), printed per paper or as JSON."""
    from featgeom_core.findings.jobs import LEDGER

    params = LEDGER.parse(
        {
            "papers": [args.paper] if args.paper else ["thesis", "sparsity", "hessian", "lib"],
            "models": [args.model] if args.model else ["minilm", "smollm2"],
        }
    )
    record = _finish_job(LEDGER.name, params.normalised(), quiet=args.quiet or args.json, recompute=_ledger_stale(params))
    if record.status != "done":
        print(f"featgeom: findings job {record.job_id} {record.status}: {record.error or record.message}", file=sys.stderr)
        return 1
    import dataclasses

    from featgeom_core import codec

    ledger = LEDGER.load(record.job_id)
    if args.json:
        print(json.dumps([codec.to_json(dataclasses.asdict(f)) for f in ledger.findings]))
        return 0
    for paper in params.papers:
        print(ledger.markdown(paper))
    unexpected = ledger.summary()["unexpected"]
    if unexpected:
        print("verdicts not as declared: " + "; ".join(unexpected))
    return 0


def _options(
    parser: argparse.ArgumentParser, model: type[Params], flags: Mapping[str, str], defaults: Mapping[str, Any] | None = None
) -> None:
    """Options ``--flag`` for fields of a params model: its choices, its default (or the command's
    own in ``defaults``) and its description as help. Values are checked by the model, not here."""
    for flag, name in flags.items():
        spec = field_spec(model, name)
        default = (defaults or {}).get(name, spec.default)
        if isinstance(default, (list, tuple)):
            default = ",".join(map(str, default))
        choices = list(spec.choices) if spec.choices and not spec.is_list else None
        bounds = spec.describe_bounds()
        parser.add_argument(
            flag,
            default=default,
            choices=choices,
            type=int if spec.is_int and not spec.is_list else str,
            help=f"{spec.description}{f' ({bounds})' if bounds else ''}; default {default}",
        )


def build_parser() -> argparse.ArgumentParser:
    from featgeom_core.energy.params import SweepGrid
    from featgeom_core.probing.params import ControlParams, FeatureGeometryParams

    """The ``featgeom`` argument parser."""
    parser = argparse.ArgumentParser(prog="featgeom", description="featgeom analyses from the command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list models usable offline and known hub ids").set_defaults(func=cmd_models)
    sub.add_parser("feature-sets", help="list feature sets").set_defaults(func=cmd_feature_sets)
    psm = sub.add_parser("psm", help="probe a feature set and print PSM summaries per layer")
    _options(
        psm,
        FeatureGeometryParams,
        {
            "--model": "model",
            "--features": "feature_set",
            "--layers": "layers",
            "--hook": "hook",
            "--estimator": "estimator",
            "--seed": "seed",
        },
        {"model": "minilm", "feature_set": "world_country", "layers": "0"},
    )
    psm.add_argument("--csv", help="also write every PSM to this CSV file")
    psm.add_argument(
        "--job", action="store_true", help="run as a job (stored, on the Jobs page); without a scheduler it runs here to its end"
    )
    psm.add_argument("--wait", action="store_true", help="with --job and a scheduler: wait for it")
    psm.add_argument("--quiet", action="store_true")
    psm.set_defaults(func=cmd_psm)
    pert = sub.add_parser("perturbation", help="the perturbation analysis against both controls, per layer (as the Perturbation page)")
    _options(
        pert,
        FeatureGeometryParams,
        {"--model": "model", "--features": "feature_set", "--layers": "layers", "--hook": "hook", "--estimator": "estimator"},
        {"model": "minilm", "feature_set": "world_country", "layers": "0"},
    )
    _options(pert, SweepGrid, {"--similarities": "similarities"})
    _options(pert, ControlParams, {"--seeds": "permutation_seeds"})
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
    run.add_argument(
        "--wait",
        action="store_true",
        help="with a scheduler (FEATGEOM_SCHEDULER): wait for the job and print its summary "
        "(without one, a job always runs here to its end)",
    )
    run.add_argument("--inline", action="store_true", help="run in this process even when a scheduler is configured")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("store", help="check the result store after an upgrade: what this featgeom must recompute")
    check.add_argument("action", nargs="?", default="check", choices=["check"])
    check.set_defaults(func=cmd_store)
    findings = sub.add_parser("findings", help="each paper's headline claims beside what the lab measures, with verdicts")
    findings.add_argument("--paper", choices=["thesis", "sparsity", "hessian", "lib"], help="one paper's findings (default: all)")
    findings.add_argument("--model", help="one model's findings (default: minilm and smollm2; toys and synthetic data always)")
    findings.add_argument("--json", action="store_true", help="one JSON list of findings")
    findings.add_argument("--quiet", action="store_true", help="no progress on stderr")
    findings.set_defaults(func=cmd_findings)
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
