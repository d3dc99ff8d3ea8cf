-- Shared by every script of the store (prepended to each). ARGV[1..4] are
-- the same in all of them: now (unix ms; empty: Redis's own clock), the key
-- tag ("{prefix}"), the default limits ENDPOINT_CONCURRENCY and
-- ENDPOINT_CONCURRENCY_START as "max/start", and ENDPOINT_RATE (0:
-- unlimited).
--
-- Every time the queue keeps (due times, leases, pauses, the breaker's
-- cooldown, expiry) is read from one clock, Redis's: a worker whose clock is
-- ahead cannot take over live leases, nor one behind hold jobs back. Tests
-- pass a time instead, to step through it without sleeping.
--
-- KEYS[1] is the partition's anchor, `{tag}:partition`, which always
-- exists: naming it makes Redis Cluster refuse (TRYAGAIN) to run a script
-- while its slot is half-migrated (some keys here, some moved), so no
-- script ever reads half a partition. It is taken off: the scripts' own
-- KEYS start at 1.
table.remove(KEYS, 1)
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local tag = ARGV[2]
local default_concurrency, start_limit = string.match(ARGV[3], '^(%d+)/(%d+)$')
default_concurrency, start_limit = tonumber(default_concurrency), tonumber(start_limit)
local default_rate = tonumber(ARGV[4])
local ready_key = tag .. ':ready'

local function num(value, default)
  return tonumber(value) or default
end

local function due_key(e) return tag .. ':due:' .. e end
local function endpoint_key(e) return tag .. ':endpoint:' .. e end
local function case_key(id) return tag .. ':case:' .. id end
-- Tenants: every job hash holds its `tenant`. The default tenant's (the
-- operator's, and everything of an open help desk) are listed in the shared
-- keys only, as before tenants had lists; another tenant's are also listed
-- under `{tag}:tenant:<name>:`, and their request ids live there. Every
-- shared listing holds every tenant's: it is the operator's view.
local function own(t) return t and t ~= '' and t ~= 'default' end
local function tenant_key(t, name) return tag .. ':tenant:' .. t .. ':' .. name end
local function request_key(request, t)
  if own(t) then return tenant_key(t, 'request:' .. request) end
  return tag .. ':request:' .. request
end
-- Notes that `t` has lists of its own, for the trim to find them.
local function note_tenant(t) redis.call('SADD', tag .. ':tenants', t) end
-- A job is a case's callback (its id is the documentId) or one event for
-- one subscription (its id is '~' and its webhook-id: never a documentId,
-- which cannot contain '~').
local function job_key(id)
  if string.sub(id, 1, 1) == '~' then return tag .. ':event:' .. string.sub(id, 2) end
  return case_key(id)
end
local function sub_key(id) return tag .. ':sub:' .. id end

-- A finished case (delivered or dead) expires at `at`: its hash (with its
-- attempt log) and its request id get a TTL, so Redis frees them even if no
-- worker ever trims, and `expiring` says when, so the trim takes it out of
-- the listings. A live case's request id always names it (a schedule only
-- takes over an id whose case is gone, a redelivery takes the TTL off both
-- together), so it is not read first. `request` and `t` are the job's `id`
-- and `tenant` fields (nil if none); `later` collects the `expiring`
-- entries for one ZADD per batch (see `expire_all`). A case stored before
-- the attempt log moved into the hash keeps its old list
-- (`{tag}:attempts:<id>`) until the trim deletes it.
local function expire_known(id, at, request, t, later)
  redis.call('PEXPIREAT', job_key(id), at)
  if request then redis.call('PEXPIREAT', request_key(request, t), at) end
  local key = own(t) and tenant_key(t, 'expiring') or false
  table.insert(later, {at, id, key})
end

-- Adds the entries `expire_known` collected to `expiring` (and their
-- tenants' own): one ZADD per key, not one per case.
local function expire_all(later)
  local shared, own_keys = {}, {}
  for _, entry in ipairs(later) do
    table.insert(shared, entry[1]); table.insert(shared, entry[2])
    if entry[3] then
      own_keys[entry[3]] = own_keys[entry[3]] or {}
      table.insert(own_keys[entry[3]], entry[1]); table.insert(own_keys[entry[3]], entry[2])
    end
  end
  local function zadd(key, pairs_)
    for i = 1, #pairs_, 1000 do
      redis.call('ZADD', key, unpack(pairs_, i, math.min(i + 999, #pairs_)))
    end
  end
  if #shared > 0 then zadd(tag .. ':expiring', shared) end
  for key, list in pairs(own_keys) do zadd(key, list) end
end

local function expire_later(id, at)
  local job = redis.call('HMGET', job_key(id), 'id', 'tenant')
  local later = {}
  expire_known(id, at, job[1], job[2], later)
  expire_all(later)
end

-- A case going back to its queue (a redelivery) is kept until it finishes again.
local function keep(id)
  redis.call('PERSIST', job_key(id))
  redis.call('PERSIST', tag .. ':attempts:' .. id)
  local job = redis.call('HMGET', job_key(id), 'id', 'tenant')
  if job[1] and redis.call('GET', request_key(job[1], job[2])) == id then
    redis.call('PERSIST', request_key(job[1], job[2]))
  end
  redis.call('ZREM', tag .. ':expiring', id)
  if own(job[2]) then redis.call('ZREM', tenant_key(job[2], 'expiring'), id) end
end

-- A tenant's job goes to endpoint `e` now: the tenant's own list of
-- endpoints shows it (the shared one is kept by its callers and `refresh`).
local function tenant_uses(t, e)
  if own(t) then
    note_tenant(t)
    redis.call('ZADD', tenant_key(t, 'endpoints'), now, e)
  end
end

-- An endpoint's rate limit is a token bucket: `rate` tokens a second, at
-- most a tenth of a second's worth saved up (and at least one), so a quiet
-- endpoint does not earn a burst.
local function tokens_now(rate, tokens, tokens_at)
  local capacity = math.max(1, rate / 10)
  if tokens == nil then return capacity end
  return math.min(capacity, tokens + (now - num(tokens_at, now)) * rate / 1000)
end

-- The endpoint fields the scripts read, in this order (HMGET).
local EP_FIELDS = {'inFlight', 'rate', 'tokens', 'tokensAt', 'pausedUntil', 'breaker', 'openUntil',
  'failures', 'cooldown', 'limit', 'grown'}
local IN_FLIGHT, RATE, TOKENS, TOKENS_AT, PAUSED_UNTIL, BREAKER, OPEN_UNTIL, FAILURES, COOLDOWN, LIMIT, GROWN =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11

-- How many attempts an endpoint may have in flight (over all workers): its
-- own limit, which adapts as TCP's congestion window does (finish.lua),
-- never above ENDPOINT_CONCURRENCY. A new endpoint starts at
-- ENDPOINT_CONCURRENCY_START, like a new TCP connection's initial window: a
-- receiver that answers well earns more, one that fails gets less.
local function limit_of(ep)
  return math.max(1, math.min(num(ep[LIMIT], start_limit), default_concurrency))
end

local function read_endpoint(e)
  return redis.call('HMGET', endpoint_key(e), unpack(EP_FIELDS))
end

-- Puts endpoint `e` in the ready line at the time it may next send, or takes
-- it out of the line while it cannot send at all (nothing due, every slot
-- taken, its probe out): whatever frees it (a finish, a new job) refreshes
-- it again. The line is first come, first served: an endpoint keeps its
-- place while it waits, and one that was just `served` goes to the back, so
-- a backlog on one endpoint never holds up another's due job. `ep`: the
-- endpoint's fields as they are now, if the caller has them (else read).
local function refresh(e, served, ep)
  local head = redis.call('ZRANGE', due_key(e), 0, 0, 'WITHSCORES')
  ep = ep or read_endpoint(e)
  if head[2] == nil or num(ep[IN_FLIGHT], 0) >= limit_of(ep) or ep[BREAKER] == 'probing' then
    redis.call('ZREM', ready_key, e)
    return
  end
  local at = math.max(tonumber(head[2]), num(ep[PAUSED_UNTIL], 0))
  if ep[BREAKER] == 'open' then at = math.max(at, num(ep[OPEN_UNTIL], 0)) end
  local rate = num(ep[RATE], default_rate)
  if rate > 0 then
    local tokens = tokens_now(rate, tonumber(ep[TOKENS]), ep[TOKENS_AT])
    if tokens < 1 then at = math.max(at, now + math.ceil((1 - tokens) * 1000 / rate)) end
  end
  local joined = now
  if not served then
    local waiting = redis.call('ZSCORE', ready_key, e)
    if waiting then
      joined = math.min(tonumber(waiting), now)
    else
      -- Joining the line: the endpoint is active (the listing's order).
      redis.call('ZADD', tag .. ':endpoints', now, e)
    end
  end
  redis.call('ZADD', ready_key, math.max(at, joined), e)
end

-- Runs `command key item...` over `list` in chunks (Lua's unpack has a limit).
local function each_chunk(list, command, key, score)
  local args = {}
  for _, item in ipairs(list) do
    if score then table.insert(args, score) end
    table.insert(args, item)
    if #args >= 1000 then redis.call(command, key, unpack(args)); args = {} end
  end
  if #args > 0 then redis.call(command, key, unpack(args)) end
end

-- Ordered subscriptions (`ordered` on the subscription, asked for with
-- `"ordered": true`): `{tag}:fifo:<sub>` holds each of its undelivered jobs,
-- scored by when its event happened (its due time, in ms) times FIFO_SLOTS
-- plus its place among the events of the same ms, so the first queued goes
-- first. Only the first of them is ever in its endpoint's queue (released):
-- one in flight at a time, retried in its place (a retry goes back to the
-- endpoint's queue, the others still wait), and the next released when it
-- is delivered or dead (`fifo_next`, from finish.lua). Everything else —
-- limits, breaker, leases, chaos — applies to it as to any job. The order
-- holds in one partition: schedule.lua keeps every case of a tenant with an
-- ordered subscription in its home partition (`elsewhere`).
local FIFO_SLOTS = 1024
local function fifo_key(sub_id) return tag .. ':fifo:' .. sub_id end

-- Puts job `id` in endpoint `e`'s queue, due at `due`, and the endpoint in
-- line by then (LT: never moved back).
local function release(id, e, due)
  redis.call('ZADD', due_key(e), due, id)
  redis.call('ZADD', ready_key, 'LT', due, e)
end

-- Adds job `id` (to endpoint `e`, its event due at `due`) to ordered
-- subscription `sub_id`'s line, releasing it if it is first. One that goes
-- before the first can only be an event that happens sooner than the first's
-- (a decision still to come): that one was never claimed (not due yet), and
-- goes back to waiting.
local function fifo_add(sub_id, id, e, due)
  local key = fifo_key(sub_id)
  local base = due * FIFO_SLOTS
  local last = redis.call('ZREVRANGEBYSCORE', key, base + FIFO_SLOTS - 1, base, 'WITHSCORES', 'LIMIT', 0, 1)
  local score = base
  if last[2] then score = math.min(tonumber(last[2]) + 1, base + FIFO_SLOTS - 1) end
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  redis.call('ZADD', key, score, id)
  if not first[1] then
    release(id, e, due)
  elseif score < tonumber(first[2]) then
    local first_e = redis.call('HGET', job_key(first[1]), 'endpoint')
    if first_e then redis.call('ZREM', due_key(first_e), first[1]) end
    release(id, e, due)
  end
end

-- Job `id` of ordered subscription `sub_id` is done (delivered or dead): it
-- leaves the line and, if it was first, the next is released. Returns the
-- endpoint of the one released (for its place in the ready line), if any.
local function fifo_next(sub_id, id)
  local key = fifo_key(sub_id)
  local first = redis.call('ZRANGE', key, 0, 0)
  redis.call('ZREM', key, id)
  if first[1] ~= id then return nil end
  -- A waiting job whose hash is gone (never: waiting jobs have no TTL) is
  -- skipped, a few at most.
  for _ = 1, 100 do
    local next = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if not next[1] then return nil end
    local e = redis.call('HGET', job_key(next[1]), 'endpoint')
    if e then
      release(next[1], e, math.floor(tonumber(next[2]) / FIFO_SLOTS))
      return e
    end
    redis.call('ZREM', key, next[1])
  end
  return nil
end

-- Queues one event for one subscription: its own job in the subscription's
-- endpoint's queue, due at `due`, with its own attempts, retries and dead
-- letter (behind the subscription's earlier ones if it is ordered). `fields`
-- describe the event (documentId, agentId, documentUrl, status, sequence,
-- event, id...) and include its `tenant`, also given as `t`; `sub` is {id,
-- url, endpoint, ordered ('1' if so)}.
local function add_event(webhook_id, sub, fields, due, t)
  local id = '~' .. webhook_id
  local all = {'webhookId', webhook_id, 'subscription', sub[1], 'callbackUrl', sub[2], 'endpoint', sub[3],
    'delivery', 'SCHEDULED', 'attempts', 0, 'createdAt', now, 'dueAt', due}
  for _, value in ipairs(fields) do table.insert(all, value) end
  if sub[4] == '1' then table.insert(all, 'ordered'); table.insert(all, '1') end
  redis.call('HSET', job_key(id), unpack(all))
  if sub[4] == '1' then
    fifo_add(sub[1], id, sub[3], due)
  else
    release(id, sub[3], due)
  end
  redis.call('ZADD', tag .. ':endpoints', now, sub[3])
  tenant_uses(t, sub[3])
  return id
end

-- The enabled subscriptions of `tenant`, as {id, url, endpoint, events,
-- ordered}. The tenant's list is read once per script call, however many
-- events ask (a schedule asks twice): a tenant without subscriptions costs
-- one ZRANGE of an empty key.
local listed_subs = {}
local function tenant_subscriptions(tenant)
  local listed = listed_subs[tenant]
  if not listed then
    listed = {}
    for _, id in ipairs(redis.call('ZRANGE', tag .. ':subs:' .. tenant, 0, -1)) do
      local sub = redis.call('HMGET', sub_key(id), 'events', 'disabled', 'url', 'endpoint', 'ordered')
      if sub[1] and sub[2] ~= '1' then table.insert(listed, {id, sub[3], sub[4], sub[1], sub[5]}) end
    end
    listed_subs[tenant] = listed
  end
  return listed
end

-- The enabled subscriptions of `tenant` that want `event`, as {id, url,
-- endpoint, ordered} (`add_event`'s `sub`).
local function subscribers(tenant, event)
  local found = {}
  for _, sub in ipairs(tenant_subscriptions(tenant)) do
    if string.find(sub[4], ' ' .. event .. ' ', 1, true) then table.insert(found, {sub[1], sub[2], sub[3], sub[5]}) end
  end
  return found
end

-- Queues operational event `event` (`endpoint.disabled`, `endpoint.enabled`,
-- `message.attempt.exhausted`: see `disable.rs`) about subscription `about`
-- for the tenant's enabled subscriptions that want it, due now: never for
-- `about` itself (the one failing, or disabled), nor for one in `skip` (a
-- set of ids disabled by the same call). `fields` describe what it is about.
local function operational(event, tenant, about, webhook_id, fields, skip)
  local n = 0
  for _, sub in ipairs(subscribers(tenant, event)) do
    if sub[1] ~= about and not (skip and skip[sub[1]]) then
      n = n + 1
      local all = {'event', event, 'documentId', '', 'agentId', '', 'documentUrl', '', 'status', 'PENDING_REVIEW',
        'sequence', 0, 'tenant', tenant, 'about', about}
      for _, value in ipairs(fields) do table.insert(all, value) end
      add_event(webhook_id .. '_' .. n, sub, all, now, tenant)
    end
  end
  return n
end
