"""The few lines that run in the child between fork and the agent's own command.

Agents must not outlive the controller: a controller killed with SIGKILL gets no chance
to stop them, and orphans would keep serving stale versions on ports nobody tracks. Linux
offers `PR_SET_PDEATHSIG`, which must be armed inside the child. Python's `preexec_fn`
could do that but is unsafe in a threaded program (the controller runs threads), so the
child runs this tiny script instead: it arms the signal, then `exec`s the real command,
which keeps the pid, so callers still see and signal the agent itself.

PDEATHSIG fires when the *thread* that forked the child exits, not the process. The
supervisor forks from the asyncio event loop's thread, which lives as long as the
controller, so the two lifetimes match; do not spawn through it from short-lived threads.
Only the agent's own process is armed: what it forks is found and ended through its
`containment.ProcessTree` on an orderly stop, but survives a SIGKILLed controller (where
agent cgroups exist, the next controller's start sweeps them).

Where the supervisor made a cgroup for the agent, the launcher joins it before `exec`, so
everything the agent ever starts is born inside it: no fork can race the move.

The launcher also reports an `exec` failure (missing or non-executable command) on a pipe
whose write end closes on a successful `exec`: an empty read means the command is
running, anything else is the error. That is how the supervisor tells "cannot run this at
all" (fail at once) from "ran and exited 127" (restart like any crash).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from controller.targets.local.containment import CGROUP_ENV

# The launcher removes these variables (and CGROUP_ENV) before exec, so agents never see them.
STATUS_FD_ENV = "SHIPYARD_LAUNCH_STATUS_FD"
PARENT_PID_ENV = "SHIPYARD_LAUNCH_PARENT_PID"

# Runs under `python -I -S`: no site, no user paths and no PYTHON* variables from the
# agent's environment can change what these lines do (or slow down every start).
LAUNCHER = f"""\
import os, sys
argv = sys.argv[1:]
status_fd = os.environ.pop({STATUS_FD_ENV!r}, "")
parent = os.environ.pop({PARENT_PID_ENV!r}, "")
cgroup_procs = os.environ.pop({CGROUP_ENV!r}, "")
if cgroup_procs:
    try:
        with open(cgroup_procs, "w") as procs:
            procs.write(str(os.getpid()))
    except OSError:
        pass  # the supervisor notices and finds the agent's processes through /proc
if sys.platform.startswith("linux"):
    try:
        import ctypes
        armed = ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0) == 0
    except Exception:
        armed = False
    # The parent may have died before prctl ran; then the signal never comes.
    if armed and parent and os.getppid() != int(parent):
        os.kill(os.getpid(), 9)
if status_fd:
    os.set_inheritable(int(status_fd), False)
try:
    if not argv:
        raise OSError(2, "empty command")
    os.execvp(argv[0], argv)
except OSError as exc:
    name = argv[0] if argv else ""
    message = "cannot run %r: %s" % (name, exc.strerror or exc)
    sys.stderr.write("shipyard launcher: " + message + "\\n")
    sys.stderr.flush()
    if status_fd:
        os.write(int(status_fd), message.encode("utf-8", "replace"))
    os._exit(127)
"""


def launcher_argv(command: Sequence[str]) -> list[str]:
    """The argv that runs `command` through the launcher (same pid once it has exec'd)."""
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, *command]
