# A class instance's GC link read as a type (recorder, graph mode). Instances of a class with a
# managed dict have a 32-byte pre-header; 16 bytes into such a block is the GC link, whose
# "previous" word points 16 bytes into the previous instance's block. The recorder must not
# take that for a type object, whatever bytes the blocks around it last held. Here they last
# held bytes objects of 31 bytes whose data repeat a word that reads as type flags (a type
# subclass, GC, no managed dict), so the old check accepted such a link as a type and placed
# the next instance 16 bytes off, where no traversal found it.
import gc, sys

PAT = (b"\x00\x40\x00\x80\x00\x00\x00\x00" * 4)[:31]  # 0x80004000 in every 8-byte word

class Node:
    def __init__(self):
        self.other = None

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
for r in range(rounds):
    junk = [bytes(bytearray(PAT)) for _ in range(4000)]  # fill 64-byte blocks, then free them
    del junk
    for i in range(1500):
        a, b = Node(), Node()
        a.other = b
        b.other = a
del a, b
gc.collect()
