"""stale_block.py: collections that start inside the allocation of a dict whose pymalloc block
last held an instance of another class. CPython links a GC object (and may collect there) before
it initialises it, and pymalloc does not clear a block, so at that point the dict's block still
holds the dead instance's refcount 0 and type, 32 bytes in (the instance's pre-header is 32
bytes, a dict's 16). Each dict then becomes cycle garbage with a Node."""
import gc


class Dead:  # 56 bytes with its pre-header: the same pymalloc size class as a dict (64)
    pass


class Node:
    pass


for r in range(10):
    gc.disable()
    keep = [[] for _ in range(800)]  # generation 0's count passes the threshold (700)
    drain = [{} for _ in range(100)]  # the dict free list is empty: the next dict is allocated
    dead = [Dead() for _ in range(3)]
    del dead  # the last of these blocks is the next one of its size class pymalloc hands out
    gc.enable()
    d = {}  # a collection starts inside this dict's allocation
    n = Node()
    n.d = d
    d["n"] = n
    del n, d, keep, drain
gc.collect()
print("done")
