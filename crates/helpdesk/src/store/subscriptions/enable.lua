-- Enables a subscription again, if it exists and belongs to the tenant:
-- why it was disabled, and its streak of failures, are forgotten; with
-- ARGV[7] '1' (partition 0, the last one changed) the tenant's other
-- subscriptions that want it are sent `endpoint.enabled`.
-- KEYS: the subscription. ARGV[5..]: tenant, the webhook-id of the event
-- (each copy adds `_<n>`), '1' to queue the event.
-- Returns {outcome, told}: outcome 0 if there is no such subscription for
-- this tenant, 1 if it was disabled and is enabled now, 2 if it was enabled
-- already (nothing changed); told: the `endpoint.enabled` events queued.
local sub = redis.call('HMGET', KEYS[1], 'tenant', 'disabled', 'id', 'url')
if sub[1] ~= ARGV[5] then return {0, 0} end
if sub[2] ~= '1' then return {2, 0} end
redis.call('HSET', KEYS[1], 'disabled', '0', 'updatedAt', now)
redis.call('HDEL', KEYS[1], 'disabledAt', 'disabledReason', 'disabledError', 'failingSince', 'deadInRow')
redis.call('SREM', tag .. ':subs-disabled', sub[3])
local told = 0
if ARGV[7] == '1' then
  told = operational('endpoint.enabled', sub[1], sub[3], ARGV[6], {'aboutUrl', sub[4] or ''})
end
return {1, told}
