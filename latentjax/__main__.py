"""`python -m latentjax` is the `latentjax` command."""

import sys

from latentjax.cli import main

sys.exit(main())
