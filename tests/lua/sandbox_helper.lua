-- A module beside tests/lua/sandbox.lua: a sandboxed recipe may require Lua files from its own folder.
return {answer = 42}
