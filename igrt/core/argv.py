"""Command-line arguments that argparse would misread."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def join_negative_values(argv: Sequence[str], options: Iterable[str]) -> list[str]:
    """``--shift -5,0,0`` as ``--shift=-5,0,0`` for each of ``options``: argparse takes a value
    that starts with ``-`` for an option of its own."""
    wanted = frozenset(options)
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in wanted and i + 1 < len(argv) and argv[i + 1][:1] == "-":
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out
