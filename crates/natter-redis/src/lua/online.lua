-- ARGV: key prefix, then users. Returns 1 or 0 per user: whether they have a live route.
local flags = {}
for i = 2, #ARGV do
  local all = redis.call('HGETALL', ARGV[1] .. ':routes:' .. ARGV[i])
  local flag = 0
  for j = 2, #all, 2 do
    if tonumber(all[j]) >= now then
      flag = 1
      break
    end
  end
  table.insert(flags, flag)
end
return flags
