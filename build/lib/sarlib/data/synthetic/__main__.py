"""`python -m sarlib.data.synthetic export ...`: write the embedded data as ImageNet-style or VOC files."""

import sys

from .export import main

sys.exit(main())
