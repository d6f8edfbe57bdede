// Deterministic fuzzing of chat_parse_assistant under the regular build: 20,000 inputs made by
// mutating well-formed assistant outputs (byte flips, inserted tags and JSON punctuation,
// truncation, deletion, duplication, splicing) and pure random bytes. Every parse must succeed and
// satisfy the invariants of chat_fuzz_check.c. tests/fuzz_chat_parse.c runs the same check under
// libFuzzer + ASan when clang is available.
#include <stdlib.h>
#include <string.h>

#include "model/chat.h"
#include "test.h"

int chat_fuzz_check(const char *text, size_t len);

static const char *SEEDS[] = {
    "",
    "Plain answer.",
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
    "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, 2.5, null]}}\n"
    "</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"s\": \"\\\"q\\\" \\u00e9\"}}\n"
    "</tool_call>",
    "<think>\nI should call a tool.\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}"
    "\n</tool_call>",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"deep\": {\"a\": {\"b\": {\"c\": []}}}}}\n",
    "Text <tool_call>{\"name\": \"g\", \"arguments\": \"{}\"}</tool_call> more text 😀 中文",
    "<think>\nunfinished",
    "<tool_call>\n{\"function\": \"f\", \"arguments\": {}}\n</tool_call>\n"
    "<tool_call>[{\"name\": \"f\"}]</tool_call><tool_call>{\"name\": \"\", \"arguments\": {}}",
};
static const char *DICT[] = {"<tool_call>", "</tool_call>", "<think>", "</think>", "{", "}", "[",
                             "]", "\"", "\"name\"", "\"arguments\"", ":", ",", "\\", "\\u", "\n",
                             " ", "null", "1e999", "-", "\xff", "\xc3", "\xe2\x82"};

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

#define CAP 4096

static size_t mutate(char *b, size_t n) {
    int k = (int)(rnd() % 7);
    size_t at = n ? rnd() % (n + 1) : 0;
    switch (k) {
    case 0: if (n) b[rnd() % n] ^= (char)(1 + rnd() % 255); break; // flip
    case 1: { // insert a dictionary token
        const char *d = DICT[rnd() % (sizeof DICT / sizeof *DICT)];
        size_t l = strlen(d);
        if (n + l < CAP) { memmove(b + at + l, b + at, n - at); memcpy(b + at, d, l); n += l; }
        break;
    }
    case 2: n = at; break; // truncate
    case 3: { // delete a range
        size_t l = n - at ? rnd() % (n - at + 1) : 0;
        memmove(b + at, b + at + l, n - at - l);
        n -= l;
        break;
    }
    case 4: { // duplicate a range
        size_t l = n - at ? rnd() % (n - at + 1) : 0;
        if (n + l < CAP) { memmove(b + at + l, b + at, n - at); n += l; }
        break;
    }
    case 5: { // splice a seed in
        const char *s = SEEDS[rnd() % (sizeof SEEDS / sizeof *SEEDS)];
        size_t l = strlen(s);
        if (n + l < CAP) { memmove(b + at + l, b + at, n - at); memcpy(b + at, s, l); n += l; }
        break;
    }
    default: if (n + 1 < CAP) { memmove(b + at + 1, b + at, n - at); b[at] = (char)rnd(); n++; }
    }
    return n;
}

int main(void) {
    static char buf[CAP];
    int n_inputs = 20000, failures = 0;
    size_t total = 0;
    int status_count[5] = {0};
    for (int it = 0; it < n_inputs; it++) {
        size_t n;
        if (it % 10 == 9) { // pure random bytes, biased towards '<', '{', '"'
            n = rnd() % 512;
            for (size_t i = 0; i < n; i++) {
                uint32_t r = rnd();
                buf[i] = r % 4 == 0 ? "<{\"}>/"[r % 6] : (char)(r >> 8);
            }
        } else {
            const char *s = SEEDS[rnd() % (sizeof SEEDS / sizeof *SEEDS)];
            n = strlen(s);
            memcpy(buf, s, n);
            for (int m = 1 + (int)(rnd() % 8); m > 0; m--) n = mutate(buf, n);
        }
        total += n;
        chat_parsed_t p; // status counts, to show the inputs reach every outcome
        if (chat_parse_assistant(buf, n, &p) == 0) {
            for (int i = 0; i < p.n_calls; i++) status_count[p.calls[i].status]++;
            chat_parsed_free(&p);
        }
        if (chat_fuzz_check(buf, n)) {
            failures++;
            if (failures < 5) fprintf(stderr, "input %d (%zu bytes): [%.*s]\n", it, n, (int)n, buf);
        }
    }
    CHECK(failures == 0, "%d of %d inputs broke an invariant", failures, n_inputs);
    printf("test_chat_fuzz: %d inputs, %zu bytes parsed; calls:", n_inputs, total);
    for (int s = 0; s < 5; s++) {
        printf(" %s %d", chat_call_status_name((chat_call_status_t)s), status_count[s]);
        CHECK(status_count[s] > 100, "status %s reached only %d times", chat_call_status_name(s),
              status_count[s]);
    }
    printf("\n");
    return test_exit("test_chat_fuzz");
}
