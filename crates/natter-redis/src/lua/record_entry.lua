-- The record half of nodes_of_entry, for a fan-out worker that looked an entry's recipients up
-- itself (in batches): records that the entry went to the given nodes and reports where the
-- conversation's previous entry went. Once per entry: the first call's answer is kept in the
-- entry's marker and given again to a later call (its job delivered again), until the entry is
-- marked published (routes.rs sets the marker to 'published' after publishing).
-- KEYS[1]: the conversation's record (as nodes_of_entry); KEYS[2]: the entry's marker.
-- ARGV: the entry's seq, the lifetime of the record (ms), of the marker (ms), then the nodes.
-- Returns: the predecessor's state (as nodes_of_entry, or 4: the entry was published already)
-- and its node list or ''.
local marker = redis.call('GET', KEYS[2])
if marker == 'published' then
  return {4, ''}
end
if marker then
  local state, list = string.match(marker, '^(%d)|(.*)$')
  if state then
    return {tonumber(state), list}
  end
end
local nodes = {}
for i = 4, #ARGV do
  table.insert(nodes, ARGV[i])
end
local state, list = record_published(KEYS[1], tonumber(ARGV[1]), table.concat(nodes, ','), tonumber(ARGV[2]))
redis.call('SET', KEYS[2], state .. '|' .. list, 'PX', tonumber(ARGV[3]))
return {state, list}
