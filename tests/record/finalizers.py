# finalizers.py: collections that run code, and collections that call no callbacks.
# 1. Suspended generators in reference cycles: when a collection finds them, their finalizer
#    (close) raises GeneratorExit inside them, which builds a frame object and a traceback that
#    die at once, inside the collection, by reference counting (not the collector's garbage).
# 2. Pairs of Node objects in cycles that only a module global holds: the script leaves them to
#    interpreter finalisation, whose collections (_PyGC_CollectNoFail) call no gc.callbacks.
import gc

def gen():
    yield 1

class Holder:
    pass

for r in range(3):
    for i in range(50):
        h = Holder()
        h.me = h
        h.g = gen()
        next(h.g)
    del h
    gc.collect()

class Node:
    def __init__(self, other=None):
        self.other = other

pairs = []
for i in range(1000):
    a = Node()
    b = Node(a)
    a.other = b
    pairs.append(a)
del a, b
