"""The `tract` command line: one module per job (arguments, output formats, each group of
commands, the graph, the HTML report). `main` runs it."""

from tract.cli.main import main

__all__ = ["main"]
