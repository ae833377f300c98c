local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function whole(n)
  return string.format('%.0f', n)
end

-- The slow-down factor of an adaptive key, or nil when it has none (full speed): halved at a
-- penalty, held for hold_us, then raised by recover_per_us each microsecond back to 1.
local function adaptive_factor(key, now)
  local state = redis.call('HMGET', key, 'factor', 'at', 'hold_us', 'recover_per_us')
  if not state[1] then
    return nil
  end
  local since = now - tonumber(state[2]) - tonumber(state[3])
  local factor = tonumber(state[1]) + tonumber(state[4]) * math.max(0, since)
  return math.min(1, factor)
end
