//! The MCP guard's reading of a JSON-RPC body (which tools a request calls).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mcpauth::fuzzing::called_tools(data);
});
