#define _GNU_SOURCE // memmem
// Tokenizer against reference ids made by independent implementations (tests/data/
// qwen3-tokenizer-tests: HF tokenizers, @huggingface/tokenizers, @lenml/tokenizers, llama.cpp's
// vectors): encode, decode, streaming decode, plus checks of the load errors and of the NFC fast
// path against utf8proc.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "kernels/err.h"
#include "model/embedded.h"
#include "model/tok_internal.h"
#include "model/tokenizer.h"
#include "test.h"

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[n] = 0; *len = (size_t)n; }
    return b;
}

static int same_ids(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

// encode text, compare with want; decode want and compare with decoded (text when NULL)
static int check_case(const tokenizer_t *tok, const char *name, const char *text, size_t len,
                      const int32_t *want, int n_want, const char *decoded, size_t dlen) {
    ids_t got = {0};
    int ok = tokenizer_encode(tok, text, len, &got) == 0;
    CHECK(ok, "%s: encode failed: %s", name, err_msg());
    int same = ok && same_ids(got.ids, got.n, want, n_want);
    CHECK(same, "%s: ids differ", name);
    if (!same) {
        print_ids("want", want, n_want);
        print_ids("got ", got.ids, got.n);
    }
    ids_free(&got);

    char *out;
    size_t olen;
    ok = tokenizer_decode(tok, want, n_want, &out, &olen) == 0;
    CHECK(ok, "%s: decode failed: %s", name, err_msg());
    if (!ok) return 0;
    if (!decoded) { decoded = text; dlen = len; }
    CHECK(olen == dlen && memcmp(out, decoded, dlen) == 0, "%s: decode gives '%.*s', want '%.*s'", name,
          (int)olen, out, (int)dlen, decoded);

    // streaming, id by id: same bytes, and every chunk ends on a UTF-8 character boundary
    // whenever the one-shot text is valid UTF-8 there
    tok_stream_t st = {0};
    char *acc = malloc(olen + 16), chunk[1024];
    size_t na = 0;
    int split_char = 0;
    for (int i = 0; i < n_want; i++) {
        int k = tokenizer_stream_decode(tok, &st, want[i], chunk, sizeof chunk);
        CHECK(k >= 0, "%s: stream decode failed: %s", name, err_msg());
        if (k < 0) break;
        if (k > 0) {
            // a chunk must not end inside a character: its last lead byte's sequence is complete
            int j = k - 1, back = 1;
            while (j > 0 && ((uint8_t)chunk[j] & 0xC0) == 0x80 && back < 4) { j--; back++; }
            uint8_t c = (uint8_t)chunk[j];
            int need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (need > back && i + 1 < n_want) split_char = 1;
        }
        memcpy(acc + na, chunk, (size_t)k);
        na += (size_t)k;
    }
    int k = tokenizer_stream_flush(&st, chunk, sizeof chunk);
    if (k > 0) { memcpy(acc + na, chunk, (size_t)k); na += (size_t)k; }
    CHECK(na == olen && memcmp(acc, out, olen) == 0, "%s: streaming decode differs from decode", name);
    CHECK(!split_char, "%s: streaming decode emitted a split UTF-8 character", name);
    free(acc);
    free(out);
    return 1;
}

static int parse_ids(const char *line, size_t n, int32_t *ids, int cap) {
    int k = 0;
    const char *p = line, *e = line + n;
    while (p < e) {
        while (p < e && (*p == ' ' || *p == '\r')) p++;
        if (p >= e) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || k == cap) return -1;
        ids[k++] = (int32_t)v;
        p = end;
    }
    return k;
}

// llama.cpp test-tokenizer format: .inp has the texts, each followed by "\n__ggml_vocab_test__\n";
// .out has one line of ids per text
static int run_inp_out(const tokenizer_t *tok, const char *inp_path, const char *out_path) {
    size_t ni, no;
    char *inp = read_file(inp_path, &ni), *out = read_file(out_path, &no);
    REQUIRE(inp && out, "cannot read %s / %s", inp_path, out_path);
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    size_t sl = sizeof SEP - 1;
    char *p = inp, *q = out, *pe = inp + ni, *qe = out + no;
    int n = 0;
    static int32_t ids[65536];
    while (p < pe) {
        char *s = memmem(p, (size_t)(pe - p), SEP, sl);
        if (!s) break;
        char *nl = memchr(q, '\n', (size_t)(qe - q));
        REQUIRE(nl, "%s: fewer id lines than texts (%d)", out_path, n);
        int k = parse_ids(q, (size_t)(nl - q), ids, 65536);
        REQUIRE(k >= 0, "%s: line %d is not a list of ids", out_path, n + 1);
        char name[64];
        snprintf(name, sizeof name, "%s #%d", strrchr(inp_path, '/') + 1, n + 1);
        // the ids encode the NFC form of the text: decoding them gives NFC(text)
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t nl2 = utf8proc_map((const utf8proc_uint8_t *)p, s - p, &nfc,
                                            UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        REQUIRE(nl2 >= 0, "%s: text is not valid UTF-8", name);
        check_case(tok, name, p, (size_t)(s - p), ids, k, (const char *)nfc, (size_t)nl2);
        free(nfc);
        n++;
        p = s + sl;
        q = nl + 1;
    }
    printf("%s: %d cases checked\n", strrchr(inp_path, '/') + 1, n);
    free(inp);
    free(out);
    return n;
}

static int run_jsonl(const tokenizer_t *tok, const char *path) {
    size_t n;
    char *buf = read_file(path, &n);
    REQUIRE(buf, "cannot read %s", path);
    int cases = 0;
    static int32_t ids[65536];
    for (char *line = buf; line < buf + n;) {
        char *nl = memchr(line, '\n', (size_t)(buf + n - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + n - line);
        if (ll) {
            json_error_t e;
            json_t *o = json_loadb(line, ll, JSON_ALLOW_NUL, &e);
            REQUIRE(o, "%s: bad JSON line: %s", path, e.text);
            json_t *jt = json_object_get(o, "text"), *jd = json_object_get(o, "decoded");
            json_t *ji = json_object_get(o, "ids");
            const char *name = json_string_value(json_object_get(o, "name"));
            REQUIRE(json_is_string(jt) && json_is_array(ji) && name, "%s: case %d lacks name/text/ids", path, cases);
            int k = (int)json_array_size(ji);
            for (int i = 0; i < k; i++) ids[i] = (int32_t)json_integer_value(json_array_get(ji, i));
            check_case(tok, name, json_string_value(jt), json_string_length(jt), ids, k,
                       jd ? json_string_value(jd) : NULL, jd ? json_string_length(jd) : 0);
            cases++;
            json_decref(o);
        }
        line += ll + 1;
    }
    free(buf);
    printf("qwen3-expected.jsonl: %d cases checked\n", cases);
    return cases;
}

static void check_api(const tokenizer_t *tok) {
    CHECK(tokenizer_n_ids(tok) == 151669, "n_ids %d, want 151669", tokenizer_n_ids(tok));
    CHECK(tokenizer_token_id(tok, "<|im_end|>") == 151645, "<|im_end|>");
    CHECK(tokenizer_token_id(tok, "<|im_start|>") == 151644, "<|im_start|>");
    CHECK(tokenizer_token_id(tok, "</think>") == 151668, "</think>");
    CHECK(tokenizer_token_id(tok, "Hello") == 9707, "Hello");
    CHECK(tokenizer_token_id(tok, "\xC4\xA0world") == 1879, "Ġworld");
    CHECK(tokenizer_token_id(tok, "no-such-token-xyz") == -1, "unknown token");
    size_t n;
    const char *b = tokenizer_token_bytes(tok, 1879, &n);
    CHECK(b && n == 6 && memcmp(b, " world", 6) == 0, "bytes of 1879");
    b = tokenizer_token_bytes(tok, 151645, &n);
    CHECK(b && n == 10 && memcmp(b, "<|im_end|>", 10) == 0, "bytes of <|im_end|>");
    CHECK(tokenizer_token_bytes(tok, 151669, &n) == NULL, "id past the end");
    CHECK(tokenizer_token_bytes(tok, -1, &n) == NULL, "negative id");
    char *t;
    int32_t bad[] = {9707, 999999};
    CHECK(tokenizer_decode(tok, bad, 2, &t, &n) == -1 && strstr(err_msg(), "999999"), "decode of a bad id: %s",
          err_msg());
    // invalid UTF-8 bytes become byte tokens; the rest is tokenized as usual
    ids_t ids = {0};
    CHECK(tokenizer_encode(tok, "Hello\xff world", 12, &ids) == 0, "encode invalid utf-8");
    CHECK(ids.n == 3 && ids.ids[0] == 9707 && ids.ids[2] == 1879, "invalid byte handling (%d ids)", ids.n);
    char *dec;
    CHECK(ids.n == 3 && tokenizer_decode(tok, ids.ids, ids.n, &dec, &n) == 0 && n == 12 &&
              memcmp(dec, "Hello\xff world", 12) == 0, "invalid utf-8 round trip");
    if (ids.n == 3) free(dec);
    ids_free(&ids);
    // streaming: a 4-byte emoji fed byte token by byte token comes out whole
    tok_stream_t st = {0};
    char out[64];
    int k1 = tokenizer_stream_decode(tok, &st, tokenizer_token_id(tok, "\xC3\xB0"), out, sizeof out); // byte F0
    CHECK(k1 == 0 && st.n_pending == 1, "held lead byte (%d)", k1);
}

// the NFC fast path skips normalization for texts of "inert" chars: check every such char
// against utf8proc (NFC fixed point, combining class 0, never the last char of a decomposition)
static void check_nfc_inert(void) {
    int n_inert = 0;
    static uint8_t second[0x110000];
    for (int32_t p = 0; p < 0x110000; p++) {
        if (p >= 0xD800 && p < 0xE000) continue;
        utf8proc_int32_t buf[32];
        int lb;
        utf8proc_ssize_t k = utf8proc_decompose_char(p, buf, 32, UTF8PROC_DECOMPOSE | UTF8PROC_STABLE, &lb);
        if (k >= 2) second[buf[k - 1]] = 1;
    }
    for (uint32_t c = 0; c < 0x110000; c++) {
        if (!tok_nfc_inert(c)) continue;
        n_inert++;
        const utf8proc_property_t *pr = utf8proc_get_property((utf8proc_int32_t)c);
        utf8proc_uint8_t s[8], *o = NULL;
        utf8proc_ssize_t sl = utf8proc_encode_char((utf8proc_int32_t)c, s);
        utf8proc_ssize_t ol = utf8proc_map(s, sl, &o, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        int fixed = ol == sl && memcmp(o, s, (size_t)sl) == 0;
        free(o);
        if (!fixed || pr->combining_class != 0 || second[c]) {
            CHECK(0, "U+%04X is not NFC-inert (fixed %d, ccc %d, second %d)", c, fixed, pr->combining_class, second[c]);
            break;
        }
    }
    printf("NFC fast path: %d inert code points checked against utf8proc\n", n_inert);
}

static void check_load_errors(void) {
    const char *bad[][2] = {
        {"{", "not valid JSON"},
        {"[]", "expected a JSON object"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "expected \"BPE\""},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": 3}}", "model.merges: expected an array"},
        {"{\"model\": {\"vocab\": {\"a\": \"x\"}, \"merges\": []}}", "expected a non-negative integer id"},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}, \"pre_tokenizer\": "
         "{\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"}}", "model.merges[0]: token \"c\""},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"ab\"]}, \"pre_tokenizer\": "
         "{\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"}}", "one space"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
         "\"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}", "does not compile"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
         "unsupported type \"Whitespace\""},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"Lowercase\"}}",
         "unsupported normalizer type \"Lowercase\""},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"content\": \"x\"}], "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"}}",
         "added_tokens[0].id"},
    };
    int n = (int)(sizeof bad / sizeof bad[0]);
    for (int i = 0; i < n; i++) {
        tokenizer_t *t = tokenizer_load_buffer(bad[i][0], strlen(bad[i][0]), "bad.json");
        CHECK(!t && strstr(err_msg(), "bad.json") && strstr(err_msg(), bad[i][1]),
              "malformed tokenizer.json #%d: got '%s', want a message with 'bad.json' and '%s'", i, err_msg(),
              bad[i][1]);
        tokenizer_free(t);
    }
    CHECK(tokenizer_load("/nonexistent/tokenizer.json") == NULL && strstr(err_msg(), "/nonexistent"),
          "missing file: %s", err_msg());
    printf("load errors: %d malformed tokenizer.json cases checked\n", n + 1);
}

// a tiny tokenizer with added-token flags (lstrip/rstrip, single_word on a content that is also
// in the vocab: HF then uses the vocab id, 4, not the file's 11). Merges as ["a","b"] lists or as
// "a b" strings. Expected ids from HF tokenizers 0.23.3 (Tokenizer.from_str on the same JSON).
static const char SMALL_JSON[] =
    "{\"added_tokens\": ["
    " {\"id\": 10, \"content\": \"<x>\", \"single_word\": false, \"lstrip\": true, \"rstrip\": true,"
    "  \"normalized\": false, \"special\": true},"
    " {\"id\": 11, \"content\": \"ab\", \"single_word\": true, \"lstrip\": false, \"rstrip\": false,"
    "  \"normalized\": false, \"special\": false}],"
    " \"normalizer\": null,"
    " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false,"
    "  \"use_regex\": true},"
    " \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false},"
    " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"\xC4\xA0\": 3, \"ab\": 4,"
    "  \"abc\": 5, \"\xC4\xA0" "a\": 6, \"<\": 7, \"x\": 8, \">\": 9},"
    "  \"merges\": MERGES}}";

static void check_small_tokenizer(void) {
    const char *merges[2] = {"[[\"a\", \"b\"], [\"ab\", \"c\"], [\"\xC4\xA0\", \"a\"]]",
                             "[\"a b\", \"ab c\", \"\xC4\xA0 a\"]"};
    struct { const char *text; int32_t ids[8]; int n; } cases[] = {
        {"abc", {5}, 1},               // merges by rank: a b -> ab, ab c -> abc
        {"ab", {4}, 1},                // single_word added token alone
        {"cab", {2, 4}, 2},            // inside a word: not the added token, BPE instead
        {"c ab c", {2, 3, 4, 3, 2}, 5},
        {"a  <x>  b", {0, 10, 1}, 3},  // lstrip and rstrip take the spaces around <x>
        {"a", {0}, 1},
        {"ab<x>ab", {4, 10, 4}, 3},
        {" ab", {3, 4}, 2},
        {"x ab", {8, 3, 4}, 3},
        {"ab ab\xC2\xA0", {4, 3, 4}, 3}, // U+00A0's bytes are not in this vocab: dropped (no unk)
        {"xab", {8, 4}, 2},
    };
    int n = (int)(sizeof cases / sizeof cases[0]), checked = 0;
    for (int m = 0; m < 2; m++) {
        char json[2048];
        const char *at = strstr(SMALL_JSON, "MERGES");
        snprintf(json, sizeof json, "%.*s%s%s", (int)(at - SMALL_JSON), SMALL_JSON, merges[m], at + 6);
        tokenizer_t *t = tokenizer_load_buffer(json, strlen(json), "small.json");
        CHECK(t, "small tokenizer: %s", err_msg());
        if (!t) return;
        CHECK(tokenizer_token_id(t, "ab") == 4 && tokenizer_token_id(t, "<x>") == 10, "added ids");
        for (int i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof name, "small #%d/%d", m, i);
            ids_t ids = {0};
            CHECK(tokenizer_encode(t, cases[i].text, strlen(cases[i].text), &ids) == 0, "%s", name);
            int same = same_ids(ids.ids, ids.n, cases[i].ids, cases[i].n);
            CHECK(same, "%s: '%s'", name, cases[i].text);
            if (!same) { print_ids("want", cases[i].ids, cases[i].n); print_ids("got ", ids.ids, ids.n); }
            ids_free(&ids);
            checked++;
        }
        tokenizer_free(t);
    }
    printf("small tokenizer (list and string merges, added-token flags): %d cases checked\n", checked);
}

// concurrent encode calls on one tokenizer (cold cache, so threads fill it at the same time)
// must give the single-threaded ids
#define N_THREADS 4
typedef struct {
    const tokenizer_t *tok;
    char **texts;
    size_t *lens;
    ids_t *want;
    int n, seed, mismatches;
} thread_arg_t;

static void *encode_thread(void *p) {
    thread_arg_t *a = p;
    ids_t got = {0};
    for (int rep = 0; rep < 20; rep++)
        for (int j = 0; j < a->n; j++) {
            int i = (j * 7 + a->seed * 13 + rep) % a->n;
            got.n = 0;
            if (tokenizer_encode(a->tok, a->texts[i], a->lens[i], &got) || !same_ids(got.ids, got.n, a->want[i].ids, a->want[i].n))
                a->mismatches++;
        }
    ids_free(&got);
    return NULL;
}

static void check_threads(const char *tok_path) {
    size_t n;
    char *buf = read_file(TEST_DATA_DIR "/qwen3-tokenizer-tests/qwen3-expected.inp", &n);
    if (!buf) { CHECK(0, "cannot read qwen3-expected.inp"); return; }
    char *texts[256];
    size_t lens[256];
    int nt = 0;
    for (char *p = buf, *e = buf + n; p < e && nt < 256;) {
        char *s = memmem(p, (size_t)(e - p), "\n__ggml_vocab_test__\n", 21);
        if (!s) break;
        texts[nt] = p;
        lens[nt++] = (size_t)(s - p);
        p = s + 21;
    }
    tokenizer_t *ref = tokenizer_load(tok_path), *tok = tokenizer_load(tok_path);
    if (!ref || !tok) { CHECK(0, "load: %s", err_msg()); free(buf); return; }
    ids_t want[256] = {{0}};
    for (int i = 0; i < nt; i++) CHECK(tokenizer_encode(ref, texts[i], lens[i], &want[i]) == 0, "encode");
    pthread_t th[N_THREADS];
    thread_arg_t args[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        args[t] = (thread_arg_t){tok, texts, lens, want, nt, t, 0};
        pthread_create(&th[t], NULL, encode_thread, &args[t]);
    }
    int bad = 0;
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
        bad += args[t].mismatches;
    }
    CHECK(bad == 0, "%d mismatches between concurrent and single-threaded encodes", bad);
    printf("threads: %d threads x 20 x %d texts encoded concurrently, %d mismatches\n", N_THREADS, nt, bad);
    for (int i = 0; i < nt; i++) ids_free(&want[i]);
    tokenizer_free(ref);
    tokenizer_free(tok);
    free(buf);
}

int main(void) {
    size_t n;
    const char *json = embedded_file("qwen3-tokenizer/tokenizer.json", &n);
    REQUIRE(json, "embedded tokenizer missing");
    tokenizer_t *tok = tokenizer_load_buffer(json, n, "embedded tokenizer.json");
    REQUIRE(tok, "load: %s", err_msg());
    tokenizer_t *tok_file = tokenizer_load(SOURCE_DIR "/model/data/qwen3-tokenizer/tokenizer.json");
    REQUIRE(tok_file, "load: %s", err_msg());

    int cases = run_jsonl(tok, TEST_DATA_DIR "/qwen3-tokenizer-tests/qwen3-expected.jsonl");
    CHECK(cases == 79, "want 79 jsonl cases, found %d", cases);
    cases = run_inp_out(tok_file, TEST_DATA_DIR "/qwen3-tokenizer-tests/llama.cpp/ggml-vocab-qwen2.gguf.inp",
                        TEST_DATA_DIR "/qwen3-tokenizer-tests/llama.cpp/ggml-vocab-qwen2.gguf.out");
    CHECK(cases == 43, "want 43 llama.cpp cases, found %d", cases);
    cases = run_inp_out(tok, TEST_DATA_DIR "/qwen3-tokenizer-tests/qwen3-expected.inp",
                        TEST_DATA_DIR "/qwen3-tokenizer-tests/qwen3-expected.out");
    CHECK(cases == 79, "want 79 .inp cases, found %d", cases);
    check_api(tok);
    check_small_tokenizer();
    check_load_errors();
    check_nfc_inert();
    check_threads(SOURCE_DIR "/model/data/qwen3-tokenizer/tokenizer.json");
    tokenizer_free(tok);
    tokenizer_free(tok_file);
    return test_exit("test_tokenizer");
}
