-- nodes_of for a log entry, which also records where the entry went and reports where the
-- conversation's previous entry went (record_published in common.lua).
-- KEYS[1]: the conversation's record, "<seq>|<ms>|<node>,<node>,..." of the highest entry published.
-- ARGV: key prefix, the entry's seq, the record's lifetime (ms), then the users.
-- Returns: the predecessor's state and its node list or '' (as record_published answers them),
-- then the pairs nodes_of returns.
local out = {0, ''}
local nodes = {}
local seen = {}
for i = 4, #ARGV do
  for _, node in ipairs(live_nodes(ARGV[1], ARGV[i])) do
    table.insert(out, i - 3)
    table.insert(out, node)
    if not seen[node] then
      seen[node] = true
      table.insert(nodes, node)
    end
  end
end
out[1], out[2] = record_published(KEYS[1], tonumber(ARGV[2]), table.concat(nodes, ','), tonumber(ARGV[3]))
return out
