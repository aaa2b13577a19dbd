-- nodes_of for a log entry, which also records where the entry went and reports where the
-- conversation's previous entry went.
-- KEYS[1]: the conversation's record, "<seq>|<node>,<node>,..." of the highest entry published.
-- ARGV: key prefix, the entry's seq, the record's lifetime (ms), then the users.
-- Returns: the predecessor's state (0 no record, 1 not published yet, 2 published: the second
-- element lists its nodes, 3 a later entry was published already), that list or '', then the
-- pairs nodes_of returns.
local seq = tonumber(ARGV[2])
local out = {0, ''}
local nodes = {}
local seen = {}
for i = 4, #ARGV do
  local all = redis.call('HGETALL', ARGV[1] .. ':routes:' .. ARGV[i])
  local mine = {}
  for j = 1, #all, 2 do
    if tonumber(all[j + 1]) >= now then
      local node = string.match(all[j], '^([^|]*)|')
      if node and not mine[node] then
        mine[node] = true
        table.insert(out, i - 3)
        table.insert(out, node)
        if not seen[node] then
          seen[node] = true
          table.insert(nodes, node)
        end
      end
    end
  end
end
local record = redis.call('GET', KEYS[1])
local last = -1
if record then
  local recorded, list = string.match(record, '^(%d+)|(.*)$')
  last = tonumber(recorded)
  if last == seq - 1 then
    out[1] = 2
    out[2] = list
  elseif last < seq - 1 then
    out[1] = 1
  else
    out[1] = 3
  end
end
if last < seq then
  redis.call('SET', KEYS[1], seq .. '|' .. table.concat(nodes, ','), 'PX', tonumber(ARGV[3]))
end
return out
