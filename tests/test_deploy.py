"""Deploying for a lab: compose.yaml and compose.tls.yaml against the Compose specification, the
Dockerfile's two torch variants, and the compose services' own commands run as processes on
loopback (no Docker engine here): the app's health, a first job computed on a worker process, and
mutual TLS between the job API, the scheduler and a worker."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT, poll_until
from featgeom_core import jobs
from featgeom_core.errors import FeatgeomError
from featgeom_core.jobs.backend import TLS_VARIABLES, scheduler_security, tls_security
from featgeom_core.store import Store

COMPOSE = REPO_ROOT / "compose.yaml"
COMPOSE_TLS = REPO_ROOT / "compose.tls.yaml"
VENV_BIN = Path(sys.executable).parent
CPU_SERVICES = ("app", "scheduler", "worker")
CACHE_IN_IMAGE = "/home/featgeom/app/cache"
SECRETS = {
    "/run/secrets/featgeom-tls-ca": "ca.pem",
    "/run/secrets/featgeom-tls-cert": "featgeom.pem",
    "/run/secrets/featgeom-tls-key": "featgeom-key.pem",
}


def _services(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())["services"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def swap(args: list[str], whole: dict[str, str] | None = None, inside: dict[str, str] | None = None) -> list[str]:
    """A compose service's argv made local: an argument equal to a key of ``whole`` is replaced, and
    each key of ``inside`` is replaced within the others (addresses, health-check URLs)."""
    local = []
    for arg in args:
        if whole and arg in whole:
            local.append(whole[arg])
            continue
        for old, new in (inside or {}).items():
            arg = arg.replace(old, new)
        local.append(arg)
    return local


# ---------------------------------------------------------------- lint: compose files, Dockerfile


def _check_compose_schema(*paths: Path) -> subprocess.CompletedProcess:
    # check-jsonschema vendors the official compose-spec JSON schema (`docker compose config`
    # needs a Docker engine, which this machine does not have).
    checker = shutil.which("check-jsonschema") or str(VENV_BIN / "check-jsonschema")
    return subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", *map(str, paths)], capture_output=True, text=True, timeout=60
    )


def test_compose_files_follow_the_compose_specification() -> None:
    result = _check_compose_schema(COMPOSE, COMPOSE_TLS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("service_healthy", "service_healty", 1))
    result = _check_compose_schema(broken)
    assert result.returncode != 0 and "service_healty" in result.stdout


def test_compose_services_are_the_lab_deployment() -> None:
    services = _services(COMPOSE)
    assert set(services) == {"app", "scheduler", "worker", "gpu-worker"}
    for name, service in services.items():
        # every service overrides the image's HEALTHCHECK, which probes the app's port
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["build"]["context"] == ".", name
        if name != "scheduler":
            assert service["depends_on"] == {"scheduler": {"condition": "service_healthy"}}, name
    app, scheduler, worker, gpu = (services[name] for name in ("app", "scheduler", "worker", "gpu-worker"))
    assert app["command"] == ["bash", "scripts/run.sh"]  # the Dockerfile's CMD
    assert app["environment"]["FEATGEOM_SCHEDULER"] == "tcp://scheduler:8786"
    assert "/_stcore/health" in app["healthcheck"]["test"][-1]
    assert scheduler["command"][:2] == ["dask", "scheduler"] and "/health" in scheduler["healthcheck"]["test"][-1]
    assert worker["command"][:3] == ["dask", "worker", "tcp://scheduler:8786"] and "--nthreads" in worker["command"]
    assert worker["deploy"]["replicas"] == "${FEATGEOM_WORKERS:-2}"
    assert gpu["profiles"] == ["gpu"] and all("profiles" not in services[name] for name in CPU_SERVICES)
    assert gpu["command"][:3] == ["dask", "worker", "tcp://scheduler:8786"]
    assert gpu["command"][gpu["command"].index("--resources") + 1] == "GPU=1"
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    # one image per torch variant: CPU-only for the app, the scheduler and the CPU workers, CUDA for the GPU worker
    assert {services[name]["image"] for name in CPU_SERVICES} == {"featgeom:cpu"} and gpu["image"] == "featgeom:cuda"
    assert all(services[name]["build"]["args"]["FEATGEOM_TORCH_VARIANT"] == "cpu" for name in CPU_SERVICES)
    assert gpu["build"]["args"]["FEATGEOM_TORCH_VARIANT"] == "cuda"
    # the cache volume: written by the app only; workers read it (checkpoints of lib.graph runs)
    assert app["volumes"] == [f"featgeom-cache:{CACHE_IN_IMAGE}"] and app["environment"]["FEATGEOM_CACHE_DIR"] == CACHE_IN_IMAGE
    assert worker["volumes"] == gpu["volumes"] == [f"featgeom-cache:{CACHE_IN_IMAGE}:ro"] and "volumes" not in scheduler
    assert "featgeom-cache" in yaml.safe_load(COMPOSE.read_text())["volumes"]


def test_tls_override_adds_the_tls_flags_to_every_dask_process() -> None:
    services = _services(COMPOSE_TLS)
    for name in ("scheduler", "worker", "gpu-worker"):
        command = services[name]["command"]
        flags = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--tls-")}
        assert flags == dict(zip(("--tls-ca-file", "--tls-cert", "--tls-key"), SECRETS)), name
        assert "tls://scheduler:8786" in command or command[command.index("--protocol") + 1] == "tls", name
    assert services["app"]["environment"] == {
        "FEATGEOM_SCHEDULER": "tls://scheduler:8786",
        **dict(zip(TLS_VARIABLES, SECRETS)),
    }
    secrets = yaml.safe_load(COMPOSE_TLS.read_text())["secrets"]
    # the secrets are the files scripts/tls_certs.sh writes into ./certs
    assert {f"/run/secrets/{name}": secret["file"] for name, secret in secrets.items()} == {
        path: f"./certs/{name}" for path, name in SECRETS.items()
    }
    base = _services(COMPOSE)
    for name in ("scheduler", "worker", "gpu-worker"):  # apart from TLS, the same commands as compose.yaml
        assert _without_tls(services[name]["command"]) == base[name]["command"], name


def _without_tls(command: list[str]) -> list[str]:
    """A Dask command with its TLS flags (and their values) removed and tls:// read as tcp://."""
    plain, skip = [], False
    for arg in command:
        if skip:
            skip = False
        elif arg.startswith("--tls-") or arg == "--protocol":
            skip = True
        else:
            plain.append(arg.replace("tls://", "tcp://"))
    return plain


def _setup_step(dockerfile: str) -> str:
    """The shell of the Dockerfile's RUN instruction that installs torch and the requirements."""
    instructions = dockerfile.replace("\\\n", " ").splitlines()
    return next(line for line in instructions if line.startswith("RUN ") and "scripts/setup.sh" in line)[len("RUN ") :]


def test_dockerfile_builds_the_cpu_and_the_cuda_variant(tmp_path: Path) -> None:
    """The install step, run by /bin/sh as `docker build` runs it, with a stand-in for setup.sh that
    prints the torch index it was given (no engine here to build the images themselves)."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "ARG FEATGEOM_TORCH_VARIANT=cuda" in dockerfile and 'ARG FEATGEOM_TORCH_INDEX=""' in dockerfile
    step = _setup_step(dockerfile)
    stand_in = tmp_path / "bash"
    stand_in.write_text('#!/bin/sh\necho "index=$FEATGEOM_TORCH_INDEX $*"\n')
    stand_in.chmod(0o755)

    def build(variant: str, index: str = "") -> subprocess.CompletedProcess:
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "FEATGEOM_TORCH_VARIANT": variant, "FEATGEOM_TORCH_INDEX": index}
        return subprocess.run(["/bin/sh", "-c", step], env=env, capture_output=True, text=True, timeout=30)

    assert build("cuda").stdout.strip() == "index= scripts/setup.sh"  # PyPI's wheel, CUDA bundled
    assert build("cpu").stdout.strip() == "index=https://download.pytorch.org/whl/cpu scripts/setup.sh"
    cu126 = "https://download.pytorch.org/whl/cu126"
    assert build("cuda", cu126).stdout.strip() == f"index={cu126} scripts/setup.sh"
    wrong = build("rocm")
    assert wrong.returncode != 0 and "must be cpu or cuda" in wrong.stderr and not wrong.stdout
    assert '--index-url "$FEATGEOM_TORCH_INDEX"' in (REPO_ROOT / "scripts" / "setup.sh").read_text()


# ---------------------------------------------------------------- TLS settings


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a certificate + key signed by it, made by the script the README gives."""
    directory = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", "scripts/tls_certs.sh", str(directory)], cwd=REPO_ROOT, check=True, capture_output=True, timeout=120)
    return directory


def _set_tls(monkeypatch: pytest.MonkeyPatch, ca: Path | None, cert: Path | None, key: Path | None) -> None:
    for name, path in zip(TLS_VARIABLES, (ca, cert, key)):
        if path is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(path))


def test_tls_settings_are_all_or_nothing_and_must_load(certs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _set_tls(monkeypatch, None, None, None)
    assert tls_security() is None and scheduler_security("tcp://host:8786") is None  # a laptop: no TLS
    with pytest.raises(FeatgeomError, match="uses TLS: set FEATGEOM_TLS_CA_FILE, FEATGEOM_TLS_CERT, FEATGEOM_TLS_KEY"):
        scheduler_security("tls://host:8786")
    _set_tls(monkeypatch, certs / "ca.pem", None, None)
    with pytest.raises(FeatgeomError, match="FEATGEOM_TLS_CERT and FEATGEOM_TLS_KEY are not set"):
        tls_security()
    _set_tls(monkeypatch, certs / "ca.pem", certs / "featgeom.pem", tmp_path / "nope.pem")
    with pytest.raises(FeatgeomError, match=f"TLS file not found: FEATGEOM_TLS_KEY={tmp_path / 'nope.pem'}"):
        tls_security()
    (tmp_path / "garbage.pem").write_text("not a key")
    _set_tls(monkeypatch, certs / "ca.pem", certs / "featgeom.pem", tmp_path / "garbage.pem")
    with pytest.raises(FeatgeomError, match="the TLS files do not load"):
        tls_security()
    _set_tls(monkeypatch, certs / "ca.pem", certs / "featgeom.pem", certs / "featgeom-key.pem")
    security = scheduler_security("tls://host:8786")
    assert security.require_encryption and security.tls_client_cert == str(certs / "featgeom.pem")
    with pytest.raises(FeatgeomError, match="not a tls:// address"):
        scheduler_security("tcp://host:8786")


# ---------------------------------------------------------------- the services as processes on loopback


class Processes:
    """Processes started in their own sessions, each logging to a file; stopped together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", HF_HUB_OFFLINE="1")
        for name in ("FEATGEOM_SCHEDULER", "FEATGEOM_ACCESS_TOKEN", "FEATGEOM_ACCESS_TOKEN_FILE", *TLS_VARIABLES):
            self.env.pop(name, None)

    def start(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        """Start ``argv`` in the repository root (the image's working directory) with ``env`` added."""
        with open(self.log_dir / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                argv, cwd=REPO_ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append((name, process))
        return process

    def logs(self) -> str:
        """The end of every process's log, for a failure message."""
        return "\n".join(f"--- {name} (exit {p.poll()}):\n{(self.log_dir / f'{name}.log').read_text()[-1500:]}" for name, p in self.started)

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left after 10 s."""
        for _, process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process in self.started:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    jobs.shutdown()
    try:
        yield started
    finally:
        jobs.shutdown()  # the app side lets go of the cluster before it goes
        started.stop()


def wait_until(condition: Callable[[], Any], what: str, processes: Processes, timeout: float = 60.0, poll: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with every process's log."""
    return poll_until(condition, timeout, poll, lambda: f"{what}: not within {timeout:.0f} s\n{processes.logs()}")


def healthy(check: list[str], processes: Processes) -> bool:
    """Whether a compose health check (["CMD", ...], made local) passes now."""
    assert check[0] == "CMD"
    try:
        return subprocess.run(check[1:], env=processes.env, capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def connected_client() -> Any:
    """The job API's Dask client, or None while the scheduler does not answer yet."""
    try:
        return jobs.get_client()
    except FeatgeomError:
        jobs.shutdown()
        return None


def worker_count(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def start_scheduler(services: dict[str, Any], processes: Processes, base: dict[str, Any], **whole: str) -> str:
    """The compose scheduler's command on a free loopback port, waited for by the compose health
    check; returns its address (``tcp://scheduler:8786`` made local)."""
    port, dashboard = _free_port(), _free_port()
    command = swap(
        services["scheduler"]["command"], whole={"0.0.0.0": "127.0.0.1", "8786": str(port), ":8787": f"127.0.0.1:{dashboard}", **whole}
    )
    processes.start("scheduler", command)
    check = swap(base["scheduler"]["healthcheck"]["test"], inside={"127.0.0.1:8787": f"127.0.0.1:{dashboard}"})
    wait_until(lambda: healthy(check, processes), "the scheduler's health check", processes)
    return f"127.0.0.1:{port}"


def start_worker(
    name: str, services: dict[str, Any], processes: Processes, base: dict[str, Any], scheduler: str, **whole: str
) -> tuple[subprocess.Popen, list[str]]:
    """The compose worker's command pointed at ``scheduler`` (host:port), with its own empty cache
    directory (no disk shared with the app); returns the process and its health check."""
    dashboard = _free_port()
    command = swap(services["worker"]["command"], whole={":8788": f"127.0.0.1:{dashboard}", **whole}, inside={"scheduler:8786": scheduler})
    process = processes.start(name, command, FEATGEOM_CACHE_DIR=str(processes.log_dir / f"{name}-cache"))
    return process, swap(base["worker"]["healthcheck"]["test"], inside={"127.0.0.1:8788": f"127.0.0.1:{dashboard}"})


def _holders(client: Any, job_id: str) -> list[str]:
    """The workers holding the job's result: the one that computed it."""
    return [address for key, addresses in client.who_has().items() if job_id in str(key) for address in addresses]


def _descendants(process: subprocess.Popen) -> set[int]:
    import psutil

    return {process.pid, *(child.pid for child in psutil.Process(process.pid).children(recursive=True))}


@pytest.mark.slow
def test_compose_commands_on_loopback_serve_the_app_and_compute_a_first_job(
    processes: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose.yaml's scheduler, two workers and app as processes, started in compose's order (the
    others once the scheduler is healthy); a job through the job API runs on one of the worker
    processes and its result is written by the app side into the app's store."""
    services = _services(COMPOSE)
    start = time.perf_counter()
    scheduler = start_scheduler(services, processes, services)
    scheduler_healthy = time.perf_counter() - start

    workers = [start_worker(f"worker-{i}", services, processes, services, scheduler) for i in (1, 2)]
    app_port, app_cache = _free_port(), tmp_path / "app-cache"
    address = swap([services["app"]["environment"]["FEATGEOM_SCHEDULER"]], inside={"scheduler:8786": scheduler})[0]
    processes.start(
        "app", services["app"]["command"], FEATGEOM_SCHEDULER=address, FEATGEOM_CACHE_DIR=str(app_cache), FEATGEOM_PORT=str(app_port)
    )

    monkeypatch.setenv("FEATGEOM_SCHEDULER", address)  # this test is the app side of the job API
    monkeypatch.setenv("FEATGEOM_CACHE_DIR", str(app_cache))
    client = wait_until(connected_client, "the job API's connection", processes)
    wait_until(lambda: worker_count(client) == 2, "two workers registered", processes)
    workers_ready = time.perf_counter() - start
    value = f"deploy-{uuid.uuid4().hex[:8]}"
    job_id = jobs.submit("diagnostic.echo", {"value": value})
    record = jobs.wait(job_id, timeout_s=60)
    first_result = time.perf_counter() - start
    app_check = swap(services["app"]["healthcheck"]["test"], inside={"127.0.0.1:8501": f"127.0.0.1:{app_port}"})
    wait_until(lambda: healthy(app_check, processes), "the app's /_stcore/health", processes, timeout=90, poll=0.5)
    app_healthy = time.perf_counter() - start
    began = time.perf_counter()
    second = jobs.wait(jobs.submit("diagnostic.echo", {"value": f"{value}-again"}), timeout_s=60)
    second_job = time.perf_counter() - began
    holders, second_holders = (_holders(client, job) for job in (job_id, second.job_id))
    print(
        f"\nloopback deployment (from process start): scheduler healthy {scheduler_healthy:.1f} s, 2 workers "
        f"registered {workers_ready:.1f} s, first job result {first_result:.1f} s, app healthy {app_healthy:.1f} s; "
        f"a second job {1000 * second_job:.0f} ms on the {'same' if holders == second_holders else 'other'} worker"
    )

    assert record.status == "done" and second.status == "done", (record.error, second.error)
    assert jobs.backend_info().mode == address  # no local cluster: the configured scheduler
    assert len(holders) == 1, holders
    worker_pid = client.run(os.getpid, workers=holders)[holders[0]]
    assert worker_pid != os.getpid() and any(worker_pid in _descendants(process) for process, _ in workers)
    assert jobs.load_result(job_id).echo == value
    assert Store(app_cache).get(record.result_key).meta == {"echo": value}
    for name in ("worker-1", "worker-2"):  # nothing was written on the workers' side
        assert not list((tmp_path / f"{name}-cache").rglob("meta.json"))
    for _, check in workers:
        assert healthy(check, processes)


@pytest.mark.slow
def test_tls_cluster_serves_the_job_api_with_the_lab_certificate_only(
    processes: Processes, certs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose.tls.yaml's scheduler and a worker on tls://127.0.0.1; the job API computes a job
    with the deployment's certificate; without TLS, or with another CA's certificate, it cannot
    connect, and says so at once."""
    base, services = _services(COMPOSE), _services(COMPOSE_TLS)
    files = {secret: str(certs / name) for secret, name in SECRETS.items()}
    scheduler = start_scheduler(services, processes, base, **files)
    start_worker("worker", services, processes, base, scheduler, **files)
    address = swap([services["app"]["environment"]["FEATGEOM_SCHEDULER"]], inside={"scheduler:8786": scheduler})[0]
    assert address.startswith("tls://127.0.0.1:")
    monkeypatch.setenv("FEATGEOM_SCHEDULER", address)
    monkeypatch.setenv("FEATGEOM_CACHE_DIR", str(tmp_path / "app-cache"))
    for name in TLS_VARIABLES:
        monkeypatch.setenv(name, files[services["app"]["environment"][name]])

    client = wait_until(connected_client, "the TLS connection", processes)
    wait_until(lambda: worker_count(client) == 1, "the TLS worker registered", processes)
    assert all(worker.startswith("tls://") for worker in client.scheduler_info(n_workers=-1)["workers"])
    job_id = jobs.submit("diagnostic.echo", {"value": "over TLS"})
    assert jobs.wait(job_id, timeout_s=60).status == "done"
    assert jobs.load_result(job_id).echo == "over TLS"
    jobs.shutdown()

    other = tmp_path / "other-ca"
    subprocess.run(["bash", "scripts/tls_certs.sh", str(other)], cwd=REPO_ROOT, check=True, capture_output=True, timeout=120)
    refusals = [
        ("tls without certificates", address, (None, None, None), "uses TLS: set FEATGEOM_TLS_CA_FILE"),
        ("plain tcp", address.replace("tls://", "tcp://"), (None, None, None), "cannot reach the Dask scheduler"),
        (
            "another CA's certificate",
            address,
            (other / "ca.pem", other / "featgeom.pem", other / "featgeom-key.pem"),
            "cannot reach the Dask scheduler",
        ),
    ]
    for case, scheduler_address, tls_files, message in refusals:
        monkeypatch.setenv("FEATGEOM_SCHEDULER", scheduler_address)
        _set_tls(monkeypatch, *tls_files)
        began = time.monotonic()
        with pytest.raises(FeatgeomError, match=message):
            jobs.get_client()
        assert time.monotonic() - began < 15, case  # bounded by the client's 10 s connect timeout
        jobs.shutdown()
