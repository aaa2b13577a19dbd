-- KEYS: routes hash of the user, the node's user set, the set of nodes, the node's heartbeat.
-- ARGV: user, field (node|device), ttl ms, node. Returns 1 when the user had no live route.
local ttl = tonumber(ARGV[3])
local before = prune(KEYS[1])
put(KEYS[1], ARGV[2], ttl)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], '1', 'PX', ttl)
if before == 0 then return 1 end
return 0
