-- Apply one folded batch atomically: projection changes, dead letters, checkpoint,
-- acknowledgement and change notice, or nothing at all.
--
-- KEYS[1] meta hash     KEYS[2] dead-letter stream   KEYS[3] frame stream
-- KEYS[4] lease         KEYS[5..] keys the ops touch (all in the session's slot)
-- ARGV[1] checkpoint the worker last wrote ("" for none): a stale worker is refused
-- ARGV[2] the worker's consumer name, which must hold the lease
-- ARGV[3] lease time (ms), renewed here      ARGV[4] consumer group
-- ARGV[5] notice channel                      ARGV[6] notice payload ("" = none)
-- ARGV[7] number of stream ids to XACK, followed by the ids
-- then ops: <op> <key index> <arg count> <args...>
--   H = HSET field value ...   D = HDEL field ...   X = DEL   S = SADD member ...
--   A = XADD KEYS[2] MAXLEN ~ <first arg> * field value ...
local holder = redis.call('GET', KEYS[4])
if holder ~= ARGV[2] then
  return redis.error_reply('NOTOWNER lease is held by ' .. tostring(holder))
end
local current = redis.call('HGET', KEYS[1], 'checkpoint') or ''
if current ~= ARGV[1] then
  return redis.error_reply('STALE checkpoint is ' .. current .. ', expected ' .. ARGV[1])
end

local CHUNK = 4000
local function call_chunked(cmd, key, args, first, last, step)
  local i = first
  while i <= last do
    local j = math.min(last, i + CHUNK - 1)
    if step == 2 and (j - i) % 2 == 0 then j = j - 1 end
    redis.call(cmd, key, unpack(args, i, j))
    i = j + 1
  end
end

local nack = tonumber(ARGV[7])
local i = 8 + nack
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  local count = tonumber(ARGV[i + 2])
  local first, last = i + 3, i + 2 + count
  if op == 'H' then
    call_chunked('HSET', key, ARGV, first, last, 2)
  elseif op == 'D' then
    call_chunked('HDEL', key, ARGV, first, last, 1)
  elseif op == 'S' then
    call_chunked('SADD', key, ARGV, first, last, 1)
  elseif op == 'X' then
    redis.call('DEL', key)
  elseif op == 'A' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[first], '*', unpack(ARGV, first + 1, last))
  else
    return redis.error_reply('BADOP ' .. tostring(op))
  end
  i = last + 1
end

local a = 8
while a <= 7 + nack do
  local b = math.min(7 + nack, a + CHUNK - 1)
  redis.call('XACK', KEYS[3], ARGV[4], unpack(ARGV, a, b))
  a = b + 1
end
redis.call('PEXPIRE', KEYS[4], ARGV[3])
if ARGV[6] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return 'OK'
