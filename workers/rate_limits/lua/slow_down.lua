-- KEYS[1] = adaptive key; ARGV = min_factor, hold_us, recover_per_us, quiet_us.
-- Halves the current factor, unless it was halved less than quiet_us ago: the replies to the
-- messages that were in flight when the receiver started refusing are one signal, not many.
local now = now_us()
local min_factor = tonumber(ARGV[1])
local hold_us = tonumber(ARGV[2])
local recover_per_us = tonumber(ARGV[3])
local quiet_us = tonumber(ARGV[4])
local current = adaptive_factor(KEYS[1], now)
local last = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if current ~= nil and now - last < quiet_us then
  return tostring(current)
end
local factor = math.max(min_factor, (current or 1) / 2)
redis.call('HSET', KEYS[1], 'factor', tostring(factor), 'at', whole(now),
  'hold_us', whole(hold_us), 'recover_per_us', tostring(recover_per_us))
-- Gone once fully recovered: no state means full speed.
local recovered_us = hold_us + (1 - factor) / recover_per_us
redis.call('PEXPIRE', KEYS[1], math.ceil(recovered_us / 1000) + 1000)
return tostring(factor)
