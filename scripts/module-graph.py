#!/usr/bin/env python3
"""Print the dependency graph between the crate's top-level modules (an
edge A -> B when a file under src/A uses crate::B), then its cycles.
Usage: scripts/module-graph.py [SRC_DIR]  (exit 1 when there is a cycle)"""
import os, re, sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
mods = set()
for name in os.listdir(src):
    if name in ("lib.rs", "main.rs"):
        continue
    mods.add(name[:-3] if name.endswith(".rs") else name)

edges = {m: set() for m in mods}
use_crate = re.compile(r"crate::(\{[^}]*\}|[a-z_]+)", re.S)
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)
        top = rel.split(os.sep)[0]
        top = top[:-3] if top.endswith(".rs") else top
        if top not in mods:
            continue
        text = open(path, encoding="utf-8").read()
        # Comments (doc links) are not dependencies.
        text = re.sub(r"//[^\n]*", "", text)
        # Test modules may use anything.
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests \{", text)[0]
        if rel.endswith("tests.rs"):
            continue
        for m in use_crate.finditer(text):
            group = m.group(1)
            names = re.findall(r"(?:^|[{,\s])([a-z_]+)(?=::|[,}\s]|$)", group.strip("{}")) if group.startswith("{") else [group]
            for n in names:
                if n in mods and n != top:
                    edges[top].add(n)

for m in sorted(edges):
    print(f"{m} -> {', '.join(sorted(edges[m])) or '(none)'}")

# Cycles: strongly connected components with more than one node.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(edges):
    if v not in index:
        strong(v)
if sccs:
    print("cycles:", "; ".join(" <-> ".join(c) for c in sccs))
    sys.exit(1)
print("cycles: none")
