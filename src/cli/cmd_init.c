/* `pare init`: a random-initialized model of any supported family and shape (a config.json, e.g.
 * one of tools/shapes/) written as an ordinary Hugging Face folder, streamed to disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/init_model.h"

/* --dtype as users spell it (bf16, f16, f32; the safetensors names are accepted too). */
static pare_status parse_dtype(const char *s, pare_dtype *dt, pare_error *err)
{
    if (pare_float_dtype_parse(s, dt))
        return PARE_OK;
    return pare_fail(err, PARE_EINVAL, "--dtype '%s' is not supported; supported: bf16, f16, f32", s);
}

int cmd_init(int argc, char **argv)
{
    const char *config = NULL, *out = NULL, *dtype = "bf16", *tok = NULL;
    uint64_t seed = 0;
    size_t shard = (size_t)PARE_INIT_DEFAULT_SHARD_BYTES;
    int overwrite = 0, help = 0;
    cli_opt opts[] = {
        {"config", OPT_STR, &config, "config.json of the shape (tools/shapes/*.json, a model's own)"},
        {"out", OPT_STR, &out, "folder to create (a Hugging Face model folder)"},
        {"dtype", OPT_STR, &dtype, "stored dtype: bf16 (default), f16 or f32"},
        {"seed", OPT_U64, &seed, "seed of the random values (default 0); the same seed gives the same bytes"},
        {"tokenizer", OPT_STR, &tok, "tokenizer file copied into the folder (tokenizer.json, tokenizer.model)"},
        {"max-shard-size", OPT_SIZE, &shard,
         cli_help("bytes per safetensors shard, as transformers shards (default %llu)",
                  (unsigned long long)PARE_INIT_DEFAULT_SHARD_BYTES)},
        {"overwrite", OPT_FLAG, &overwrite, "replace an existing model folder once the new one is complete"},
        {"help", OPT_FLAG, &help, "show this help"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse("init", argc, argv, opts, n_opts))
        return EXIT_BAD_INPUT;
    if (help) {
        cli_usage("init", "--config CONFIG.json --out DIR [--dtype bf16|f16|f32] [--seed N] [--tokenizer FILE]", opts,
                  n_opts);
        return 0;
    }
    pare_error err = {0};
    pare_init_opts o;
    pare_init_defaults(&o);
    if (!config || !out) {
        pare_fail(&err, PARE_EINVAL, "%s is required", !config ? "--config" : "--out");
        return cli_error("init", &err);
    }
    if (parse_dtype(dtype, &o.dtype, &err))
        return cli_error("init", &err);
    if (shard == 0) {
        pare_fail(&err, PARE_EINVAL, "--max-shard-size 0: must be a positive number of bytes");
        return cli_error("init", &err);
    }
    int bad_out = cli_check_out("init", "--out", out);
    if (bad_out)
        return bad_out;
    o.seed = seed;
    o.tokenizer = tok;
    o.overwrite = overwrite;
    o.max_shard_bytes = shard;
    cli_install_sigint();
    /* the progress rate in MB/s: the config's parameters at the dtype's size */
    pare_config cfg;
    pare_param_counts pc = {0};
    if (pare_config_load_hf(config, &cfg, &err) || pare_config_param_counts(&cfg, &pc, &err))
        return cli_error("init", &err);
    cli_progress prog;
    cli_progress_init(&prog, "init", (double)pc.total * pare_dtype_size(o.dtype) / 1e6, "MB");
    pare_progress pp = {cli_progress_cb, &prog};
    pare_init_report rep;
    double t0 = cli_now();
    pare_status st = pare_init_model(config, out, &o, &pp, &rep, &err);
    cli_progress_done(&prog);
    if (st)
        return cli_error("init", &err);
    double secs = cli_now() - t0;
    printf("wrote %s: %zu tensors, %zu parameters, %.2f GB on disk (%d file%s of weights, largest tensor %.1f MiB) "
           "in %.1f s (%.0f MB/s)\n",
           out, rep.tensors, rep.params, rep.bytes_on_disk / 1e9, rep.shards, rep.shards > 1 ? "s" : "",
           rep.largest_tensor_bytes / 1048576.0, secs, secs > 0 ? rep.tensor_bytes / 1e6 / secs : 0);
    return 0;
}
