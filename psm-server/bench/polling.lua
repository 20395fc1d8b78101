-- wrk script: Polling on the sessions listed in $PSM_BENCH_IDS, round robin, as gw-bench.
local ids = {}
for line in io.lines(os.getenv("PSM_BENCH_IDS")) do ids[#ids + 1] = line end
local key = os.getenv("PSM_BENCH_KEY")
local path = "/api/services/v1/secureaccessgateway/Polling"
local headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
local i = math.random(#ids)
request = function()
  i = i % #ids + 1
  return wrk.format("POST", path, headers,
    '{"session":"' .. ids[i] .. '","processInstance":"gw-bench"}')
end
