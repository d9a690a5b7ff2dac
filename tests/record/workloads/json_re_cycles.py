"""json_re_cycles.py: the json/re/cycles program of issue 5, kept for measuring graph-mode
fidelity (docs/recorder.md): 20,000 dicts through json, a regular expression over the text, and
3,000 pairs of Node instances left as cycles for the collector."""
import json, re

data = [{"id": i, "name": "item%d" % i, "tags": ["x", str(i % 10)]} for i in range(20000)]
text = json.dumps(data)
back = json.loads(text)
found = re.findall(r"item(\d+)", text)


class Node:
    def __init__(self, other=None):
        self.other = other
        self.payload = {"n": 1}


for i in range(3000):
    a = Node()
    b = Node(a)
    a.other = b
del a, b
print(len(back), len(found))
