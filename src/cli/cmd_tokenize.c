/* `pare tokenize`: ids and pieces of a text under a model's tokenizer, for checking tokenization. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/fileio.h"

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *file = NULL, *tok = NULL;
    int special = 0, count = 0, help = 0;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "model folder or llama2.c checkpoint whose tokenizer to use"},
        {"text", OPT_STR, &text, "text to tokenize"},
        {"file", OPT_STR, &file, "file to tokenize (whole)"},
        {"special", OPT_FLAG, &special, "add special tokens (BOS) as the post-processor does"},
        {"count", OPT_FLAG, &count, "print only the number of tokens"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file, if not next to the model"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("tokenize", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("tokenize", "(--model M | --tokenizer FILE) (--text T | --file F) [--special] [--count]", opts,
                  n_opts);
        return 0;
    }
    pare_error err = {0};
    if (!text == !file) {
        pare_fail(&err, PARE_EINVAL, "give exactly one of --text and --file");
        return cli_error("tokenize", &err);
    }
    /* --tokenizer alone reads a tokenizer.json with no model around it */
    pare_model *m = NULL;
    pare_tokenizer *own_tok = NULL;
    if (!model && tok) {
        if (pare_tokenizer_load_hf(tok, &own_tok, &err))
            return cli_error("tokenize", &err);
    } else if (cli_load_model(model, tok, &m, &err)) {
        return cli_error("tokenize", &err);
    }
    const pare_tokenizer *tk = m ? m->tok : own_tok;
    char *buf = NULL;
    size_t len = text ? strlen(text) : 0, n = 0;
    int32_t *ids = NULL;
    int rc = 0;
    if (!tk) {
        pare_fail(&err, PARE_EINVAL, "%s: no tokenizer found; pass --tokenizer", model);
        rc = cli_error("tokenize", &err);
    } else if (file && pare_read_file(file, &buf, &len, &err)) {
        rc = cli_error("tokenize", &err);
    } else if (pare_tokenizer_encode(tk, file ? buf : text, len, special, &ids, &n, &err)) {
        rc = cli_error("tokenize", &err);
    } else if (count) {
        printf("%zu\n", n);
    } else {
        for (size_t i = 0; i < n; i++) {
            char *piece = NULL;
            size_t pl = 0;
            if (pare_tokenizer_decode(tk, &ids[i], 1, 0, &piece, &pl, &err) == PARE_OK) {
                json_t *js = json_stringn(piece, pl);
                char *q = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
                printf("%d\t%s\n", ids[i], q ? q : "?");
                free(q);
                json_decref(js);
                free(piece);
            }
        }
    }
    free(ids);
    free(buf);
    pare_model_free(m);
    pare_tokenizer_free(own_tok);
    return rc;
}
