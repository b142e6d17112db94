// Reference ids from Hugging Face tokenizers' own binding (npm `tokenizers`, 0.23.2): encodes each
// file whole with add_special_tokens=False and writes OUTDIR/NAME.i32 (little-endian int32), the
// layout of ../shared/tokenizers/*/reference_ids. Prints one line per file: "NAME TOKENS SECONDS"
// (the encode call alone, the binding single-threaded), for tools/bench_tokenizer.sh.
// usage: node tools/tokenizer_reference.js TOKENIZER_JSON OUTDIR FILE...
// The binding is found through NODE_PATH (make tokenizer-refs installs it under the pare cache).
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
    const [tokenizerJson, outDir, ...files] = process.argv.slice(2);
    if (!tokenizerJson || !outDir || files.length === 0) {
        console.error('usage: node tools/tokenizer_reference.js TOKENIZER_JSON OUTDIR FILE...');
        process.exit(2);
    }
    process.env.RAYON_NUM_THREADS = '1';
    process.env.TOKENIZERS_PARALLELISM = 'false';
    const { Tokenizer } = require('tokenizers');
    const tokenizer = Tokenizer.fromFile(tokenizerJson);
    fs.mkdirSync(outDir, { recursive: true });
    for (const file of files) {
        const text = fs.readFileSync(file, 'utf8');
        const start = process.hrtime.bigint();
        const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        const ids = encoding.getIds();
        const buf = Buffer.alloc(4 * ids.length);
        ids.forEach((id, i) => buf.writeInt32LE(id, 4 * i));
        const out = path.join(outDir, path.basename(file) + '.i32');
        fs.writeFileSync(out + '.part', buf);
        fs.renameSync(out + '.part', out);
        console.log(`${path.basename(file)} ${ids.length} ${seconds.toFixed(3)}`);
    }
}

main().catch((e) => {
    console.error(`tokenizer_reference.js: ${e.message}`);
    process.exit(2);
});
