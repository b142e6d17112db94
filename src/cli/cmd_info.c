/* `pare info`: architecture, parameter counts under three conventions (block linears, all
 * parameters, bytes on disk of an export), memory, and the state of every linear matrix. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "core/export.h"
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

static size_t export_bytes(const pare_model *m, pare_export_format f)
{
    pare_export_opts o;
    pare_export_defaults(&o);
    o.format = f;
    size_t bytes = 0;
    pare_error err = {0};
    return pare_export_size(m, &o, &bytes, &err) ? 0 : bytes;
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL, *tok = NULL;
    int json = 0, help = 0;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face) or llama2.c checkpoint"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"json", OPT_FLAG, &json, "print JSON"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("info", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("info", "--model M [--json]", opts, n_opts);
        return 0;
    }
    pare_error err = {0};
    int rc = 0;
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err))
        return cli_error("info", &err);
    const pare_config *c = &m->cfg;
    pare_param_counts pc;
    pare_model_param_counts(m, &pc);
    pare_linear *lin[4096];
    int nl = pare_model_linears(m, lin, 4096);
    if (nl > 4096)
        nl = 4096;
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
            "model", m->path, "architecture", pare_arch_name(c->arch), "format",
            m->format == PARE_FMT_HF ? "huggingface" : "llama2.c", "dtype", m->source_dtype, "config", "dim", c->dim,
            "layers", c->n_layers, "heads", c->n_heads, "kv_heads", c->n_kv_heads, "head_dim", c->head_dim, "ffn_dim",
            c->ffn_dim, "vocab", c->vocab_size, "max_positions", c->max_pos, "norm_eps",
            pare_json_number((double)c->norm_eps), "rope_theta", pare_json_number(c->rope_theta), "tied_head",
            c->tied_head, "params", "embeddings", (json_int_t)pc.embeddings, "block_linear",
            (json_int_t)pc.block_linear, "norms", (json_int_t)pc.norms, "head", (json_int_t)pc.head, "total",
            (json_int_t)pc.total, "weight_bytes_fp32", (json_int_t)(pc.total * 4), "matrices", mats);
        json_t *params = json_object_get(j, "params");
        json_object_set_new(params, "block_linear_dense", json_integer((json_int_t)block_dense));
        json_object_set_new(params, "total_dense", json_integer((json_int_t)total_dense));
        json_object_set_new(j, "export_bytes",
                            json_pack("{s:I, s:I}", "pare", (json_int_t)bytes_pare, "hf_dense", (json_int_t)bytes_hf));
        rc = cli_print_json("info", j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    } else {
        printf("model         %s\n", m->path);
        printf("architecture  %s (%s format, stored %s, computed in fp32)\n", pare_arch_name(c->arch),
               m->format == PARE_FMT_HF ? "Hugging Face" : "llama2.c", m->source_dtype);
        printf("shape         %d layers, hidden %d, %d heads x %d (%d KV heads%s), FFN %d, vocab %d, %d positions\n",
               c->n_layers, c->dim, c->n_heads, c->head_dim, c->n_kv_heads, c->n_kv_heads < c->n_heads ? ", GQA" : "",
               c->ffn_dim, c->vocab_size, c->max_pos);
        printf("norm          %s, eps %g\n", c->arch == PARE_ARCH_GPT2 ? "LayerNorm" : "RMSNorm", (double)c->norm_eps);
        if (c->arch == PARE_ARCH_LLAMA)
            printf("rope          theta %g\n", c->rope_theta);
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
        printf("memory        %.2f MiB of fp32 weights", (double)pc.total * 4 / (1 << 20));
        if (c->arch == PARE_ARCH_LLAMA)
            printf(" (%.2f MiB in the slab, with RoPE tables)", (double)m->slab_floats * 4 / (1 << 20));
        printf("\n");
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
