# graph.py: objects, containers, cycles freed by the collector, deaths by reference counting.
import gc
class Node:
    def __init__(self): self.kids = []
def tree(depth):
    n = Node()
    if depth:
        n.kids = [tree(depth - 1) for _ in range(3)]
    return n
for r in range(20):
    t = tree(4)
    a, b = Node(), Node()
    a.kids.append(b); b.kids.append(a)     # a cycle
    del a, b
    del t
gc.collect()
keep = [tree(3) for _ in range(10)]
print("done", len(keep))
