# objects.py: an object-heavy Python program for graph-mode recording: instances of classes with
# dict attributes, shared references (many objects pointing at a few), lists of tuples, a cache
# dict, and a doubly linked list (every node referenced by its neighbours). Usage: objects.py [N]
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


class Record:
    def __init__(self, key, kind, tags):
        self.key = key
        self.kind = kind        # one of a few shared kind objects: their counts grow large
        self.tags = tags
        self.extra = {"k": key}


class Link:
    __slots__ = ("prev", "next", "value")

    def __init__(self, value):
        self.prev = self.next = None
        self.value = value


kinds = [Record("kind%d" % i, None, []) for i in range(5)]
records = [Record(i, kinds[i % 5], [(i, "a"), (i, "b")]) for i in range(n)]
cache = {r.key: r for r in records if r.key % 3 == 0}
head = prev = Link(0)
for i in range(1, n):
    cur = Link(i)
    cur.prev, prev.next = prev, cur
    prev = cur
del records, cache, head, prev, cur
