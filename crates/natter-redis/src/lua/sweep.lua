-- KEYS: the set of nodes. ARGV: key prefix. Every node whose heartbeat expired is claimed (taken
-- out of the set, so one caller alone handles it), its routes are removed, and the users left
-- without a live route are returned: they went offline.
local prefix = ARGV[1]
local gone = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', prefix .. ':alive:' .. node) == 0 then
    redis.call('SREM', KEYS[1], node)
    local node_key = prefix .. ':node:' .. node
    local mark = node .. '|'
    for _, user in ipairs(redis.call('SMEMBERS', node_key)) do
      local key = prefix .. ':routes:' .. user
      for _, field in ipairs(redis.call('HKEYS', key)) do
        if string.sub(field, 1, #mark) == mark then
          redis.call('HDEL', key, field)
        end
      end
      if prune(key) == 0 then
        table.insert(gone, user)
      end
    end
    redis.call('DEL', node_key)
  end
end
return gone
