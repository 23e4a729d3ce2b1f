#!/usr/bin/python3
"""Checks the layering of ferry's modules in src/.

    /usr/bin/python3 scripts/check-layers.py [--src DIR]
    /usr/bin/python3 scripts/check-layers.py --self-test

A module is the basename of a .c/.h pair in src/ (a lone .h is a module
too). Reading every `#include "X.h"` of src/*.c and src/*.h, it reports,
one line per violation, and exits 1 when:

  (a) a module includes the header of a module in a higher layer;
  (b) a module (or a quoted header it includes) is not assigned to any
      layer, so that a new module has to be placed before it builds up
      dependencies nobody chose;
  (c) modules include each other in a cycle (edge A -> B when A.c or A.h
      includes B.h, A != B), with the cycle's path;
  (d) a .c file other than upstream.c calls connect(): one path to a
      member, so that retries, timeouts and accounting cannot be skipped.

System headers (<...>) and generated headers (autoconfig.h) are ignored.
Exits 0 when the tree is clean, 2 on a usage error. Debian's
/usr/bin/python3, stdlib only.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

# The layers, bottom to top; a module may include headers of its own layer
# or of a lower one. docs/architecture.md ("Layers") states the same table:
# change both together. Modules listed here that do not exist yet are fine.
LAYERS = [
    ("base", ["log", "buf", "net", "list", "config", "strbuf", "histogram",
              "plane", "worker"]),
    ("balancing", ["pool", "balance", "balance_rr", "balance_weighted",
                   "balance_leastconn", "balance_hash"]),
    ("dns", ["resolver", "dns_cache", "dns"]),
    ("health", ["health"]),
    ("backend", ["backend"]),
    ("upstream", ["upstream"]),
    ("proxies", ["listener", "frontend", "proxy", "conn", "proxy_tcp",
                 "proxy_http", "http_conn", "tls", "http_parser"]),
    ("top", ["runtime", "stats", "stats_server", "main"]),
]

# Headers made by the build (configure), not modules of src/.
GENERATED = {"autoconfig.h"}

# The only file that may call connect(2) (rule d).
CONNECT_OWNER = "upstream.c"

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
CONNECT = re.compile(r"\bconnect\s*\(")


def layer_of():
    """{module: (rank, layer name)}."""
    out = {}
    for rank, (name, modules) in enumerate(LAYERS):
        for m in modules:
            out[m] = (rank, name)
    return out


def strip_c(text, strings):
    """text with comments (and, if strings, the contents of string and
    character literals) replaced by spaces; newlines are kept so that line
    numbers stay right. Good enough for src/, not a full C lexer (no
    trigraphs; a line continuation inside // comment is not followed)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == "/" and nxt == "/":
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            lit = text[i:j]
            if strings:
                lit = c + re.sub(r"[^\n]", " ", lit[1:-1]) + lit[-1]
            out.append(lit)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_at(text, pos):
    return text.count("\n", 0, pos) + 1


def scan(src):
    """Files of src: ({module: [file, ...]}, [(file, line, header)],
    [(file, line)] of connect calls)."""
    modules = {}
    includes = []
    connects = []
    for fname in sorted(os.listdir(src)):
        base, ext = os.path.splitext(fname)
        if ext not in (".c", ".h") or \
                not os.path.isfile(os.path.join(src, fname)):
            continue
        modules.setdefault(base, []).append(fname)
        with open(os.path.join(src, fname), encoding="utf-8",
                  errors="replace") as f:
            text = f.read()
        code = strip_c(text, strings=False)
        for m in INCLUDE.finditer(code):
            includes.append((fname, line_at(code, m.start()), m.group(1)))
        if ext == ".c" and fname != CONNECT_OWNER:
            bare = strip_c(text, strings=True)
            for m in CONNECT.finditer(bare):
                connects.append((fname, line_at(bare, m.start())))
    return modules, includes, connects


def cycles(edges):
    """Cycles of the graph {a: {b: where}}: for every strongly connected
    component, the shortest cycle through each of its modules, without
    repeats (rotations of one cycle count once). Bounded by the number of
    modules, unlike listing every elementary cycle."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def strong(v):  # Tarjan; src/ has a few dozen modules, recursion is fine
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)

    found = []
    seen = set()
    for comp in comps:
        if len(comp) < 2:
            continue
        inside = set(comp)
        for start in comp:
            # Breadth-first from start back to start: the shortest cycle.
            prev = {start: None}
            queue = [start]
            path = None
            while queue and path is None:
                nq = []
                for v in queue:
                    for w in sorted(edges.get(v, {})):
                        if w not in inside:
                            continue
                        if w == start:
                            path = [v]
                            while prev[path[-1]] is not None:
                                path.append(prev[path[-1]])
                            path.reverse()
                            break
                        if w not in prev:
                            prev[w] = v
                            nq.append(w)
                    if path is not None:
                        break
                queue = nq
            if path is None:
                continue
            low_i = path.index(min(path))
            key = tuple(path[low_i:] + path[:low_i])
            if key not in seen:
                seen.add(key)
                found.append(list(key))
    return found


def check(src):
    """Violations of the tree at src, as (file, line, message), sorted."""
    layers = layer_of()
    modules, includes, connects = scan(src)
    out = []

    for mod, files in sorted(modules.items()):
        if mod not in layers:
            out.append((files[0], 1,
                        "module %s is not assigned to any layer (add it to "
                        "LAYERS in scripts/check-layers.py and to "
                        "docs/architecture.md)" % mod))

    edges = {}
    for fname, line, header in includes:
        if header in GENERATED:
            continue
        frm = os.path.splitext(fname)[0]
        to = os.path.splitext(os.path.basename(header))[0]
        if not header.endswith(".h") or \
                (to not in modules and to not in layers):
            out.append((fname, line, "includes %s, which is neither a "
                        "module in src/ nor a generated header" % header))
            continue
        if to == frm:
            continue
        edges.setdefault(frm, {}).setdefault(to, (fname, line))
        if frm not in layers:
            continue  # reported above as unassigned
        if to not in layers:
            out.append((fname, line, "includes %s, whose module %s is not "
                        "assigned to any layer" % (header, to)))
            continue
        (fr, fl), (tr, tl) = layers[frm], layers[to]
        if tr > fr:
            out.append((fname, line, "includes %s (layer %s) from layer %s"
                        % (header, tl, fl)))

    for cyc in cycles(edges):
        hops = []
        for a, b in zip(cyc, cyc[1:] + cyc[:1]):
            f, l = edges[a][b]
            hops.append("%s (src/%s:%d)" % (b, f, l))
        f, l = edges[cyc[0]][cyc[1]]
        out.append((f, l, "include cycle: %s -> %s"
                    % (cyc[0], " -> ".join(hops))))

    for fname, line in connects:
        out.append((fname, line, "calls connect() outside %s (one path to "
                    "a member)" % CONNECT_OWNER))

    out.sort(key=lambda v: (v[0], v[1], v[2]))
    return out


def run(src):
    if not os.path.isdir(src):
        print("check-layers: no directory %s" % src, file=sys.stderr)
        return 2
    found = check(src)
    for fname, line, msg in found:
        print("src/%s:%d: %s" % (fname, line, msg))
    if found:
        print("check-layers: %d violation%s" % (
            len(found), "" if len(found) == 1 else "s"), file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------
# Self-test: fake trees in a temp dir, each breaking one rule, checked
# through the command line as the build runs it, so that a check that no
# longer fires fails here instead of passing silently.

CLEAN = {
    "log.h": '#include "config.h"\n',
    "log.c": '#include "autoconfig.h"\n#include <stdio.h>\n'
             '#include "log.h"\n',
    "config.h": "",
    "config.c": '#include "config.h"\n',
    "pool.h": '#include "config.h"\n',
    "pool.c": '#include "pool.h"\n#include "log.h"\n',
    "upstream.h": '#include "pool.h"\n',
    "upstream.c": '#include "upstream.h"\n#include <sys/socket.h>\n'
                  "int up(int fd) { return connect(fd, 0, 0); }\n",
    # Mentions of connect that are not calls (comments, strings) and calls
    # of other functions whose names end in connect.
    "health.c": '#include "pool.h"\n'
                "/* health used to connect( itself;\n   connect (fd) */\n"
                "// connect(fd)\n"
                'static const char *m = "connect(";\n'
                "int h(int fd) { return upstream_connect(fd) + tcp_connect"
                " (fd) + m[0]; }\n",
    "list.h": "",
    "dns.h": "",  # a module that exists only as a header
}

CASES = [
    ("clean tree", {}, []),
    ("upward include", {"log.c": '#include "log.h"\n#include "dns.h"\n'},
     ["src/log.c:2: includes dns.h (layer dns) from layer base"]),
    ("unassigned module", {"widget.c": '#include "log.h"\n'},
     ["src/widget.c:1: module widget is not assigned to any layer"]),
    ("unknown header", {"pool.c": '#include "pool.h"\n#include "gizmo.h"\n'},
     ["src/pool.c:2: includes gizmo.h, which is neither a module"]),
    ("include cycle", {"list.h": '#include "log.h"\n',
                       "log.c": '#include "log.h"\n\n#include "list.h"\n'},
     ["src/list.h:1: include cycle: list -> log (src/list.h:1) -> "
      "list (src/log.c:3)"]),
    ("connect outside upstream.c",
     {"pool.c": '#include "pool.h"\n\nint p(int fd)\n'
                "{ return connect (fd, 0, 0); }\n"},
     ["src/pool.c:4: calls connect() outside upstream.c"]),
]


def self_test():
    failures = 0
    with tempfile.TemporaryDirectory(prefix="check-layers.") as tmp:
        for i, (name, change, expect) in enumerate(CASES):
            src = os.path.join(tmp, "t%d" % i, "src")
            os.makedirs(src)
            files = dict(CLEAN)
            files.update(change)
            for fname, text in files.items():
                with open(os.path.join(src, fname), "w") as f:
                    f.write(text)
            p = subprocess.run([sys.executable, os.path.abspath(__file__),
                                "--src", src], capture_output=True,
                               text=True, timeout=60)
            lines = p.stdout.splitlines()
            ok = p.returncode == (1 if expect else 0) and \
                len(lines) == len(expect) and \
                all(l.startswith(e) for l, e in zip(lines, expect))
            print("self-test %-28s %s" % (name, "ok" if ok else "FAILED"))
            if not ok:
                failures += 1
                print("  expected exit %d and lines starting with %r\n"
                      "  got exit %d:\n%s%s" % (
                          1 if expect else 0, expect, p.returncode,
                          p.stdout, p.stderr), file=sys.stderr)
    return 1 if failures else 0


def main(argv):
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=os.path.join(top, "src"),
                    help="source directory (default: src/ of this tree)")
    ap.add_argument("--self-test", action="store_true",
                    help="check that every rule fires on fake trees and "
                         "that a clean tree passes")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    return run(args.src)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
