-- Records one attempt, if the caller still holds the job's lease.
-- KEYS: case, inflight, dead, attempts.
-- ARGV[5..]: id, lease token, outcome ('delivered', 'retry', 'dead'), how
-- long until the next attempt (ms, for a retry), error, the attempt log
-- entry (JSON), what the attempt says of the endpoint ('up', 'down',
-- 'unknown'), how long to pause the endpoint (ms, 0: no pause),
-- CIRCUIT_FAILURES, CIRCUIT_COOLDOWN (ms), longest cooldown (ms), the
-- endpoint of the case's callback URL, CASE_RETENTION (ms), then more
-- entries of the attempt log (chaos faults), in order after ARGV[10].
-- Returns 0: the lease had passed on, nothing changed; 1: recorded;
-- 2: recorded, and the endpoint's breaker opened; 3: ... closed.
local id, outcome, error = ARGV[5], ARGV[7], ARGV[9]
local current = redis.call('HMGET', KEYS[1], 'lease', 'attempts', 'endpoint', 'subscription', 'tenant')
local tenant = current[5]
if current[1] ~= ARGV[6] then return 0 end
local attempts = (tonumber(current[2]) or 0) + 1
-- An event's subscription counts what became of it (if it still exists).
if current[4] and redis.call('EXISTS', sub_key(current[4])) == 1 then
  local sk = sub_key(current[4])
  if outcome == 'delivered' then
    redis.call('HINCRBY', sk, 'delivered', 1)
  else
    redis.call('HINCRBY', sk, 'failedAttempts', 1)
    if outcome == 'dead' then redis.call('HINCRBY', sk, 'dead', 1) end
  end
  redis.call('HSET', sk, 'lastAttemptAt', now, 'lastError', error)
end
-- The attempt's entries: ARGV[10], then any chaos faults sent around it (ARGV[18..]).
local entries = {ARGV[10]}
for i = 18, #ARGV do entries[#entries + 1] = ARGV[i] end
if redis.call('RPUSH', KEYS[4], unpack(entries)) > 100 then redis.call('LTRIM', KEYS[4], -100, -1) end
-- Chaos faults are tallied for GET /chaos: by fault and the class of the
-- answer, and those answered unlike a correct receiver (they carry an error);
-- in the shared tally (the operator's) and the job's tenant's own.
local tallies = {tag .. ':chaos'}
if own(tenant) then table.insert(tallies, tenant_key(tenant, 'chaos')) end
for _, entry in ipairs(entries) do
  if string.find(entry, '"chaos":', 1, true) then
    local e = cjson.decode(entry)
    local code = tonumber(e.statusCode)
    local class = code and (math.floor(code / 100) .. 'xx') or 'none'
    for _, tally in ipairs(tallies) do
      redis.call('HINCRBY', tally, e.chaos .. ':' .. class, 1)
      if e.error then redis.call('HINCRBY', tally, e.chaos .. ':unexpected', 1) end
    end
  end
end
redis.call('ZREM', KEYS[2], id)
local e = current[3]
-- An empty lease is no lease (a token is never empty), an empty time no time:
-- one HSET instead of HSET and HDEL.
if outcome == 'delivered' then
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'DELIVERED', 'deliveredAt', now,
    'lease', '', 'nextAttemptAt', '')
  expire_later(id, now + tonumber(ARGV[17]))
elseif outcome == 'retry' then
  local next_at = now + tonumber(ARGV[8])
  redis.call('ZADD', due_key(e or ARGV[16]), next_at, id)
  tenant_uses(tenant, e or ARGV[16])
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'SCHEDULED', 'nextAttemptAt', next_at,
    'lastError', error, 'lease', '')
else
  redis.call('ZADD', KEYS[3], now, id)
  if own(tenant) then redis.call('ZADD', tenant_key(tenant, 'dead'), now, id) end
  redis.call('HSET', KEYS[1], 'attempts', attempts, 'delivery', 'DEAD', 'lastError', error,
    'lease', '', 'nextAttemptAt', '')
  expire_later(id, now + tonumber(ARGV[17]))
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
-- as long (up to the longest cooldown); a success closes it. One read, one
-- write, then its place in the line.
local ep = read_endpoint(e)
local pause = tonumber(ARGV[12])
local paused_until = pause > 0 and now + pause or 0
local threshold, base, longest = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local breaker = ep[BREAKER] or 'closed'
local failures = num(ep[FAILURES], 0)
local result = 1
local was_full = num(ep[IN_FLIGHT], 0) >= default_concurrency
ep[IN_FLIGHT] = math.max(num(ep[IN_FLIGHT], 0) - 1, 0)
local fields = {'inFlight', ep[IN_FLIGHT]}
local function set(index, field, value)
  ep[index] = value
  table.insert(fields, field); table.insert(fields, value)
end
if paused_until > num(ep[PAUSED_UNTIL], 0) then set(PAUSED_UNTIL, 'pausedUntil', paused_until) end
if error ~= '' then
  table.insert(fields, 'lastError'); table.insert(fields, error)
  table.insert(fields, 'lastErrorAt'); table.insert(fields, now)
end
if ARGV[11] == 'up' then
  if breaker ~= 'closed' then
    redis.call('HDEL', endpoint_key(e), 'openUntil', 'cooldown')
    ep[OPEN_UNTIL], ep[COOLDOWN] = false, false
    set(BREAKER, 'breaker', 'closed')
    result = 3
  end
  if failures > 0 then set(FAILURES, 'failures', 0) end
elseif ARGV[11] == 'down' then
  set(FAILURES, 'failures', failures + 1)
  local cooldown
  if breaker == 'probing' then
    cooldown = math.min(num(ep[COOLDOWN], base) * 2, longest)
  elseif breaker == 'closed' and failures + 1 >= threshold then
    cooldown = base
  end
  if cooldown then
    set(BREAKER, 'breaker', 'open')
    set(COOLDOWN, 'cooldown', cooldown)
    set(OPEN_UNTIL, 'openUntil', now + cooldown)
    result = 2
  end
elseif breaker == 'probing' then
  -- The probe told nothing (a pause was asked for, or nothing was sent): the
  -- next job probes in its place.
  set(BREAKER, 'breaker', 'open')
  set(OPEN_UNTIL, 'openUntil', now)
end
redis.call('HSET', endpoint_key(e), unpack(fields))
-- Its place in the line changes only if it was out of it for want of a
-- slot, or its job came back (a retry), or a pause or the breaker changed.
if was_full or outcome == 'retry' or #fields > 2 + (error ~= '' and 4 or 0) then
  refresh(e, false, ep)
end
return result
