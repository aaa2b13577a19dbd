-- ARGV: key prefix, then users. Returns pairs: the user's position (1-based) and a node holding
-- a live route of theirs, once per (user, node).
local out = {}
for i = 2, #ARGV do
  for _, node in ipairs(live_nodes(ARGV[1], ARGV[i])) do
    table.insert(out, i - 1)
    table.insert(out, node)
  end
end
return out
