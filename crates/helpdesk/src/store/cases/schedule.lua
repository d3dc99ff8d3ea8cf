-- Stores a new case and its jobs, unless a request with the same id was
-- accepted before: then that case is the answer (the same document and
-- callback: a retry) or a conflict (another request reusing the id).
--
-- The jobs: the callback (if the request named one) due when the agent
-- decides, and one job per event and matching subscription of the tenant:
-- `document.received` due now, the decision's event due with the callback.
-- The verdict is drawn now and kept hidden in the case until it is due, so
-- every event can be queued in this one atomic step: an accepted case never
-- loses an event to a crash. (A subscription made after the case was
-- accepted therefore receives its events from the next case on.)
-- KEYS: case, request (the id's key, the tenant's own; unused without an id).
-- ARGV[5..]: documentId, endpoint ('' without a callback), delay (ms),
-- request id ('' for none), documentUrl, callbackUrl ('' for none), agentId,
-- webhookId, tenant, verdict, the webhook-id prefix of its events,
-- CASE_RETENTION (ms), the case's own chaos profile ('' for the help
-- desk's), '1' when the reorder fault holds its document.received events
-- back until a second after its decision is due, the dialect its callback is
-- signed in ('' for Standard Webhooks: no field is stored), the seed of its
-- chaos draws ('' for none; kept on every job, see hookline_contract::chaos::seed),
-- the W3C traceparent its deliveries continue ('' for none: no field; kept
-- on its event jobs too), the tag of the tenant's home partition ('' with
-- one partition).
-- Returns {outcome, documentId, agentId, due in (ms), document.received
-- events queued, decision events queued}; outcome `elsewhere` (nothing
-- stored) when the tenant has an ordered subscription and this is not its
-- home partition: its events must all be queued where one script orders
-- them, so the caller draws a documentId there and asks again.
local id, e, delay, request = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local document_url, callback_url, agent_id = ARGV[9], ARGV[10], ARGV[11]
local tenant, verdict, event_prefix, retention = ARGV[13], ARGV[14], ARGV[15], tonumber(ARGV[16])
local chaos, reorder, dialect, seed = ARGV[17], ARGV[18] == '1', ARGV[19], ARGV[20]
local traceparent, home = ARGV[21], ARGV[22]
if request ~= '' then
  local earlier = redis.call('GET', KEYS[2])
  if earlier then
    local stored = redis.call('HMGET', case_key(earlier), 'documentUrl', 'callbackUrl', 'agentId')
    if stored[1] then
      if stored[1] == document_url and stored[2] == callback_url then
        return {'replayed', earlier, stored[3], 0, 0, 0}
      end
      return {'conflict', earlier, '', 0, 0, 0}
    end
    -- The case it named has expired: the id is free again.
  end
end
if home ~= '' and home ~= tag then
  for _, sub in ipairs(tenant_subscriptions(tenant)) do
    if sub[5] == '1' then return {'elsewhere', '', '', 0, 0, 0} end
  end
end
if request ~= '' then redis.call('SET', KEYS[2], id) end
local due = now + delay
local fields = {'documentId', id, 'agentId', agent_id, 'documentUrl', document_url, 'callbackUrl', callback_url,
  'webhookId', ARGV[12], 'status', 'PENDING_REVIEW', 'verdict', verdict, 'tenant', tenant, 'attempts', 0,
  'createdAt', now, 'dueAt', due}
if request ~= '' then table.insert(fields, 'id'); table.insert(fields, request) end
if chaos ~= '' then table.insert(fields, 'chaos'); table.insert(fields, chaos) end
if dialect ~= '' then table.insert(fields, 'dialect'); table.insert(fields, dialect) end
if seed ~= '' then table.insert(fields, 'chaosSeed'); table.insert(fields, seed) end
if traceparent ~= '' then table.insert(fields, 'traceparent'); table.insert(fields, traceparent) end
if e ~= '' then
  table.insert(fields, 'endpoint'); table.insert(fields, e)
  table.insert(fields, 'delivery'); table.insert(fields, 'SCHEDULED')
else
  table.insert(fields, 'delivery'); table.insert(fields, 'NO_CALLBACK')
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', tag .. ':cases', now, id)
if own(tenant) then
  note_tenant(tenant)
  redis.call('ZADD', tenant_key(tenant, 'cases'), now, id)
end
if e ~= '' then
  redis.call('ZADD', due_key(e), due, id)
  -- The endpoint joins the line, or moves up in it, to this job's due time
  -- (LT never moves it back). If it may not send then (every slot taken,
  -- paused, its breaker open), the next claim finds that and puts it back
  -- where it belongs.
  redis.call('ZADD', ready_key, 'LT', due, e)
  redis.call('ZADD', tag .. ':endpoints', now, e)
  tenant_uses(tenant, e)
else
  -- Nothing of its own to deliver: it is finished once decided.
  expire_later(id, due + retention)
end

local queued = 0
local function events(event, status, sequence, at, held_back)
  for _, sub in ipairs(subscribers(tenant, event)) do
    queued = queued + 1
    local data = {'event', event, 'documentId', id, 'agentId', agent_id, 'documentUrl', document_url,
      'status', status, 'sequence', sequence, 'tenant', tenant}
    if request ~= '' then table.insert(data, 'id'); table.insert(data, request) end
    if chaos ~= '' then table.insert(data, 'chaos'); table.insert(data, chaos) end
    if seed ~= '' then table.insert(data, 'chaosSeed'); table.insert(data, seed) end
    if traceparent ~= '' then table.insert(data, 'traceparent'); table.insert(data, traceparent) end
    -- An ordered subscription was promised its events in order: the
    -- reorder fault holds nothing back for it.
    local sub_at = at
    if held_back and sub[4] == '1' then
      sub_at = now
    elseif held_back then
      table.insert(data, 'chaosReorder'); table.insert(data, '1')
    end
    add_event(event_prefix .. '_' .. queued, sub, data, sub_at, tenant)
  end
end
if reorder then
  events('document.received', 'PENDING_REVIEW', 1, due + 1000, true)
else
  events('document.received', 'PENDING_REVIEW', 1, now, false)
end
local received = queued
if verdict == 'ACCEPTED' then
  events('document.accepted', verdict, 2, due)
elseif verdict == 'DECLINED' then
  events('document.declined', verdict, 2, due)
end
return {'created', id, agent_id, delay, received, queued - received}
