-- Stores a new case and puts its job in its endpoint's queue, atomically:
-- once this has run, the review will be decided and delivered.
-- KEYS: case, cases. ARGV[5..]: id, endpoint, due (ms), created (ms), then
-- the case's fields as name, value pairs.
local id, e = ARGV[5], ARGV[6]
local fields = {}
for i = 9, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', due_key(e), ARGV[7], id)
redis.call('ZADD', KEYS[2], ARGV[8], id)
redis.call('ZADD', tag .. ':endpoints', now, e)
refresh(e, false)
return 1
