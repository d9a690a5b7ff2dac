# retention.py: Evan Jones's arena scenario in real Python: many small objects are built and
# dropped at once, then the program goes on with a small working set. Under Python 2.4's
# allocator the arenas of the dropped objects stay mapped forever; from 2.5 on they are returned.
# Usage: retention.py [N] (default 1,000,000 floats).
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
big = [float(i) for i in range(n)]   # n float objects (24 bytes each, pymalloc's 24/32-byte class)
del big                              # all of them die at once
work = []
for rnd in range(40):                # a small working set afterwards
    work = [str(i) for i in range(2000)]
    work += [(i, i) for i in range(500)]
del work
