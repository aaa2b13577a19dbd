-- KEYS: the set of nodes, the node's heartbeat, the node's user set.
-- ARGV: key prefix, node, ttl ms, then user, field pairs. Returns the users that had no live
-- route before (their routes had expired or been swept: they are back online).
local prefix, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('SADD', KEYS[1], node)
redis.call('SET', KEYS[2], '1', 'PX', ttl)
local back = {}
for i = 4, #ARGV, 2 do
  local user, field = ARGV[i], ARGV[i + 1]
  local key = prefix .. ':routes:' .. user
  if prune(key) == 0 then
    table.insert(back, user)
  end
  put(key, field, ttl)
  redis.call('SADD', KEYS[3], user)
end
return back
