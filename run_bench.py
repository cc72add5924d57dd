#!/usr/bin/env python3
"""Entry point identical to the `fusebench` console script."""
import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
