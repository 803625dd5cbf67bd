# featgeom: the shareable image. Runs on a CPU host as is; torch==2.13.0 from PyPI also carries
# CUDA, so the same image uses a GPU when started with --gpus all. For a slimmer CPU-only image:
#   docker build --build-arg FEATGEOM_TORCH_INDEX=https://download.pytorch.org/whl/cpu .
FROM python:3.11-slim

ARG FEATGEOM_TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    FEATGEOM_CACHE_DIR=/home/featgeom/app/cache

RUN useradd --create-home --uid 10001 featgeom
USER 10001
WORKDIR /home/featgeom/app

# Dependencies first, so code edits do not reinstall them.
COPY --chown=featgeom:featgeom requirements.txt constraints.txt pyproject.toml ./
COPY --chown=featgeom:featgeom scripts/setup.sh scripts/setup.sh
COPY --chown=featgeom:featgeom featgeom_core/__init__.py featgeom_core/__init__.py
RUN FEATGEOM_TORCH_INDEX="${FEATGEOM_TORCH_INDEX}" bash scripts/setup.sh

COPY --chown=featgeom:featgeom . .

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"]
CMD ["bash", "scripts/run.sh"]
