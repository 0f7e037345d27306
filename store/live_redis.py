"""Live state in Redis, shared by every process of the bridge.

Each operation that reads then writes is one Lua script, so it is atomic
against every other client. A queue is a sorted set whose members all score
0 and so sort as text: "<inverted priority>|<enqueued µs>|<seq>|<call id>",
numbers zero-padded to fixed width, which is exactly the queue order.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as redis
from redis.typing import EncodableT, FieldT

from store.live_state import (
    PRIORITY_MAX,
    AgentLive,
    QueueEntry,
    check_agent_state,
    check_call_id,
    moment,
)

_MICROSECOND = datetime.resolution
_HEAD_LEN = len("0000000000|00000000000000000|")
_SEQ_LEN = 15
_CALL_ID_AT = _HEAD_LEN + _SEQ_LEN + 2  # 1-based, after "<seq>|"

_ENQUEUE = f"""
local old = redis.call('HGET', KEYS[2], ARGV[2])
local seq
if old then
  seq = string.sub(old, {_HEAD_LEN + 1}, {_HEAD_LEN + _SEQ_LEN})
  redis.call('ZREM', KEYS[1], old)
else
  seq = string.format('%0{_SEQ_LEN}d', redis.call('INCR', KEYS[5]))
end
local member = ARGV[3] .. seq .. '|' .. ARGV[2]
redis.call('ZADD', KEYS[1], 0, member)
redis.call('HSET', KEYS[2], ARGV[2], member)
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[1])
return redis.call('ZRANK', KEYS[1], member) + 1
"""

_REMOVE = """
local member = redis.call('HGET', KEYS[2], ARGV[2])
if not member then return 0 end
redis.call('ZREM', KEYS[1], member)
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
return 1
"""

_POSITION = """
local member = redis.call('HGET', KEYS[2], ARGV[1])
if not member then return false end
return redis.call('ZRANK', KEYS[1], member) + 1
"""

_ENTRIES = f"""
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local found = {{}}
for i, member in ipairs(members) do
  found[i] = redis.call('HGET', KEYS[2], string.sub(member, {_CALL_ID_AT}))
end
return found
"""

_RESERVE = """
local agent = redis.call('HMGET', KEYS[1], 'state', 'connected', 'reserved_by')
if agent[1] ~= ARGV[1] or agent[2] ~= '1' or agent[3] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'ringing', 'reserved_by', ARGV[2], 'since', ARGV[3])
redis.call('HDEL', KEYS[1], 'reason')
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'reserved_by') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'since', ARGV[3])
redis.call('HDEL', KEYS[1], 'reserved_by', 'reason')
return 1
"""


class RedisLiveState:
    def __init__(self, client: redis.Redis, *, prefix: str = "hotline:") -> None:
        """`client` must decode responses (decode_responses=True)."""
        self._redis = client
        self._prefix = prefix
        self._enqueue = client.register_script(_ENQUEUE)
        self._remove = client.register_script(_REMOVE)
        self._position = client.register_script(_POSITION)
        self._entries = client.register_script(_ENTRIES)
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "hotline:") -> RedisLiveState:
        return cls(redis.Redis.from_url(url, decode_responses=True), prefix=prefix)

    @property
    def prefix(self) -> str:
        return self._prefix

    # --- queues --------------------------------------------------------------------------------

    async def enqueue(self, queue_id: str, entry: QueueEntry) -> int:
        micros = (entry.enqueued_at - datetime(1970, 1, 1, tzinfo=UTC)) // _MICROSECOND
        head = f"{PRIORITY_MAX - entry.priority:010d}|{micros:017d}|"
        document = json.dumps(
            {
                "call_id": entry.call_id,
                "client_id": entry.client_id,
                "priority": entry.priority,
                "enqueued_at": entry.enqueued_at.isoformat(),
                "data": dict(entry.data),
            }
        )
        keys = [*self._queue_keys(queue_id), self._key("q:seq")]
        return int(await self._enqueue(keys=keys, args=[queue_id, entry.call_id, head, document]))

    async def remove(self, queue_id: str, call_id: str) -> bool:
        return bool(await self._remove(keys=self._queue_keys(queue_id), args=[queue_id, call_id]))

    async def position(self, queue_id: str, call_id: str) -> int | None:
        ordered, members, _, _ = self._queue_keys(queue_id)
        found = await self._position(keys=[ordered, members], args=[call_id])
        return None if found is None else int(found)

    async def entries(self, queue_id: str) -> list[QueueEntry]:
        ordered, _, documents, _ = self._queue_keys(queue_id)
        found = cast(list[str | None], await self._entries(keys=[ordered, documents]))
        return [_queue_entry(json.loads(document)) for document in found if document is not None]

    async def queue_ids(self) -> list[str]:
        members = await _awaited(self._redis.smembers(self._key("queues")))
        return sorted(cast(set[str], members))

    # --- agents --------------------------------------------------------------------------------

    async def set_agent(self, agent: AgentLive) -> None:
        fields: dict[FieldT, EncodableT] = {
            "login": agent.login,
            "state": agent.state,
            "since": agent.since.isoformat(),
            "connected": "1" if agent.connected else "0",
        }
        if agent.reason is not None:
            fields["reason"] = agent.reason
        if agent.reserved_by is not None:
            fields["reserved_by"] = agent.reserved_by
        key = self._agent_key(agent.login)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            pipe.sadd(self._key("agents"), agent.login)
            await pipe.execute()

    async def get_agent(self, login: str) -> AgentLive | None:
        fields = await _awaited(self._redis.hgetall(self._agent_key(login)))
        return _agent(cast(dict[str, str], fields)) if fields else None

    async def agents(self) -> list[AgentLive]:
        logins = sorted(cast(set[str], await _awaited(self._redis.smembers(self._key("agents")))))
        async with self._redis.pipeline(transaction=True) as pipe:
            for login in logins:
                pipe.hgetall(self._agent_key(login))
            found = cast(list[dict[str, str]], await pipe.execute())
        return [_agent(fields) for fields in found if fields]

    async def reserve_agent(
        self, login: str, call_id: str, expect_state: str = "available", *, at: datetime | None = None
    ) -> bool:
        check_call_id(call_id)
        since = moment(at).isoformat()
        reserved = await self._reserve(keys=[self._agent_key(login)], args=[expect_state, call_id, since])
        return bool(reserved)

    async def release_agent(self, login: str, call_id: str, new_state: str, *, at: datetime | None = None) -> bool:
        check_agent_state(new_state)
        since = moment(at).isoformat()
        released = await self._release(keys=[self._agent_key(login)], args=[call_id, new_state, since])
        return bool(released)

    # --- connection ----------------------------------------------------------------------------

    async def ping(self) -> float:
        started = time.perf_counter()
        await _awaited(self._redis.ping())
        return time.perf_counter() - started

    async def close(self) -> None:
        await self._redis.aclose()

    def describe(self) -> str:
        where = self._redis.connection_pool.connection_kwargs
        if "path" in where:
            return f"unix://{where['path']}?db={where.get('db', 0)}"
        return f"redis://{where.get('host', 'localhost')}:{where.get('port', 6379)}/{where.get('db', 0)}"

    def _key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def _agent_key(self, login: str) -> str:
        return self._key(f"agent:{login}")

    def _queue_keys(self, queue_id: str) -> list[str]:
        # Distinct leading segments, so no queue id can make one queue's key another's.
        return [
            self._key(f"q:z:{queue_id}"),
            self._key(f"q:m:{queue_id}"),
            self._key(f"q:e:{queue_id}"),
            self._key("queues"),
        ]


async def _awaited(reply: Any) -> Any:
    # redis-py types its commands as "awaitable or not" for its sync and async clients alike.
    return await reply


def _queue_entry(document: dict[str, Any]) -> QueueEntry:
    return QueueEntry(
        call_id=document["call_id"],
        client_id=document["client_id"],
        priority=document["priority"],
        enqueued_at=datetime.fromisoformat(document["enqueued_at"]),
        data=document["data"],
    )


def _agent(fields: dict[str, str]) -> AgentLive:
    return AgentLive(
        login=fields["login"],
        state=fields["state"],
        since=datetime.fromisoformat(fields["since"]),
        connected=fields["connected"] == "1",
        reason=fields.get("reason"),
        reserved_by=fields.get("reserved_by"),
    )
