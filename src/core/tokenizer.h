/* Tokenizers: Hugging Face tokenizer.json (BPE with ByteLevel or Metaspace/normalizer pipelines,
 * byte fallback, added tokens) and llama2.c tokenizer.bin, behind one interface. */
#ifndef PARE_TOKENIZER_H
#define PARE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct pare_tokenizer pare_tokenizer;

/* Loads a tokenizer.json. Unsupported model types or components are PARE_EUNSUPPORTED errors
 * naming the file and the component (e.g. "tokenizer.json: model type 'Unigram' is not supported;
 * supported: BPE"). */
pare_status pare_tokenizer_load_hf(const char *json_path, pare_tokenizer **out, pare_error *err);

/* Loads a llama2.c tokenizer.bin holding vocab_size entries (vocab size comes from the checkpoint). */
pare_status pare_tokenizer_load_llama2c(const char *bin_path, int vocab_size, pare_tokenizer **out, pare_error *err);

/* Another owner for tok (it is immutable once loaded); each owner calls pare_tokenizer_free. */
pare_tokenizer *pare_tokenizer_retain(pare_tokenizer *tok);
void pare_tokenizer_free(pare_tokenizer *tok);

/* Encodes len bytes of UTF-8 text. add_special != 0 applies the post-processor (BOS for LLaMA
 * tokenizers; nothing for GPT-2's ByteLevel post-processor). Added/special tokens that appear
 * literally in the text are always matched (as the HF library does). *ids is malloc'd. */
pare_status pare_tokenizer_encode(const pare_tokenizer *tok, const char *text, size_t len, int add_special,
                                  int32_t **ids, size_t *n_ids, pare_error *err);

/* Decodes ids to UTF-8 (malloc'd, NUL-terminated, *len excludes the NUL). skip_special != 0 drops
 * special tokens (as HF's skip_special_tokens=True). Invalid ids are an error. */
pare_status pare_tokenizer_decode(const pare_tokenizer *tok, const int32_t *ids, size_t n_ids, int skip_special,
                                  char **text, size_t *len, pare_error *err);

int pare_tokenizer_vocab_size(const pare_tokenizer *tok);
int pare_tokenizer_bos_id(const pare_tokenizer *tok); /* -1 when there is none */
int pare_tokenizer_eos_id(const pare_tokenizer *tok); /* -1 when there is none */
/* A short description, e.g. "BPE 4096 tokens, Metaspace, byte fallback". */
const char *pare_tokenizer_describe(const pare_tokenizer *tok);

/* The pieces a byte-level tokenizer works with, for building one (src/train/bpe_train.c).
 * pare_gpt2_split: the end of the GPT-2 pre-tokenizer match that starts at pos in s[0..n) (the
 * ByteLevel use_regex split; pos < n). pare_byte_level_char: GPT-2's bytes_to_unicode image of byte b
 * as UTF-8 in out (1 or 2 bytes); returns its length. */
size_t pare_gpt2_split(const unsigned char *s, size_t n, size_t pos);
size_t pare_byte_level_char(unsigned char b, char out[2]);

#endif
