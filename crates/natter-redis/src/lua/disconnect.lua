-- KEYS: routes hash of the user, the node's user set. ARGV: user, field (node|device), node.
-- Returns 1 when the removed route was the user's last live one.
local removed = redis.call('HDEL', KEYS[1], ARGV[2])
local live = prune(KEYS[1])
if not holds(KEYS[1], ARGV[3]) then
  redis.call('SREM', KEYS[2], ARGV[1])
end
if removed == 1 and live == 0 then return 1 end
return 0
