"""`python -m ganlib` is the `ganlib` command (and what torchrun launches with -m)."""

import sys

from .cli import main

sys.exit(main())
