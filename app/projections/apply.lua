-- Apply one folded batch atomically: projection changes, dead letters, checkpoint,
-- acknowledgement and change notice, or nothing at all.
local meta, dead_letters, frames, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local expected, consumer, lease_ms, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local publish, channel, notice, body = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
-- meta: the session's meta hash; dead_letters: its dead-letter stream; frames: its
--   frame stream; lease: who owns it. KEYS after these: the keys the changes touch
--   (all in the session's slot), referenced by number from the body.
-- expected: the checkpoint the worker last wrote ("" for none): a stale worker is refused.
-- consumer: the worker's consumer name, which must hold the lease (renewed for lease_ms).
-- publish, channel, notice: how (PUBLISH on one Redis, SPUBLISH on a cluster: the
--   session's channel shares its slot), where and what to publish ("" = no notice).
-- body: the write as JSON (one argument: cheap to send, decoded here by cjson):
--   {"hset": [[key#, [field, value, ...]]], "hdel": [[key#, [field, ...]]],
--    "del": [key#], "sadd": [[key#, [member, ...]]], "dead": [[id, reason, argv#]],
--    "ack": [entry id, ...]}
--   ack: the entries this write folds (and any of the batch found at or below the
--   checkpoint), acknowledged by id: listing the consumer's pending entries (XPENDING)
--   to find them cost more than the rest of a small write.
-- ARGV after these: raw frames of the dead letters (binary-safe, referenced by argv#).
local call = redis.call
local holder = call('GET', lease)
if holder ~= consumer then
  return redis.error_reply('NOTOWNER lease is held by ' .. tostring(holder))
end
local current = call('HGET', meta, 'checkpoint') or ''
if current ~= expected then
  return redis.error_reply('STALE checkpoint is ' .. current .. ', expected ' .. expected)
end

local batch = cjson.decode(body)
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
  call('DEL', KEYS[k])
end
for _, change in ipairs(batch['hset'] or {}) do
  local key = KEYS[change[1]]
  each_chunk(change[2], 2, function(...) call('HSET', key, ...) end)
end
for _, change in ipairs(batch['hdel'] or {}) do
  local key = KEYS[change[1]]
  each_chunk(change[2], 1, function(...) call('HDEL', key, ...) end)
end
for _, change in ipairs(batch['sadd'] or {}) do
  local key = KEYS[change[1]]
  each_chunk(change[2], 1, function(...) call('SADD', key, ...) end)
end
for _, dead in ipairs(batch['dead'] or {}) do
  call('XADD', dead_letters, 'MAXLEN', '~', 100000, '*',
    'id', dead[1], 'reason', dead[2], 'f', ARGV[dead[3]])
end
each_chunk(batch['ack'] or {}, 1, function(...) call('XACK', frames, group, ...) end)

call('PEXPIRE', lease, lease_ms)
if notice ~= '' then
  call(publish, channel, notice)
end
return 'OK'
