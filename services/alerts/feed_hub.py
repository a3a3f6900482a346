"""One LISTEN connection per API process, fanned out to every live feed (server-sent events).

A feed used to hold a PostgreSQL connection of its own, so one user opening a few hundred feeds
took every connection of the cluster, the worker's and the alert service's included. Now the hub
holds the only listening connection; each feed is an in-memory queue of alert ids. Feeds are
capped per user and per process (429 beyond), a slow feed's queue is bounded (it is closed and the
browser's EventSource reconnects), and the listening connection is re-opened after an outage.
Reading an alert for a feed goes through the API's bounded pool, under the user's row security.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psycopg

from services.alerts.service import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

#: Feeds one user may hold open at once in one process (a few tabs and devices).
MAX_FEEDS_PER_USER = 10
#: Feeds one process serves at once.
MAX_FEEDS_PER_PROCESS = 1000
#: Alert ids waiting for one feed before it is closed as too slow.
QUEUE_LIMIT = 1000


class FeedRefused(Exception):
    """Too many feeds open; `reason` says which cap."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False, slots=True)
class Subscription:
    user_id: str
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT + 1))

    async def batches(self, keepalive: float) -> AsyncIterator[list[str]]:
        """Lists of alert ids as they arrive; an empty list after `keepalive` seconds of silence.

        Ends when the hub closes this subscription (overflow, or the process stopping).
        """
        while True:
            try:
                first = await asyncio.wait_for(self.queue.get(), timeout=keepalive)
            except TimeoutError:
                yield []
                continue
            ids = [first]
            while not self.queue.empty():
                ids.append(self.queue.get_nowait())
            if None in ids:
                return
            yield list(dict.fromkeys(i for i in ids if i is not None))


class FeedHub:
    """The process's listening connection and its subscribers."""

    def __init__(self, dsn: str, *, max_per_user: int = MAX_FEEDS_PER_USER,
                 max_per_process: int = MAX_FEEDS_PER_PROCESS) -> None:
        self._dsn = dsn
        self._max_per_user = max_per_user
        self._max_per_process = max_per_process
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="feed-hub-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for subscription in list(self._subscribers):
            self._close(subscription)

    def subscribe(self, user_id: str) -> Subscription:
        """A new feed for `user_id`; `FeedRefused` over a cap. Pair with `unsubscribe`."""
        if len(self._subscribers) >= self._max_per_process:
            raise FeedRefused(f"this server already serves {self._max_per_process} live feeds; retry later")
        if sum(1 for s in self._subscribers if s.user_id == user_id) >= self._max_per_user:
            raise FeedRefused(f"at most {self._max_per_user} live feeds per user; close another tab first")
        subscription = Subscription(user_id)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def _close(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        with contextlib.suppress(asyncio.QueueFull):
            subscription.queue.put_nowait(None)

    def _publish(self, alert_id: str) -> None:
        for subscription in list(self._subscribers):
            if subscription.queue.qsize() >= QUEUE_LIMIT:
                self._close(subscription)  # too slow: it ends, the client reconnects
            else:
                subscription.queue.put_nowait(alert_id)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True,
                                                                 connect_timeout=5) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    backoff = 0.5
                    async for notify in conn.notifies():
                        self._publish(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database went away: listen again once it is back
                log.warning("live feed listener lost its connection (%s); reconnecting", type(error).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
