-- Stores a new subscription unless its tenant has `max` already: the count
-- and the write in one step, so that concurrent requests cannot both see
-- room for one more. Run in partition 0, which holds the count (see
-- `subscriptions.rs`).
-- KEYS: the subscription, the tenant's list. ARGV[5..]: max, id, createdAt
-- (unix ms), then the hash's field/value pairs.
-- Returns 1 if stored, 0 if the tenant is at its cap.
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 0 end
local fields = {}
for i = 8, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[6])
return 1
