"""Sample-level directional curvature uᵀH(x)u: batched nested JVPs against the write-up's loops.

Ours: ``directional_curvature`` — forward-over-forward (``jvp`` of ``jvp``) on whole batches of
samples, ``vmap`` over the directions, H never formed; and ``ours_output_jvp``, the same values from
one jvp of the outputs and D's closed-form second derivative in them (exact at W0).
Baselines, same process kind, same inputs and directions:
- ``double_backward``: the write-up's nested products ∇_w(∇_w D(x) · u) · u, one sample and one
  direction at a time (``reference_curvature``: ``torch.autograd.grad`` twice);
- ``jacrev_jacrev``: per sample the full block Hessian by ``torch.func.jacrev(jacrev(D_x))``,
  then uᵀHu for every direction (skipped for blocks above 2,048 numbers: H would not fit).

Cases: ``tms`` (the toy model of superposition, block W, 1,024 samples, 5 directions; target
>= 10x), ``xor`` (4 samples, weights and biases, 3 directions), ``mlp`` (a generic float32
module 64 -> 256 -> 64, block = the first weight, 16,384 numbers, 16 directions) and ``minilm``
(the offline MiniLM, block = layer 4's attention key weight W_K, 147,456 numbers, float32; 16
texts of 32 tokens from the packaged corpus, every token a sample (MSE of its final hidden
state), 8 directions; target >= 10x). Run the minilm case with ``--baseline-samples 2``: the
double-backward loop takes about a tenth of a second per token and direction.
Each method runs in a child process, so its peak resident memory is its own; "extra" is the
peak minus the resident memory once the model and data were ready. Baselines may run on the
first ``--baseline-samples`` samples; rates are per evaluation (one sample, one direction), and
the max |difference| is over the samples both ran.

Usage: python benchmarks/bench_hessian.py [--cases tms,xor,mlp,minilm] [--threads 1] [--baseline-samples N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from featgeom_core.hessian import (
    directional_curvature,
    reference_curvature,
    toy_superposition,
    xor_net,
)

METHODS = ("ours", "ours_output_jvp", "double_backward", "jacrev_jacrev")
MAX_JACREV_BLOCK = 2048
POSITIONS = {"minilm": "each"}
"""Cases whose every position (token) is a sample; the others sum their (single) position."""
MINILM_TEXTS, MINILM_TOKENS = 16, 32


class GenericMLP(torch.nn.Module):
    """A plain module: (B, 64) -> (B, 64), GELU, float32 (a stand-in for a real block)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.up = torch.nn.Linear(64, 256)
        self.down = torch.nn.Linear(256, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.gelu(self.up(x)))


def build_case(name: str) -> tuple[torch.nn.Module, tuple[str, ...], torch.Tensor, torch.Tensor]:
    """(model, block, inputs (n, ...), unit directions (k, block size))."""
    generator = torch.Generator().manual_seed(1)
    if name == "tms":
        toy = toy_superposition(seed=0)
        model, block, inputs, k = toy.model, ("W",), toy.inputs, 5
    elif name == "xor":
        toy = xor_net(0)
        model, block, inputs, k = toy.model, ("hidden.weight", "hidden.bias"), toy.inputs, 3
    elif name == "mlp":
        model, block, k = GenericMLP(), ("up.weight",), 16
        inputs = torch.randn(512, 64, generator=generator)
    elif name == "minilm":
        model, block, inputs, k = minilm_case()
    else:
        raise SystemExit(f"unknown case {name!r}: use tms, xor, mlp or minilm")
    parameters = dict(model.named_parameters())
    size = sum(parameters[name].numel() for name in block)
    U = torch.randn(k, size, generator=generator, dtype=torch.float64)
    U = (U / U.norm(dim=1, keepdim=True)).to(parameters[block[0]].dtype)
    return model, block, inputs, U


def minilm_case() -> tuple[torch.nn.Module, tuple[str, ...], torch.Tensor, int]:
    """MiniLM wrapped for the analysis, its layer-4 W_K, and 16 corpus texts that fill all 32
    token positions (no padding, so every position is a real token): inputs (16, 2, 32)."""
    from featgeom_core.data.registry import corpus_texts
    from featgeom_core.hessian.language import PREFIX, load_language_model, tokenize

    lm = load_language_model("minilm")
    candidates = tokenize(lm.tokenizer, corpus_texts(None, 0)[:200], MINILM_TOKENS)
    full = torch.nonzero(candidates.mask.all(dim=1)).flatten()[:MINILM_TEXTS]
    return lm.module, (PREFIX + lm.default_block(4),), candidates.inputs[full], 8


def jacrev_jacrev(model: torch.nn.Module, block: tuple[str, ...], inputs: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """Per sample: the block Hessian H(x) by jacrev of jacrev, then uᵀH(x)u: (n, k). MSE divergence."""
    from torch.func import functional_call, jacrev

    params = {name: p.detach() for name, p in model.named_parameters()}
    shapes = [params[name].shape for name in block]
    w0 = torch.cat([params[name].reshape(-1) for name in block])
    rows = []
    for i in range(len(inputs)):
        x = inputs[i : i + 1]
        reference = functional_call(model, params, (x,)).detach()

        def divergence(w: torch.Tensor, x: torch.Tensor = x, reference: torch.Tensor = reference) -> torch.Tensor:
            swapped, start = dict(params), 0
            for name, shape in zip(block, shapes):
                swapped[name] = w[start : start + shape.numel()].view(shape)
                start += shape.numel()
            return ((functional_call(model, swapped, (x,)) - reference) ** 2).mean()

        H = jacrev(jacrev(divergence))(w0)
        rows.append(torch.einsum("kp,pq,kq->k", U, H, U))
    return torch.stack(rows)


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(method: str, case: str, samples: int | None, out_path: str, repeats: int) -> None:
    """Run one method on one case; write the values to ``out_path`` and print a JSON line."""
    model, block, inputs, U = build_case(case)
    positions = POSITIONS.get(case, "sum")
    if samples is not None:
        inputs = inputs[:samples]
    ours = {"ours": "nested_jvp", "ours_output_jvp": "output_jvp"}
    if method in ours:
        directional_curvature(
            model, block, inputs[:8], U, "mse", positions=positions, method=ours[method]
        )  # warm-up: vmap/jvp setup, allocator
    ready = resident_mb()
    best = float("inf")
    for _ in range(repeats if method in ours else 1):
        start = time.perf_counter()
        if method in ours:
            values = directional_curvature(model, block, inputs, U, "mse", batch_size=1024, positions=positions, method=ours[method])
        elif method == "double_backward":
            values = reference_curvature(model, block, inputs, U, "mse", positions=positions)
        else:
            values = jacrev_jacrev(model, block, inputs, U)
        best = min(best, time.perf_counter() - start)
    np.save(out_path, values.detach().double().numpy())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": best, "evaluations": int(values.numel()), "ready_mb": ready, "peak_mb": peak}))


def run_child(method: str, case: str, samples: int | None, threads: int, repeats: int) -> tuple[dict, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "values.npy")
        command = [
            sys.executable,
            __file__,
            "--child",
            method,
            "--cases",
            case,
            "--threads",
            str(threads),
            "--out",
            out_path,
            "--repeats",
            str(repeats),
        ]
        if samples is not None:
            command += ["--samples", str(samples)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{method} on {case} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="tms,xor,mlp")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every child (1: fair on a shared machine)")
    parser.add_argument("--baseline-samples", type=int, default=None, help="baselines on the first N samples only (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="ours: best of this many timed runs")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args.cases, args.samples, args.out, args.repeats)
        return
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); evaluations = samples (tokens) x directions; extra = peak - "
        "resident when ready"
    )
    for case in args.cases.split(","):
        model, block, inputs, U = build_case(case)
        size = U.shape[1]
        samples = (
            f"{len(inputs)} texts x {inputs.shape[-1]} tokens, every token a sample"
            if POSITIONS.get(case) == "each"
            else f"{len(inputs)} samples"
        )
        print(f"\n{case}: {samples}, block {list(block)} ({size} numbers, {U.dtype}), {U.shape[0]} directions")
        ours, our_values = run_child("ours", case, None, args.threads, args.repeats)
        rate = ours["evaluations"] / ours["seconds"]
        print(
            f"  {'ours (jvp of jvp, batched)':<34} {ours['seconds'] * 1e3:10.1f} ms {rate:14,.0f} eval/s   "
            f"peak {ours['peak_mb']:6.0f} MB (extra {ours['peak_mb'] - ours['ready_mb']:5.0f} MB)"
        )
        fast, fast_values = run_child("ours_output_jvp", case, None, args.threads, args.repeats)
        fast_rate = fast["evaluations"] / fast["seconds"]
        scale = float(np.abs(our_values).max()) or 1.0
        print(
            f"  {'ours (one output jvp, batched)':<34} {fast['seconds'] * 1e3:10.1f} ms {fast_rate:14,.0f} eval/s   "
            f"peak {fast['peak_mb']:6.0f} MB (extra {fast['peak_mb'] - fast['ready_mb']:5.0f} MB)   "
            f"{fast_rate / rate:5.1f}x jvp of jvp   max |diff| {float(np.abs(fast_values - our_values).max()):.2e} (values up to "
            f"{scale:.2e})"
        )
        for method in METHODS[2:]:
            if method == "jacrev_jacrev" and size > MAX_JACREV_BLOCK:
                print(f"  {method:<34} skipped: H would be {size} x {size} per sample ({size * size * U.element_size() / 2**30:.1f} GiB)")
                continue
            result, values = run_child(method, case, args.baseline_samples, args.threads, 1)
            base_rate = result["evaluations"] / result["seconds"]
            diff = float(np.abs(values - our_values[: len(values)]).max())
            print(
                f"  {method:<34} {result['seconds'] * 1e3:10.1f} ms {base_rate:14,.0f} eval/s   "
                f"peak {result['peak_mb']:6.0f} MB (extra {result['peak_mb'] - result['ready_mb']:5.0f} MB)   "
                f"ours {rate / base_rate:8.1f}x faster (output jvp {fast_rate / base_rate:.1f}x)   max |diff| {diff:.2e} ({len(values)} "
                "samples)"
            )


if __name__ == "__main__":
    main()
