"""`python -m exporter`: the same as the `ess-export` command."""

from .cli import main

main()
