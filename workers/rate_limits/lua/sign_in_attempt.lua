-- KEYS: the account's hash (failures, next_ms), the address's counter.
-- ARGV: now (ms), address limit, window (ms), free failures, first delay (ms), max delay (ms).
-- Returns {0, 0} when admitted, {1, ms left} for a closed address, {2, ms left} for an account
-- that must wait.
local now = tonumber(ARGV[1])
local address_count = tonumber(redis.call('GET', KEYS[2]) or '0')
if address_count >= tonumber(ARGV[2]) then
  return {1, math.max(redis.call('PTTL', KEYS[2]), 1)}
end
local next_ms = tonumber(redis.call('HGET', KEYS[1], 'next_ms') or '0')
if now < next_ms then
  return {2, next_ms - now}
end
redis.call('INCR', KEYS[2])
if redis.call('PTTL', KEYS[2]) < 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local free = tonumber(ARGV[4])
if failures >= free then
  local delay = math.min(tonumber(ARGV[5]) * 2 ^ (failures - free), tonumber(ARGV[6]))
  redis.call('HSET', KEYS[1], 'next_ms', string.format('%.0f', now + delay))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {0, 0}
