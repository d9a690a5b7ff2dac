# gc_settings.py: gc.set_threshold() and gc.enable() right after a GC allocation that passed the
# new threshold under the old settings. CPython decided at that allocation with the old settings
# (no collection); the trace must place GC_CONTROL after its ALLOC, or the replay collects there.
import gc

class Slot:
    __slots__ = ('a',)

def cycles(n):
    for _ in range(n):
        a = []; a.append(a)

# 1. set_threshold: its argument tuple (1, 1, 1) is a new GC object (the 3-tuple free list is
#    emptied first) allocated while threshold 0 turns automatic collection off.
gc.set_threshold(0)
cycles(3000)
hold = [(i, i, i) for i in range(3000)]
gc.set_threshold(1, 1, 1)
cycles(50)
gc.set_threshold(700, 10, 10)
del hold

# 2. enable: the last allocation before gc.enable() is a GC object made while disabled.
def enable_after_alloc():
    gc.disable()
    cycles(3000)
    s = Slot()
    gc.enable()
    cycles(50)
    return s
enable_after_alloc()
cycles(2000)

# 3. set_threshold, then gc.collect() at once: the argument tuple passed the new threshold, yet
#    the collection is the program's (GC_CONTROL collect), not one started by that allocation.
gc.set_threshold(0)
cycles(3000)
hold = [(i, i, i) for i in range(3000)]
gc.set_threshold(1, 1, 1)
gc.collect()
gc.set_threshold(700, 10, 10)
del hold
cycles(2000)
print(gc.get_count())
