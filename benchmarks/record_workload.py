# record_workload.py: an allocation-heavy Python program for benchmarks/record.sh.
# Builds and drops dicts of tuples, lists, strings and small objects, the churn of typical code.
import sys

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

def churn(n):
    total = 0
    for r in range(n):
        d = {}
        for i in range(1000):
            d[str(i)] = (i, [i, i + 1], Point(i, r))
        total += sum(len(v[1]) for v in d.values())
        words = " ".join(k for k in d if len(k) > 2).split()
        total += len(words)
    return total

print(churn(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
