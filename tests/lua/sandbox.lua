-- A hostile recipe for `pare run --sandbox` (tests/test_lua.c, test_run_sandbox): every escape it
-- tries must be refused, every allowed action must work. It prints one line per attempt.
params {
    text = {"", "a text the user named with --set (may be read)", type = "string"},
}

local function try(what, expect_ok, f, ...)
    local ok, e = pcall(f, ...)
    if ok and e == nil and expect_ok == false then ok = false end -- io.open returns nil, msg on plain failure
    print(string.format("%s %s%s", (ok == expect_ok) and "as-expected" or "UNEXPECTED", what,
                        ok and "" or (": " .. tostring(e))))
end

function run(p)
    local outside = p.model .. "/../outside.txt"       -- beside the model folder, never named by the user
    -- refused
    try("os.execute", false, os.execute, "true")
    try("io.popen", false, io.popen, "true")
    try("package.loadlib", false, package.loadlib, "libc.so.6", "puts")
    try("os.exit", false, os.exit, 0)
    try("debug library", false, function() return debug.getregistry() end)
    try("io.open outside", false, io.open, outside)
    try("io.lines outside", false, io.lines, outside)
    try("dofile outside", false, dofile, outside)
    try("loadfile outside", false, loadfile, outside)
    try("io.open through a symlink", false, io.open, p.model .. "/link")
    try("write beside the model", false, io.open, p.model .. "/../written.txt", "w")
    try("write into the model", false, io.open, p.model .. "/config.json", "a")
    try("os.remove in the model", false, os.remove, p.model .. "/config.json")
    try("binary chunk", false, load, string.dump(function() return 1 end))
    try("pare.load outside", false, pare.load, p.model .. "/../other")
    try("export outside OUT", false, function(m) m:export(p.model .. "/../exported") end, pare.load(p.model))
    package.path = p.model .. "/../?.lua"
    try("require through a changed package.path", false, require, "outside")
    -- allowed
    try("io.open in the model", true, function() assert(io.open(p.model .. "/config.json")):close() end)
    try("io.lines of the named text", true, function() for _ in io.lines(p.text) do end end)
    try("write into OUT", true, function() local f = assert(io.open(pare.out("note.txt"), "w")); f:write("ok"); f:close() end)
    try("require of a module beside the recipe", true, function() assert(require("sandbox_helper").answer == 42) end)
    try("text chunk", true, function() return assert(load("return 1"))() end)
    local m <close> = pare.load(p.model)
    try("eval of the named text", true, function() return m:eval(p.text, {window = 16}) end)
    print("sandbox done")
end
