-- Sets (or, with an empty rate, clears) an endpoint's own rate limit.
-- KEYS: the endpoint's hash. ARGV[5..]: endpoint, deliveries per second or ''.
local e, rate = ARGV[5], ARGV[6]
if rate == '' then
  redis.call('HDEL', endpoint_key(e), 'rate', 'tokens', 'tokensAt')
else
  redis.call('HSET', endpoint_key(e), 'rate', rate)
  redis.call('HDEL', endpoint_key(e), 'tokens', 'tokensAt')
end
redis.call('ZADD', tag .. ':endpoints', 'NX', now, e)
refresh(e, false)
return 1
