-- wrk script: GET with "Authorization: Bearer <t>", t drawn at random per request from the
-- tokens in the file $TOKENS_FILE (one per line): validation spread over many distinct tokens.
local path = os.getenv("TOKENS_FILE") or error("TOKENS_FILE env var is required")
local tokens = {}
for line in io.lines(path) do
  if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
end
if #tokens == 0 then error("no tokens in " .. path) end
math.randomseed(12345)
wrk.method = "GET"
request = function()
  return wrk.format(nil, nil, { Authorization = tokens[math.random(#tokens)] })
end
