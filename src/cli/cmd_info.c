/* `pare info`: architecture, parameter counts, memory and the list of linear matrices. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

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
    if (json) {
        json_t *mats = json_array();
        for (int i = 0; i < nl; i++)
            json_array_append_new(mats, json_pack("{s:s, s:[i,i], s:b}", "name", lin[i]->name, "shape", lin[i]->out,
                                                  lin[i]->in, "bias", lin[i]->b != NULL));
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b}, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:o}",
            "model", m->path, "architecture", pare_arch_name(c->arch), "format",
            m->format == PARE_FMT_HF ? "huggingface" : "llama2.c", "dtype", m->source_dtype, "config", "dim", c->dim,
            "layers", c->n_layers, "heads", c->n_heads, "kv_heads", c->n_kv_heads, "head_dim", c->head_dim, "ffn_dim",
            c->ffn_dim, "vocab", c->vocab_size, "max_positions", c->max_pos, "norm_eps", (double)c->norm_eps,
            "rope_theta", c->rope_theta, "tied_head", c->tied_head, "params", "embeddings", (json_int_t)pc.embeddings,
            "block_linear", (json_int_t)pc.block_linear, "norms", (json_int_t)pc.norms, "head", (json_int_t)pc.head,
            "total", (json_int_t)pc.total, "weight_bytes_fp32", (json_int_t)(pc.total * 4), "matrices", mats);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(j);
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
        printf("parameters\n");
        printf("  embeddings      %12zu\n", pc.embeddings);
        printf("  block linears   %12zu\n", pc.block_linear);
        printf("  norms           %12zu\n", pc.norms);
        printf("  head            %12zu%s\n", pc.head, c->tied_head ? "  (tied to the token embedding)" : "");
        printf("  total           %12zu\n", pc.total);
        printf("memory        %.2f MiB of fp32 weights", (double)pc.total * 4 / (1 << 20));
        if (c->arch == PARE_ARCH_LLAMA)
            printf(" (%.2f MiB in the slab, with RoPE tables)", (double)m->slab_floats * 4 / (1 << 20));
        printf("\n");
        printf("linear matrices (%d)\n", nl);
        for (int i = 0; i < nl; i++)
            printf("  %-44s [%d, %d]%s\n", lin[i]->name, lin[i]->out, lin[i]->in, lin[i]->b ? " + bias" : "");
    }
    pare_model_free(m);
    return 0;
}
