-- Records one attempt, if the caller still holds the job's lease.
-- KEYS: case, inflight, dead, attempts.
-- ARGV[5..]: id, lease token, outcome ('delivered', 'retry', 'dead'), next
-- attempt (ms, for a retry), error, the attempt log entry (JSON), what the
-- attempt says of the endpoint ('up', 'down', 'unknown'), paused until (ms,
-- 0: no pause), CIRCUIT_FAILURES, CIRCUIT_COOLDOWN (ms), longest cooldown
-- (ms), the endpoint of the case's callback URL.
-- Returns 0: the lease had passed on, nothing changed; 1: recorded;
-- 2: recorded, and the endpoint's breaker opened; 3: ... closed.
local id, outcome, error = ARGV[5], ARGV[7], ARGV[9]
local current = redis.call('HMGET', KEYS[1], 'lease', 'attempts', 'endpoint')
if current[1] ~= ARGV[6] then return 0 end
local attempts = (tonumber(current[2]) or 0) + 1
if redis.call('RPUSH', KEYS[4], ARGV[10]) > 100 then redis.call('LTRIM', KEYS[4], -100, -1) end
redis.call('ZREM', KEYS[2], id)
local e = current[3]
if outcome == 'delivered' then
  redis.call('HDEL', KEYS[1], 'lease', 'nextAttemptAt')
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'DELIVERED', 'deliveredAt', ARGV[1])
elseif outcome == 'retry' then
  redis.call('HDEL', KEYS[1], 'lease')
  redis.call('ZADD', due_key(e or ARGV[16]), ARGV[8], id)
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'SCHEDULED', 'nextAttemptAt', ARGV[8],
    'lastError', error)
else
  redis.call('HDEL', KEYS[1], 'lease', 'nextAttemptAt')
  redis.call('ZADD', KEYS[3], ARGV[1], id)
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'DEAD', 'lastError', error)
end
if not e then
  -- A case stored without its endpoint (never, once migrated): no slot was
  -- counted for it, so none is freed.
  redis.call('HSET', KEYS[1], 'endpoint', ARGV[16])
  refresh(ARGV[16], false)
  return 1
end

-- The endpoint: a slot frees, a pause asked for with Retry-After begins, and
-- the breaker counts failures in a row. A failed probe reopens it for twice
-- as long (up to the longest cooldown); a success closes it.
local ep = endpoint_key(e)
if redis.call('HINCRBY', ep, 'inFlight', -1) < 0 then redis.call('HSET', ep, 'inFlight', 0) end
local paused_until = tonumber(ARGV[12])
if paused_until > num(redis.call('HGET', ep, 'pausedUntil'), 0) then
  redis.call('HSET', ep, 'pausedUntil', paused_until)
end
local state = redis.call('HMGET', ep, 'breaker', 'failures', 'cooldown')
local breaker = state[1] or 'closed'
local threshold, base, longest = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local result = 1
if error ~= '' then redis.call('HSET', ep, 'lastError', error, 'lastErrorAt', ARGV[1]) end
if ARGV[11] == 'up' then
  if breaker ~= 'closed' then
    redis.call('HDEL', ep, 'breaker', 'openUntil', 'cooldown')
    result = 3
  end
  redis.call('HSET', ep, 'failures', 0)
elseif ARGV[11] == 'down' then
  local failures = num(state[2], 0) + 1
  redis.call('HSET', ep, 'failures', failures)
  local cooldown
  if breaker == 'probing' then
    cooldown = math.min(num(state[3], base) * 2, longest)
  elseif breaker == 'closed' and failures >= threshold then
    cooldown = base
  end
  if cooldown then
    redis.call('HSET', ep, 'breaker', 'open', 'cooldown', cooldown, 'openUntil', now + cooldown)
    result = 2
  end
elseif breaker == 'probing' then
  -- The probe told nothing (a pause was asked for, or nothing was sent): the
  -- next job probes in its place.
  redis.call('HSET', ep, 'breaker', 'open', 'openUntil', now)
end
refresh(e, false)
return result
