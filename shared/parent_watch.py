"""A child process that ends once its parent has gone (the rebuild's workers, sci's
calibration worker): a parent killed with SIGKILL leaves no orphan folding or calibrating."""

from __future__ import annotations

import os
import threading
import time

PARENT_CHECK_S = 1.0


def exit_with_parent() -> None:
    """In the child process: a thread that ends the process once its parent has gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
