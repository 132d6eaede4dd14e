"""`python -m latentjax` is the `latentjax` command."""

from latentjax.cli import run

run()
