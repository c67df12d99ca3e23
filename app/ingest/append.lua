-- Append a batch of raw frames to one session stream in a single call, at most once, in order.
local frames, mark = KEYS[1], KEYS[2]
local received, lengths, blob, batch, after = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- frames: the session's frame stream; mark: the number of the last batch this writer
--   appended to it.
-- received: receive time (ms) for every frame, or one per frame, comma separated.
-- lengths: frame lengths in bytes, comma separated; blob: the frames, concatenated
--   (length-prefixed, so any bytes are safe); batch: this batch's number (increasing
--   per writer); after: the number of this writer's batch to this stream that must be
--   in before this one (the one before it, while that is not confirmed yet), or 0.
-- Each frame becomes one entry: t = receive time, f = the frame, unchanged.
-- A batch is resent when its reply was lost (Redis restarted or the link broke after
-- the call ran); the mark makes that resend a no-op, returning 0. It still writes the
-- mark: a WAIT after it then covers the first send too (a master replicates in order),
-- where a script that wrote nothing would make WAIT return at once.
-- The writer keeps two batches in flight, on two connections, so a batch can get here
-- before the one it follows. Appended, it would move the mark past that one, whose own
-- send would then pass for a resend and be skipped: lost. So it is refused (-1, nothing
-- written) until the mark reaches `after`; the writer sends it again once that one is in.
local call, sub = redis.call, string.sub
local done = tonumber(call('GET', mark) or 0)
if done >= tonumber(batch) then
  call('SET', mark, done)
  return 0
end
if done < tonumber(after) then
  return -1
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
