"""One step of the scale benchmark in a process of its own, against the checkout `--code DIR` names.

    python bench/scale_child.py --code DIR STEP '{"argument": ...}'

Prints the step's result as one JSON line on stdout (progress goes to stderr).
A process per step keeps each checkout's imports apart, and gives the
fresh-process figures (memory after open, first open) a process that has
done nothing else.
"""

from __future__ import annotations

import json
import sys

import codepath

codepath.use(codepath.code_argument(sys.argv[1:]))  # before anything imports the library

import scale_build  # noqa: E402
import scale_steps  # noqa: E402

STEPS = {
    "build_many": scale_build.build_many,
    "build_tract": scale_build.build_tract,
    "copy_tract": scale_build.copy_tract,
    "open_compile": scale_steps.open_compile,
    "rss_open": scale_steps.rss_open,
    "open_fresh": scale_steps.open_fresh,
    "open_inprocess": scale_steps.open_inprocess,
    "query": scale_steps.query,
    "disk": scale_steps.disk,
}


def main(argv: list[str]) -> int:
    arguments = [a for i, a in enumerate(argv) if a != "--code" and (i == 0 or argv[i - 1] != "--code")]
    arguments = [a for a in arguments if not a.startswith("--code=")]
    step, spec = arguments
    result = STEPS[step](**json.loads(spec))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
