# graph_mix.py: graph-mode workload for 'heapreplay validate': free-list churn (tuples, lists,
# dicts reused at the same address), json and re, cycles of instances left to the collector,
# a class defined and dropped, an explicit full collection (which clears the free lists).
import gc, json, re
data = [{"id": i, "name": "item%d" % i, "tags": ["a", "b", str(i)]} for i in range(3000)]
s = json.dumps(data)
back = json.loads(s)
words = re.findall(r"item\d+", s)
class Node:
    def __init__(self):
        self.other = None
for i in range(1500):
    a, b = Node(), Node()
    a.other = b
    b.other = a
for i in range(200):                      # tuples and lists through the free lists
    t = tuple(range(i % 7 + 1)); l = [t, [i]]; d = {"k": l}
    del t, l, d
def make_class():
    class Tmp:
        def m(self):
            return self
    return Tmp
for i in range(5):
    make_class()
gc.collect()
print(len(back), len(words))
