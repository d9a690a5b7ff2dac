# resurrect.py: collections whose finalizers bring garbage back to life. CPython 3.11 runs the
# garbage's __del__ (finalize_garbage), then looks for what became reachable again
# (handle_resurrected_objects) and counts in `collected` only what is still garbage; the rest
# moves on, alive, and is collected (without its __del__ running again) once dropped. No replay
# runs finalizers: the recorder marks each object brought back (PHASE gc.fin), and validate takes
# the marks off the replay's garbage. Each round: a cycle whose __del__ puts itself into a
# global list; a cycle whose __del__ saves another member of the same garbage (chained); a
# cycle that is garbage outright; then the saved ones are dropped and collected. Some collections
# bring back all of their garbage (CPython counts 0), some part of it.
import gc

saved = []


class Node:
    def __init__(self):
        self.me = self


class Selfish:
    def __init__(self):
        self.me = self
        self.payload = [Node() for _ in range(3)]

    def __del__(self):
        saved.append(self)  # back to life, with its payload


class Chained:
    def __init__(self, other):
        self.other = other
        other.back = self

    def __del__(self):
        saved.append(self.other)  # saves its partner (and, through it, itself)


for r in range(40):
    Selfish()
    Chained(Node())
    for _ in range(r % 4):
        Node()
    gc.collect()  # all three come back, the plain cycles die
    saved.clear()  # dropped: garbage again, whose __del__ already ran
    gc.collect()
    for _ in range(300):  # automatic collections, some with finalizers inside
        Selfish() if _ % 50 == 0 else Node()
    saved.clear()
print("done", gc.get_stats()[2]["collections"])
