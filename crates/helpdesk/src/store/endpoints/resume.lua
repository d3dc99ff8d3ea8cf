-- Lifts an endpoint's pause (`Retry-After`) and closes its breaker, so its
-- due jobs go at once (the operator's `POST /endpoints/{e}/resume`).
-- KEYS: the endpoint's hash. ARGV[5..]: endpoint.
-- Returns 1, or 0 if this partition does not know the endpoint.
local e = ARGV[5]
if redis.call('EXISTS', KEYS[1]) == 0 and not redis.call('ZSCORE', tag .. ':endpoints', e) then return 0 end
redis.call('HDEL', KEYS[1], 'pausedUntil', 'openUntil', 'cooldown')
redis.call('HSET', KEYS[1], 'breaker', 'closed', 'failures', 0)
refresh(e, false)
return 1
