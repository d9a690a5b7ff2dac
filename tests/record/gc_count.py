# gc_count.py: generation-0 count movement of CPython vs the trace's GC flags, region by region.
import gc, sys
import _heapreplay

class Plain:
    def __init__(self): self.x = 1
class Slotted:
    __slots__ = ("a", "b")
    def __init__(self): self.a = self.b = None
def gen():
    yield 1
def closure(v):
    return lambda: v

def work(k):
    keep = []
    for i in range(k):
        t = (i, str(i), [i])
        d = {"a": i, "b": [t]}
        s = {i, i + 1}
        f = frozenset((i, -i))
        o, p = Plain(), Slotted()
        g = gen(); next(g)
        c = closure(i)
        m = o.__init__
        try:
            raise ValueError(i)
        except ValueError as e:
            err = e
        if i % 7 == 0:
            keep.append((d, s, f, o, p, c, m, err))
    return keep

gc.disable()
junk = work(3000)          # raise the count well above 0 so no decrement is clamped
results = []
for r in range(5):
    c0 = gc.get_count()[0]
    _heapreplay.phase("region-begin")
    kept = work(1000 + 500 * r)
    del kept
    _heapreplay.phase("region-end")
    c1 = gc.get_count()[0]
    results.append(c1 - c0)
with open(sys.argv[1], "w") as f:
    f.write(" ".join(map(str, results)) + "\n")
gc.enable()
# Now with collections: many automatic gen-0 and some gen-1 collections.
x = work(20000)
del x
