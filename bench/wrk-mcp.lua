-- wrk script: one MCP `tools/call` of `echo` per request (stateless Streamable HTTP, JSON response).
-- With TOKEN set, sends "Authorization: Bearer $TOKEN" (mcpauth's /api/mcp); without, none
-- (the mcp-baseline server).
local token = os.getenv("TOKEN")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello from wrk"}}}'
