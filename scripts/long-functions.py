#!/usr/bin/env python3
"""Functions longer than 80 lines without a stated reason (issue 23 point 7).

    python3 scripts/long-functions.py [PATH...]   (default: src crates tests benches build.rs)

Each PATH is a directory (its .rs files, recursively; `target` directories are
skipped) or one .rs file; a PATH that does not exist is skipped. A function is
any `fn` item with a body (free, in an impl or trait, nested, any visibility
or qualifiers: `pub(crate) const unsafe extern "C" fn`). Its length runs from
the `fn` line to the line of the brace that closes its body, both included
(for rustfmt'd code, the closing brace at the `fn` line's indentation).
Comments, strings and char literals are blanked before the braces are counted.

A function over the limit is allowed when one of the 6 lines above its `fn`
line (its doc comment and attributes, usually) contains `// Long:` followed
by the reason, e.g.

    // Long: one arm per command, each a call; splitting would scatter the table.
    fn dispatch(..) {

Prints `path:line name (N lines)` for each other one; exit status 1 if any.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rust_source import strip  # noqa: E402

LIMIT = 80
LOOKBACK = 6
MARK = "// Long:"
DEFAULT = ["src", "crates", "tests", "benches", "build.rs"]

# `fn name` at the start of a line, after any visibility and qualifiers.
FN = re.compile(
    r"^\s*(?:pub(?:\s*\([^)]*\))?\s+)?"
    r"(?:(?:const|async|unsafe|default|extern(?:\s+\"[^\"]*\")?)\s+)*"
    r"fn\s+(r#)?([A-Za-z_][A-Za-z0-9_]*)"
)


def body_end(lines, start):
    """Index of the line that closes the body of the fn on lines[start], or None if it has none.

    The signature ends at the first `{` or `;` outside parentheses and
    brackets (`[u8; 4]` is a type, `fn f();` has no body); from that `{`
    the braces are counted to the one that closes it.
    """
    parens = 0
    depth = 0
    in_body = False
    for k in range(start, len(lines)):
        for ch in lines[k]:
            if not in_body:
                if ch in "([":
                    parens += 1
                elif ch in ")]":
                    parens -= 1
                elif parens == 0 and ch == ";":
                    return None
                elif parens == 0 and ch == "{":
                    in_body, depth = True, 1
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return k
    return None


def long_functions(path):
    """(line, name, length) of each fn in the file over LIMIT without a `// Long:` reason."""
    with open(path, encoding="utf-8") as f:
        raw = f.read().split("\n")
    code = strip("\n".join(raw)).split("\n")
    found = []
    for k, line in enumerate(code):
        m = FN.match(line)
        if not m:
            continue
        end = body_end(code, k)
        if end is None:
            continue
        length = end - k + 1
        if length <= LIMIT:
            continue
        if any(MARK in above for above in raw[max(0, k - LOOKBACK) : k]):
            continue
        found.append((k + 1, m.group(2), length))
    return found


def rust_files(paths):
    for p in paths:
        if os.path.isfile(p):
            if p.endswith(".rs"):
                yield p
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if d != "target" and not d.startswith("."))
            for name in sorted(files):
                if name.endswith(".rs"):
                    yield os.path.join(root, name)


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    paths = argv or DEFAULT
    bad = 0
    for path in rust_files(paths):
        for line, name, length in long_functions(path):
            print(f"{path}:{line} {name} ({length} lines)")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
