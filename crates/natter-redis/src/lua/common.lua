-- Shared by every route script (prepended by routes.rs). Redis's own clock, so that every node
-- agrees on when a route expires.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Deletes the expired routes of a user's hash; returns how many live ones remain.
local function prune(key)
  local all = redis.call('HGETALL', key)
  local live = 0
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) < now then
      redis.call('HDEL', key, all[i])
    else
      live = live + 1
    end
  end
  return live
end

-- Writes a route to live `ttl` ms from now; the hash lives as long as its longest route.
local function put(key, field, ttl)
  redis.call('HSET', key, field, now + ttl)
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
end

-- Whether the user's hash still has a field of `node`.
local function holds(key, node)
  local prefix = node .. '|'
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, #prefix) == prefix then
      return true
    end
  end
  return false
end

-- Moves a conversation's record of its highest published entry (KEY: "<seq>|<node>,<node>,...")
-- to entry `seq`, sent to `nodes` (a comma-separated list), unless a later entry is recorded
-- already, and returns what the record said of entry seq - 1: 0 no record (none kept, expired,
-- or the first entry), 1 not published yet, 2 published (the second value lists its nodes),
-- 3 a later entry was published already.
local function record_published(key, seq, nodes, ttl)
  local record = redis.call('GET', key)
  local state, list, last = 0, '', -1
  if record then
    local recorded, sent = string.match(record, '^(%d+)|(.*)$')
    last = tonumber(recorded)
    if last == seq - 1 then
      state, list = 2, sent
    elseif last < seq - 1 then
      state = 1
    else
      state = 3
    end
  end
  if last < seq then
    redis.call('SET', key, seq .. '|' .. nodes, 'PX', ttl)
  end
  return state, list
end
