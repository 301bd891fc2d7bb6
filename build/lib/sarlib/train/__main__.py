"""`python -m sarlib.train ...`: one training run (see sarlib.train.cli for the commands)."""

import sys

from .cli import main

sys.exit(main())
