-- wrk script: EncoderClaim (one session per call) as enc-bench.
wrk.method = "POST"
wrk.path = "/api/services/v1/secureaccessgateway/EncoderClaim"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PSM_BENCH_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"processInstance":"enc-bench"}'
