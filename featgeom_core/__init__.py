"""featgeom_core: the compute package behind the featgeom dashboard.

Nothing in this package imports Streamlit; pages call into it, never the reverse.
"""

__version__ = "0.1.0"
