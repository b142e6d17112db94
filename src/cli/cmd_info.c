/* `pare info`: architecture, parameter counts under three conventions (block linears, all
 * parameters, bytes on disk of an export), memory, and the state of every linear matrix. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/export.h"
#include "core/init_model.h"
#include "core/memcheck.h"
#include "core/json_number.h"

/* "dense", "factorized", "masked", each with ", sliced" when channels were removed. */
static const char *state_of(const pare_linear *l, char *buf, size_t cap)
{
    const char *kind = l->kind == PARE_LIN_FACTORED ? "factorized" : l->kind == PARE_LIN_MASKED ? "masked" : "dense";
    snprintf(buf, cap, "%s%s", kind, l->out != l->orig_out || l->in != l->orig_in ? ", sliced" : "");
    return buf;
}

/* What the layer had as loaded: weights and bias at its original shape. */
static size_t dense_params(const pare_linear *l)
{
    return (size_t)l->orig_out * l->orig_in + (l->b ? (size_t)l->orig_out : 0);
}

/* The family's particulars in words: "biases on q, k, v; q/k norms; tied embeddings". */
static void describe_family(const pare_config *c, char *buf, size_t cap)
{
    const pare_family_info *f = pare_config_family(c);
    size_t n = 0;
    buf[0] = '\0';
#define ADD(...) (n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__))
    int biased = 0;
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (pare_lin_kinds[k].hf[c->arch] && pare_config_lin_bias(c, (pare_lin_kind)k))
            ADD("%s%s", biased++ ? ", " : "biases on ", pare_lin_kinds[k].name);
    if (!biased)
        ADD("no biases");
    if (f->qk_norm)
        ADD("; q/k norms (per head)");
    if (f->gemma)
        ADD("; post-attention and post-FFN norms, norms scale by (1 + w), embeddings x sqrt(hidden), GELU-tanh "
            "gate, scores x %g^-0.5",
            c->query_pre_attn_scalar);
    int fused = 0;
    for (int k = 0; k < PARE_LIN_KINDS; k++) {
        const char *t = pare_lin_kinds[k].fused[c->arch];
        if (t && (k == 0 || !pare_lin_kinds[k - 1].fused[c->arch] || strcmp(pare_lin_kinds[k - 1].fused[c->arch], t)))
            ADD("%s%s", fused++ ? ", " : "; fused ", t);
    }
    ADD("; %s embeddings", c->tied_head ? "tied" : "untied");
#undef ADD
}

static const char *rope_type_name(pare_rope_type t)
{
    return t == PARE_ROPE_LINEAR ? "linear" : t == PARE_ROPE_LLAMA3 ? "llama3" : "default";
}

/* Layers that attend through the sliding window, as "0, 2, 3" (the first few, then a count). */
static void sliding_layers(const pare_config *c, char *buf, size_t cap)
{
    size_t n = 0;
    int shown = 0, total = 0;
    buf[0] = '\0';
    for (int l = 0; l < c->n_layers && l < PARE_MAX_LAYERS; l++) {
        if (!c->sliding_window || !c->layer_sliding[l])
            continue;
        if (shown < 12)
            n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%d", shown++ ? ", " : "", l);
        total++;
    }
    if (total > shown)
        snprintf(buf + n, n < cap ? cap - n : 0, " ... (%d of %d)", total, c->n_layers);
}

static size_t export_bytes(const pare_model *m, pare_export_format f)
{
    pare_export_opts o;
    pare_export_defaults(&o);
    o.format = f;
    size_t bytes = 0;
    pare_error err = {0};
    return pare_export_size(m, &o, &bytes, &err) ? 0 : bytes;
}

/* The family, shape, norm, RoPE and attention lines (a model's or a config's). */
static void print_shape(const pare_config *c)
{
    char particulars[512], layers[160];
    describe_family(c, particulars, sizeof particulars);
    printf("family        %s: %s\n", pare_config_family(c)->name, particulars);
    printf("shape         %d layers, hidden %d, %d heads x %d (%d KV heads%s), FFN %d, vocab %d, %d positions\n",
           c->n_layers, c->dim, c->n_heads, c->head_dim, c->n_kv_heads, c->n_kv_heads < c->n_heads ? ", GQA" : "",
           c->ffn_dim, c->vocab_size, c->max_pos);
    printf("norm          %s, eps %g\n", c->arch == PARE_ARCH_GPT2 ? "LayerNorm" : "RMSNorm", (double)c->norm_eps);
    if (c->arch != PARE_ARCH_GPT2) {
        const pare_rope_scaling *rs = &c->rope_scaling;
        printf("rope          theta %g", c->rope_theta);
        if (rs->type == PARE_ROPE_LINEAR)
            printf(", linear scaling (factor %g)", rs->factor);
        else if (rs->type == PARE_ROPE_LLAMA3)
            printf(", llama3 scaling (factor %g, low_freq_factor %g, high_freq_factor %g, original %d positions)",
                   rs->factor, rs->low_freq_factor, rs->high_freq_factor, rs->original_max_pos);
        if (c->rope_local_theta > 0)
            printf("; sliding layers theta %g, unscaled", c->rope_local_theta);
        printf("\n");
    }
    sliding_layers(c, layers, sizeof layers);
    if (c->sliding_window)
        printf("attention     sliding window of %d on layers %s; the others full\n", c->sliding_window,
               layers[0] ? layers : "(none)");
}

/* The parameter counts block. */
static void print_counts(const pare_config *c, const pare_param_counts *pc)
{
    printf("parameters\n");
    printf("  embeddings      %12zu\n", pc->embeddings);
    printf("  block linears   %12zu\n", pc->block_linear);
    printf("  norms           %12zu\n", pc->norms);
    printf("  head            %12zu%s\n", pc->head, c->tied_head ? "  (tied to the token embedding)" : "");
    printf("  total           %12zu  (%.2fB)\n", pc->total, pc->total / 1e9);
}

/* The memory plan as JSON and as one text line: how the model is (or would be) held. */
static json_t *memory_json(const pare_memory_plan *p)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "mode", p->streamed ? "streamed" : "in memory", "limit_bytes",
                     (json_int_t)p->limit_bytes, "resident_bytes", (json_int_t)p->resident_bytes, "mapped_bytes",
                     (json_int_t)p->mapped_bytes, "block_bytes", (json_int_t)p->block_bytes, "cache_bytes",
                     (json_int_t)p->cache_bytes);
}

static void print_memory(const pare_memory_plan *p)
{
    char lim[32], res[32], map[32], blk[32], cache[32];
    pare_format_bytes(p->limit_bytes, lim, sizeof lim);
    pare_format_bytes(p->resident_bytes, res, sizeof res);
    pare_format_bytes(p->mapped_bytes, map, sizeof map);
    pare_format_bytes(p->block_bytes, blk, sizeof blk);
    pare_format_bytes(p->cache_bytes, cache, sizeof cache);
    if (p->streamed)
        printf("memory plan   streamed: %s resident in fp32 (embeddings, head, norms, biases), %s mapped as stored, a "
               "block cache of %s (one block is %s in fp32); limit %s%s%s%s\n",
               res, p->mapped_bytes ? map : "the checkpoint", cache, blk, p->limit_bytes ? lim : "unknown",
               pare_memory_limit_source() ? " (" : "", pare_memory_limit_source() ? pare_memory_limit_source() : "",
               pare_memory_limit_source() ? ")" : "");
    else
        printf("memory plan   in memory: %s of fp32 weights (one block is %s); limit %s%s%s%s\n", res, blk,
               p->limit_bytes ? lim : "unknown", pare_memory_limit_source() ? " (" : "",
               pare_memory_limit_source() ? pare_memory_limit_source() : "", pare_memory_limit_source() ? ")" : "");
}

/* pare info --config: what a model of this shape would be, from its config.json alone (no weights
 * are read or needed): the tools/shapes/ configs, a checkpoint not yet downloaded. */
static int info_config(const char *path, int json)
{
    pare_error err = {0};
    pare_config cfg;
    pare_param_counts pc;
    if (pare_config_load_hf(path, &cfg, &err) || pare_config_param_counts(&cfg, &pc, &err))
        return cli_error("info", &err);
    const pare_config *c = &cfg;
    pare_memory_plan plan; /* as a BF16 checkpoint of this shape would be loaded here */
    pare_error plan_err = {0};
    int fits = pare_memory_plan_make(c, pc.total * 2, &plan, &plan_err) == PARE_OK;
    if (json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b}, s:{s:I, s:I, s:I, s:I, s:I}, "
            "s:{s:I, s:I}}",
            "config", path, "architecture", pare_family_class(c), "family", pare_config_family(c)->name, "shape", "dim",
            c->dim, "layers", c->n_layers, "heads", c->n_heads, "kv_heads", c->n_kv_heads, "head_dim", c->head_dim,
            "ffn_dim", c->ffn_dim, "vocab", c->vocab_size, "max_positions", c->max_pos, "tied_head", c->tied_head,
            "params", "embeddings", (json_int_t)pc.embeddings, "block_linear", (json_int_t)pc.block_linear, "norms",
            (json_int_t)pc.norms, "head", (json_int_t)pc.head, "total", (json_int_t)pc.total, "weight_bytes", "bf16",
            (json_int_t)(pc.total * 2), "f32", (json_int_t)(pc.total * 4));
        json_object_set_new(j, "memory", fits ? memory_json(&plan) : json_pack("{s:s}", "refused", plan_err.msg));
        return cli_print_json("info", j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    }
    printf("config        %s (no weights: the shape alone)\n", path);
    printf("architecture  %s\n", pare_family_class(c));
    print_shape(c);
    print_counts(c, &pc);
    printf("weights       %.2f GB in BF16, %.2f GB in F32\n", pc.total * 2 / 1e9, pc.total * 4 / 1e9);
    if (fits)
        print_memory(&plan);
    else
        printf("memory plan   does not fit: %s\n", plan_err.msg);
    return 0;
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL, *tok = NULL, *config = NULL;
    int json = 0, help = 0;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face) or llama2.c checkpoint"},
        {"config", OPT_STR, &config, "a config.json alone (tools/shapes/*.json): shape and parameter counts, no weights"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"json", OPT_FLAG, &json, "print JSON"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("info", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("info", "--model M | --config CONFIG.json [--json]", opts, n_opts);
        return 0;
    }
    if (config && model) {
        fprintf(stderr, "pare info: give --model or --config, not both\n");
        return EXIT_BAD_INPUT;
    }
    if (config)
        return info_config(config, json);
    pare_error err = {0};
    int rc = 0;
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err))
        return cli_error("info", &err);
    const pare_config *c = &m->cfg;
    pare_param_counts pc;
    pare_model_param_counts(m, &pc);
    pare_memory_plan plan;
    pare_model_memory_plan(m, &plan);
    pare_linear *lin[PARE_MAX_LINEARS];
    int nl = pare_model_linears(m, lin, PARE_MAX_LINEARS);
    size_t block_dense = 0;
    for (int i = 0; i < nl; i++)
        block_dense += dense_params(lin[i]);
    size_t total_dense = pc.total - pc.block_linear + block_dense;
    size_t bytes_pare = export_bytes(m, PARE_EXPORT_PARE), bytes_hf = export_bytes(m, PARE_EXPORT_HF_DENSE);
    char state[64];
    if (json) {
        json_t *mats = json_array();
        for (int i = 0; i < nl; i++) {
            json_t *o = json_pack("{s:s, s:[i,i], s:[i,i], s:b, s:s, s:I, s:I}", "name", lin[i]->name, "shape",
                                  lin[i]->out, lin[i]->in, "loaded_shape", lin[i]->orig_out, lin[i]->orig_in, "bias",
                                  lin[i]->b != NULL, "state", state_of(lin[i], state, sizeof state), "params",
                                  (json_int_t)pare_linear_params(lin[i]), "params_dense",
                                  (json_int_t)dense_params(lin[i]));
            if (lin[i]->kind == PARE_LIN_FACTORED)
                json_object_set_new(o, "rank", json_integer(lin[i]->rank));
            json_array_append_new(mats, o);
        }
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:b}, s:{s:I, s:I, "
            "s:I, s:I, s:I}, s:I, s:o}",
            "model", m->path, "architecture", pare_family_class(c), "format",
            m->format == PARE_FMT_HF ? "huggingface" : "llama2.c", "dtype", m->source_dtype, "config", "dim", c->dim,
            "layers", c->n_layers, "heads", c->n_heads, "kv_heads", c->n_kv_heads, "head_dim", c->head_dim, "ffn_dim",
            c->ffn_dim, "vocab", c->vocab_size, "max_positions", c->max_pos, "norm_eps",
            pare_json_number((double)c->norm_eps), "rope_theta", pare_json_number(c->rope_theta), "tied_head",
            c->tied_head, "params", "embeddings", (json_int_t)pc.embeddings, "block_linear",
            (json_int_t)pc.block_linear, "norms", (json_int_t)pc.norms, "head", (json_int_t)pc.head, "total",
            (json_int_t)pc.total, "weight_bytes_fp32", (json_int_t)(pc.total * 4), "matrices", mats);
        char particulars[512];
        describe_family(c, particulars, sizeof particulars);
        json_t *fam = json_pack("{s:s, s:s, s:s}", "name", pare_config_family(c)->name, "class", pare_family_class(c),
                                "particulars", particulars);
        if (c->arch != PARE_ARCH_GPT2) {
            const pare_rope_scaling *rs = &c->rope_scaling;
            json_object_set_new(fam, "rope_scaling",
                                rs->type == PARE_ROPE_DEFAULT
                                    ? json_null()
                                    : json_pack("{s:s, s:o, s:o, s:o, s:i}", "type", rope_type_name(rs->type), "factor",
                                                pare_json_number(rs->factor), "low_freq_factor",
                                                pare_json_number(rs->low_freq_factor), "high_freq_factor",
                                                pare_json_number(rs->high_freq_factor),
                                                "original_max_position_embeddings", rs->original_max_pos));
            json_object_set_new(fam, "rope_local_theta",
                                c->rope_local_theta > 0 ? pare_json_number(c->rope_local_theta) : json_null());
        }
        json_t *sl = json_array();
        for (int l = 0; l < c->n_layers && c->sliding_window; l++)
            if (c->layer_sliding[l])
                json_array_append_new(sl, json_integer(l));
        json_object_set_new(fam, "sliding_window", c->sliding_window ? json_integer(c->sliding_window) : json_null());
        json_object_set_new(fam, "sliding_layers", sl);
        json_object_set_new(fam, "qk_norm", json_boolean(pare_config_family(c)->qk_norm));
        json_object_set_new(j, "family", fam);
        json_t *params = json_object_get(j, "params");
        json_object_set_new(params, "block_linear_dense", json_integer((json_int_t)block_dense));
        json_object_set_new(params, "total_dense", json_integer((json_int_t)total_dense));
        json_object_set_new(j, "export_bytes",
                            json_pack("{s:I, s:I}", "pare", (json_int_t)bytes_pare, "hf_dense", (json_int_t)bytes_hf));
        json_object_set_new(j, "memory", memory_json(&plan));
        rc = cli_print_json("info", j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    } else {
        printf("model         %s\n", m->path);
        printf("architecture  %s (%s format, stored %s, computed in fp32)\n", pare_family_class(c),
               m->format == PARE_FMT_HF ? "Hugging Face" : "llama2.c", m->source_dtype);
        print_shape(c);
        printf("tokenizer     %s\n", m->tok ? pare_tokenizer_describe(m->tok) : "(none found)");
        int compressed = block_dense != pc.block_linear;
        printf("parameters\n");
        printf("  embeddings      %12zu\n", pc.embeddings);
        printf("  block linears   %12zu", pc.block_linear);
        if (compressed)
            printf("  of %zu dense (%.2f%% removed; the Wanda / ASVD convention)", block_dense,
                   100.0 * (1.0 - (double)pc.block_linear / (double)block_dense));
        printf("\n  norms           %12zu\n", pc.norms);
        printf("  head            %12zu%s\n", pc.head, c->tied_head ? "  (tied to the token embedding)" : "");
        printf("  total           %12zu", pc.total);
        if (compressed)
            printf("  of %zu dense (%.2f%% removed; the LLM-Pruner / LoRAP convention)", total_dense,
                   100.0 * (1.0 - (double)pc.total / (double)total_dense));
        printf("\nexport size   %.2f MiB as a pare export (F32, compressed layers kept compact), %.2f MiB as hf-dense "
               "F32\n",
               (double)bytes_pare / (1 << 20), (double)bytes_hf / (1 << 20));
        print_memory(&plan);
        printf("linear matrices (%d)\n", nl);
        for (int i = 0; i < nl; i++) {
            const pare_linear *l = lin[i];
            char shape[48], rank[24] = "";
            snprintf(shape, sizeof shape, "[%d, %d]%s", l->out, l->in, l->b ? " + bias" : "");
            if (l->kind == PARE_LIN_FACTORED)
                snprintf(rank, sizeof rank, " rank %d", l->rank);
            printf("  %-44s %-18s %-18s%-10s %10zu params\n", l->name, shape, state_of(l, state, sizeof state), rank,
                   pare_linear_params(l));
        }
    }
    pare_model_free(m);
    return rc;
}
