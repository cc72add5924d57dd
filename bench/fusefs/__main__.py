"""`python -m bench.fusefs`: the built-in FUSE server."""

import sys

from bench.fusefs.cli import main

sys.exit(main())
