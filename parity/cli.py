"""The ``parity`` command: one argparse front, each subcommand implemented in the package that owns it.

Each command module exposes ``configure(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``. Modules are imported lazily, only for the command being run, so
``parity legacy status`` never pays for SQLAlchemy and optional extras stay optional.

Exit codes: 0 success, 1 failure, 2 usage error or inconclusive (``gate``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from parity import __version__
from wire.errors import ParityError

logger = logging.getLogger(__name__)

#: name -> (module, one-line help). Listed in the order a migration uses them.
COMMANDS: dict[str, tuple[str, str]] = {
    "legacy": ("parity.legacy.cli", "install, start, stop and inspect the contained OpenClaw legacy gateway"),
    "record": ("recorder.cli", "run scenarios against a gateway and write one golden trace per scenario"),
    "replay": ("diffing.cli_replay", "replay traces against legacy and candidate, pair and diff the answers"),
    "shadow": ("shadow.__main__", "run the shadow proxy: clients get legacy's answers, candidate is mirrored"),
    "import": ("shadow.importer", "turn mitmproxy flow files or HAR files into traces"),
    "noise": ("diffing.cli_noise", "learn noise rules from A/A replays and review them"),
    "report": ("diffing.cli_report", "parity, mismatch signatures and latency from a parity database"),
    "gate": ("diffing.cli_gate", "cutover verdict from a parity database: pass 0, fail 1, inconclusive 2"),
    "demo": ("parity.demo", "boot everything, drive the golden scenarios through the proxy, print the verdict"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="parity",
        description="Prove a candidate OpenClaw gateway equal to the legacy before the flip.",
        epilog="Run 'parity <command> --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"parity {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for name, (_module, helptext) in COMMANDS.items():
        subparsers[name] = sub.add_parser(name, help=helptext, description=helptext)
    return parser, subparsers


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = build_parser()
    # Parse the command name first, then let its module add the options.
    name = next((a for a in argv if not a.startswith("-")), None)
    if name in COMMANDS:
        module = importlib.import_module(COMMANDS[name][0])
        module.configure(subparsers[name])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ParityError as exc:
        print(f"parity {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
