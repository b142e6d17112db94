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
