#!/usr/bin/env python3
# record_paired.py: paired, interleaved cost of recording (a benchmark, not a test).
#
# On a machine whose speed changes from moment to moment, comparing commands measured at
# different moments (hyperfine runs all repetitions of one command before the next) compares
# the moments. Here each iteration runs the plain program and then every recorded variant once,
# in an order that rotates, and divides each run's CPU time (user + sys of the child, from
# wait4) and wall time by the plain run of the same iteration; the medians and interquartile
# ranges of those ratios are printed, with the load average before and after.
#
# Usage: benchmarks/record_paired.py [-v] [-c CPUS] [-n ITER] [-r ROUNDS | -w 'SCRIPT ARGS']
#                                    NAME=BUILD_DIR[:MODE[:EXTRA]] ...
#   e.g.  record_paired.py -n 15 before=/tmp/base:alloc after=build:alloc after-graph=build:graph
#         record_paired.py -n 7 -w '-m unittest -q test.test_enum' alloc=build graph=build:graph
# -w measures another program (a script or -m module, with its arguments) instead of the
# workload. MODE is alloc (default), graph, native or hookfloor; EXTRA is passed to `record`
# (e.g. --embedded), except its VAR=VALUE words, which go into the recording's environment
# (e.g. HEAPREPLAY_GENERIC_HOOKS=1).
# native runs `record --native -- python3.11 WORKLOAD` under PYTHONMALLOC=malloc (so that the
# interpreter's allocations reach malloc) and is divided by a plain run under PYTHONMALLOC=malloc
# of the same iteration. hookfloor runs the plain program with benchmarks/hook_floor.c preloaded,
# EXTRA naming how much of a recorder's work its hooks do (forward, observe, map, encode,
# traverse): the floors under allocation and graph mode, e.g. fwd=build:hookfloor:forward
# trav=build:hookfloor:traverse.
# -c CPUS confines every run to those CPUs (sched_setaffinity): a VM's vCPUs can differ in speed
# for minutes at a time, and an unpinned run lands on either. -v prints each run's times.
import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3.11"
WORKLOAD = os.path.join(ROOT, "benchmarks", "record_workload.py")


CPUS = None  # -c: the CPUs every run is confined to (None: any)


def run(cmd, env=None):
    # the program's stderr (unittest's report, say) goes to a file, shown if the run fails
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                             env=dict(os.environ, **env) if env else None,
                             preexec_fn=(lambda: os.sched_setaffinity(0, CPUS)) if CPUS else None)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            sys.exit(f"record_paired: {' '.join(cmd)} failed:\n{tail}")
    return ru.ru_utime + ru.ru_stime, wall


def quartiles(xs):
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=15, help="iterations")
    ap.add_argument("-r", type=int, default=300, help="workload rounds")
    ap.add_argument("-w", metavar="'SCRIPT [ARGS]'", help="another program instead of the "
                    "workload (-r is then ignored), e.g. a real program")
    ap.add_argument("-v", action="store_true", help="print every run's CPU and wall time")
    ap.add_argument("-c", metavar="CPUS", help="run everything on these CPUs only (e.g. 1, or "
                    "0,1): a VM's vCPUs may differ in speed from moment to moment")
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args()
    global CPUS
    if a.c:
        CPUS = {int(c) for c in a.c.split(",")}
    if a.n < 2:
        ap.error("-n: at least 2 iterations (quartiles need two ratios)")
    tmp = tempfile.mkdtemp(prefix="hr_paired.", dir=os.environ.get("TMPDIR", "/tmp"))
    prog = shlex.split(a.w) if a.w else [WORKLOAD, str(a.r)]
    if a.w and os.path.exists(prog[0]):
        prog[0] = os.path.abspath(prog[0])
    plain = (["nice", "-n", "-20"] if os.geteuid() == 0 else []) + [PY, *prog]
    nice = plain[:3] if os.geteuid() == 0 else []
    cmds = []
    for v in a.variants:
        name, spec = v.split("=", 1)
        parts = spec.split(":")
        build, mode = parts[0], parts[1] if len(parts) > 1 and parts[1] else "alloc"
        words = parts[2].split() if len(parts) > 2 else []
        env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
        extra = [w for w in words if not ("=" in w and not w.startswith("-"))]
        out = os.path.join(tmp, name + ".hrt")
        hr = os.path.join(build, "cli", "heapreplay")
        if mode == "hookfloor":
            # hooks that do only part of a recorder's work (benchmarks/hook_floor.c): EXTRA is
            # its level (forward, observe, map, encode, traverse, append, offload), nothing is
            # recorded
            lib = os.path.abspath(os.path.join(build, "benchmarks", "libhr_hookfloor.so"))
            if not os.path.exists(lib):
                sys.exit(f"record_paired: {lib} not built (needs libpython3.11-dev)")
            env.update(LD_PRELOAD=lib, HR_HOOK_FLOOR=(extra or ["forward"])[0])
            cmds.append((name, plain, env))
        elif mode == "native":
            env["PYTHONMALLOC"] = "malloc"
            cmds.append((name, nice + [hr, "record", "--native", *extra, "-o", out, "--", PY,
                                       *prog], env))
        else:
            cmds.append((name, nice + [hr, "record", "--mode", mode, *extra, "-o", out, "--",
                                       *prog], env))
    native = {n for n, cmd, _ in cmds if "--native" in cmd}
    ratios = {n: ([], []) for n, _, _ in cmds}
    plains = []
    load0 = os.getloadavg()
    for it in range(a.n):
        k = it % len(cmds)
        order = cmds[k:] + cmds[:k]
        pc, pw = run(plain)
        plains.append((pc, pw))
        if a.v:
            print(f"{it:3d} plain {pc:.3f} {pw:.3f}", flush=True)
        mc, mw = run(plain, {"PYTHONMALLOC": "malloc"}) if native else (pc, pw)
        for name, cmd, env in order:
            c, w = run(cmd, env)
            if a.v:
                print(f"{it:3d} {name} {c:.3f} {w:.3f}", flush=True)
            rc, rw = (mc, mw) if name in native else (pc, pw)
            ratios[name][0].append(c / rc)
            ratios[name][1].append(w / rw)
    load1 = os.getloadavg()
    pcpu = statistics.median(p[0] for p in plains)
    pwall = statistics.median(p[1] for p in plains)
    what = " ".join([os.path.basename(prog[0]), *prog[1:]]) if a.w else f"{a.r} rounds"
    print(f"{a.n} iterations, {what}; plain median {pcpu:.3f} s CPU, {pwall:.3f} s wall; "
          f"load {load0[0]:.2f} -> {load1[0]:.2f}")
    for name, _, _ in cmds:
        c, w = ratios[name]
        cl, cm, ch = quartiles(c)
        wl, wm, wh = quartiles(w)
        print(f"  {name:14s} CPU {cm:5.2f}x [{cl:.2f}-{ch:.2f}]   wall {wm:5.2f}x [{wl:.2f}-{wh:.2f}]")
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
