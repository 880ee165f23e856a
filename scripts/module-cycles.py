#!/usr/bin/env python3
"""Import circles between the modules of a Rust crate (docs/DESIGN.md, "Module layout").

    python3 scripts/module-cycles.py [--exclude DIR_OR_FILE]... [ROOT_DIR...]   (default: src)

A module is a file (`foo.rs`, `foo/mod.rs`); inline modules (`mod tests { .. }`)
belong to their file. In each ROOT_DIR the crate roots are `lib.rs`, `main.rs`
and `bin/*.rs`; the module tree is followed from them through `mod name;`.

The edges, file A -> file B, come from names A uses that B defines:
  * `use` declarations (`crate::`, `super::`, `self::`, a child module's name),
    and paths in code that start with `crate::`, `super::`, `self::` or the
    name of a child module (`super::Agent`, `trust::Trust`, `crate::x::y()`);
  * a name is followed through re-exports to the file that defines it
    (`crate::Agent` is `agent/mod.rs`, not `lib.rs`);
  * `mod child;` is not an edge, and neither is a re-export itself
    (`pub use child::X`, any `pub(..) use`): it only forwards a name. A
    private `use` is an edge: the module itself uses what it imports.
So a parent and its child form a circle only when each uses the other's items
(a child's `super::X` and the parent's own `child::Y`).

Each strongly connected component (Tarjan) of more than one file is printed,
with one circle through it and the line of each step. Exit status 1 if any.
`--exclude` drops the files under a directory (or one file) from the graph.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rust_source import strip  # noqa: E402

# ---------------------------------------------------------------- lexing

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|\S")


def tokens(text):
    """(token, line) pairs of the stripped text."""
    result = []
    for lineno, line in enumerate(strip(text).split("\n"), 1):
        for m in TOKEN.finditer(line):
            result.append((m.group(0), lineno))
    return result


# ---------------------------------------------------------------- parsing


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names from the crate root
        self.file = file  # the file that holds it
        self.children = set()  # names of child modules (file or inline)
        self.bindings = {}  # name -> (absolute path | None for extern, is_reexport)
        self.globs = []  # absolute paths of `use x::*`
        self.refs = []  # (absolute path, line, is_glob) used by this module


def parse_use_tree(toks, i):
    """Parses a use tree from toks[i]; returns ([(segments, alias, glob)], index after `;`)."""
    results = []

    def tree(i, prefix):
        segs = list(prefix)
        while i < len(toks):
            t = toks[i][0]
            if t == "{":
                i += 1
                while toks[i][0] != "}":
                    i = tree(i, segs)
                    if toks[i][0] == ",":
                        i += 1
                return i + 1
            if t == "*":
                results.append((segs, None, True))
                return i + 1
            if t == "::":
                if not segs:
                    segs.append("::")
                i += 1
                continue
            if re.match(r"[A-Za-z_]", t):
                segs.append(t)
                i += 1
                if i < len(toks) and toks[i][0] == "as":
                    results.append((segs, toks[i + 1][0], False))
                    return i + 2
                continue
            # `,` `}` `;`: the end of this branch
            results.append((segs, None, False))
            return i
        return i

    i = tree(i, [])
    while i < len(toks) and toks[i][0] != ";":
        i += 1
    return results, i + 1


def parse_file(file, mod_path, modules, files_of):
    """Parses one file holding module `mod_path`; returns the file modules it declares."""
    with open(file, encoding="utf-8") as f:
        toks = tokens(f.read())
    declared = []  # (child path, line) of `mod x;`
    top = modules[mod_path] = Module(mod_path, file)
    stack = [(top, 0)]  # (module, brace depth where it ends)
    depth = 0
    i = 0
    n = len(toks)
    raw_uses = []  # (module, tree, line, is_reexport)
    raw_paths = []  # (module, segments, line)
    while i < n:
        t, line = toks[i]
        cur = stack[-1][0]
        if t == "{":
            depth += 1
            i += 1
            continue
        if t == "}":
            if len(stack) > 1 and depth == stack[-1][1]:
                stack.pop()
            depth -= 1
            i += 1
            continue
        if t == "mod" and i + 2 < n and re.match(r"[A-Za-z_]", toks[i + 1][0]) and (i == 0 or toks[i - 1][0] != "::"):
            name, nxt = toks[i + 1][0], toks[i + 2][0]
            if nxt == ";":
                cur.children.add(name)
                declared.append((cur.path + (name,), os.path.dirname(file), file, cur is top))
                i += 3
                continue
            if nxt == "{":
                cur.children.add(name)
                sub = Module(cur.path + (name,), file)
                modules[sub.path] = sub
                depth += 1
                stack.append((sub, depth))
                i += 3
                continue
        if t == "use" and (i == 0 or toks[i - 1][0] in (";", "{", "}", "]", ")", "pub", "crate")):
            # a visibility before `use`: pub, pub(crate), pub(super), pub(in path)
            j, vis = i - 1, False
            if j >= 0 and toks[j][0] == ")":
                while j >= 0 and toks[j][0] != "(":
                    j -= 1
                j -= 1
            if j >= 0 and toks[j][0] == "pub":
                vis = True
            trees, i = parse_use_tree(toks, i + 1)
            for tr in trees:
                raw_uses.append((cur, tr, line, vis))
            continue
        if re.match(r"[A-Za-z_]", t) and i + 1 < n and toks[i + 1][0] == "::" and (i == 0 or toks[i - 1][0] not in ("::", "$")):
            segs = [t]
            j = i + 1
            while j + 1 < n and toks[j][0] == "::" and re.match(r"[A-Za-z_]", toks[j + 1][0]):
                segs.append(toks[j + 1][0])
                j += 2
            raw_paths.append((cur, segs, line))
            i = j
            continue
        i += 1
    return declared, raw_uses, raw_paths


def absolute(mod, segs, modules):
    """The absolute path of `segs` as written in module `mod`, or None if extern."""
    if not segs:
        return None
    first = segs[0]
    if first == "::":
        return None
    if first == "crate":
        return tuple(segs[1:])
    base = mod.path
    k = 0
    if first == "self":
        k = 1
    while k < len(segs) and segs[k] == "super":
        base = base[:-1]
        k += 1
    if k:
        return base + tuple(segs[k:])
    if first in mod.children:
        return mod.path + tuple(segs)
    if first in mod.bindings:
        target = mod.bindings[first][0]
        if target is None:
            return None
        return target + tuple(segs[1:])
    return None


def resolve(path, modules, seen=None):
    """The module that defines the item at absolute `path` (through re-exports)."""
    seen = seen or set()
    if path in seen:
        return None
    seen.add(path)
    k = len(path)
    while k > 0 and path[:k] not in modules:
        k -= 1
    mod = modules.get(path[:k])
    if mod is None:
        return None
    rest = path[k:]
    if not rest:
        return mod
    name = rest[0]
    if name in mod.bindings:
        target = mod.bindings[name][0]
        if target is None:
            return None  # an extern item imported here
        return resolve(target + rest[1:], modules, seen) or mod
    return mod


# ---------------------------------------------------------------- the graph


def crate_roots(root):
    roots = [os.path.join(root, f) for f in ("lib.rs", "main.rs")]
    bindir = os.path.join(root, "bin")
    if os.path.isdir(bindir):
        roots += [os.path.join(bindir, f) for f in sorted(os.listdir(bindir)) if f.endswith(".rs")]
    return [r for r in roots if os.path.isfile(r)]


def excluded(file, excludes):
    f = os.path.normpath(file)
    return any(f == e or f.startswith(e + os.sep) for e in excludes)


def child_file(parent_file, is_crate_root_or_modrs, name):
    d = os.path.dirname(parent_file)
    base = os.path.basename(parent_file)
    if not is_crate_root_or_modrs:
        d = os.path.join(d, base[:-3])
    for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
        if os.path.isfile(cand):
            return cand
    return None


def build(root_file, excludes, edges, lines):
    modules = {}
    uses, paths = [], []
    todo = [((), root_file, True)]
    while todo:
        mod_path, file, modrs = todo.pop()
        declared, u, p = parse_file(file, mod_path, modules, None)
        uses += u
        paths += p
        for child_path, _, decl_file, at_top in declared:
            holder = modules[child_path[:-1]]
            if not at_top:  # `mod x;` inside an inline module: not in this tree layout
                continue
            cf = child_file(decl_file, modrs, child_path[-1])
            if cf and not excluded(cf, excludes):
                base = os.path.basename(cf)
                todo.append((child_path, cf, base == "mod.rs"))
            holder.children.add(child_path[-1])
    # bindings first (two passes: a binding may rely on another one)
    for _ in range(2):
        for mod, (segs, alias, glob), line, vis in uses:
            target = absolute(mod, segs, modules)
            if glob:
                if target is not None and target not in mod.globs:
                    mod.globs.append(target)
                continue
            if not segs or segs == ["self"]:
                continue
            name = alias or (segs[-1] if segs[-1] != "self" else segs[-2])
            if segs[-1] == "self" and target is not None:
                target = target[:-1]
            if name == "_":
                continue
            mod.bindings[name] = (target, vis)
    for mod, (segs, alias, glob), line, vis in uses:
        target = absolute(mod, segs, modules)
        if target is None or vis:
            continue  # extern, or a re-export (forwards a name, no edge)
        if segs and segs[-1] == "self":
            target = target[:-1]
        add_edge(mod, target, line, modules, edges, lines, excludes)
    for mod, segs, line in paths:
        if segs[0] not in ("crate", "super", "self") and segs[0] not in mod.children:
            continue
        target = absolute(mod, segs, modules)
        if target is not None:
            add_edge(mod, target, line, modules, edges, lines, excludes)
    return modules


def add_edge(mod, target, line, modules, edges, lines, excludes):
    dest = resolve(target, modules)
    if dest is None:
        return
    a, b = mod.file, dest.file
    if a == b or excluded(a, excludes) or excluded(b, excludes):
        return
    edges.setdefault(a, set()).add(b)
    edges.setdefault(b, set())
    lines.setdefault((a, b), line)


def tarjan(edges):
    index, low, on, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(edges.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                sccs.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sccs


def a_cycle(comp, edges):
    """One circle through the component's first file (shortest, by BFS)."""
    inside = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w not in inside:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def main(argv):
    roots, excludes = [], []
    args = iter(argv)
    for a in args:
        if a == "--exclude":
            excludes.append(os.path.normpath(next(args)))
        elif a.startswith("--exclude="):
            excludes.append(os.path.normpath(a.split("=", 1)[1]))
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            roots.append(a)
    roots = roots or ["src"]
    edges, lines = {}, {}
    nfiles = 0
    for root in roots:
        for rf in crate_roots(root):
            if excluded(rf, excludes):
                continue
            mods = build(rf, excludes, edges, lines)
            nfiles += len({m.file for m in mods.values()})
    cycles = [c for c in tarjan(edges) if len(c) > 1]
    for comp in cycles:
        print("circle among %d files: %s" % (len(comp), " ".join(comp)))
        cyc = a_cycle(comp, edges)
        for a, b in zip(cyc, cyc[1:]):
            print("  %s:%d -> %s" % (a, lines[(a, b)], b))
    if excludes:
        print("(excluded: %s)" % " ".join(excludes))
    if cycles:
        print("%d import circle(s) in %d files" % (len(cycles), nfiles))
        return 1
    print("no import circles in %d files" % nfiles)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
