-- Forgets what has expired: finished cases past CASE_RETENTION (their hash,
-- attempt log and request id, and their places in the listings and the dead
-- set), and endpoints idle for as long (nothing due, nothing in flight, no
-- rate of their own).
-- KEYS: expiring, cases, dead, endpoints, ready.
-- ARGV[5..]: the most of each to forget, CASE_RETENTION (ms).
-- Returns {cases forgotten, endpoints forgotten}.
local max, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max)
for _, id in ipairs(ids) do
  local key = job_key(id)
  local case = redis.call('HMGET', key, 'delivery', 'id')
  -- A case that went back to its queue meanwhile (a redelivery) is kept;
  -- redeliver took it off this list already, so this is only a safeguard.
  if case[1] == false or case[1] == 'DELIVERED' or case[1] == 'DEAD' or case[1] == 'NO_CALLBACK' then
    if case[2] and redis.call('GET', request_key(case[2])) == id then
      redis.call('DEL', request_key(case[2]))
    end
    redis.call('DEL', key, tag .. ':attempts:' .. id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  end
end
each_chunk(ids, 'ZREM', KEYS[1])

local idle = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - retention, 'LIMIT', 0, max)
local gone = 0
for _, e in ipairs(idle) do
  local ep = redis.call('HMGET', endpoint_key(e), 'inFlight', 'rate')
  if redis.call('EXISTS', due_key(e)) == 0 and num(ep[1], 0) == 0 and not ep[2] then
    redis.call('DEL', endpoint_key(e))
    redis.call('ZREM', KEYS[4], e)
    redis.call('ZREM', KEYS[5], e)
    gone = gone + 1
  end
end
return {#ids, gone}
