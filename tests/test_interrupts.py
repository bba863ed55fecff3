"""■ (interrupt) during a first import of matplotlib must not break plotting for the kernel's life.

Found by the re-run test on a busy CI host: lesson 01's first plot cell, interrupted while it
imported matplotlib, left the kernel unable to import it again ("module 'matplotlib' has no
attribute 'get_data_path'"). Each case runs in a fresh interpreter (a real SIGINT, sent to the
main thread at a chosen point of the import, by an import hook), since a broken import cannot be
undone in this one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

#: Python's own SIGINT handler, as a kernel has it while a cell runs: a process started in the
#: background by a shell inherits SIGINT ignored, and Python then leaves it ignored.
PYTHONS_HANDLER = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"

INTERRUPT_MID_IMPORT = PYTHONS_HANDLER + textwrap.dedent("""
    import importlib.abc, os, signal, sys

    class InterruptAt(importlib.abc.MetaPathFinder):
        '''Press ■ (SIGINT to this process) when the import reaches module NAME.'''
        def find_spec(self, name, path, target=None):
            if name == NAME:
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, InterruptAt())
    try:
        import socketlessons.plots
        print("finished without an interrupt")
    except KeyboardInterrupt:
        print("interrupted")
    print("still holding:", signal.getsignal(signal.SIGINT) is not signal.default_int_handler)
    from socketlessons.plots import LivePlot, to_png   # what the learner runs next
    plot = LivePlot("after the interrupt", "x", "y")
    print("plots again:", len(to_png(plot.figure)) > 0)
""")


@pytest.mark.parametrize("name", ["matplotlib.rcsetup", "numpy.matrixlib", "matplotlib.axes._axes"])
def test_an_interrupt_during_the_first_import_of_matplotlib_leaves_it_usable(name):
    done = subprocess.run([sys.executable, "-c", f"NAME = {name!r}\n" + INTERRUPT_MID_IMPORT],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines == ["interrupted", "still holding: False", "plots again: True"], done.stdout + done.stderr[-2000:]


HELD = PYTHONS_HANDLER + textwrap.dedent("""
    import os, signal, threading, time
    from socketlessons._interrupts import held_interrupts

    def press():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs in the main thread, at the next bytecode

    reached = []
    try:
        with held_interrupts():
            with held_interrupts():  # nested: only the outermost raises, at its end
                press()
                reached.append("inner")
            reached.append("outer")
    except KeyboardInterrupt:
        reached.append("raised after")
    print(reached, signal.getsignal(signal.SIGINT) is signal.default_int_handler)

    try:
        with held_interrupts():
            raise ValueError("the block's own error")
    except ValueError as exc:
        print("kept:", exc, signal.getsignal(signal.SIGINT) is signal.default_int_handler)

    seen = []
    def in_a_thread():
        with held_interrupts():
            seen.append(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    t = threading.Thread(target=in_a_thread)
    t.start(); t.join()
    print("thread left it alone:", seen == [True])
""")


def test_held_interrupts_raise_once_the_block_is_done():
    done = subprocess.run([sys.executable, "-c", HELD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["['inner', 'outer', 'raised after'] True",
                                        "kept: the block's own error True",
                                        "thread left it alone: True"], done.stdout + done.stderr
