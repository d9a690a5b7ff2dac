# gc_del_count.py: collections inside which GC objects are allocated before the collection
# frees its garbage. CPython zeroes generation 0's count when a collection starts; allocations
# made inside it (here by a __del__ in the garbage, elsewhere by weak-reference callbacks or by
# other threads while a finalizer has let go of the GIL) raise the count again, and then every
# garbage object delete_garbage frees lowers it (PyObject_GC_Del). A replay reclaims the garbage
# at the collection's start, where the count is 0, so without the trace saying where CPython
# freed each of them (GC_CONTROL `gc del`) its count after the collection is too high by up to
# the garbage's size and its next collection comes early.
import gc

keep = []


class Fin:
    def __del__(self):
        keep.append([[] for _ in range(600)])  # 601 GC objects, inside the collection


class Node:
    pass


def ring(n):
    """n nodes in a cycle, one of them holding a Fin: n + 1 GC objects of garbage once dropped."""
    first = prev = Node()
    for _ in range(n - 1):
        x = Node()
        prev.next = x
        prev = x
    prev.next = first
    first.fin = Fin()


for r in range(20):
    ring(250)
    gc.collect()  # finalizer: +601; delete_garbage: -251. CPython's count is ~350 after it
    work = [[] for _ in range(1500)]  # automatic collections, where CPython's count says
    ring(100 + 10 * r)  # garbage for one of the automatic collections, with its own __del__
    work = [[] for _ in range(1500)]
    del work
    keep.clear()
print("done", len(gc.get_stats()))
