-- Records a batch of attempts, each only if its caller still holds the
-- job's lease: one script call for every outcome a worker has waiting, so
-- the fixed cost of a call (the prelude, the clock, the endpoint's state,
-- the listings) is paid once per batch, not once per job.
-- KEYS: inflight, dead.
-- ARGV[5..10]: CIRCUIT_FAILURES, CIRCUIT_COOLDOWN (ms), longest cooldown
-- (ms), CASE_RETENTION (ms), DISABLE_AFTER (ms), DISABLE_AFTER_DEAD. Then,
-- from ARGV[11], each job in turn: id, lease token, outcome ('delivered',
-- 'retry', 'dead', 'gone': dead because the receiver answered 410), how long until the
-- next attempt (ms, for a retry), error, what the attempt says of the
-- endpoint ('up', 'down', 'unknown'), how long to pause the endpoint (ms,
-- 0: no pause), how long the receiver took to answer (ms), the endpoint of
-- the case's callback URL, the number of its attempt log entries, then
-- those entries (JSON: the attempt itself, then the chaos faults sent
-- around it).
-- Returns {results, disabled, queued}: one number per job (0: the lease had
-- passed on, nothing changed; 1: recorded; 2: recorded, and the endpoint's
-- breaker opened; 3: ... closed), the subscriptions this call disabled,
-- five strings each: id, tenant, reason, error, when (unix ms), and the
-- operational events it queued, by type: type, count, ....
local threshold, base, longest = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local retention, disable_after, disable_dead = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
-- An answer within this many ms is quick: it earns the endpoint more slots (see `adapt`).
local QUICK_ANSWER = 1000
local results, finished, later = {}, {}, {}

-- The endpoints of the batch, read once and written once: {ep = fields as
-- they are now, changed = {field = value}, closed, was_full, refresh}.
local endpoints, order = {}, {}
local function endpoint(e)
  local state = endpoints[e]
  if not state then
    local ep = read_endpoint(e)
    state = {ep = ep, changed = {}, was_full = num(ep[IN_FLIGHT], 0) >= limit_of(ep), quick = 0}
    endpoints[e] = state
    table.insert(order, e)
  end
  return state
end

-- Chaos faults are tallied for GET /chaos: by fault and the class of the
-- answer, and those answered unlike a correct receiver (they carry an error);
-- in the shared tally (the operator's) and the job's tenant's own.
local function tally(entries, tenant)
  local tallies = {tag .. ':chaos'}
  if own(tenant) then table.insert(tallies, tenant_key(tenant, 'chaos')) end
  for _, entry in ipairs(entries) do
    if string.find(entry, '"chaos":', 1, true) then
      local e = cjson.decode(entry)
      local code = tonumber(e.statusCode)
      local class = code and (math.floor(code / 100) .. 'xx') or 'none'
      for _, key in ipairs(tallies) do
        redis.call('HINCRBY', key, e.chaos .. ':' .. class, 1)
        if e.error then redis.call('HINCRBY', key, e.chaos .. ':unexpected', 1) end
      end
    end
  end
end

-- The endpoint after one attempt: a slot frees, a pause asked for with
-- Retry-After begins, and the breaker counts failures in a row. A failed
-- probe reopens it for twice as long (up to the longest cooldown); a
-- success closes it. Returns the job's result (1, 2 or 3).
local function attempted(state, outcome, error, health, pause, took)
  local ep, changed = state.ep, state.changed
  local function set(index, field, value)
    ep[index] = value
    changed[field] = value
  end
  local breaker = ep[BREAKER] or 'closed'
  local failures = num(ep[FAILURES], 0)
  local result = 1
  set(IN_FLIGHT, 'inFlight', math.max(num(ep[IN_FLIGHT], 0) - 1, 0))
  -- Its place in the line changes only if it was out of it for want of a
  -- slot, or its job came back (a retry), or a pause or the breaker changed.
  if outcome == 'retry' then state.refresh = true end
  local paused_until = pause > 0 and now + pause or 0
  if paused_until > num(ep[PAUSED_UNTIL], 0) then
    set(PAUSED_UNTIL, 'pausedUntil', paused_until)
    state.refresh = true
  end
  if error ~= '' then
    changed.lastError = error
    changed.lastErrorAt = now
  end
  if health == 'up' and took < QUICK_ANSWER then state.quick = state.quick + 1 end
  -- A failure, or a receiver asking for quiet (Retry-After), is congestion.
  if health == 'down' or pause > 0 then state.failed = true end
  if health == 'up' then
    if breaker ~= 'closed' then
      state.closed = true
      ep[OPEN_UNTIL], ep[COOLDOWN] = false, false
      changed.openUntil, changed.cooldown = nil, nil
      set(BREAKER, 'breaker', 'closed')
      state.refresh = true
      result = 3
    end
    if failures > 0 then set(FAILURES, 'failures', 0) end
  elseif health == 'down' then
    set(FAILURES, 'failures', failures + 1)
    local cooldown
    if breaker == 'probing' then
      cooldown = math.min(num(ep[COOLDOWN], base) * 2, longest)
    elseif breaker == 'closed' and failures + 1 >= threshold then
      cooldown = base
    end
    if cooldown then
      state.closed = false
      set(BREAKER, 'breaker', 'open')
      set(COOLDOWN, 'cooldown', cooldown)
      set(OPEN_UNTIL, 'openUntil', now + cooldown)
      state.refresh = true
      result = 2
    end
  elseif breaker == 'probing' then
    -- The probe told nothing (a pause was asked for, or nothing was sent):
    -- the next job probes in its place.
    set(BREAKER, 'breaker', 'open')
    set(OPEN_UNTIL, 'openUntil', now)
    state.refresh = true
  end
  return result
end

-- The endpoint's concurrency limit after the batch (additive increase,
-- multiplicative decrease, as TCP's congestion window): a failed attempt
-- (an error, a timeout) or a Retry-After halves it; while the limit is what holds the
-- endpoint back (every slot was taken), each quick success (an answer
-- within QUICK_ANSWER ms) counts towards one more slot, one per `limit`
-- of them (`grown` keeps the count), up to ENDPOINT_CONCURRENCY; below the
-- limit it started at, each quick success is one more slot (TCP's slow
-- start: back to it within a window after a failure). A slow success
-- changes nothing: a receiver that is slow but well keeps its limit.
local function adapt(state)
  local ep, limit = state.ep, limit_of(state.ep)
  local new, grown = limit, num(state.ep[GROWN], 0)
  if state.failed then
    new, grown = math.max(1, math.floor(limit / 2)), 0
  elseif state.quick > 0 and state.was_full and limit < default_concurrency then
    grown = grown + state.quick
    while new < start_limit and new < default_concurrency and grown > 0 do
      grown = grown - 1
      new = new + 1
    end
    while grown >= new and new < default_concurrency do
      grown = grown - new
      new = new + 1
    end
    if new >= default_concurrency then grown = 0 end
  else
    return
  end
  if new ~= limit then state.refresh = true end
  if new ~= limit then
    ep[LIMIT] = new
    state.changed.limit = new
  end
  if grown ~= num(ep[GROWN], 0) then
    ep[GROWN] = grown
    state.changed.grown = grown
  end
end

-- The attempt log, a field of the job's hash (`log`: a JSON array, its
-- length in `logLength`), with `entries` appended: the newest 100 entries.
local LOG_MAX = 100
local function attempt_log(log, length, entries)
  local added = table.concat(entries, ',')
  if not log or log == '' or length == 0 then
    log = '[' .. added .. ']'
  else
    log = string.sub(log, 1, -2) .. ',' .. added .. ']'
  end
  length = length + #entries
  if length > LOG_MAX then
    local all = cjson.decode(log)
    local kept = {}
    for j = #all - LOG_MAX + 1, #all do table.insert(kept, all[j]) end
    log, length = cjson.encode(kept), #kept
  end
  return log, length
end

-- The subscriptions this call disabled: no operational event goes to them.
local disabled, disabled_now = {}, {}
local queued, queued_types = {}, {}
local function operational_event(event, tenant, about, webhook_id, fields)
  local n = operational(event, tenant, about, webhook_id, fields, disabled_now)
  if n > 0 then
    if not queued[event] then table.insert(queued_types, event) end
    queued[event] = (queued[event] or 0) + n
  end
end

-- What a finished attempt of an event does to its subscription `sub_id`
-- (its fields `sub`: tenant, disabled, failingSince, deadInRow, url): a
-- delivery ends its streak of failures; a failure starts one (failingSince);
-- a dead letter counts (deadInRow) and tells the tenant
-- (`message.attempt.exhausted`); a 410, or DISABLE_AFTER of failures with
-- DISABLE_AFTER_DEAD dead letters in a row, disables it and tells the tenant
-- (`endpoint.disabled`). One HSET, in the HINCRBY's stead on a delivery:
-- the hot path pays no call more. Returns the fields to set.
local function streak(sub_id, sub, outcome, error, job_id, event, attempts)
  local fields = {}
  if outcome == 'delivered' then
    if sub[3] and sub[3] ~= '' then
      table.insert(fields, 'failingSince'); table.insert(fields, '')
      table.insert(fields, 'deadInRow'); table.insert(fields, 0)
    end
    return fields
  end
  -- A disabled subscription's jobs are cancelled, not failed: no streak,
  -- no event (a flood of `exhausted` for what was queued before).
  if sub[2] == '1' then return fields end
  local since = tonumber(sub[3])
  if not since then
    since = now
    table.insert(fields, 'failingSince'); table.insert(fields, now)
  end
  if outcome ~= 'dead' and outcome ~= 'gone' then return fields end
  local in_row = num(sub[4], 0) + 1
  table.insert(fields, 'deadInRow'); table.insert(fields, in_row)
  local webhook_id = string.sub(job_id, 2)
  -- An exhausted `message.attempt.exhausted` tells of nothing more, or two
  -- failing subscriptions would tell each other of each other's forever.
  if event ~= 'message.attempt.exhausted' then
    operational_event('message.attempt.exhausted', sub[1], sub_id, webhook_id .. '_x' .. attempts,
      {'aboutMessage', webhook_id, 'aboutEvent', event, 'aboutError', error})
  end
  local reason = false
  if outcome == 'gone' then
    reason = 'gone'
  elseif in_row >= disable_dead and now - since >= disable_after then
    reason = 'failing'
  end
  if reason then
    for _, value in ipairs({'disabled', '1', 'disabledAt', now, 'disabledReason', reason, 'disabledError', error}) do
      table.insert(fields, value)
    end
    redis.call('SADD', tag .. ':subs-disabled', sub_id)
    disabled_now[sub_id] = true
    for _, value in ipairs({sub_id, sub[1], reason, error, tostring(now)}) do table.insert(disabled, value) end
    operational_event('endpoint.disabled', sub[1], sub_id, webhook_id .. '_d' .. attempts,
      {'aboutUrl', sub[5] or '', 'aboutReason', reason, 'aboutError', error})
  end
  return fields
end

local i = 11
while i <= #ARGV do
  local id, lease, outcome, next_in = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local error, health, pause, took = ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
  local fallback, count = ARGV[i + 8], tonumber(ARGV[i + 9])
  local entries = {}
  for j = 1, count do entries[j] = ARGV[i + 9 + j] end
  i = i + 10 + count

  local key = job_key(id)
  local current = redis.call('HMGET', key, 'lease', 'attempts', 'endpoint', 'subscription', 'tenant', 'id',
    'log', 'logLength', 'event', 'ordered')
  if current[1] ~= lease then
    table.insert(results, 0)
  else
    local tenant = current[5]
    local attempts = (tonumber(current[2]) or 0) + 1
    -- An event's subscription counts what became of it (if it still exists):
    -- one HMGET where an EXISTS was, so its streak costs no call more.
    local sub = current[4] and redis.call('HMGET', sub_key(current[4]), 'tenant', 'disabled', 'failingSince',
      'deadInRow', 'url')
    if sub and sub[1] then
      local sk = sub_key(current[4])
      if outcome == 'delivered' then
        redis.call('HINCRBY', sk, 'delivered', 1)
      else
        redis.call('HINCRBY', sk, 'failedAttempts', 1)
        if outcome == 'dead' or outcome == 'gone' then redis.call('HINCRBY', sk, 'dead', 1) end
      end
      local fields = streak(current[4], sub, outcome, error, id, current[9] or '', attempts)
      redis.call('HSET', sk, 'lastAttemptAt', now, 'lastError', error, unpack(fields))
    end
    if outcome == 'gone' then outcome = 'dead' end
    local log, length = attempt_log(current[7], tonumber(current[8]) or 0, entries)
    tally(entries, tenant)
    table.insert(finished, id)
    local e = current[3]
    -- An empty lease is no lease (a token is never empty), an empty time no
    -- time: one HSET instead of HSET and HDEL.
    if outcome == 'delivered' then
      redis.call('HSET', key, 'attempts', attempts, 'delivery', 'DELIVERED', 'deliveredAt', now,
        'lease', '', 'nextAttemptAt', '', 'log', log, 'logLength', length)
      expire_known(id, now + retention, current[6], tenant, later)
    elseif outcome == 'retry' then
      local next_at = now + next_in
      redis.call('ZADD', due_key(e or fallback), next_at, id)
      tenant_uses(tenant, e or fallback)
      redis.call('HSET', key, 'attempts', attempts, 'delivery', 'SCHEDULED', 'nextAttemptAt', next_at,
        'lastError', error, 'lease', '', 'log', log, 'logLength', length)
    else
      redis.call('ZADD', KEYS[2], now, id)
      if own(tenant) then redis.call('ZADD', tenant_key(tenant, 'dead'), now, id) end
      redis.call('HSET', key, 'attempts', attempts, 'delivery', 'DEAD', 'lastError', error,
        'lease', '', 'nextAttemptAt', '', 'log', log, 'logLength', length)
      expire_known(id, now + retention, current[6], tenant, later)
    end
    -- An ordered subscription's next job goes once this one is done.
    if current[10] == '1' and outcome ~= 'retry' then
      local next_e = fifo_next(current[4], id)
      if next_e then endpoint(next_e).refresh = true end
    end
    if e then
      table.insert(results, attempted(endpoint(e), outcome, error, health, pause, took))
    else
      -- A case stored without its endpoint (never, once migrated): no slot
      -- was counted for it, so none is freed.
      redis.call('HSET', key, 'endpoint', fallback)
      endpoint(fallback).refresh = true
      table.insert(results, 1)
    end
  end
end

each_chunk(finished, 'ZREM', KEYS[1])
expire_all(later)
-- Each endpoint of the batch: one write, then its place in the line.
for _, e in ipairs(order) do
  local state = endpoints[e]
  adapt(state)
  if state.closed then redis.call('HDEL', endpoint_key(e), 'openUntil', 'cooldown') end
  local fields = {}
  for field, value in pairs(state.changed) do
    table.insert(fields, field); table.insert(fields, value)
  end
  if #fields > 0 then redis.call('HSET', endpoint_key(e), unpack(fields)) end
  if state.was_full or state.refresh then refresh(e, false, state.ep) end
end
local counts = {}
for _, event in ipairs(queued_types) do
  table.insert(counts, event); table.insert(counts, tostring(queued[event]))
end
return {results, disabled, counts}
