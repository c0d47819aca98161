#!/usr/bin/env python3
"""Fails on an include cycle or an upward include (DESIGN.md, core/README.md).

A module is a .h with its .cc (core/sock/socket.h + socket.cc). The layers,
lowest first, may include only themselves and the layers before them:

  bpf  <  policy  <  core/sock < core/domain < core/psock < core/maps < core/tx
               <  core/rx < core/readiness < core/bpfsys < core/control  <  shim

tools/ talk to a running shim through the control protocol: they may include
policy/ and core/control/protocol.h, nothing else of core/ or shim/.

Usage: check_includes.py SOURCE_ROOT. Prints every violation and every cycle;
exit status 1 if there is one, 0 otherwise.
"""
import os
import re
import sys

CORE_LAYERS = ["sock", "domain", "psock", "maps", "tx", "rx", "readiness", "bpfsys", "control"]
TOOLS_MAY_INCLUDE = {"core/control/protocol"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SCANNED = ("policy", "bpf", "core", "shim", "tools")


def rank(module):
    """The layer of a module as a number (higher may include lower), or None."""
    top = module.split("/")[0]
    if top == "bpf":
        return 0
    if top == "policy":  # its bytecode programs run in bpf/'s interpreter
        return 1
    if top == "core":
        parts = module.split("/")
        if len(parts) < 3 or parts[1] not in CORE_LAYERS:
            return None  # a file directly in core/ belongs to no layer
        return 2 + CORE_LAYERS.index(parts[1])
    if top == "shim":
        return 2 + len(CORE_LAYERS)
    return None


def modules(root):
    """{module: set of included modules} for every file under the scanned folders."""
    graph = {}
    for top in SCANNED:
        for folder, _, names in os.walk(os.path.join(root, top)):
            for name in names:
                stem, ext = os.path.splitext(name)
                if ext not in (".h", ".cc", ".c"):
                    continue
                path = os.path.join(folder, name)
                module = os.path.relpath(os.path.join(folder, stem), root)
                with open(path, encoding="utf-8") as f:
                    included = INCLUDE.findall(f.read())
                edges = graph.setdefault(module, set())
                for inc in included:
                    target = os.path.splitext(inc)[0]
                    if target != module and target.split("/")[0] in SCANNED:
                        edges.add(target)
    return graph


def violations(graph):
    out = []
    for module, edges in sorted(graph.items()):
        top = module.split("/")[0]
        for target in sorted(edges):
            if top == "tools":
                if target.split("/")[0] in ("core", "shim") and target not in TOOLS_MAY_INCLUDE:
                    out.append(f"{module} includes {target}: tools/ reach core only through "
                               "core/control/protocol.h")
                continue
            mine, theirs = rank(module), rank(target)
            if mine is None:
                out.append(f"{module} is in no layer (core/ files go in a layer folder)")
                break
            if theirs is None:
                out.append(f"{module} includes {target}, which is in no layer")
            elif theirs > mine:
                out.append(f"{module} includes {target}: an upward include")
    return out


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    graph = modules(root)
    if not graph:
        print(f"check_includes: no sources under {root}", file=sys.stderr)
        return 2
    bad = violations(graph)
    for line in bad:
        print(line)
    loops = cycles(graph)
    for component in loops:
        print(f"include cycle of {len(component)} modules: {' '.join(component)}")
    print(f"{len(graph)} modules, {len(bad)} layer violations, {len(loops)} cycles")
    return 1 if bad or loops else 0


if __name__ == "__main__":
    sys.exit(main())
