#!/usr/bin/env python3
"""Writes the seed inputs of tests/fuzz/corpus/ (small valid files of every format a target parses).
Run from the repository root: python3 tests/fuzz/make_seeds.py. Deterministic; standard library only."""
import json, os, struct, random

root = "tests/fuzz/corpus"
rng = random.Random(7)

def put(target, name, data):
    os.makedirs(f"{root}/{target}", exist_ok=True)
    with open(f"{root}/{target}/{name}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

def safetensors(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)

f32 = lambda n: struct.pack(f"<{n}f", *[rng.uniform(-1, 1) for _ in range(n)])
put("safetensors", "two_tensors", safetensors([("a.weight", "F32", [2, 3], f32(6)),
                                               ("b", "BF16", [4], bytes(rng.randrange(256) for _ in range(8)))],
                                              {"format": "pt"}))
put("safetensors", "f16_scalarish", safetensors([("x", "F16", [1], b"\x00\x3c"), ("e", "F32", [0], b"")]))
put("safetensors", "int_types", safetensors([("i", "I32", [2], struct.pack("<2i", 1, -1)), ("u", "U8", [3], b"abc")]))

llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32,
         "max_position_embeddings": 16, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
         "bos_token_id": 1, "eos_token_id": 2}
gpt2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2,
        "vocab_size": 32, "n_positions": 16, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
put("config", "llama.json", json.dumps(llama, indent=1))
put("config", "gpt2.json", json.dumps(gpt2, indent=1))

bpe = {"version": "1.0", "added_tokens": [{"id": 0, "content": "<unk>", "special": True},
                                          {"id": 1, "content": "<s>", "special": True}],
       "normalizer": None,
       "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
       "post_processor": None,
       "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                    {"type": "ByteFallback"}, {"type": "Fuse"}]},
       "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True,
                 "vocab": {"<unk>": 0, "<s>": 1, "\u2581": 2, "a": 3, "b": 4, "ab": 5, "\u2581ab": 6, "<0x41>": 7},
                 "merges": ["a b", "\u2581 ab"]}}
put("tokenizer_json", "metaspace_bpe.json", json.dumps(bpe))
bytelevel = {"version": "1.0", "added_tokens": [{"id": 6, "content": "<|endoftext|>", "special": True}],
             "normalizer": None,
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
             "post_processor": None, "decoder": {"type": "ByteLevel"},
             "model": {"type": "BPE", "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "\u0120": 4, "He": 5},
                       "merges": ["H e"]}}
put("tokenizer_json", "bytelevel_bpe.json", json.dumps(bytelevel))

for i, text in enumerate(["Hello world", "", "\u00e9t\u00e9 \u2581\u2581 <s></s> \x00\xff", "a" * 300,
                          "The quick brown fox jumps over the lazy dog.\n\n\t 12345"]):
    put("tokenizer_encode", f"text{i}", text.encode("utf-8", "surrogatepass"))
put("tokenizer_encode", "invalid_utf8", b"\xff\xfe\xc3(\xe2\x82\xf0\x9f\x98")

# tokenizer_normalizer: a normalizer chain, the separator, a text
SEP = "\n--pare-fuzz-part--\n"
replace = lambda pat, content: {"type": "Replace", "pattern": {"String": pat}, "content": content}
put("tokenizer_normalizer", "bomb-4x128", json.dumps({"type": "Sequence", "normalizers": [replace("e", "e" * 128)] * 4})
    + SEP + "e")
put("tokenizer_normalizer", "metaspace", json.dumps({"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "\u2581"}, replace(" ", "\u2581")]}) + SEP + "a b  c d")
put("tokenizer_normalizer", "null", "null" + SEP + "plain text")

def llama2c(dim=8, hidden=16, layers=1, heads=2, kv=2, vocab=16, seq=8):
    hd = dim // heads
    n = (abs(vocab) * dim * (2 if vocab < 0 else 1) + layers * dim + layers * dim * dim + 2 * layers * dim * kv * hd + layers * dim * dim
         + layers * dim + 3 * layers * hidden * dim + dim + 2 * seq * hd // 2)
    return struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq) + f32(n)
put("llama2c", "tiny.bin", llama2c())
put("llama2c", "gqa.bin", llama2c(dim=8, heads=4, kv=2, vocab=-16))

pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(256)]
letters = "abcdefghijklmnopqrstuvwxyz"
while len(pieces) < 512:
    pieces.append(("\u2581" if rng.random() < 0.3 else "").encode() + "".join(rng.choice(letters)
                  for _ in range(rng.randrange(1, 4))).encode())
out = struct.pack("<i", max(len(p) for p in pieces))
for i, p in enumerate(pieces):
    out += struct.pack("<fi", -float(i), len(p)) + p
put("tokenizer_bin", "tok512.bin", out)

SEP = b"\n--pare-fuzz-part--\n"  # PARE_FUZZ_SEP (tests/fuzz/targets.h): one input, several files

def tensor(dtype, shape, values=None):
    n = 1
    for d in shape:
        n *= d
    if dtype == "F32":
        raw = f32(n) if values is None else struct.pack(f"<{n}f", *values)
    elif dtype == "I32":
        raw = struct.pack(f"<{n}i", *values)
    else:  # U8
        raw = bytes(values)
    return (dtype, shape, raw)

def st(named):
    return safetensors([(name, dt, shape, raw) for name, (dt, shape, raw) in named.items()], {"format": "pt"})

# st_index: model.safetensors.index.json, then the shards model-0000i-of-0000n.safetensors
shard1 = {"a.weight": tensor("F32", [2, 3]), "a.bias": tensor("F32", [2])}
shard2 = {"b.weight": ("BF16", [4], bytes(rng.randrange(256) for _ in range(8)))}
index = {"metadata": {"total_size": 40},
         "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "a.bias": "model-00001-of-00002.safetensors",
                        "b.weight": "model-00002-of-00002.safetensors"}}
put("st_index", "two_shards", json.dumps(index, indent=2).encode() + SEP + st(shard1) + SEP + st(shard2))
put("st_index", "one_shard", json.dumps({"weight_map": {"a.weight": "model-00001-of-00001.safetensors"}}).encode()
    + SEP + st({"a.weight": tensor("F32", [3])}))

# task: the first byte picks the task (byte % 4: piqa, arc-easy, boolq, hellaswag) and the limit (byte / 4 % 3)
piqa = [{"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid."},
        {"goal": "Dry hair \u00e9t\u00e9", "sol1": "Use a towel.", "sol2": "Use water."}]
put("task", "piqa", bytes([0]) + "\n".join(json.dumps(x) for x in piqa).encode() + b"\n" + SEP + b"0\n1\n")
put("task", "piqa_limit", bytes([4]) + "\r\n".join(json.dumps(x) for x in piqa).encode() + SEP + b"1\r\n0")
arc = [{"id": "q1", "question": {"stem": "Which is a mammal?", "choices": [{"text": "cat", "label": "A"},
        {"text": "fish", "label": "B"}, {"text": "ant", "label": "C"}]}, "answerKey": "A"},
       {"id": "q2", "question": {"stem": "2+2?", "choices": [{"text": "3", "label": "1"}, {"text": "4", "label": "2"},
        {"text": "5", "label": "3"}, {"text": "22", "label": "4"}]}, "answerKey": "2"}]
put("task", "arc", bytes([1]) + "\n\n".join(json.dumps(x) for x in arc).encode() + b"\n")
boolq = [{"question": "is the sky blue", "passage": "The sky is blue.", "label": "true"},
         {"question": "is fire cold", "passage": "Fire is hot.", "label": False},
         {"question": "is one odd", "passage": "One is odd.", "answer": True}]
put("task", "boolq", bytes([2]) + b"\xef\xbb\xbf" + "\n".join(json.dumps(x) for x in boolq).encode())
hs = ("Baking: A man puts flour in a bowl. he\n2\nstirs the [title] oven.\ntalks  to a dog.\nadds eggs and mixes.\n"
      "sings [header] a song.\nHome: How to clean a sink. Rinse it [step] well.\n0\nScrub it.\nPaint it.\nFill it.\nBreak it.\n")
put("task", "hellaswag", bytes([3]) + hs.encode())
import bz2
put("task", "hellaswag_bz2", bytes([7]) + bz2.compress(hs.encode(), 9) + bz2.compress(hs.encode(), 1))

# manifest: pare.json, then model.safetensors, then optionally config.json (else the target's tiny LLaMA:
# hidden 8, FFN 16, one layer, 2 heads over 1 KV head, vocabulary 32)
LIN = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
       "mlp.up_proj", "mlp.down_proj"]
SHAPES = {"self_attn.q_proj": (8, 8), "self_attn.k_proj": (4, 8), "self_attn.v_proj": (4, 8),
          "self_attn.o_proj": (8, 8), "mlp.gate_proj": (16, 8), "mlp.up_proj": (16, 8), "mlp.down_proj": (8, 16)}

def pare_export(states, prefix="model.layers.0.", nonlinear=None, shapes=SHAPES, order=LIN, bias=False):
    """states: per linear, dict(kind=, rank=, kept_out=[...], kept_in=[...], mask=True)."""
    tensors = dict(nonlinear or {"model.embed_tokens.weight": tensor("F32", [32, 8]),
                                 "model.layers.0.input_layernorm.weight": tensor("F32", [8], [1.0] * 8),
                                 "model.layers.0.post_attention_layernorm.weight": tensor("F32", [8], [1.0] * 8),
                                 "model.norm.weight": tensor("F32", [8], [1.0] * 8),
                                 "lm_head.weight": tensor("F32", [32, 8])})
    lins = []
    for short in order:
        name = prefix + short
        s = states.get(short, {})
        oo, oi = shapes[short]
        ko, ki = s.get("kept_out"), s.get("kept_in")
        out, inn = len(ko) if ko else oo, len(ki) if ki else oi
        kind = s.get("kind", "dense")
        tn = {}
        if kind == "factored":
            r = s["rank"]
            tensors[name + ".A"], tensors[name + ".B"] = tensor("F32", [out, r]), tensor("F32", [r, inn])
            tn["A"], tn["B"] = name + ".A", name + ".B"
            params = r * (out + inn)
        else:
            w = [rng.uniform(-1, 1) for _ in range(out * inn)]
            params = out * inn
            if kind == "masked":
                mask = [1 if (i % 3) else 0 for i in range(out * inn)]
                w = [x if m else 0.0 for x, m in zip(w, mask)]
                tensors[name + ".mask"] = tensor("U8", [out, inn], mask)
                tn["mask"] = name + ".mask"
                params = sum(mask)
            tensors[name + ".weight"] = tensor("F32", [out, inn], w)
            tn["weight"] = name + ".weight"
        if bias:
            tensors[name + ".bias"] = tensor("F32", [out])
            tn["bias"] = name + ".bias"
            params += out
        for key, idx in (("kept_out", ko), ("kept_in", ki)):
            if idx:
                tensors[f"{name}.{key}"] = tensor("I32", [len(idx)], idx)
                tn[key] = f"{name}.{key}"
        lins.append({"name": name, "kind": kind, "shape": [out, inn], "orig_shape": [oo, oi],
                     "rank": s.get("rank"), "bias": bias, "kept_out": out if ko else None,
                     "kept_in": inn if ki else None, "params": params, "tensors": tn})
    return lins, tensors

def manifest(lins, arch="LlamaForCausalLM", **extra):
    m = {"format": "pare", "version": 1, "producer": "make_seeds.py", "source": "seed", "architecture": arch,
         "weights": "model.safetensors", "mask_encoding": "U8 [out, in], one byte per weight, 1 = kept",
         "linears": lins}
    m.update(extra)
    return json.dumps(m, indent=2).encode()

lins, tens = pare_export({})
put("manifest", "dense", manifest(lins) + SEP + st(tens))
keep12 = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 15]
lins, tens = pare_export({"self_attn.q_proj": {"kind": "factored", "rank": 2},
                          "self_attn.o_proj": {"kind": "masked"},
                          "mlp.gate_proj": {"kept_out": keep12}, "mlp.up_proj": {"kept_out": keep12, "kind": "masked"},
                          "mlp.down_proj": {"kept_in": keep12, "kind": "factored", "rank": 3}})
put("manifest", "compressed", manifest(lins, ffn_widths=[12], compression={"method": "seed"}) + SEP + st(tens))
gpt2_cfg = dict(gpt2, n_embd=8, n_layer=1, n_head=2, vocab_size=32, n_positions=16)
G = {"attn.c_attn.q": (8, 8), "attn.c_attn.k": (8, 8), "attn.c_attn.v": (8, 8), "attn.c_proj": (8, 8),
     "mlp.c_fc": (32, 8), "mlp.c_proj": (8, 32)}
nl = {"transformer.wte.weight": tensor("F32", [32, 8]), "transformer.wpe.weight": tensor("F32", [16, 8]),
      "transformer.h.0.ln_1.weight": tensor("F32", [8]), "transformer.h.0.ln_1.bias": tensor("F32", [8]),
      "transformer.h.0.ln_2.weight": tensor("F32", [8]), "transformer.h.0.ln_2.bias": tensor("F32", [8]),
      "transformer.ln_f.weight": tensor("F32", [8]), "transformer.ln_f.bias": tensor("F32", [8])}
lins, tens = pare_export({"mlp.c_fc": {"kept_out": list(range(0, 32, 2))}, "mlp.c_proj": {"kept_in": list(range(0, 32, 2))},
                          "attn.c_proj": {"kind": "factored", "rank": 4}},
                         prefix="transformer.h.0.", nonlinear=nl, shapes=G, order=list(G), bias=True)
put("manifest", "gpt2", manifest(lins, arch="GPT2LMHeadModel") + SEP + st(tens) + SEP + json.dumps(gpt2_cfg).encode())

# recipe_params: params {...} body, then --set lines; without the separator the input is --set lines
# against the target's default declarations
put("recipe_params", "sets", b"ratio=0.5\nrank=16\nmethod=asvd\nverbose=yes\ncalib=/tmp/x.txt\nsteps=3\nlr=1e-4\nbits=8\n")
put("recipe_params", "bad_sets", b"ratio=2\nrank=1.5\nmethod=svd2\nverbose=maybe\nsteps=-1\nlr=nan\n=x\nnoeq\nbits=0x8\n"
    b"rank=99999999999999999999\nunknown=1\n")
put("recipe_params", "decls", b'alpha = {0.5, "weight", min = 0, max = 1},\nname = {"x", "a name", choices = {"x", "y"}},\n'
    b'n = {nil, "count", type = "integer", optional = true, min = -3},\nflag = {true, "on or off"},\n'
    b'big = {9007199254740993, "large", max = 9.3e18}' + SEP + b"alpha=0.25\nname=y\nn=-3\nflag=off\nbig=-1\n")
put("recipe_params", "decls_bad", b'x = {1, "d", min = 2},\ny = {"s", "d", type = "number"}' + SEP + b"x=3\n")

# recipe_record: a value in tests/fuzz/target_recipe.c's byte code (push_value): 4 = table of N entries
# (key, value), 6 = chain of N nested tables, 5 = reference to the Nth table built (an ancestor: a cycle),
# 0/1 = integer/float (8 bytes), 2 = key-like value (5: string of N bytes), 7 = function
def rec_str(text): return bytes([2, 5, len(text)]) + text
put("recipe_record", "table", bytes([4, 4]) + bytes([5, 1]) + b"a" + bytes([0]) + (42).to_bytes(8, "big")
    + bytes([5, 4]) + b"list" + bytes([4, 2, 0, 1, 0]) + (7).to_bytes(8, "big") + bytes([0, 2]) + rec_str(b"x")
    + bytes([5, 3]) + b"pi" + bytes([1]) + struct.pack(">d", 3.25) + bytes([5, 4]) + b"flag" + bytes([3]))
put("recipe_record", "regress-nested-12", bytes([6, 11]))
put("recipe_record", "regress-nested-40", bytes([6, 39]))
put("recipe_record", "regress-self-cycle", bytes([4, 1]) + bytes([5, 4]) + b"self" + bytes([5, 0]))
put("recipe_record", "nan_inf_function", bytes([4, 3]) + bytes([0, 1]) + bytes([1]) + struct.pack(">d", float("nan"))
    + bytes([0, 2]) + bytes([1]) + struct.pack(">d", float("inf")) + bytes([0, 3]) + bytes([7]))
put("recipe_record", "odd_keys", bytes([4, 3]) + bytes([3, 1]) + bytes([0]) + bytes(8) + bytes([2]) + struct.pack(">d", 1.5)
    + bytes([3]) + bytes([5, 2]) + b"\xff\xfe" + bytes([3]))

# states each linear allows but the model does not (the forward computes whole heads; FFN widths agree):
# the reader refuses them (tests/test_fuzz.c checks the messages)
lins, tens = pare_export({"self_attn.q_proj": {"kept_out": [0, 1, 2, 3, 4, 5]}})
put("manifest", "sliced_attention", manifest(lins) + SEP + st(tens))
lins, tens = pare_export({"mlp.gate_proj": {"kept_out": keep12}})
put("manifest", "ffn_mismatch", manifest(lins) + SEP + st(tens))
