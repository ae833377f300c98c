-- Adds a group of outcomes to the per-relay hash (KEYS[1]) and per-domain sorted set (KEYS[2]).
-- ARGV: lifetime (s), number of relays, then relay/count pairs, then domain/count pairs.
local lifetime_s, relays = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, 2 + 2 * relays, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = 3 + 2 * relays, #ARGV, 2 do
  redis.call('ZINCRBY', KEYS[2], ARGV[i + 1], ARGV[i])
end
redis.call('EXPIRE', KEYS[1], lifetime_s)
redis.call('EXPIRE', KEYS[2], lifetime_s)
