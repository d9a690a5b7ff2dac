# Weak-reference callbacks that a collection runs (docs/recorder.md, "Weak-reference callbacks a
# collection runs"). When a collection finds garbage that a reachable weak reference with a
# callback points to, CPython calls the callback; a reference the callback lets go of dies right
# there, and CPython counts it among the collection's `collected` although it was never garbage.
# Each round below leaves such referents in cycles for the collector:
#   - _abc: a class registered with a long-lived ABC, checked with isinstance/issubclass (each
#     puts a weak reference with a `_destroy` callback into one of the ABC's sets);
#   - weakref.finalize on an object in a cycle;
#   - WeakValueDictionary values in cycles (KeyedRef, a subclass of weakref.ref);
#   - WeakSet members in cycles;
#   - a weak reference whose callback keeps it (it survives: not counted);
#   - a weak reference that is garbage itself, with its referent (freed by the collector).
import abc
import gc
import weakref


class Base(abc.ABC):
    @abc.abstractmethod
    def f(self): ...


class Node:
    def __init__(self, n):
        self.n = n
        self.me = self


fired = []
kept = []


def keep(ref):
    kept.append(ref)


wvd = weakref.WeakValueDictionary()
wset = weakref.WeakSet()
for r in range(300):
    class V:  # a class is a cycle (its __mro__, its __dict__'s descriptors)
        pass

    Base.register(V)
    isinstance(V(), Base)

    class S(Base):
        def f(self):
            return 1

    issubclass(S, Base)
    isinstance(S(), Base)

    class W:
        pass

    issubclass(W, Base)  # the negative cache
    del V, S, W
    x = Node(r)
    weakref.finalize(x, fired.append, r)
    y = Node(r)
    wvd[r] = y
    z = Node(r)
    wset.add(z)
    k = Node(r)
    ref = weakref.ref(k, keep)  # survives its callback: held by kept as well
    g = Node(r)
    g.ref = weakref.ref(g, fired.append)  # garbage itself: its callback never runs
    del x, y, z, k, ref, g
    if r % 50 == 49:
        gc.collect()
        kept.clear()

gc.collect()
print(len(fired), len(wvd), len(wset), gc.get_stats())
