"""LIB on the peer's seed-0 modular-addition checkpoint with the peer's settings: build (Grams,
bases, edges) and the edge-ablation bisect, for LIB and PCA, each in a child process so its peak
memory is its own.

Baseline: the peer implementation's published figures on this kind of machine (one core, its own
settings): LIB build 101 s (bases 44 s, edges 52 s), PCA build 66 s, LIB bisect 193 s, PCA bisect
155 s, peak 2.25 GB. The peer's code is not installable here (no network to its repository), so the
ratio is against those figures, not a run in this process. Target (issue 11): at least 10x faster
end to end (build + bisect under 30 s per basis) in under 1 GB, with the same edge counts.

Usage: python benchmarks/bench_interaction.py [--threads N] [--device cpu|cuda]
Needs ../shared/reference/rib_modadd_seed0 (the peer's checkpoint).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rib_modadd_seed0"
PEER = {
    "lib": {"build": 101.0, "bisect": 193.0, "edges": (133, 82, 633)},
    "pca": {"build": 66.0, "bisect": 155.0, "edges": (167, 114, 682)},
}
PEER_PEAK_GB = 2.25

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from featgeom_core.interaction import bisect_edge_ablation, build_graph, load_modular_addition, modular_addition_data
model = load_modular_addition(sys.argv[3])
data = modular_addition_data()
start = time.perf_counter()
graph = build_graph(model, data.train_tokens, {"basis": sys.argv[1]})
build = time.perf_counter() - start
start = time.perf_counter()
traces = bisect_edge_ablation(model, graph, data.test_tokens, data.test_labels, 0.001)
bisect = time.perf_counter() - start
print(json.dumps({"build": build, "bisect": bisect, "timings": graph.timings, "edges": [t.required for t in traces.values()],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        sys.exit(f"the peer's checkpoint is not at {REFERENCE}")
    for basis in ("lib", "pca"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, basis, str(args.threads), str(REFERENCE / "model_epoch_60000.pt")],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        peer = PEER[basis]
        total, peer_total = r["build"] + r["bisect"], peer["build"] + peer["bisect"]
        print(
            f"{basis}: build {r['build']:.1f} s (peer {peer['build']:.0f} s, {peer['build'] / r['build']:.1f}x), "
            f"bisect {r['bisect']:.1f} s (peer {peer['bisect']:.0f} s, {peer['bisect'] / r['bisect']:.1f}x), "
            f"end to end {total:.1f} s (peer {peer_total:.0f} s, {peer_total / total:.1f}x); "
            f"peak {r['peak_mb']:.0f} MB (peer {PEER_PEAK_GB * 1024:.0f} MB); edges {r['edges']} (peer {list(peer['edges'])})"
        )
        print("   stages:", {k: round(v, 2) for k, v in r["timings"].items()})


if __name__ == "__main__":
    main()
