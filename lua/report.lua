--[[ report: text for results: parameter counts under both conventions, compression and evaluation
summaries, aligned tables. Pure functions of the tables the pare module returns. ]]
local report = {}

-- "N -> M (x% removed)"
local function change(before, after)
    return string.format("%d -> %d (%.1f%% removed)", before, after, before > 0 and 100 * (1 - after / before) or 0)
end

--[[ Parameter counts of m:info().params under both conventions papers use: decoder-block linear
layers only (Wanda, ASVD, SVD-LLM) and all parameters, embeddings and head included (LLM-Pruner,
LoRAP). Returns {block_linear = {before, after, removed}, total = {before, after, removed}}. ]]
function report.conventions(params)
    return {
        block_linear = {params.block_linear_dense, params.block_linear, params.block_linear_removed},
        total = {params.total_dense, params.total, params.total_removed},
    }
end

-- Summary lines of a m:compress / m:factorize / m:prune report r, with m:info() after it.
function report.compression(r, info)
    local lines = {}
    if r.method then lines[#lines + 1] = string.format("method        %s: %s", r.method, r.what or "") end
    if r.ratio then
        lines[#lines + 1] = string.format("ratio         %.3f of decoder-block linear parameters", r.ratio)
    end
    local c = report.conventions(info.params)
    lines[#lines + 1] = "block linears " .. change(c.block_linear[1], c.block_linear[2])
    lines[#lines + 1] = "all params    " .. change(c.total[1], c.total[2]) .. ", embeddings and head included"
    if r.factorized then
        lines[#lines + 1] = string.format("matrices      %d factorized (worst relative error %.3f), %d FFNs channel-pruned, %d masked",
            r.factorized, r.worst_rel_error, r.channel_blocks or 0, r.masked or 0)
    end
    return lines
end

-- One line for a m:eval result; 17 significant digits so that runs can be compared exactly.
function report.eval_line(e)
    return string.format("perplexity    %.17g on %s (window %d, %d targets)", e.ppl, e.data, e.window, e.predicted)
end

--[[ An aligned text table: columns = {{"title", function(row) -> string}, ...} or {{"title", "field"}};
numbers right-aligned. Returns the lines. ]]
function report.table(rows, columns)
    local cells, widths = {}, {}
    for c, col in ipairs(columns) do widths[c] = #col[1] end
    for r, row in ipairs(rows) do
        cells[r] = {}
        for c, col in ipairs(columns) do
            local v = type(col[2]) == "function" and col[2](row) or row[col[2]]
            if type(v) == "number" then v = math.type(v) == "integer" and tostring(v) or string.format("%.4f", v) end
            v = tostring(v == nil and "" or v)
            cells[r][c] = v
            if #v > widths[c] then widths[c] = #v end
        end
    end
    local lines, head = {}, {}
    for c, col in ipairs(columns) do head[c] = string.format("%-" .. widths[c] .. "s", col[1]) end
    lines[1] = table.concat(head, "  ")
    for r = 1, #rows do
        local out = {}
        for c = 1, #columns do
            local v = cells[r][c]
            out[c] = tonumber(v) and string.format("%" .. widths[c] .. "s", v) or string.format("%-" .. widths[c] .. "s", v)
        end
        lines[#lines + 1] = table.concat(out, "  ")
    end
    return lines
end

return report
