-- Forgets what has expired: finished cases past CASE_RETENTION (their hash,
-- attempt log and request id, and their places in the listings and the dead
-- sets, the shared ones and their tenant's), and endpoints idle for as long
-- (nothing due, nothing in flight; an operator's rate goes with them).
-- KEYS: expiring, cases, dead, endpoints, ready.
-- ARGV[5..]: the most of each to forget, CASE_RETENTION (ms).
-- Returns {cases forgotten, endpoints forgotten, 1 if a batch was full (call
-- again) else 0}.
local max, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local full = 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max)
if #ids >= max then full = 1 end
for _, id in ipairs(ids) do
  local key = job_key(id)
  local case = redis.call('HMGET', key, 'delivery', 'id', 'tenant')
  -- A case that went back to its queue meanwhile (a redelivery) is kept;
  -- redeliver took it off this list already, so this is only a safeguard.
  if case[1] == false or case[1] == 'DELIVERED' or case[1] == 'DEAD' or case[1] == 'NO_CALLBACK' then
    if case[2] and redis.call('GET', request_key(case[2], case[3])) == id then
      redis.call('DEL', request_key(case[2], case[3]))
    end
    redis.call('DEL', key, tag .. ':attempts:' .. id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  end
end
each_chunk(ids, 'ZREM', KEYS[1])

-- Each tenant's own listings, from its own `expiring` (the case's hash may
-- be gone already, with the tenant it named), and its endpoints idle as long.
for _, t in ipairs(redis.call('SMEMBERS', tag .. ':tenants')) do
  local expiring = tenant_key(t, 'expiring')
  local gone_ids = redis.call('ZRANGEBYSCORE', expiring, '-inf', now, 'LIMIT', 0, max)
  if #gone_ids >= max then full = 1 end
  local finished = {}
  for _, id in ipairs(gone_ids) do
    local state = redis.call('HGET', job_key(id), 'delivery')
    if state == false or state == 'DELIVERED' or state == 'DEAD' or state == 'NO_CALLBACK' then
      table.insert(finished, id)
    end
  end
  each_chunk(finished, 'ZREM', tenant_key(t, 'cases'))
  each_chunk(finished, 'ZREM', tenant_key(t, 'dead'))
  each_chunk(gone_ids, 'ZREM', expiring)
  redis.call('ZREMRANGEBYSCORE', tenant_key(t, 'endpoints'), '-inf', now - retention)
end

-- Endpoints idle for CASE_RETENTION, oldest first. One that still has jobs
-- (due, or in flight) is in use, merely waiting: it moves to now, so the
-- next batch reaches those behind it and every idle one is forgotten in turn.
local idle = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - retention, 'LIMIT', 0, max)
if #idle >= max then full = 1 end
local gone = 0
for _, e in ipairs(idle) do
  local in_flight = redis.call('HGET', endpoint_key(e), 'inFlight')
  if redis.call('EXISTS', due_key(e)) == 0 and num(in_flight, 0) == 0 then
    redis.call('DEL', endpoint_key(e))
    redis.call('ZREM', KEYS[4], e)
    redis.call('ZREM', KEYS[5], e)
    gone = gone + 1
  else
    redis.call('ZADD', KEYS[4], now, e)
  end
end
return {#ids, gone, full}
