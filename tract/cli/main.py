"""`main`: run one command and turn what went wrong into one line on stderr and an exit status.

Exit status: 0 done; 1 the command failed (a log that does not verify, a commit or branch
that is not there, an unreadable or damaged log, a file that cannot be written); 2 the
arguments were wrong (usage); 130 interrupted (Ctrl-C); 141 the reader of stdout went away.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from tract.cli.common import USAGE_EXIT, CommandLineError, end_progress
from tract.cli.output import terminal_safe
from tract.cli.parser import build
from tract.errors import TractError

FAILURE_EXIT = 1
INTERRUPTED_EXIT = 130
BROKEN_PIPE_EXIT = 141


def main(argv: Sequence[str] | None = None) -> int:
    args = build().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly. Open for the rest of the process, so no `with`.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return BROKEN_PIPE_EXIT
    except CommandLineError as error:
        _fail(args.command, f"usage error: {error}")
        return USAGE_EXIT
    except (TractError, OSError) as error:  # OSError: the files the command itself reads or writes
        _fail(args.command, str(error))
        return FAILURE_EXIT
    except KeyboardInterrupt:
        _fail(args.command, "interrupted")
        return INTERRUPTED_EXIT


def _fail(command: str, message: str) -> None:
    end_progress()
    print(f"tract {command}: {terminal_safe(' '.join(message.split()))}", file=sys.stderr)
