# churn.py: ROUNDS rounds of short-lived containers and class instances (a few hundred thousand
# GC objects die per 100 rounds; few survive), then prints the process's peak RSS in KiB. The
# record test runs it at two lengths in graph mode: the recorder's memory must follow the live
# objects, not the ids ever allocated.
import sys


class Item:
    def __init__(self, a, b):
        self.a, self.b = a, b


def churn(rounds):
    keep = []
    for r in range(rounds):
        d = {}
        for i in range(1000):
            d[str(i)] = (i, [i, i + 1], Item(i, r))
        if r % 50 == 0:
            keep.append(d["7"])  # a few long-lived survivors among the dead
    return len(keep)


churn(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
with open("/proc/self/status") as f:
    print(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
