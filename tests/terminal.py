"""Start a command as a terminal does, for the tests that press Ctrl-C.

A runner that starts pytest as a background job of a non-interactive shell (`cmd &` in a script, as
`nohup bash .ci/run &` does) hands it SIGINT ignored, and every child inherits that: Python then keeps
SIGINT ignored and Ctrl-C is not Ctrl-C. A terminal gives the default disposition.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """`preexec_fn` for `subprocess.Popen`: SIGINT back to its default, as in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
