#!/usr/bin/env bash
# `ctrain tokenize ... --jsonl`: what the JSON reader (core/json) gives a
# document: a lone surrogate escape becomes U+FFFD (as Python's json would
# write it back with errors="replace"), a paired one the character, \u0000 a
# NUL, a repeated "text" key its last value; other fields may nest. Malformed
# lines are refused with file:line, column and cause.
. "$(dirname "$0")/lib.sh"
mkdir -p "$WORK"
J="$WORK/docs.jsonl"
printf '%s\n' '{"id": 1, "meta": {"a": [1, {"b": null}]}, "text": "x\ud800y"}' '' \
    '{"text": "first", "text": "\ud83d\ude00\udc00"}' '{"text": "a\u0000b"}' >"$J"
out=$("$CTRAIN" tokenize pretokenize --jsonl "$J" 2>"$WORK/err") || fail "pretokenize: $(cat "$WORK/err")"
# pretokenize prints each document's pieces as JSON strings, documents
# separated by a blank line; decode them back to the documents' text.
docs=$(python3 -c '
import json, sys
blocks = [b for b in sys.stdin.read().split("\n\n") if b.strip()]
for b in blocks:
    print(ascii("".join(json.loads(l) for l in b.strip("\n").split("\n"))))' <<<"$out")
want="'x\\ufffdy'
'\\U0001f600\\ufffd'
'a\\x00b'"
[ "$docs" = "$want" ] && pass || fail "documents: got [$docs], want [$want]"

printf '{"text": "ok"}\n{"text": "bad\\q"}\n' >"$WORK/bad1.jsonl"
expect_fail "bad escape" "bad1.jsonl:2: malformed JSON at column 14: unknown escape" -- \
    "$CTRAIN" tokenize pretokenize --jsonl "$WORK/bad1.jsonl"
printf '{"text": 5}\n' >"$WORK/bad2.jsonl"
expect_fail "text not a string" "bad2.jsonl:1:" "the \"text\" field is not a string" -- \
    "$CTRAIN" tokenize pretokenize --jsonl "$WORK/bad2.jsonl"
printf '{"txt": "a"}\n' >"$WORK/bad3.jsonl"
expect_fail "no text" "bad3.jsonl:1:" "no \"text\" field" -- \
    "$CTRAIN" tokenize pretokenize --jsonl "$WORK/bad3.jsonl"
printf '{"text": "a"} {"text": "b"}\n' >"$WORK/bad4.jsonl"
expect_fail "two objects on a line" "bad4.jsonl:1: malformed JSON at column 15" -- \
    "$CTRAIN" tokenize pretokenize --jsonl "$WORK/bad4.jsonl"
printf '{"text": "a\tb"}\n' >"$WORK/bad5.jsonl"
expect_fail "raw tab" "bad5.jsonl:1: malformed JSON at column 12: control character" -- \
    "$CTRAIN" tokenize pretokenize --jsonl "$WORK/bad5.jsonl"
finish
