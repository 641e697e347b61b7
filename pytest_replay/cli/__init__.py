"""The ``pytest-replay`` command line (also ``python -m pytest_replay``).

Commands: ``inspect``, ``diff``, ``fleet replay``, ``reduce`` and
``store list|prune|check``; ``pytest-replay COMMAND --help`` describes each.

One rule for exit statuses: 0 ok; 1 "the answer is no" (recordings differ, a
recording is corrupt, validation or integrity problems); 2 usage error (bad
arguments, a path that does not exist or is not a recording). Every error is one
line on stderr ending with a ``Fix:`` hint; a traceback is shown only with
``--debug``. Modules
of a format (numpy, the fleet engine, journals) are imported only by the
command that needs them.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from pytest_replay.cli.common import EXIT_DIFFERENT, EXIT_ERROR, CliError, CorruptInput, Run
from pytest_replay.errors import render_error, split_fix

__all__ = ["main"]

PROG = "pytest-replay"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line with a Fix hint (exit status 2), and an
    unknown subcommand, choice or option gets a "did you mean"."""

    def error(self, message: str) -> NoReturn:
        # The hint names the (sub)command; the message itself need not repeat it.
        raise CliError(message + _suggestion(self, message), f"see '{self.prog} --help'")


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option of ``parser`` and of its subcommands, at any depth."""
    found: list[str] = []
    for action in parser._actions:
        found += [o for o in action.option_strings if o.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _option_strings(sub)
    return found


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    import re

    from pytest_replay.cli.common import did_you_mean

    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        return did_you_mean(choice.group(1), re.findall(r"'?([\w.-]+)'?", choice.group(2)))
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        options = _option_strings(parser)
        for word in unknown.group(1).split():
            if word.startswith("--"):
                hint = did_you_mean(word.partition("=")[0], options)
                if hint:
                    return hint
    return ""


class _Usage(Exception):
    """Internal: raised when argparse has printed help or the version and wants to exit."""

    def __init__(self, code: int) -> None:
        self.code = code


def _ignore_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    from pytest_replay import __version__

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    common.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto (only on a terminal, the default), always, never",
    )
    parser = _Parser(
        prog=PROG,
        description="Inspect, compare and check pytest_replay recordings.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    inspect = commands.add_parser(
        "inspect",
        parents=[common],
        help="summarise a ring log, fleet log or folder, journal, reducer result or store",
        description=(
            "Detect what PATH holds (VRRL ring log, fleet log or folder of fleet logs, journal "
            "file, journal record file, reducer result, store folder) and print a summary and "
            "its first records."
        ),
    )
    inspect.add_argument("path", type=Path, metavar="PATH")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument(
        "-n",
        "--limit",
        type=int,
        default=10,
        metavar="N",
        help="show the first N records (default 10; 0 for none)",
    )
    inspect.add_argument(
        "--records",
        metavar="A:B",
        help="show records A..B-1 instead (Python slice bounds: 10:20, :5; a negative start "
        "needs '=': --records=-3:)",
    )
    inspect.add_argument(
        "--test", metavar="NODEID", help="of a store: only the recordings of this test"
    )

    diff = commands.add_parser(
        "diff",
        parents=[common],
        help="first divergence between two recordings of the same kind",
        description=(
            "Compare two recordings of the same kind. Exit status 0 when they are the same, "
            "1 when they differ, 2 on error."
        ),
    )
    diff.add_argument("a", type=Path, metavar="A")
    diff.add_argument("b", type=Path, metavar="B")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    group = diff.add_mutually_exclusive_group()
    group.add_argument(
        "--ignore",
        action="append",
        metavar="FIELDS",
        help=(
            "fields that never count as a difference (comma-separated, repeatable); replaces "
            "the kind's default (timestamp_ns for ring logs, ts_micros for journals)"
        ),
    )
    group.add_argument(
        "--strict", action="store_true", help="ignore nothing, not even the volatile defaults"
    )
    diff.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write the complete diff as DIR/diff.diff.txt and DIR/diff.diff.json",
    )

    textconv = commands.add_parser(
        "textconv",
        parents=[common],
        help="print a recording as stable text, one record a line (a git diff driver)",
        description=(
            "Print any recording file as text: a header of facts, then one record, entry, "
            "step or value leaf a line, fields named. Depends on the file's bytes alone, so "
            "git can use it as a diff driver (see git-setup)."
        ),
    )
    textconv.add_argument("path", type=Path, metavar="FILE")
    git_setup = commands.add_parser(
        "git-setup",
        parents=[common],
        help="make git diff show recordings as text (.gitattributes, and the driver with --apply)",
        description=(
            "Write the .gitattributes lines that send the store's recordings through the "
            "pytest-replay diff driver; with --apply also set diff.pytest-replay.textconv in "
            "the repository's git config (otherwise print the command)."
        ),
    )
    git_setup.add_argument("--apply", action="store_true", help="also set the git config")
    git_setup.add_argument(
        "--command",
        dest="textconv_command",
        metavar="CMD",
        help="the textconv command git runs (default: 'pytest-replay textconv')",
    )
    git_setup.add_argument(
        "--store",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="another store folder (replay_dir, a pytest_replay_store_dir hook); repeatable",
    )
    git_setup.add_argument("--json", action="store_true", help="machine-readable output")

    fleet = commands.add_parser(
        "fleet", parents=[common], help="fleet logs: validate and show the causal replay order"
    )
    fleet_commands = fleet.add_subparsers(
        dest="fleet_command", metavar="SUBCOMMAND", parser_class=_Parser
    )
    fleet_commands.required = True
    replay = fleet_commands.add_parser(
        "replay",
        parents=[common],
        help="validate logs against a topology; causal order, frontier, node and edge counts",
        description=(
            "Validate the fleet logs found under PATHS against TOPOLOGY (exit status 1 with "
            "every problem listed), then show the causal order a replay runs the steps in, "
            "the frontier at a --goto target, and the graph's node and edge counts. A stored "
            "fleet recording (.fleet, as the plugin writes it) holds its topology and logs: "
            "pass it alone."
        ),
    )
    replay.add_argument("topology", type=Path, metavar="TOPOLOGY|RECORDING")
    replay.add_argument("paths", type=Path, nargs="*", metavar="PATHS")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    steps = replay.add_mutually_exclusive_group()
    steps.add_argument(
        "--steps",
        type=int,
        default=20,
        metavar="N",
        help="show the first N steps of the causal order (default 20)",
    )
    steps.add_argument("--all", action="store_true", help="show the whole causal order")
    replay.add_argument(
        "--goto",
        metavar="INSTANCE:SUBSYSTEM:STEP",
        help="replay up to this step and show the frontier there (e.g. 2:plan:17)",
    )
    replay.add_argument("--instances", metavar="IDS", help="replay only these instances (e.g. 1,3)")

    graph = fleet_commands.add_parser(
        "graph",
        parents=[common],
        help="the causal graph of a fleet recording as Graphviz DOT (SVG with -o x.svg)",
        description=(
            "Export the causal graph of a fleet (a .fleet recording, or TOPOLOGY and PATHS) as "
            "Graphviz DOT: one node per recorded step, an edge for each step's successor in "
            "its log and for each message's origin. --around limits it to the neighbourhood "
            "of one step (a divergence). With -o FILE.svg the DOT is rendered by Graphviz "
            "'dot' when it is installed."
        ),
    )
    graph.add_argument("topology", type=Path, metavar="TOPOLOGY|RECORDING")
    graph.add_argument("paths", type=Path, nargs="*", metavar="PATHS")
    graph.add_argument(
        "--around",
        metavar="INSTANCE:SUBSYSTEM:STEP",
        help="only the steps within --radius edges of this step (e.g. 2:plan:17)",
    )
    graph.add_argument(
        "--radius", type=int, default=2, metavar="N", help="edges around --around (default 2)"
    )
    graph.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE (.dot or .svg)"
    )

    from pytest_replay.cli.reduce import MODES, POLICIES

    reduce = commands.add_parser(
        "reduce",
        parents=[common],
        help="fold a journal record file with the replay reducer; prints the ReplayResult",
        description="Reduce a journal record file and print the ReplayResult as JSON.",
    )
    reduce.add_argument("journal", type=Path, metavar="JOURNAL")
    reduce.add_argument(
        "--mode", choices=MODES, default="audit", help="reducer mode (default: audit)"
    )
    reduce.add_argument(
        "--content-ref",
        action="append",
        metavar="REF",
        help="a content ref that is available (repeatable); without any, refs are not checked",
    )
    reduce.add_argument(
        "--missing-content-policy",
        choices=POLICIES,
        default="fail",
        help="what a missing content ref means (default fail)",
    )
    reduce.add_argument("--pretty", action="store_true", help="indent the JSON")
    reduce.add_argument(
        "--fail-on-repair",
        action="store_true",
        help="exit with status 1 when the result needs a repair",
    )

    store = commands.add_parser(
        "store", parents=[common], help="list, prune or check a recording store"
    )
    store_commands = store.add_subparsers(
        dest="store_command", metavar="SUBCOMMAND", parser_class=_Parser
    )
    store_commands.required = True
    for name, text in (
        ("list", "list the recordings with their kinds, record counts and sizes"),
        ("prune", "delete the test folders no collected test produces (a dry run unless --yes)"),
        ("check", "check every recording against the digest in its manifest"),
    ):
        sub = store_commands.add_parser(name, parents=[common], help=text, description=text)
        sub.add_argument(
            "dir", type=Path, nargs="?", default=Path("__replay__"), metavar="DIR",
            help="the store folder (default __replay__, beside the tests in this folder)",
        )  # fmt: skip
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "prune":
            sub.add_argument("--yes", action="store_true", help="really delete")
            sub.add_argument(
                "--rootdir",
                type=Path,
                metavar="DIR",
                help="the folder whose tests pytest collects (default: the folder holding the "
                "store; for a central replay_dir, the folder of your ini file)",
            )
        if name == "check":
            sub.add_argument(
                "--deep",
                action="store_true",
                help="also decode each recording and compare its record count and kind version",
            )
    return parser


def _dispatch(args: argparse.Namespace, run: Run) -> int:
    command = args.command
    if command == "inspect":
        from pytest_replay.cli.inspect import run_inspect

        return run_inspect(run, args.path, args.limit, args.records, args.test)
    if command == "diff":
        from pytest_replay.cli.diff import run_diff

        ignore = [] if args.strict else _ignore_list(args.ignore)
        return run_diff(run, args.a, args.b, ignore, args.report)
    if command == "textconv":
        from pytest_replay.cli.textconv import run_textconv

        return run_textconv(run, args.path)
    if command == "git-setup":
        from pytest_replay.cli.textconv import run_git_setup

        return run_git_setup(run, args.apply, args.textconv_command, Path.cwd(), args.store)
    if command == "fleet":
        from pytest_replay.cli.fleet import fleet_inputs, run_fleet_graph, run_fleet_replay

        with fleet_inputs(args.topology, args.paths) as (topology, paths, shown):
            if args.fleet_command == "graph":
                return run_fleet_graph(
                    run, topology, paths, args.around, args.radius, args.output, shown
                )
            steps = None if args.all else args.steps
            return run_fleet_replay(run, topology, paths, steps, args.goto, args.instances, shown)
    if command == "reduce":
        from pytest_replay.cli.reduce import run_reduce

        return run_reduce(
            run,
            args.journal,
            args.mode,
            args.content_ref,
            args.missing_content_policy,
            args.pretty,
            args.fail_on_repair,
        )
    from pytest_replay.cli import store

    if args.store_command == "list":
        return store.run_store_list(run, args.dir)
    if args.store_command == "prune":
        return store.run_store_prune(run, args.dir, args.rootdir, args.yes)
    return store.run_store_check(run, args.dir, args.deep)


def _named(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is of a class called ``*name`` (the packages' error families are
    matched by name so that an error does not import the package that raised it again)."""
    return any(cls.__name__.endswith(name) for cls in type(exc).__mro__)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    sys.stderr.write(f"{PROG}: warning: {_one_line(str(message))}\n")


def _fail(message: str, status: int = EXIT_ERROR) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"{PROG}: error: {_one_line(message)}\n")
    sys.stderr.flush()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(arguments)
        except SystemExit as exc:  # --help / --version printed their text
            raise _Usage(exc.code if isinstance(exc.code, int) else 0) from None
        run = Run(json=bool(getattr(args, "json", False)), progress=args.progress)
        with warnings.catch_warnings():
            # A reader's warning (an old file without an end frame, a torn tail) is one line.
            warnings.showwarning = _warning_line
            return _dispatch(args, run)
    except _Usage as usage:
        return usage.code
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other CLI tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        return _fail(render_error("interrupted", fix="run the command again and let it finish"))
    except Exception as exc:
        if debug:
            raise
        from pytest_replay.errors import ReplayError

        if isinstance(exc, ReplayError):
            from pytest_replay.report import ReplayUsageError

            # A format's own error means the input does not decode: corruption, status 1;
            # misuse (ours, a package's *UsageError, a bad topology file) is status 2.
            misuse = (
                isinstance(exc, (ReplayUsageError, CliError))
                or _named(exc, "UsageError")
                or _named(exc, "TopologyError")
            ) and not isinstance(exc, CorruptInput)
            text = str(exc)
            if split_fix(text)[1] is None:
                text = render_error(text, fix="see --help")
            return _fail(text, EXIT_ERROR if misuse else EXIT_DIFFERENT)
        if isinstance(exc, OSError):
            where = f" '{exc.filename}'" if exc.filename else ""
            return _fail(
                render_error(
                    f"cannot access{where}: {exc.strerror or exc}",
                    fix="check the path and permissions",
                )
            )
        if isinstance(exc, MemoryError):
            return _fail(
                render_error("out of memory", fix="inspect a smaller file or a --records range")
            )
        return _fail(
            render_error(
                f"internal error: {type(exc).__name__}: {exc}",
                fix="rerun with --debug and report the traceback",
            )
        )
