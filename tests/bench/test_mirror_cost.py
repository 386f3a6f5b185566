"""bench/mirror_cost_bench.py's accounting: a process tree's CPU time is counted once per process, children included
(summing every thread's ``/proc/TID/stat`` would count a multi-threaded process once per thread)."""

from __future__ import annotations

import os
import subprocess
import sys

from mirror_cost_bench import cpu_ms, process_tree

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
