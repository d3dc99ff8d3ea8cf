-- Sends a dead or delivered case again, now, with a fresh retry schedule
-- (`retryBase`); the webhook-id stays, so the receiver sees a replay.
-- KEYS: case, inflight, dead. ARGV[5..]: id, the endpoint of its callback.
local id, e = ARGV[5], ARGV[6]
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('ZSCORE', KEYS[2], id) then return 'in_flight' end
local job = redis.call('HMGET', KEYS[1], 'status', 'event', 'tenant')
if job[1] == 'PENDING_REVIEW' and not job[2] then return 'undecided' end
redis.call('ZREM', KEYS[3], id)
if own(job[3]) then redis.call('ZREM', tenant_key(job[3], 'dead'), id) end
keep(id)
redis.call('ZADD', due_key(e), now, id)
local attempts = redis.call('HGET', KEYS[1], 'attempts') or '0'
redis.call('HSET', KEYS[1], 'endpoint', e, 'delivery', 'SCHEDULED', 'nextAttemptAt', now, 'retryBase', attempts)
redis.call('ZADD', tag .. ':endpoints', now, e)
tenant_uses(job[3], e)
refresh(e, false)
return 'scheduled'
