# wrcb_threads.py: another thread frees weak references while a collection runs a weak-reference
# callback. CPython counts in a collection's `collected` a reachable weak reference freed right
# after the collection ran its callback (handle_weakrefs, on the collecting thread), and the
# recorder marks each such death (PHASE gc.wrcb). A callback is Python code: other threads run
# while it waits. Here the main thread holds five weak references whose callbacks the
# collection runs first; they outlive their callbacks (CPython moves them on, uncounted), and the
# main thread lets go of them while a sixth callback waits, so they die inside the collection,
# cleared, after their callbacks ran, but on another thread. Before the recorder looked at the
# thread it marked them too (stdlib test_weakref: one object too many in 25-39 of ~2,600
# collections, KeyedRefs freed by the main thread while another thread's gc.collect() ran
# callbacks).
import gc
import threading
import weakref


class Obj:
    pass


def cb_fast(wr):
    pass


go, in_cb, done, finished = (threading.Event() for _ in range(4))
holder = set()
held = []
stop = False


def cb_wait(wr):
    holder.discard(wr)  # wr dies when handle_weakrefs lets go of it: CPython counts it
    in_cb.set()
    done.wait()  # lets the main thread run, inside the collection


def collector():
    while True:
        go.wait()
        go.clear()
        if stop:
            return
        gc.collect()
        finished.set()


def garbage():
    """A self-cycle (garbage once dropped)."""
    o = Obj()
    o.self = o
    return o


gc.disable()  # the only collections are the explicit ones
t = threading.Thread(target=collector, daemon=True)
t.start()
for r in range(30):
    gs = [garbage() for _ in range(5)]
    held.extend(weakref.ref(g, cb_fast) for g in gs)
    w = garbage()
    holder.add(weakref.ref(w, cb_wait))
    gs.append(w)
    del gs, w
    in_cb.clear(), done.clear(), finished.clear()
    go.set()
    in_cb.wait()  # the collector thread is inside cb_wait, inside its collection
    held.clear()  # weak references whose callbacks already ran die here, on this thread
    done.set()
    finished.wait()
stop = True
go.set()
t.join()
print("done", gc.get_stats()[2]["collections"])
