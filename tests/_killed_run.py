"""Helper of test_resume_kill.py: run ``minidistil ARGS...`` and SIGKILL itself at a chosen step.

    python tests/_killed_run.py K minidistil-args...

The process kills itself with a real ``kill -9`` (``os.kill(os.getpid(), SIGKILL)``) when the
optimizer is about to make its step K + 1: the metrics lines of steps 1..K are on disk, the last
checkpoint is the one before K, and nothing gets a chance to clean up. The hook lives here, in the
test, so that the library carries no kill switch.
"""
import os
import signal
import sys

from minidistil.train import optim


def main():
    kill_after = int(sys.argv[1])
    step = optim.AdamW.step
    done = [0]

    def step_or_die(self, grads, lr=None):
        if done[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        done[0] += 1
        return step(self, grads, lr)

    optim.AdamW.step = step_or_die
    from minidistil.cli import main as cli_main
    return cli_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
