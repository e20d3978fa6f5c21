"""Failed-login throttling: slow down password and token guessing, in bounded memory.

A login costs the server one scrypt (~50 ms of a core) and the attacker one frame, so guessing
must be stopped before the hash runs. Two bounds, both kept by the gateway of one replica's net
process (so a client that spreads its guesses over the 2f+1 replicas gets 2f+1 times the
allowance; docs/SECURITY.md):

  per account   After `free_failures` failed logins for one username (or token locator), the
                next attempt is refused without any lookup or hash until a delay has passed
                since the last failure; the delay doubles with each further failure, up to
                `delay_max_s`. A success forgets the account's failures. Unknown usernames are
                tracked like real ones, so throttling reveals nothing about which accounts exist.
  per connection  The gateway closes a connection after `conn_failures_max` failed logins.

The account table is an LRU of at most `accounts_max` entries: flooding it with made-up names
evicts the oldest entries (a throttled account may then get `free_failures` more tries), which
bounds memory at the price of that documented leak. Sans-IO: the caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

FREE_FAILURES = 5
DELAY_FIRST_S = 1.0
DELAY_MAX_S = 60.0
ACCOUNTS_MAX = 4096
CONN_FAILURES_MAX = 5


@dataclass
class _Account:
    failures: int
    last_failure_s: float


class LoginThrottle:
    def __init__(self, *, free_failures: int = FREE_FAILURES, delay_first_s: float = DELAY_FIRST_S,
                 delay_max_s: float = DELAY_MAX_S, accounts_max: int = ACCOUNTS_MAX):
        assert free_failures >= 1 and 0 < delay_first_s <= delay_max_s and accounts_max >= 1
        self.free_failures = free_failures
        self.delay_first_s = delay_first_s
        self.delay_max_s = delay_max_s
        self.accounts_max = accounts_max
        self._accounts: OrderedDict[bytes, _Account] = OrderedDict()

    def wait_s(self, account: bytes, now_s: float) -> float:
        """Seconds before `account` may try again; 0.0 if it may try now."""
        entry = self._accounts.get(account)
        if entry is None or entry.failures < self.free_failures:
            return 0.0
        extra = entry.failures - self.free_failures
        delay = min(self.delay_max_s, self.delay_first_s * (2 ** min(extra, 32)))
        return max(0.0, entry.last_failure_s + delay - now_s)

    def failed(self, account: bytes, now_s: float) -> None:
        entry = self._accounts.pop(account, None)
        if entry is None:
            entry = _Account(0, now_s)
        entry.failures += 1
        entry.last_failure_s = now_s
        self._accounts[account] = entry  # most recent last: the LRU end
        while len(self._accounts) > self.accounts_max:
            self._accounts.popitem(last=False)

    def succeeded(self, account: bytes) -> None:
        self._accounts.pop(account, None)

    def __len__(self) -> int:
        return len(self._accounts)
