#!/usr/bin/env python3
"""Import circles between the top-level modules of crates/mcpauth.

Reads crates/mcpauth/src/**/*.rs, builds the graph of `crate::X` references (in `use crate::X`,
`use crate::{X, …}` and paths such as `crate::X::f()`) from each top-level module (a file
`src/X.rs` or a folder `src/X/`) to the others — a name the crate root re-exports (`crate::McpAuth`)
counts as its module —, and prints every strongly-connected component
of more than one module. Exit status 1 when there is one, 0 when the graph has no circle.

Usage: python3 scripts/module-cycles.py [crate-src-dir]   (default crates/mcpauth/src)
"""

import os
import re
import sys


def strip_comments(text):
    """Source without comments and string literals, so doc links and text do not count."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'r(#*)".*?"\1', '""', text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def top_level_module(src, path):
    rel = os.path.relpath(path, src)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def use_groups(text):
    """The names reached through `crate::{a, b::c, d::{e}}`: the first segment of each item."""
    names = []
    for match in re.finditer(r"\bcrate\s*::\s*\{", text):
        depth, i, start = 1, match.end(), match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[start : i - 1]
        # Only the top level of the group names modules.
        level, item = 0, ""
        for ch in body + ",":
            if ch == "{":
                level += 1
            elif ch == "}":
                level -= 1
            elif ch == "," and level == 0:
                head = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", item)
                if head:
                    names.append(head.group(1))
                item = ""
                continue
            if level == 0:
                item += ch
    return names


def root_reexports(src, modules):
    """Names the crate root re-exports from a module (`pub use accounts::{Accounts, …}` in
    lib.rs), so that `crate::Accounts` counts as a reference to `accounts`."""
    path = os.path.join(src, "lib.rs")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        text = strip_comments(f.read())
    names = {}
    for match in re.finditer(r"\bpub\s+use\s+([A-Za-z_][A-Za-z0-9_]*)\s*::\s*(\{[^;]*\}|[A-Za-z_][A-Za-z0-9_]*)\s*;", text):
        module, items = match.group(1), match.group(2)
        if module not in modules:
            continue
        for item in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", items.strip("{}")):
            if item not in ("self", "as"):
                names[item] = module
    return names


def graph(src):
    modules = set()
    files = []
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                files.append(path)
                module = top_level_module(src, path)
                if module not in ("lib", "main"):
                    modules.add(module)
    edges = {m: set() for m in modules}
    reexports = root_reexports(src, modules)
    for path in files:
        module = top_level_module(src, path)
        if module not in modules:
            continue  # lib.rs is the crate root: it names every module by design
        with open(path, encoding="utf-8") as f:
            text = strip_comments(f.read())
        targets = re.findall(r"\bcrate\s*::\s*([A-Za-z_][A-Za-z0-9_]*)", text)
        targets += use_groups(text)
        for target in targets:
            target = reexports.get(target, target)
            if target in modules and target != module:
                edges[module].add(target)
    return edges


def strongly_connected(edges):
    """Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
    return result


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "crates/mcpauth/src"
    edges = graph(src)
    circles = [c for c in strongly_connected(edges) if len(c) > 1]
    if not circles:
        print(f"no import circle between the {len(edges)} top-level modules of {src}")
        return 0
    for component in sorted(circles, key=len, reverse=True):
        print(f"circle of {len(component)} modules: {', '.join(component)}")
        members = set(component)
        for module in component:
            inside = sorted(edges[module] & members)
            print(f"  {module} -> {', '.join(inside)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
