"""The server's stop-signal handler must survive a second signal during the first."""

from __future__ import annotations

import threading

from cheeseboard.server.runner import _Server


def test_second_stop_signal_while_first_holds_the_lock_does_not_deadlock() -> None:
    """Re-entering the handler while the event's lock is held returns instead of blocking."""
    server = _Server.__new__(_Server)  # only the handler's state is needed
    server.interrupt_signal = False
    server.main_loop_interrupt = threading.Event()
    server.signal_handler_interrupt()  # the first signal
    assert server.main_loop_interrupt.is_set()

    finished = threading.Event()

    def second_signal_inside_first_handler() -> None:
        # Event.set() holds this (non-reentrant) lock; a signal handler running on the same
        # thread at that moment must not try to take it again.
        with server.main_loop_interrupt._cond:
            server.signal_handler_interrupt()
        finished.set()

    thread = threading.Thread(target=second_signal_inside_first_handler, daemon=True)
    thread.start()
    assert finished.wait(timeout=2), "handler deadlocked on a repeated signal"
