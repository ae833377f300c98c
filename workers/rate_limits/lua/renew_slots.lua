-- KEYS: slot sets this permit holds; ARGV[1] = its token, ARGV[2] = hold_us.
-- XX: a slot that already expired (the holder stalled) is not taken back behind others' backs.
local now = now_us()
for _, k in ipairs(KEYS) do
  redis.call('ZADD', k, 'XX', whole(now + tonumber(ARGV[2])), ARGV[1])
end
return 1
