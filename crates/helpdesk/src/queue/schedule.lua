-- Stores a new case and its job, unless a request with the same id was
-- accepted before: then that case is the answer (the same document and
-- callback: a retry) or a conflict (another request reusing the id).
-- KEYS: case, request (the id's key; unused without an id).
-- ARGV[5..]: documentId, endpoint, delay (ms), request id ('' for none),
-- documentUrl, callbackUrl, agentId, webhookId.
-- Returns {outcome, documentId, agentId, due in (ms)}.
local id, e, delay, request = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local document_url, callback_url, agent_id = ARGV[9], ARGV[10], ARGV[11]
if request ~= '' then
  local earlier = redis.call('GET', KEYS[2])
  if earlier then
    local stored = redis.call('HMGET', case_key(earlier), 'documentUrl', 'callbackUrl', 'agentId')
    if stored[1] then
      if stored[1] == document_url and stored[2] == callback_url then
        return {'replayed', earlier, stored[3], 0}
      end
      return {'conflict', earlier, '', 0}
    end
    -- The case it named has expired: the id is free again.
  end
  redis.call('SET', KEYS[2], id)
end
local due = now + delay
local fields = {'documentId', id, 'agentId', agent_id, 'documentUrl', document_url, 'callbackUrl', callback_url,
  'endpoint', e, 'webhookId', ARGV[12], 'status', 'PENDING_REVIEW', 'delivery', 'SCHEDULED', 'attempts', 0,
  'createdAt', now, 'dueAt', due}
if request ~= '' then table.insert(fields, 'id'); table.insert(fields, request) end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', due_key(e), due, id)
redis.call('ZADD', tag .. ':cases', now, id)
-- The endpoint joins the line, or moves up in it, to this job's due time
-- (LT never moves it back). If it may not send then (every slot taken,
-- paused, its breaker open), the next claim finds that and puts it back
-- where it belongs.
redis.call('ZADD', ready_key, 'LT', due, e)
redis.call('ZADD', tag .. ':endpoints', now, e)
return {'created', id, agent_id, delay}
