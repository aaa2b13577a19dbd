-- nodes_of for a log entry, which also records where the entry went and reports where the
-- conversation's previous entry went (record_published in common.lua).
-- KEYS[1]: the conversation's record, "<seq>|<node>,<node>,..." of the highest entry published.
-- ARGV: key prefix, the entry's seq, the record's lifetime (ms), then the users.
-- Returns: the predecessor's state (0 no record, 1 not published yet, 2 published: the second
-- element lists its nodes, 3 a later entry was published already), that list or '', then the
-- pairs nodes_of returns.
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
out[1], out[2] = record_published(KEYS[1], tonumber(ARGV[2]), table.concat(nodes, ','), tonumber(ARGV[3]))
return out
