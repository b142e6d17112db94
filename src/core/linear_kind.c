/* The table of linear kinds (see linear_kind.h): the one place that spells out q, k, v, o, gate, up
 * and down, their shapes and their Hugging Face names. */
#include "linear_kind.h"

#include <string.h>

#include "model.h"

/* clang-format off */
const pare_lin_kind_info pare_lin_kinds[PARE_LIN_KINDS] = {
    /*                 name    ffn input         out              in               HF name: LLaMA, GPT-2, Phi-3                                     fused: LLaMA, GPT-2, Phi-3 */
    [PARE_LIN_Q]    = {"q",    0, PARE_IN_ATTN, PARE_DIM_QUERY,  PARE_DIM_HIDDEN, {"self_attn.q_proj", "attn.c_attn.q", "self_attn.qkv_proj.q"},  {NULL, "attn.c_attn", "self_attn.qkv_proj"}},
    [PARE_LIN_K]    = {"k",    0, PARE_IN_ATTN, PARE_DIM_KV,     PARE_DIM_HIDDEN, {"self_attn.k_proj", "attn.c_attn.k", "self_attn.qkv_proj.k"},  {NULL, "attn.c_attn", "self_attn.qkv_proj"}},
    [PARE_LIN_V]    = {"v",    0, PARE_IN_ATTN, PARE_DIM_KV,     PARE_DIM_HIDDEN, {"self_attn.v_proj", "attn.c_attn.v", "self_attn.qkv_proj.v"},  {NULL, "attn.c_attn", "self_attn.qkv_proj"}},
    [PARE_LIN_O]    = {"o",    0, PARE_IN_O,    PARE_DIM_HIDDEN, PARE_DIM_QUERY,  {"self_attn.o_proj", "attn.c_proj",   "self_attn.o_proj"},      {NULL, NULL, NULL}},
    [PARE_LIN_GATE] = {"gate", 1, PARE_IN_MLP,  PARE_DIM_FFN,    PARE_DIM_HIDDEN, {"mlp.gate_proj",    NULL,            "mlp.gate_up_proj.gate"}, {NULL, NULL, "mlp.gate_up_proj"}},
    [PARE_LIN_UP]   = {"up",   1, PARE_IN_MLP,  PARE_DIM_FFN,    PARE_DIM_HIDDEN, {"mlp.up_proj",      "mlp.c_fc",      "mlp.gate_up_proj.up"},   {NULL, NULL, "mlp.gate_up_proj"}},
    [PARE_LIN_DOWN] = {"down", 1, PARE_IN_DOWN, PARE_DIM_HIDDEN, PARE_DIM_FFN,    {"mlp.down_proj",    "mlp.c_proj",    "mlp.down_proj"},         {NULL, NULL, NULL}},
};

const pare_arch_info pare_archs[PARE_ARCHS] = {
    [PARE_ARCH_LLAMA] = {"model.layers.%d.", 0},
    [PARE_ARCH_GPT2]  = {"transformer.h.%d.", 1},
    [PARE_ARCH_PHI3]  = {"model.layers.%d.", 0},
};
/* clang-format on */

int pare_lin_kind_find(const char *name)
{
    for (int k = 0; name && k < PARE_LIN_KINDS; k++)
        if (!strcmp(name, pare_lin_kinds[k].name))
            return k;
    return -1;
}

int pare_lin_kind_of_hf_name(const char *name)
{
    size_t n = strlen(name);
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        for (int a = 0; a < PARE_ARCHS; a++) {
            const char *hf = pare_lin_kinds[k].hf[a];
            size_t s = hf ? strlen(hf) : 0;
            /* a whole trailing component: "mlp.c_proj" is down, "attn.c_proj" is o */
            if (hf && n > s && name[n - s - 1] == '.' && !strcmp(name + n - s, hf))
                return k;
        }
    return -1;
}

int pare_lin_same_tensor(pare_arch arch, int j, int k)
{
    const char *fj = pare_lin_kinds[j].fused[arch], *fk = pare_lin_kinds[k].fused[arch];
    return j == k || (fj && fk && !strcmp(fj, fk));
}

void pare_lin_shape(const pare_config *c, pare_lin_kind k, int *out, int *in)
{
    const int size[] = {[PARE_DIM_HIDDEN] = c->dim,
                        [PARE_DIM_QUERY] = c->n_heads * c->head_dim,
                        [PARE_DIM_KV] = c->n_kv_heads * c->head_dim,
                        [PARE_DIM_FFN] = c->ffn_dim};
    *out = size[pare_lin_kinds[k].out];
    *in = size[pare_lin_kinds[k].in];
}

int pare_block_kind_of(const pare_block *b, const pare_linear *l)
{
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (l == &b->lin[k])
            return k;
    return -1;
}
