#!/bin/bash
# The include rule of pare's layers (`make layering` runs it; tests/test_cli.c plants a violation):
# every quoted #include of a layer's .c/.h files must point into its own folder or into a layer of a
# lower rank. Fails naming each FILE:LINE and the include that points upward or sideways.
#   tools/layering.sh [ROOT]   (ROOT: the tree to check, default the current folder)
set -u
root=${1:-.}

# The layers, lowest first: folder and rank (a new folder is one row). Layers of the same rank may not
# include each other: src/train needs no plot, src/plot no training.
LAYERS="
src/core    0
src/plot    1
src/train   1
src/record  2
lua         3
ui          4
src/cli     5
"
# Where a quoted include is looked for after the including file's own folder: the Makefile's -I flags.
INCLUDE_DIRS="src lua ui"

declare -A rank
for row in $(echo "$LAYERS" | awk 'NF == 2 { print $1 "=" $2 }'); do
    rank[${row%=*}]=${row#*=}
done

# Sets `to` to the layer folder holding a path relative to root (the longest folder prefixing it), or "".
# (Functions set variables rather than print: no subshell per include keeps the check well under a second.)
layer_of() {
    local f
    to=""
    for f in "${!rank[@]}"; do
        if [[ $1 == "$f"/* && ${#f} -gt ${#to} ]]; then to=$f; fi
    done
}

# Sets `target` to the file an include names, relative to root, as the compiler finds it ("" for a
# system header): the including file's folder first, then INCLUDE_DIRS; "a/../" collapsed.
resolve() { # FILE-DIR INCLUDE
    local d
    target=""
    for d in "$1" $INCLUDE_DIRS; do
        if [ -f "$root/$d/$2" ]; then
            target="$d/$2"
            while [[ $target =~ (^|/)\./ ]]; do target=${target/.\//}; done
            while [[ $target =~ [^/]+/\.\./ ]]; do target=${target/${BASH_REMATCH[0]}/}; done
            return
        fi
    done
}

bad=0
for folder in "${!rank[@]}"; do
    [ -d "$root/$folder" ] || continue
    # one grep per folder: FILE:LINE:#include "NAME"
    while IFS= read -r hit; do
        [[ $hit =~ ^(.*):([0-9]+):[^\"]*\"([^\"]+)\" ]] || continue
        rel=${BASH_REMATCH[1]#"$root"/} line=${BASH_REMATCH[2]} inc=${BASH_REMATCH[3]}
        resolve "${rel%/*}" "$inc"
        [ -n "$target" ] || continue
        layer_of "$target"
        [ -n "$to" ] && [ "$to" != "$folder" ] || continue
        if [ "${rank[$to]}" -ge "${rank[$folder]}" ]; then
            echo "layering violation: $rel:$line includes \"$inc\" ($to/, rank ${rank[$to]}); $folder/ (rank ${rank[$folder]}) may include only lower layers"
            bad=1
        fi
    done < <(grep -H -n -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/$folder"/*.[ch] 2>/dev/null)
done
if [ $bad -eq 0 ]; then
    echo "layering: every #include points into its own folder or a lower layer ($(echo "$LAYERS" | awk 'NF == 2 { printf "%s%s", (n++ == 0 ? "" : $2 == last ? ", " : " < "), $1; last = $2 }'))"
fi
exit $bad
