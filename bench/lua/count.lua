-- Twin of bench/count.basm: a counting loop of N iterations (acc += i, i -= 1 while i > 0).
-- lua5.4 bench/lua/count.lua 100000000
local n = math.tointeger(tonumber(arg[1] or "100000000"))
local start = os.clock()
local acc, i = 0, n
while i > 0 do
  acc = acc + i
  i = i - 1
end
local secs = os.clock() - start
print(string.format("count n=%d sum=%d us=%d ms=%d ns_per_iter=%.2f",
  n, acc, math.floor(secs * 1e6), math.floor(secs * 1e3), secs * 1e9 / math.max(n, 1)))
