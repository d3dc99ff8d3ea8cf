-- Changes a subscription, if it exists and belongs to the tenant.
-- KEYS: the subscription, the tenant's list.
-- ARGV[5..]: tenant, what to do ('set', 'rotate', 'delete'), then for 'set'
-- field/value pairs; for 'rotate' the new secret, until when the old one
-- still signs (unix ms) and the time of the change.
-- Returns 1 if done, 0 if there is no such subscription for this tenant.
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[5] then return 0 end
local action = ARGV[6]
if action == 'delete' then
  redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id'))
  redis.call('SREM', tag .. ':subs-disabled', redis.call('HGET', KEYS[1], 'id'))
  redis.call('DEL', KEYS[1])
  return 1
elseif action == 'rotate' then
  local current = redis.call('HGET', KEYS[1], 'secret')
  redis.call('HSET', KEYS[1], 'secret', ARGV[7], 'previousSecret', current, 'previousUntil', ARGV[8],
    'updatedAt', ARGV[9])
  return 1
end
local fields = {}
local disable, ordered
for i = 7, #ARGV, 2 do
  table.insert(fields, ARGV[i]); table.insert(fields, ARGV[i + 1])
  if ARGV[i] == 'disabled' then disable = ARGV[i + 1] end
  if ARGV[i] == 'ordered' then ordered = ARGV[i + 1] end
end
-- No longer ordered: what waited its turn is released at once, each due when
-- its event happened (the first is out already: it may be in flight). Made
-- ordered: the events queued from now on are.
if ordered == '0' then
  local key = fifo_key(redis.call('HGET', KEYS[1], 'id'))
  local waiting = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for j = 3, #waiting, 2 do
    local e = redis.call('HGET', job_key(waiting[j]), 'endpoint')
    if e then release(waiting[j], e, math.floor(tonumber(waiting[j + 1]) / FIFO_SLOTS)) end
  end
  redis.call('DEL', key)
end
-- Disabled by hand (unless it already was: the help desk's reason stays);
-- enabled: why it was, and its streak of failures, are forgotten.
local id = redis.call('HGET', KEYS[1], 'id')
local was = redis.call('HGET', KEYS[1], 'disabled')
if disable == '1' then
  redis.call('SADD', tag .. ':subs-disabled', id)
  if was ~= '1' then
    for _, value in ipairs({'disabledAt', now, 'disabledReason', 'manual', 'disabledError', ''}) do
      table.insert(fields, value)
    end
  end
elseif disable == '0' then
  redis.call('SREM', tag .. ':subs-disabled', id)
  redis.call('HDEL', KEYS[1], 'disabledAt', 'disabledReason', 'disabledError', 'failingSince', 'deadInRow')
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
return 1
