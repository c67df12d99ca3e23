-- Extend a session lease only if this worker still holds it.
-- KEYS[1] lease   ARGV[1] consumer name   ARGV[2] lease time (ms)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
