-- KEYS: adaptive keys. Returns each one's factor as a string, '' for none (full speed).
local now = now_us()
local factors = {}
for i, k in ipairs(KEYS) do
  local factor = adaptive_factor(k, now)
  factors[i] = factor and tostring(factor) or ''
end
return factors
