"""Old option spellings, kept for one release as hidden aliases of the one vocabulary (README table).

`rewrite(argv)` replaces an old spelling by its new name before the command line is parsed, so help shows
only the new names; each use prints one note on stderr. Drop an entry after the next release.
"""

from __future__ import annotations

# command path → {old spelling: new spelling}
OLD_SPELLINGS = {
    ("export",): {"--batch": "--batch-size"},
    ("bench",): {"--batch": "--batch-size"},
    ("compress", "stad"): {"--export-profile": "--profile"},
    ("federation", "init"): {"-n": "--clients"},
    ("data", "partition"): {"--dirichlet": "--alpha"},
    ("simulate",): {"--satellites": "--clients", "--quorum": "--min-clients"},
    ("demo",): {"--satellites": "--clients"},
    ("aggregate",): {"--clients": "--client-ids"},
    ("broker",): {"--duration": "--timeout"},
}


def command_path(argv) -> tuple:
    """The longest command path in OLD_SPELLINGS that argv starts with (() if none)."""
    best = ()
    for path in OLD_SPELLINGS:
        if tuple(argv[: len(path)]) == path and len(path) > len(best):
            best = path
    return best


def rewrite(argv) -> tuple:
    """(argv with old spellings replaced, notes to print)."""
    path = command_path(argv)
    table = OLD_SPELLINGS.get(path, {})
    out, notes = list(argv[: len(path)]), []
    rest = list(argv[len(path):])
    for i, arg in enumerate(rest):
        if arg == "--":
            out += rest[i:]
            break
        flag, eq, value = arg.partition("=")
        if flag in table:
            notes.append(f"note: `edgefl {' '.join(path)} {flag}` is now {table[flag]}; the old spelling "
                         "goes in the next release")
            arg = table[flag] + eq + value
        out.append(arg)
    return out, notes
