-- Moves jobs of the layout before per-endpoint queues (one `{p}:due` for
-- every job) into their endpoints' queues. Idempotent: a job already moved,
-- or gone, is left alone.
-- KEYS: the old due set, inflight. ARGV[5..]: (id, endpoint) pairs; the
-- endpoint comes from the case's callback URL (the caller parses it).
local touched = {}
for i = 5, #ARGV, 2 do
  local id, e = ARGV[i], ARGV[i + 1]
  local key = case_key(id)
  if redis.call('EXISTS', key) == 1 and not redis.call('HGET', key, 'endpoint') then
    redis.call('HSET', key, 'endpoint', e)
    redis.call('ZADD', tag .. ':endpoints', now, e)
    if redis.call('ZSCORE', KEYS[2], id) then
      -- In flight under the old layout: counted, so its finish frees the slot.
      redis.call('HINCRBY', endpoint_key(e), 'inFlight', 1)
    end
    touched[e] = true
  end
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due then
    redis.call('ZREM', KEYS[1], id)
    if redis.call('EXISTS', key) == 1 then redis.call('ZADD', due_key(e), due, id) end
  end
end
for e in pairs(touched) do refresh(e, false) end
return 1
