"""The chat's sign-in check, with a brake on password guessing.

Gradio asks a callable `(user, password) -> bool` and gives it nothing about the client,
so the brake is global: after FREE_FAILURES failed sign-ins in a row, every attempt is
refused outright (the password is not even compared) until a wait has passed since the
last failure: 1 s, then 2, 4, ... up to MAX_WAIT_SECONDS. A guesser gets about one try a
minute; the real user, at worst, waits that long after someone else's failures. A success
resets the count.
"""

from __future__ import annotations

import hmac
import sys
import threading
import time
from collections.abc import Callable

FREE_FAILURES = 5
MAX_WAIT_SECONDS = 60.0


class SignInGuard:
    def __init__(
        self,
        user: str,
        password: str,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
    ) -> None:
        self._user, self._password = user.encode(), password.encode()
        self._clock, self._log = clock, log
        self._failures = 0
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def __call__(self, user: str, password: str) -> bool:
        with self._lock:
            now = self._clock()
            if now < self._blocked_until:
                return False
            # Both compared in constant time, so neither half can be guessed from timings.
            right = hmac.compare_digest(str(user).encode(), self._user) & hmac.compare_digest(
                str(password).encode(), self._password
            )
            if right:
                self._failures = 0
                return True
            self._failures += 1
            if self._failures >= FREE_FAILURES:
                wait = min(MAX_WAIT_SECONDS, 2.0 ** (self._failures - FREE_FAILURES))
                self._blocked_until = now + wait
                self._log(f"sign-in: {self._failures} failed attempts in a row; all refused for {wait:g} s")
            return False
