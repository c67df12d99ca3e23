-- Apply one folded batch atomically: projection changes, dead letters, checkpoint,
-- acknowledgement and change notice, or nothing at all.
--
-- KEYS[1] meta hash     KEYS[2] dead-letter stream   KEYS[3] frame stream
-- KEYS[4] lease         KEYS[5..] keys the changes touch (all in the session's slot)
-- ARGV[1] checkpoint the worker last wrote ("" for none): a stale worker is refused
-- ARGV[2] the worker's consumer name, which must hold the lease
-- ARGV[3] lease time (ms), renewed here      ARGV[4] consumer group
-- ARGV[5] notice channel                      ARGV[6] notice payload ("" = none)
-- ARGV[7] the batch as JSON (one argument: cheap to send, decoded here by cjson):
--   {"hset": [[key#, [field, value, ...]]], "hdel": [[key#, [field, ...]]],
--    "del": [key#], "sadd": [[key#, [member, ...]]], "dead": [[id, reason, argv#]]}
-- ARGV[8] last entry id of the batch: this consumer's pending entries up to it are
--         acknowledged (the batch and anything at or below the checkpoint)
-- ARGV[9..] raw frames of the dead letters (binary-safe, referenced by argv#)
local holder = redis.call('GET', KEYS[4])
if holder ~= ARGV[2] then
  return redis.error_reply('NOTOWNER lease is held by ' .. tostring(holder))
end
local current = redis.call('HGET', KEYS[1], 'checkpoint') or ''
if current ~= ARGV[1] then
  return redis.error_reply('STALE checkpoint is ' .. current .. ', expected ' .. ARGV[1])
end

local batch = cjson.decode(ARGV[7])
local CHUNK = 4000 -- stays below Lua's unpack() limit

local function each_chunk(list, step, fn)
  local n = #list
  local i = 1
  while i <= n do
    local j = math.min(n, i + CHUNK - 1)
    if step == 2 and (j - i) % 2 == 0 then j = j - 1 end
    fn(unpack(list, i, j))
    i = j + 1
  end
end

for _, k in ipairs(batch['del'] or {}) do
  redis.call('DEL', KEYS[k])
end
for _, change in ipairs(batch['hset'] or {}) do
  local key = KEYS[change[1]]
  each_chunk(change[2], 2, function(...) redis.call('HSET', key, ...) end)
end
for _, change in ipairs(batch['hdel'] or {}) do
  local key = KEYS[change[1]]
  each_chunk(change[2], 1, function(...) redis.call('HDEL', key, ...) end)
end
for _, change in ipairs(batch['sadd'] or {}) do
  local key = KEYS[change[1]]
  each_chunk(change[2], 1, function(...) redis.call('SADD', key, ...) end)
end
for _, dead in ipairs(batch['dead'] or {}) do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*',
    'id', dead[1], 'reason', dead[2], 'f', ARGV[dead[3]])
end
local acked = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[3], ARGV[4], '-', ARGV[8], 1000000, ARGV[2])) do
  acked[#acked + 1] = p[1]
end
each_chunk(acked, 1, function(...) redis.call('XACK', KEYS[3], ARGV[4], ...) end)

redis.call('PEXPIRE', KEYS[4], ARGV[3])
if ARGV[6] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return 'OK'
