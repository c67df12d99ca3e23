-- Append a batch of raw frames to one session stream in a single call.
-- KEYS[1] the session's frame stream
-- ARGV: receive-time frame receive-time frame ... (entry fields t and f)
for i = 1, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 't', ARGV[i], 'f', ARGV[i + 1])
end
return #ARGV / 2
