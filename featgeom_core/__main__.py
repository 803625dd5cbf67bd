"""``python -m featgeom_core`` = the ``featgeom`` command."""

import sys

from featgeom_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
