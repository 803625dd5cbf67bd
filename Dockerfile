# featgeom: the shareable image, and the one every service of compose.yaml runs.
# torch's wheel is chosen explicitly by the build argument FEATGEOM_TORCH_VARIANT:
#   cuda (default)  PyPI's torch==2.13.0, which bundles the CUDA libraries (GPU with --gpus all) and runs on a CPU too
#   cpu             the CPU-only wheel from https://download.pytorch.org/whl/cpu: a far smaller image
#   docker build --build-arg FEATGEOM_TORCH_VARIANT=cpu .
# FEATGEOM_TORCH_INDEX, when set, names torch's index outright (e.g. a download.pytorch.org/whl/cuXXX
# index for a host whose NVIDIA driver is older than the default wheel's CUDA needs).
FROM python:3.11-slim

ARG FEATGEOM_TORCH_VARIANT=cuda
ARG FEATGEOM_TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    FEATGEOM_CACHE_DIR=/home/featgeom/app/cache \
    PATH=/home/featgeom/app/.venv/bin:$PATH

RUN useradd --create-home --uid 10001 featgeom
USER 10001
WORKDIR /home/featgeom/app
# Made here so that a named volume mounted on it starts out owned by featgeom, not root.
RUN mkdir -p "$FEATGEOM_CACHE_DIR"

# Dependencies first, so code edits do not reinstall them.
COPY --chown=featgeom:featgeom requirements.txt constraints.txt pyproject.toml ./
COPY --chown=featgeom:featgeom scripts/setup.sh scripts/setup.sh
COPY --chown=featgeom:featgeom featgeom_core/__init__.py featgeom_core/__init__.py
RUN case "$FEATGEOM_TORCH_VARIANT" in \
      cuda) variant_index="" ;; \
      cpu) variant_index="https://download.pytorch.org/whl/cpu" ;; \
      *) echo "FEATGEOM_TORCH_VARIANT must be cpu or cuda, not '$FEATGEOM_TORCH_VARIANT'" >&2; exit 1 ;; \
    esac \
 && FEATGEOM_TORCH_INDEX="${FEATGEOM_TORCH_INDEX:-$variant_index}" bash scripts/setup.sh

COPY --chown=featgeom:featgeom . .

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"]
CMD ["bash", "scripts/run.sh"]
