-- ARGV: key prefix, then users. Returns pairs: the user's position (1-based) and a node holding
-- a live route of theirs, once per (user, node).
local out = {}
for i = 2, #ARGV do
  local all = redis.call('HGETALL', ARGV[1] .. ':routes:' .. ARGV[i])
  local seen = {}
  for j = 1, #all, 2 do
    if tonumber(all[j + 1]) >= now then
      local node = string.match(all[j], '^([^|]*)|')
      if node and not seen[node] then
        seen[node] = true
        table.insert(out, i - 1)
        table.insert(out, node)
      end
    end
  end
end
return out
