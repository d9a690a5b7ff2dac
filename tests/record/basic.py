# basic.py: a little of everything: cycles, large and zero-size blocks, realloc growth, threads.
import gc, sys, threading
import _heapreplay

class Node:
    def __init__(self, name):
        self.name = name
        self.peer = None

def cycles(n):
    for i in range(n):
        a, b = Node("a%d" % i), Node("b%d" % i)
        a.peer, b.peer = b, a          # a cycle only the collector can free

def growth():
    s = []
    for i in range(20000):
        s.append(i * 1.5)              # the item array grows by realloc
    b = bytearray()
    for i in range(3000):
        b += b"x" * 7                  # realloc growth past 512 bytes (raw fallback)
    return len(s) + len(b)

def sizes():
    big = [bytes(1 << 20) for _ in range(3)]   # large: raw fallback from OBJ
    zero = [bytearray() for _ in range(100)]   # zero-size buffers
    return len(big) + len(zero)

def worker(k):
    d = {}
    for i in range(3000):
        d[i] = [i, str(i)]
    return len(d)

cycles(3000)
growth()
sizes()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in ts: t.start()
for t in ts: t.join()
gc.collect()
n = 0
n = sys.getallocatedblocks()
_heapreplay.phase("blocks")
print("allocated_blocks", n)
