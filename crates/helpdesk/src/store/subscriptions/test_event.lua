-- Queues a `webhook.test` event for one subscription, due now.
-- KEYS: the subscription. ARGV[5..]: its id, the webhook-id, the message.
-- Returns the job's id, or false if the subscription does not exist.
local sub = redis.call('HMGET', KEYS[1], 'url', 'endpoint', 'tenant')
if not sub[1] then return false end
return add_event(ARGV[6], {ARGV[5], sub[1], sub[2]},
  {'event', 'webhook.test', 'documentId', '', 'agentId', '', 'documentUrl', '', 'status', 'PENDING_REVIEW',
   'sequence', 0, 'tenant', sub[3], 'message', ARGV[7]}, now, sub[3])
