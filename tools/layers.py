#!/usr/bin/env python3
"""Checks the library's folder layering (make check-layers; make test runs it).

Each library folder has a rank; a file may include headers from its own
folder and from folders of a lower rank only. Folders of equal rank (io/,
sync/) may not include each other. Also fails on a library file over 800
lines. Prints the folder-level include graph."""
import os
import re
import sys

# Lowest first: the order of the layers in README.md's design notes.
RANK = {"runtime": 0, "io": 1, "sync": 1, "procpool": 2, "observe": 3, "lifecycle": 4}
MAX_LINES = 800
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def main(root):
    bad = []
    edges = {}
    for folder in RANK:
        for dirpath, _, names in os.walk(os.path.join(root, folder)):
            for name in sorted(names):
                if not name.endswith((".c", ".h", ".S")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                lines = open(path, errors="replace").read().splitlines()
                if len(lines) > MAX_LINES:
                    bad.append(f"{rel}: {len(lines)} lines (limit {MAX_LINES})")
                for n, line in enumerate(lines, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = m.group(1).split("/")[0]
                    if target not in RANK or target == folder:
                        continue
                    edges.setdefault(folder, set()).add(target)
                    if RANK[target] >= RANK[folder]:
                        bad.append(f"{rel}:{n}: {folder}/ includes {m.group(1)} "
                                   f"from a folder not below it")
    graph = "; ".join(f"{a} -> {', '.join(sorted(b))}" for a, b in sorted(edges.items()))
    print(f"layers: {graph}")
    for b in bad:
        print(f"layers: {b}")
    print(f"layers: {'FAIL' if bad else 'ok'} ({len(bad)} problems)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
