/* `pare generate`: continue a prompt greedily or by sampling, streaming text as it is produced. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/generate.h"

typedef struct {
    const pare_model *m;
    const int32_t *ids; /* prompt then new tokens */
    int n;
    size_t printed; /* bytes of the decoded text already written */
    int stream;
} stream_state;

/* Shows the decode of the whole sequence (special tokens skipped), printing what is new once it
 * is stable, so a token that splits a UTF-8 character never prints a replacement character. */
static void show(stream_state *s, int final)
{
    char *text;
    size_t len;
    pare_error err;
    if (pare_tokenizer_decode(s->m->tok, s->ids, (size_t)s->n, 1, &text, &len, &err))
        return;
    int partial = !final && len >= 3 && memcmp(text + len - 3, "\xef\xbf\xbd", 3) == 0;
    if (len > s->printed && !partial) {
        fwrite(text + s->printed, 1, len - s->printed, stdout);
        fflush(stdout);
        s->printed = len;
    }
    free(text);
}

static int on_token(void *user, int32_t token)
{
    stream_state *s = user;
    s->n++;
    if (s->stream)
        show(s, 0);
    return cli_interrupted();
}

static json_t *ids_json(const int32_t *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

int cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *prompt = "", *tok = NULL;
    pare_gen_opts o;
    pare_gen_defaults(&o);
    double temperature = o.temperature, top_p = o.top_p;
    int json = 0, help = 0, ignore_eos = 0;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder (Hugging Face) or llama2.c checkpoint"},
        {"prompt", OPT_STR, &prompt, "text to continue (default: empty, i.e. BOS only)"},
        {"n", OPT_INT, &o.max_new, cli_help_default("new tokens to generate", o.max_new)},
        {"temperature", OPT_DOUBLE, &temperature, cli_help_default("0 for greedy decoding", temperature)},
        {"top-p", OPT_DOUBLE, &top_p, cli_help_default("nucleus sampling mass in (0, 1]", top_p)},
        {"seed", OPT_U64, &o.seed, cli_help_default("random seed for sampling", (double)o.seed)},
        {"ignore-eos", OPT_FLAG, &ignore_eos, "keep generating after the end-of-sequence token"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"json", OPT_FLAG, &json, "print prompt ids, all ids and the continuation as JSON"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("generate", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("generate", "--model M [--prompt TEXT] [-n N] [--temperature T --top-p P --seed S]", opts, n_opts);
        return 0;
    }
    o.temperature = (float)temperature;
    o.top_p = (float)top_p;
    o.stop_at_eos = !ignore_eos;
    pare_error err = {0};
    if (o.max_new < 0 || o.max_new > 1000000 || temperature < 0 || top_p <= 0 || top_p > 1) {
        pare_fail(&err, PARE_EINVAL, "-n must be in 0..1000000, --temperature >= 0 and --top-p in (0, 1]");
        return cli_error("generate", &err);
    }
    pare_model *m = NULL;
    if (cli_load_model(model, tok, &m, &err))
        return cli_error("generate", &err);
    int rc = 0;
    int32_t *pids = NULL, *ids = NULL;
    size_t np = 0;
    if (!m->tok) {
        pare_fail(&err, PARE_EINVAL, "%s: no tokenizer found; pass --tokenizer", model);
        rc = cli_error("generate", &err);
        goto done;
    }
    if (pare_tokenizer_encode(m->tok, prompt, strlen(prompt), 1, &pids, &np, &err)) {
        rc = cli_error("generate", &err);
        goto done;
    }
    if (np == 0) {
        pare_fail(&err, PARE_EINVAL, "--prompt is empty and the tokenizer adds no BOS: nothing to continue");
        rc = cli_error("generate", &err);
        goto done;
    }
    ids = malloc((np + (size_t)o.max_new) * sizeof *ids);
    if (!ids) {
        pare_fail(&err, PARE_ENOMEM, "out of memory");
        rc = cli_error("generate", &err);
        goto done;
    }
    memcpy(ids, pids, np * sizeof *ids);
    cli_install_sigint();
    /* the prompt is shown with the first new token, once the buffers are allocated and a forward
     * has run: a failure before that leaves stdout empty instead of holding a prompt and no answer */
    stream_state s = {m, ids, (int)np, 0, !json};
    int n = 0;
    if (pare_generate(m, ids, (int)np, &o, on_token, &s, &n, &err)) {
        rc = cli_error("generate", &err);
        goto done;
    }
    char *text = NULL;
    size_t len = 0;
    if (pare_tokenizer_decode(m->tok, ids + np, (size_t)n - np, 0, &text, &len, &err)) {
        rc = cli_error("generate", &err);
        goto done;
    }
    if (json) {
        json_t *j = json_pack("{s:s, s:o, s:o, s:s#}", "prompt", prompt, "prompt_ids", ids_json(ids, (int)np), "ids",
                              ids_json(ids, n), "continuation", text, (int)len);
        rc = cli_print_json("generate", j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    } else {
        show(&s, 1);
        fputc('\n', stdout);
    }
    free(text);
    if (cli_interrupted()) {
        pare_fail(&err, PARE_ECANCELED, "interrupted after %d new tokens", n - (int)np);
        rc = cli_error("generate", &err);
    }
done:
    free(pids);
    free(ids);
    pare_model_free(m);
    return rc;
}
