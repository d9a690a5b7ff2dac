"""stdlib_mix.py: a stdlib-heavy workload for recording and validation: parse stdlib sources with
ast, serialise and parse JSON, run regular expressions over the sources, and diff file versions
with difflib. Deterministic; about 1-2 seconds under CPython 3.11."""
import ast, difflib, json, os, re, sys

root = os.path.dirname(os.__file__)
names = sorted(n for n in os.listdir(root) if n.endswith(".py"))[:40]
sources = {}
for n in names:
    with open(os.path.join(root, n), encoding="utf-8") as f:
        sources[n] = f.read()

# ast: parse every source and count node types
counts = {}
for n, src in sources.items():
    for node in ast.walk(ast.parse(src, n)):
        k = type(node).__name__
        counts[k] = counts.get(k, 0) + 1

# json: round-trip a structure built from the counts
doc = {"files": [{"name": n, "lines": src.count("\n"), "defs": src.count("def ")}
                  for n, src in sources.items()], "nodes": counts}
text = json.dumps(doc, indent=1, sort_keys=True)
back = json.loads(text)
assert back == doc

# re: identifiers and string literals
ident = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
words = {}
for src in sources.values():
    for w in ident.findall(src):
        words[w] = words.get(w, 0) + 1
strings = sum(len(re.findall(r"'[^'\n]*'|\"[^\"\n]*\"", s)) for s in sources.values())

# difflib: diff each file against a lightly edited copy
changed = 0
for n, src in list(sources.items())[:15]:
    a = src.splitlines()
    b = [l.replace("self", "this") for l in a]
    changed += sum(1 for l in difflib.unified_diff(a, b, lineterm="") if l.startswith("+"))

print(len(names), sum(counts.values()), len(words), strings, changed)
