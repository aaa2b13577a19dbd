-- KEYS: one sorted set per key (events scored by time in ms). ARGV: window ms, then each key's
-- limit. Returns the ms to wait until every key is under its limit (0: allowed now).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local max = tonumber(ARGV[i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= max then
    -- The limit lifts when enough of the oldest events have aged out.
    local oldest = redis.call('ZRANGE', key, count - max, count - max, 'WITHSCORES')
    local left = window - (now - tonumber(oldest[2]))
    if left > wait then wait = left end
  end
end
return wait
