# fin_garbage.py: collections that run finalizers which free other garbage. Each round leaves, in
# cycles the collector finds:
#   - a suspended generator whose frame alone holds a list, a dict, a tuple and an instance
#     (close() clears the frame);
#   - an instance whose __del__ empties a list of instances and a dict of lists it alone holds,
#     and allocates a list and a dict;
#   - a class with two bases, dying with its instances.
# Collections run by themselves (generations 0, 1 and 2) and by gc.collect(). record_test.sh uses
# it to show that recording in graph mode does not change what the program's collections find
# (a recorder object once did: docs/recorder.md, the finalizer sentinel).
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
