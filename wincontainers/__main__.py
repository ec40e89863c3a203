"""``python -m wincontainers``: the command line."""

import sys

from wincontainers.cli import main

sys.exit(main())
