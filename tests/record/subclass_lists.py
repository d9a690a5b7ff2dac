# subclass_lists.py: classes that die with their subclasses inside collections. A heap type's
# subclasses are listed in its tp_subclasses dict (address -> weak reference), which no
# tp_traverse reports and which CPython frees when its last entry goes: inside the collection
# that frees the last subclass, which pure reference counting would never do (the classes are
# cycle garbage). The recorder links the dict from one living subclass (moving the link when that
# one dies first), so the refcount replay leaks it with the classes and the generational replay
# frees it with them. Before, validate's cycle-garbage row differed by one dict per dying ABC
# (36 here), and stdlib test_enum's by 619 objects.
import abc
import collections.abc as cabc
import gc


class K:
    pass


def make(i):
    class A(abc.ABC):
        @abc.abstractmethod
        def f(self):
            pass

    class B(A):
        def f(self):
            return i

    class C(A):  # a second subclass: A's list outlives B when B dies first
        def f(self):
            return -i

    class V:
        pass

    A.register(V)
    isinstance(K(), A), issubclass(V, A), isinstance(B(), A), issubclass(int, A)

    class S(cabc.Sequence):
        def __getitem__(self, i):
            raise IndexError

        def __len__(self):
            return 0

    isinstance(S(), cabc.Sized)
    return A, C if i % 3 else None


keep = []
for i in range(400):
    a, c = make(i)
    if c is not None and i % 7 == 0:
        keep.append(c)  # the class lives on, holding its base and the base's list
    if len(keep) > 20:
        keep.pop(0)
print("done", gc.get_stats()[2]["collections"])
