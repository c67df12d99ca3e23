-- Append a batch of raw frames to one session stream in a single call, at most once.
-- KEYS[1] the session's frame stream
-- KEYS[2] the writer's mark: the number of the last batch it appended to this stream
-- ARGV[1] receive time (ms) for every frame, or one per frame, comma separated
-- ARGV[2] frame lengths in bytes, comma separated
-- ARGV[3] the frames, concatenated (length-prefixed, so any bytes are safe)
-- ARGV[4] this batch's number (increasing per writer)
-- Each frame becomes one entry: t = receive time, f = the frame, unchanged.
-- A batch is resent when its reply was lost (Redis restarted or the link broke after
-- the call ran); the mark makes that resend a no-op, returning 0.
local blob, key, call, sub = ARGV[3], KEYS[1], redis.call, string.sub
local done = call('GET', KEYS[2])
if done and tonumber(done) >= tonumber(ARGV[4]) then return 0 end
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
call('SET', KEYS[2], ARGV[4])
return i
