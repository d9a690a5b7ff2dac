# mixed.py: a small, ordinary Python program for recording: JSON documents built, serialised,
# parsed and dropped; a class-based object graph with parent links (cycles) rebuilt in rounds;
# regular expressions and string work; the AST of a stdlib module. Usage: mixed.py [SCALE]
# (default 1; the work grows linearly).
import ast
import json
import re
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


class Node:
    def __init__(self, parent, name):
        self.parent = parent          # a reference cycle with parent.children
        self.name = name
        self.children = []
        self.attrs = {"depth": 0 if parent is None else parent.attrs["depth"] + 1}


def tree(depth, width, parent=None, name="root"):
    n = Node(parent, name)
    if depth > 0:
        n.children = [tree(depth - 1, width, n, "%s.%d" % (name, i)) for i in range(width)]
    return n


docs = int(2000 * scale)
for rnd in range(4):
    data = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7), "x"], "score": i * 0.5}
            for i in range(docs)]
    text = json.dumps(data)
    back = json.loads(text)
    del data, back, text

for rnd in range(max(1, int(6 * scale))):
    t = tree(5, 4)                     # 1,365 nodes, freed by the cycle collector
    del t

words = re.compile(r"[A-Za-z_]+")
src = open(ast.__file__).read()
for rnd in range(max(1, int(2 * scale))):
    counts = {}
    for w in words.findall(src):
        counts[w] = counts.get(w, 0) + 1
    module = ast.parse(src)
    names = sorted({node.id for node in ast.walk(module) if isinstance(node, ast.Name)})
    del module, counts, names
