"""bench/mirror_cost_bench.py's accounting: a process tree's CPU time is counted once per process, children included
(summing every thread's ``/proc/TID/stat`` would count a multi-threaded process once per thread); run-queue wait is
summed over every thread (``/proc/PID/schedstat`` is the main thread's alone)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mirror_cost_bench import cpu_ms, process_tree, run_wait_ms

# a parent with four idle threads that starts a child burning about 0.4 s of CPU, then both sleep
TREE = r"""
import subprocess, sys, threading, time
for _ in range(4):
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
child = subprocess.Popen([sys.executable, "-c",
    "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\nprint('burnt', flush=True)\ntime.sleep(30)"],
    stdout=sys.stdout)
child.wait()
"""


def test_a_trees_cpu_counts_its_child_once_and_each_process_once() -> None:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "burnt"
        tree = process_tree(proc.pid)
        assert tree[0] == proc.pid and len(tree) == 2  # the parent and its one child, not the parent's threads
        child = tree[1]
        burnt = cpu_ms([child])
        assert 350 <= burnt <= 2000  # the child's 0.4 s, in ms (start-up included), once
        total = cpu_ms(tree)
        # the parent adds only its own start-up (often under one 10 ms tick), never the child's >= 350 ms again
        assert burnt <= total < burnt + 300
        assert cpu_ms([child, 2**22 + 12345]) == burnt  # a process that is gone counts 0
    finally:
        for pid in process_tree(proc.pid)[::-1]:
            os.kill(pid, 9)
        proc.wait(10)


# pinned to one CPU, burns for 0.6 s of wall time once told to go (in a second thread when asked), then sleeps
BURNER = r"""
import os, sys, threading, time
os.sched_setaffinity(0, {int(sys.argv[1])})
def burn():
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        pass
sys.stdin.readline()
if sys.argv[2] == "thread":  # the thread stays (sleeping): a thread that ended takes its counters with it
    burnt = threading.Event()
    threading.Thread(target=lambda: (burn(), burnt.set(), time.sleep(30)), daemon=True).start()
    burnt.wait()
else:
    burn()
print("done", flush=True)
time.sleep(30)
"""


def main_thread_wait_ms(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e6


def test_run_queue_wait_is_summed_over_every_thread_of_a_process() -> None:
    cpu = min(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", BURNER, str(cpu), how], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for how in ("thread", "main")]
    try:
        for p in procs:  # both burn at once on the same CPU: each waits while the other runs (about 0.3 s)
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "done"
        threaded, plain = (p.pid for p in procs)
        assert run_wait_ms([plain]) >= 150
        # the waiting was done by the second thread; the main thread only slept in wait()
        assert run_wait_ms([threaded]) >= 150
        assert main_thread_wait_ms(threaded) < run_wait_ms([threaded]) / 2
        # each process counted once (ms from ns: compared with a float tolerance)
        assert run_wait_ms([threaded, plain]) == pytest.approx(run_wait_ms([threaded]) + run_wait_ms([plain]), abs=1.0)
        assert run_wait_ms([2**22 + 12345]) == 0  # a process that is gone counts 0
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
