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

-- The nodes holding a live route of `user` (its hash under `prefix`), each once.
local function live_nodes(prefix, user)
  local all = redis.call('HGETALL', prefix .. ':routes:' .. user)
  local nodes, seen = {}, {}
  for j = 1, #all, 2 do
    if tonumber(all[j + 1]) >= now then
      local node = string.match(all[j], '^([^|]*)|')
      if node and not seen[node] then
        seen[node] = true
        table.insert(nodes, node)
      end
    end
  end
  return nodes
end

-- Moves a conversation's record of its highest published entry (KEY: "<seq>|<ms>|<node>,...":
-- the entry, when it was recorded by Redis's clock, the nodes it went to) to entry `seq`, sent
-- to `nodes` (a comma-separated list), unless a later entry is recorded already, and returns
-- what the record said of entry seq - 1: 0 nothing to say (this is the first entry),
-- 1 not published yet (no record, or a record of an earlier entry: its publisher is behind this
-- one), 2 published (the second value lists its nodes), 3 a later entry was published already,
-- 5 published more than ARRIVED_MS ago (it reached its nodes long since, or was lost).
local ARRIVED_MS = 2000
local function record_published(key, seq, nodes, ttl)
  local record = redis.call('GET', key)
  local state, list, last = 1, '', -1
  if seq <= 1 then
    state = 0
  end
  if record then
    local recorded, at, sent = string.match(record, '^(%d+)|(%d+)|(.*)$')
    if recorded then
      last = tonumber(recorded)
      if last == seq - 1 then
        if now - tonumber(at) > ARRIVED_MS then
          state = 5
        else
          state, list = 2, sent
        end
      elseif last >= seq then
        state = 3
      end
    end
  end
  if last < seq then
    redis.call('SET', key, seq .. '|' .. now .. '|' .. nodes, 'PX', ttl)
  end
  return state, list
end
