-- KEYS: one sorted set per key. ARGV: window ms, a unique id for this event, then each key's
-- limit. Counts one event now in every key, keeping only the newest `limit` (all `check` needs).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local max = tonumber(ARGV[i + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('ZADD', key, now, now .. ':' .. ARGV[2])
  redis.call('ZREMRANGEBYRANK', key, 0, -(max + 1))
  redis.call('PEXPIRE', key, window)
end
return 0
