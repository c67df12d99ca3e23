-- Extend a session lease only if this worker still holds it.
local lease = KEYS[1]
local consumer, lease_ms = ARGV[1], ARGV[2]
if redis.call('GET', lease) == consumer then
  return redis.call('PEXPIRE', lease, lease_ms)
end
return 0
