#!/usr/bin/env python3
"""Fails when the top-level modules of src/ import each other in a cycle.

A module's dependencies are the other top-level modules its files name as `crate::<m>` (in
`use` lines or paths, `crate::{a, b}` groups included), test code (`#[cfg(test)] mod tests`
and what follows it) and comments left out; `lib.rs` and `main.rs` only declare and wire.
Prints each module's dependencies; on a cycle, the strongly connected group and which file
makes each edge. Usage: scripts/module-cycles.py [src-dir]   (exit 1 on a cycle)
"""
import collections
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
tops = set()
for n in os.listdir(root):
    if n.endswith(".rs") and n not in ("lib.rs", "main.rs"):
        tops.add(n[:-3])
    elif os.path.isdir(os.path.join(root, n)):
        tops.add(n)

edges = collections.defaultdict(lambda: collections.defaultdict(set))
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, root)
        top = rel.split(os.sep)[0].removesuffix(".rs")
        if top not in tops:
            continue
        src = open(path, encoding="utf-8").read()
        cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests", src)
        if cut:
            src = src[: cut.start()]
        src = re.sub(r"//[^\n]*", "", src)
        named = re.findall(r"\bcrate::(\w+)", src)
        for group in re.findall(r"\bcrate::\{([^}]*)\}", src):
            named += re.findall(r"(?:^|,)\s*(\w+)", group)
        for t in named:
            if t in tops and t != top:
                edges[top][t].add(rel)

# Tarjan's strongly connected components
index, low, stack, on, groups, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        group = []
        while True:
            w = stack.pop()
            on.discard(w)
            group.append(w)
            if w == v:
                break
        groups.append(group)


for v in sorted(tops):
    if v not in index:
        visit(v)
for v in sorted(tops):
    print(f"{v} -> {', '.join(sorted(edges[v])) or '(nothing)'}")
cycles = [sorted(g) for g in groups if len(g) > 1]
for g in cycles:
    print(f"CYCLE between {', '.join(g)}:")
    for a in g:
        for b in g:
            if b in edges[a]:
                print(f"    {a} -> {b}: {', '.join(sorted(edges[a][b]))}")
print(f"module-cycles: {len(tops)} modules, {len(cycles)} cycle(s)")
sys.exit(1 if cycles else 0)
