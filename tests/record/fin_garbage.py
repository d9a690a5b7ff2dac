# Garbage that a collection's own finalizers free (docs/recorder.md, "Garbage freed by the
# collection's finalizers"). CPython 3.11 counts in a collection's `collected` only what is still
# unreachable after the garbage's finalizers ran; an object of the garbage that a finalizer frees
# is not counted, although every collector that runs no finalizers (the replays) finds it. Each
# round leaves, in cycles the collector finds:
#   - a suspended generator whose frame alone holds a list, a dict, a tuple and an instance
#     (close() clears the frame: the list, dict and tuple die into their free lists, unseen by
#     the allocator hooks, the instance is freed);
#   - an instance whose __del__ empties a list of instances and a dict of lists it alone holds,
#     and allocates a list and a dict (which may take a block that died just before);
#   - a class with two bases, dying with its instances (its entry in both bases' subclass lists
#     is one weak reference, shared: CPython never counts it as garbage; the recorder took it for
#     garbage when it had more than one link in).
# Collections run by themselves (generations 0, 1 and 2) and by gc.collect().
import gc


class Node:
    def __init__(self):
        self.me = self


class Holder:
    def __init__(self):
        self.me = self
        self.items = [Node() for _ in range(3)]
        self.table = {"a": [1, 2], "b": [3]}

    def __del__(self):
        self.items.clear()
        self.table.clear()
        scratch = [[], {}]  # allocates while finalizing
        del scratch


def suspended(x):
    lst = [x, Node()]
    dct = {"x": x, "l": [x]}
    tup = (x, [])
    inst = Node()
    inst.back = None
    yield 1
    yield (lst, dct, tup, inst)


class A:
    pass


class B:
    pass


class Keep(A, B):  # A's and B's subclass lists never empty (an emptied one dies: not covered here)
    pass


def make_class(i):
    class C(A, B):
        def __init__(self):
            self.me = self

    return C


kept = []
for r in range(400):
    a = Node()
    it = suspended(Node())
    next(it)
    a.it = it
    h = Holder()
    h.peer = a
    c = make_class(r)
    o = c()
    o.cls = c
    if r % 10 == 0:
        kept.append(Node())  # some survivors, so that older generations fill
    del a, it, h, c, o
    if r % 100 == 99:
        gc.collect(r // 100 % 3)
gc.collect()
print(gc.get_stats())
