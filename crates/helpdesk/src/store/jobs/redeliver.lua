-- Sends a dead or delivered case again, now, with a fresh retry schedule
-- (`retryBase`); the webhook-id stays, so the receiver sees a replay. An
-- ordered subscription's event is queued behind what its subscription has
-- waiting (see `fifo_add`).
-- KEYS: case, inflight, dead. ARGV[5..]: id, the endpoint of its callback.
local id, e = ARGV[5], ARGV[6]
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('ZSCORE', KEYS[2], id) then return 'in_flight' end
local job = redis.call('HMGET', KEYS[1], 'status', 'event', 'tenant', 'ordered', 'subscription')
if job[1] == 'PENDING_REVIEW' and not job[2] then return 'undecided' end
-- An ordered subscription's job still waiting its turn stays in its place.
local ordered = job[4] == '1' and job[5]
if ordered and redis.call('ZSCORE', fifo_key(job[5]), id) then return 'scheduled' end
redis.call('ZREM', KEYS[3], id)
if own(job[3]) then redis.call('ZREM', tenant_key(job[3], 'dead'), id) end
keep(id)
if ordered then
  -- Sent again, it is queued again: behind what its subscription has queued.
  fifo_add(job[5], id, e, now)
else
  redis.call('ZADD', due_key(e), now, id)
end
local attempts = redis.call('HGET', KEYS[1], 'attempts') or '0'
redis.call('HSET', KEYS[1], 'endpoint', e, 'delivery', 'SCHEDULED', 'nextAttemptAt', now, 'retryBase', attempts)
redis.call('ZADD', tag .. ':endpoints', now, e)
tenant_uses(job[3], e)
refresh(e, false)
return 'scheduled'
