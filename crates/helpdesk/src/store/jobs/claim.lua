-- Claims up to ARGV[6] jobs for one worker.
-- KEYS: ready, inflight. ARGV[5..]: lease (ms), max, lease token, the
-- agent's verdicts for cases still undecided ('A'/'D', one per job), the
-- most this worker gives one endpoint, and the endpoints it has attempts in
-- flight to ("endpoint<TAB>count" lines).
local lease_until = now + tonumber(ARGV[5])
local max = tonumber(ARGV[6])
local token = ARGV[7]
local verdicts = ARGV[8]
local share = tonumber(ARGV[9])
local left, skip, skipped = {}, {}, 0
for e, used in string.gmatch(ARGV[10], '([^\t\n]+)\t(%d+)') do
  left[e] = share - tonumber(used)
  if left[e] <= 0 then skip[e] = true; skipped = skipped + 1 end
end

-- 1. Leases that ran out: their worker died, or stalled past JOB_LEASE (its
-- late finish will be ignored). The job goes back to the front of its
-- endpoint's queue; a probe that never reported lets another go.
local touched = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', KEYS[2], id)
  local e = redis.call('HGET', job_key(id), 'endpoint')
  if e then
    local ep = endpoint_key(e)
    if redis.call('HINCRBY', ep, 'inFlight', -1) < 0 then redis.call('HSET', ep, 'inFlight', 0) end
    if redis.call('HGET', ep, 'breaker') == 'probing' then
      redis.call('HSET', ep, 'breaker', 'open', 'openUntil', now)
    end
    redis.call('HDEL', job_key(id), 'lease')
    redis.call('HSET', job_key(id), 'delivery', 'SCHEDULED')
    redis.call('ZADD', due_key(e), now, id)
    touched[e] = true
  end
end
for e in pairs(touched) do refresh(e, false) end

-- Sets `field` in a flat HGETALL reply.
local function set(hash, field, value)
  for j = 1, #hash, 2 do
    if hash[j] == field then hash[j + 1] = value; return end
  end
  table.insert(hash, field); table.insert(hash, value)
end

-- 2. Down the ready line, each endpoint giving what its limits allow: free
-- slots, rate tokens, one probe when its breaker's cooldown is over.
local cases = {}
local line = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max + skipped)
for _, e in ipairs(line) do
  if #cases >= max then break end
  if not skip[e] then
    local ep_key = endpoint_key(e)
    local ep = read_endpoint(e)
    local in_flight = num(ep[IN_FLIGHT], 0)
    local breaker = ep[BREAKER] or 'closed'
    local allow = math.min(limit_of(ep) - in_flight, max - #cases, left[e] or share)
    if num(ep[PAUSED_UNTIL], 0) > now or breaker == 'probing' then
      allow = 0
    elseif breaker == 'open' then
      if num(ep[OPEN_UNTIL], 0) > now then allow = 0 else allow = math.min(allow, 1) end
    end
    local rate = num(ep[RATE], default_rate)
    local tokens
    if rate > 0 then
      tokens = tokens_now(rate, tonumber(ep[TOKENS]), ep[TOKENS_AT])
      allow = math.min(allow, math.floor(tokens))
    end
    local taken = 0
    if allow > 0 then
      local ids = redis.call('ZRANGEBYSCORE', due_key(e), '-inf', now, 'LIMIT', 0, allow)
      local live = {}
      -- One HGETALL and one HSET per job: a call is what costs in a script.
      for _, id in ipairs(ids) do
        local key = job_key(id)
        local hash = redis.call('HGETALL', key)
        if #hash > 0 then
          table.insert(live, id)
          local status, verdict, event
          for j = 1, #hash, 2 do
            local field = hash[j]
            if field == 'status' then status = hash[j + 1]
            elseif field == 'verdict' then verdict = hash[j + 1]
            elseif field == 'event' then event = hash[j + 1] end
          end
          set(hash, 'delivery', 'IN_FLIGHT')
          set(hash, 'lease', token)
          -- A case's callback carries the decision: the one drawn when the
          -- case was accepted (cases stored before that was kept: the
          -- worker's draw). An event's status is fixed when it is queued.
          if status == 'PENDING_REVIEW' and not event then
            local d = verdict
            if d ~= 'ACCEPTED' and d ~= 'DECLINED' then
              d = string.sub(verdicts, #cases + 1, #cases + 1) == 'A' and 'ACCEPTED' or 'DECLINED'
            end
            set(hash, 'status', d)
            set(hash, 'decidedAt', tostring(now))
            redis.call('HSET', key, 'delivery', 'IN_FLIGHT', 'lease', token, 'status', d, 'decidedAt', now)
          else
            redis.call('HSET', key, 'delivery', 'IN_FLIGHT', 'lease', token)
          end
          table.insert(cases, hash)
        end
      end
      each_chunk(ids, 'ZREM', due_key(e))
      each_chunk(live, 'ZADD', KEYS[2], lease_until)
      taken = #live
      if taken > 0 then
        local fields = {'inFlight', in_flight + taken}
        ep[IN_FLIGHT] = in_flight + taken
        if tokens then
          table.insert(fields, 'tokens'); table.insert(fields, tokens - taken)
          table.insert(fields, 'tokensAt'); table.insert(fields, now)
          ep[TOKENS], ep[TOKENS_AT] = tokens - taken, now
        end
        if breaker == 'open' then
          table.insert(fields, 'breaker'); table.insert(fields, 'probing')
          ep[BREAKER] = 'probing'
        end
        redis.call('HSET', ep_key, unpack(fields))
        left[e] = (left[e] or share) - taken
        if left[e] <= 0 and not skip[e] then skip[e] = true; skipped = skipped + 1 end
      end
    end
    refresh(e, taken > 0, ep)
  end
end

-- 3. When to look again (in ms from now): the first endpoint in line this
-- worker may serve, or the first lease to run out.
local wake = false
local front = redis.call('ZRANGE', KEYS[1], 0, skipped, 'WITHSCORES')
for j = 1, #front, 2 do
  if not skip[front[j]] then wake = tonumber(front[j + 1]); break end
end
local lease_head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if lease_head[2] and (not wake or tonumber(lease_head[2]) < wake) then wake = tonumber(lease_head[2]) end
return {cases, wake and math.max(0, wake - now)}
