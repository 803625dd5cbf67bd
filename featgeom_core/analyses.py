"""The modules that register job kinds: one line per analysis package.

Adding an analysis adds its ``<analysis>/jobs.py`` here; the job registry imports these on first
use (see ``featgeom_core.jobs.protocol``).
"""

JOB_KIND_MODULES: tuple[str, ...] = (
    "featgeom_core.jobs.diagnostics",
    "featgeom_core.probing.jobs",
    "featgeom_core.energy.jobs",
    "featgeom_core.sparsity.jobs",
    "featgeom_core.interaction.jobs",
    "featgeom_core.hessian.jobs",
    "featgeom_core.findings.jobs",
    "featgeom_core.features.jobs",
)
