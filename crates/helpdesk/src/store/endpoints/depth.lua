-- How many jobs are in each state, and how many of those due now are held
-- back, and by what (read only; for /metrics and health).
--
-- Bounded work whatever the number of endpoints: anyone who can create a
-- case names an endpoint, so walking them all (as this once did) let a
-- client with a key make every scrape a long, blocking script. The per-
-- endpoint counts are taken over the ARGV[5] most recently active endpoints
-- (the order of GET /endpoints); `in flight` and `dead` are exact (ZCARD),
-- and the last two values say how many endpoints exist and how many were
-- counted, so a partial count shows as one.
-- KEYS: inflight, dead. ARGV[5]: the most endpoints to read. Returns {due,
-- in flight, dead, held by a pause, held by an open breaker, held by the
-- rate limit, held by the concurrency limit, endpoints open, endpoints
-- probing, endpoints known, endpoints counted}.
local most = tonumber(ARGV[5])
local due, paused, open, throttled, saturated, n_open, n_probing = 0, 0, 0, 0, 0, 0, 0
local counted = redis.call('ZREVRANGE', tag .. ':endpoints', 0, most - 1)
for _, e in ipairs(counted) do
  local waiting = redis.call('ZCARD', due_key(e))
  due = due + waiting
  local ep = read_endpoint(e)
  local breaker = ep[BREAKER]
  if breaker == 'open' then n_open = n_open + 1 elseif breaker == 'probing' then n_probing = n_probing + 1 end
  if waiting > 0 then
    local due_now = redis.call('ZCOUNT', due_key(e), '-inf', now)
    local rate = num(ep[RATE], default_rate)
    if due_now == 0 then
      -- nothing held
    elseif num(ep[PAUSED_UNTIL], 0) > now then
      paused = paused + due_now
    elseif breaker == 'probing' or (breaker == 'open' and num(ep[OPEN_UNTIL], 0) > now) then
      open = open + due_now
    elseif rate > 0 and tokens_now(rate, tonumber(ep[TOKENS]), ep[TOKENS_AT]) < 1 then
      throttled = throttled + due_now
    elseif num(ep[IN_FLIGHT], 0) >= limit_of(ep) then
      saturated = saturated + due_now
    end
  end
end
return {due, redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]),
  paused, open, throttled, saturated, n_open, n_probing,
  redis.call('ZCARD', tag .. ':endpoints'), #counted}
