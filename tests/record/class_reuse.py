# class_reuse.py: classes created and dropped one after another, so that a new class object
# usually takes the block of the one before (glibc hands back the chunk just freed). A graph
# trace names each instance's type; an instance of K7 must be named K7 even where K7 sits at
# K6's old address. Prints how many classes reused an earlier class's address (the check needs
# at least one, or it proves nothing).
import gc

ROUNDS, PER = 20, 5
seen, reused = set(), 0
for i in range(ROUNDS):
    cls = type(f"K{i}", (), {"__init__": lambda self, v: setattr(self, "v", v)})
    objs = [cls(j) for j in range(PER)]
    reused += id(cls) in seen
    seen.add(id(cls))
    del objs, cls
    gc.collect()  # a class is in a cycle (its __mro__ holds it): only a collection frees it
print(f"reused {reused}")
