-- wrk: POST the JSON-RPC body in $BENCH_BODY (as an MCP client does), then report like
-- wrk-report.lua ($BENCH_REPORT_LUA).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
dofile(os.getenv("BENCH_REPORT_LUA"))
