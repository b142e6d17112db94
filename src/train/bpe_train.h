/* A byte-level BPE trainer (GPT-2 style): the GPT-2 pre-tokenizer splits the text into words, pairs
 * of symbols are merged by frequency until the vocabulary is full, and the result is written as a
 * Hugging Face tokenizer.json that pare's loader and the `tokenizers` library encode identically. */
#ifndef PARE_BPE_TRAIN_H
#define PARE_BPE_TRAIN_H

#include <stddef.h>
#include "core/error.h"

typedef struct {
    int vocab_size;      /* ids in all: the special token, the 256 bytes and the merges (default 2048) */
    int min_frequency;   /* a pair seen fewer times ends training early (default 2) */
    const char *special; /* id 0, an added special token (default "<|endoftext|>", the end of text) */
} pare_bpe_opts;

void pare_bpe_defaults(pare_bpe_opts *o);

typedef struct {
    int vocab_size; /* ids written (smaller than asked when pairs ran out) */
    int merges;
    size_t words, unique_words; /* pre-tokenized words of the text */
    size_t bytes;               /* of the text */
    size_t symbols_before;      /* the words' symbols before any merge (= bytes) and after all of them: */
    size_t symbols_after;       /* the tokens the training text encodes to */
} pare_bpe_report;

/* Trains on text[0..len) and writes the tokenizer.json to out_path (atomically). progress is told
 * after the pre-tokenization and every few merges; cancelling returns PARE_ECANCELED and writes
 * nothing. Ties between equally frequent pairs go to the pair of lower ids, so the same text and
 * options give the same file. */
pare_status pare_bpe_train(const char *text, size_t len, const pare_bpe_opts *o, const char *out_path,
                           const pare_progress *progress, pare_bpe_report *report, pare_error *err);

/* As pare_bpe_train, reading the text from a file (errors name it). */
pare_status pare_bpe_train_file(const char *text_path, const pare_bpe_opts *o, const char *out_path,
                                const pare_progress *progress, pare_bpe_report *report, pare_error *err);

#endif
