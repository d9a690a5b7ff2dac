# two_bases.py: classes with two bases (str and Enum, int and Enum) made and dropped in cycles:
# one weak reference stands for each in both bases' subclass lists (found with stdlib test_enum)
import enum
import gc

for r in range(200):
    class E(str, enum.Enum):
        A = "a"
        B = "b"

    class F(int, enum.Enum):
        X = 1

    E.A, F.X
    del E, F
    if r % 40 == 39:
        gc.collect()
gc.collect()
