-- Append a batch of raw frames to one session stream in a single call, at most once.
local frames, mark = KEYS[1], KEYS[2]
local received, lengths, blob, batch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- frames: the session's frame stream; mark: the number of the last batch this writer
--   appended to it.
-- received: receive time (ms) for every frame, or one per frame, comma separated.
-- lengths: frame lengths in bytes, comma separated; blob: the frames, concatenated
--   (length-prefixed, so any bytes are safe); batch: this batch's number (increasing
--   per writer).
-- Each frame becomes one entry: t = receive time, f = the frame, unchanged.
-- A batch is resent when its reply was lost (Redis restarted or the link broke after
-- the call ran); the mark makes that resend a no-op, returning 0. It still writes the
-- mark: a WAIT after it then covers the first send too (a master replicates in order),
-- where a script that wrote nothing would make WAIT return at once.
local call, sub = redis.call, string.sub
local done = call('GET', mark)
if done and tonumber(done) >= tonumber(batch) then
  call('SET', mark, done)
  return 0
end
local times, same = {}, string.find(received, ',', 1, true) == nil
if not same then
  for t in string.gmatch(received, '%d+') do times[#times + 1] = t end
end
local pos, i = 1, 0
for len in string.gmatch(lengths, '%d+') do
  i = i + 1
  local n = tonumber(len)
  call('XADD', frames, '*', 't', same and received or times[i], 'f', sub(blob, pos, pos + n - 1))
  pos = pos + n
end
call('SET', mark, batch)
return i
