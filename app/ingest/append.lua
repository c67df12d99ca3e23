-- Append a batch of raw frames to one session stream in a single call.
-- KEYS[1] the session's frame stream
-- ARGV[1] receive time (ms) for every frame, or one per frame, comma separated
-- ARGV[2] frame lengths in bytes, comma separated
-- ARGV[3] the frames, concatenated (length-prefixed, so any bytes are safe)
-- Each frame becomes one entry: t = receive time, f = the frame, unchanged.
local blob, key, call, sub = ARGV[3], KEYS[1], redis.call, string.sub
local times, same = {}, string.find(ARGV[1], ',', 1, true) == nil
if not same then
  for t in string.gmatch(ARGV[1], '%d+') do times[#times + 1] = t end
end
local pos, i = 1, 0
for len in string.gmatch(ARGV[2], '%d+') do
  i = i + 1
  local n = tonumber(len)
  call('XADD', key, '*', 't', same and ARGV[1] or times[i], 'f', sub(blob, pos, pos + n - 1))
  pos = pos + n
end
return i
