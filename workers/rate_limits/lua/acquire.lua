-- ARGV[1] = token naming this permit's connection slots; ARGV[2] = number of limits; then per
-- limit its kind and fields (see redis_limiter.py). KEYS are consumed in the same order.
-- Every limit is checked first and nothing is written unless all allow: a permit never spends
-- a relay's token while the domain says no, nor holds a connection slot while waiting.
-- Returns {1, now_us, 0, taken} when taken (taken: how many limits counted the permit, 0 when
-- none applied), else {0, wait_us, index}: wait_us of the limit that frees last (-1: a
-- connection slot, whose release time nobody knows), index its position.
local now = now_us()
local token = ARGV[1]
local count = tonumber(ARGV[2])
local arg, key = 3, 1
local commits = {}
local wait, denied_by = 0, 0

local function next_arg()
  arg = arg + 1
  return ARGV[arg - 1]
end
local function next_key()
  key = key + 1
  return KEYS[key - 1]
end
local function deny(index, wait_us)
  if denied_by == 0 or wait_us > wait then
    wait, denied_by = wait_us, index
  end
end

for index = 1, count do
  local kind = next_arg()
  if kind == 'closed' then
    local k = next_key()
    local ttl_ms = redis.call('PTTL', k)
    if ttl_ms > 0 then
      deny(index, ttl_ms * 1000)
    elseif ttl_ms == -1 then
      deny(index, -1)
    end
  elseif kind == 'rate' then
    local k = next_key()
    local per_second = tonumber(next_arg())
    local burst = tonumber(next_arg())
    local adaptive = next_arg()
    local applies = true
    if adaptive ~= 'none' then
      local factor = adaptive_factor(next_key(), now)
      if factor == nil then
        applies = adaptive == 'always'
      else
        per_second = per_second * factor
      end
    end
    if applies then
      local interval = 1000000 / per_second
      local tat = tonumber(redis.call('GET', k) or now)
      local new_tat = math.max(tat, now) + interval
      local allow_at = new_tat - burst * interval
      if allow_at > now then
        deny(index, allow_at - now)
      else
        commits[#commits + 1] = {'rate', k, new_tat}
      end
    end
  elseif kind == 'quota' then
    local k = next_key()
    local limit = tonumber(next_arg())
    local bucket_us = tonumber(next_arg())
    local buckets = tonumber(next_arg())
    local current = math.floor(now / bucket_us)
    -- One bucket more than the window holds: the oldest is partly outside, and counting it
    -- whole keeps any rolling window of that length at or under the limit.
    local first = current - buckets
    local fields = redis.call('HGETALL', k)
    local total, oldest, stale = 0, nil, {}
    for i = 1, #fields, 2 do
      local bucket = tonumber(fields[i])
      if bucket < first then
        stale[#stale + 1] = fields[i]
      else
        total = total + tonumber(fields[i + 1])
        if oldest == nil or bucket < oldest then
          oldest = bucket
        end
      end
    end
    if #stale > 0 then
      redis.call('HDEL', k, unpack(stale))
    end
    if total + 1 > limit then
      deny(index, (oldest + buckets + 1) * bucket_us - now)
    else
      commits[#commits + 1] = {'quota', k, current, bucket_us * (buckets + 2)}
    end
  elseif kind == 'slots' then
    local k = next_key()
    local limit = tonumber(next_arg())
    local hold_us = tonumber(next_arg())
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    if redis.call('ZCARD', k) >= limit then
      deny(index, -1)
    else
      commits[#commits + 1] = {'slots', k, now + hold_us, hold_us}
    end
  else
    return redis.error_reply('unknown limit kind ' .. tostring(kind))
  end
end

if denied_by > 0 then
  return {0, whole(wait), denied_by}
end
for _, c in ipairs(commits) do
  if c[1] == 'rate' then
    redis.call('SET', c[2], whole(c[3]), 'PX', math.ceil((c[3] - now) / 1000) + 1)
  elseif c[1] == 'quota' then
    redis.call('HINCRBY', c[2], whole(c[3]), 1)
    redis.call('PEXPIRE', c[2], math.ceil(c[4] / 1000))
  else
    redis.call('ZADD', c[2], whole(c[3]), token)
    redis.call('PEXPIRE', c[2], math.ceil(c[4] / 1000) + 1000)
  end
end
return {1, whole(now), 0, #commits}
