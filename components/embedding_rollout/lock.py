"""One rollout per alias at a time: a lease kept in Milvus, beside the collections it guards.

The lock is a row of the collection ``llmw_rollout_locks``, keyed by the alias: its owner
(``host:pid:token``) and when the lease ends. A rollout renews the lease as it works; a lease that
ended, or whose owner is a process of this host that is gone, is taken over, so a crashed run
never holds the lock for longer than the lease (on its own host, not at all). Milvus has no
compare-and-set: after writing its row, a taker reads it back and gives up when another taker's
row replaced it. On Milvus Lite, which admits one process per database file, a second process
can't even open the database.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from components.embedding_rollout.models import RolloutRefusedError

LOCKS = "llmw_rollout_locks"


class RolloutLockedError(RolloutRefusedError):
    """Another rollout of the same alias holds the lock."""


class RolloutLock:
    def __init__(
        self, client: Any, alias: str, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.alias = alias
        self.ttl_s = ttl_s
        self.clock = clock
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._renewed = 0.0

    def acquire(self) -> None:
        """Take the lock, or raise RolloutLockedError naming who holds it until when."""
        self._ensure_collection()
        held = self.holder()
        if held is not None and held["owner"] != self.owner and not self._stale(held):
            until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(held["expires_at"]))
            raise RolloutLockedError(
                f"a rollout of alias {self.alias!r} is in progress (held by {held['owner']} "
                f"until {until}, renewed while it runs); one rollout per alias at a time"
            )
        self._write()
        now_held = self.holder()
        if now_held is None or now_held["owner"] != self.owner:
            raise RolloutLockedError(
                f"another rollout of alias {self.alias!r} took the lock at the same time"
            )

    def renew(self) -> None:
        """Extend the lease (at most every quarter lease, so calling this often is cheap)."""
        if self.clock() - self._renewed >= self.ttl_s / 4:
            self._write()

    def release(self) -> None:
        held = self.holder()
        if held is not None and held["owner"] == self.owner:
            self.client.delete(LOCKS, ids=[self.alias])

    def holder(self) -> dict[str, Any] | None:
        self.client.load_collection(LOCKS)
        rows = self.client.get(LOCKS, ids=[self.alias], output_fields=["owner", "expires_at"])
        return dict(rows[0]) if rows else None

    def _stale(self, held: dict[str, Any]) -> bool:
        if int(held["expires_at"]) < self.clock():
            return True
        host, _, rest = str(held["owner"]).partition(":")
        pid_text = rest.partition(":")[0]
        return host == self.host and pid_text.isdigit() and not _alive(int(pid_text))

    def _write(self) -> None:
        now = self.clock()
        row = {
            "alias": self.alias,
            "owner": self.owner,
            "expires_at": int(now + self.ttl_s),
            "placeholder": [0.0, 1.0],
        }
        self.client.upsert(LOCKS, [row])
        self._renewed = now

    def _ensure_collection(self) -> None:
        if self.client.has_collection(LOCKS):
            return
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("alias", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("owner", DataType.VARCHAR, max_length=512)
        schema.add_field("expires_at", DataType.INT64)
        schema.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector
        index = self.client.prepare_index_params()
        index.add_index("placeholder", index_type="AUTOINDEX", metric_type="L2")
        self.client.create_collection(
            LOCKS, schema=schema, index_params=index, consistency_level="Strong"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
