// One parse of chat_parse_assistant and the invariants its result must satisfy; shared by the
// deterministic fuzz test (test_chat_fuzz.c) and the libFuzzer target (fuzz_chat_parse.c).
#define _GNU_SOURCE // memmem
#include <stdio.h>
#include <string.h>

#include "model/chat.h"

static size_t count(const char *s, size_t n, const char *needle) {
    size_t c = 0, nl = strlen(needle);
    for (const char *p = s, *end = s + n; p && (size_t)(end - p) >= nl;) {
        p = memmem(p, (size_t)(end - p), needle, nl);
        if (p) { c++; p += nl; }
    }
    return c;
}

static int is_ws(char ch) { return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' || ch == '\f' || ch == '\v'; }

// returns 0 when every invariant holds, else prints the broken one and returns 1
int chat_fuzz_check(const char *text, size_t len) {
#define FAIL(...) do { fprintf(stderr, "chat_fuzz_check: " __VA_ARGS__); fprintf(stderr, "\n"); \
                       chat_parsed_free(&p); return 1; } while (0)
    chat_parsed_t p;
    if (chat_parse_assistant(text, len, &p)) { fprintf(stderr, "parse failed\n"); return 1; }
    if (!p.content) FAIL("content is NULL");
    if (p.content_len > len) FAIL("content longer than the input");
    if (p.content_len && (is_ws(p.content[0]) || is_ws(p.content[p.content_len - 1])))
        FAIL("content not trimmed");
    size_t opens = count(text, len, "<tool_call>");
    int has_think = count(text, len, "think>") > 0;
    if ((size_t)p.n_calls > opens) FAIL("%d calls from %zu <tool_call> tags", p.n_calls, opens);
    // without think tags, every <tool_call> starts exactly one call
    if (!has_think && (size_t)p.n_calls != opens) FAIL("%d calls, %zu tags", p.n_calls, opens);
    if (!has_think && p.reasoning) FAIL("reasoning without think tags");
    if (p.think_unclosed && !p.reasoning) FAIL("unclosed think without reasoning");
    for (int i = 0; i < p.n_calls; i++) {
        const chat_parsed_call_t *c = &p.calls[i];
        if (!c->raw || c->raw_len > len) FAIL("call %d: raw", i);
        switch (c->status) {
        case CHAT_CALL_OK:
            if (!c->name || !c->name[0] || !json_is_object(c->arguments)) FAIL("call %d: ok", i);
            break;
        case CHAT_CALL_BAD_JSON:
            if (c->name || c->arguments) FAIL("call %d: bad_json with name/arguments", i);
            break;
        case CHAT_CALL_MISSING_NAME:
            if (c->name) FAIL("call %d: missing_name with a name", i);
            break;
        case CHAT_CALL_ARGUMENTS_NOT_OBJECT:
            if (!c->name || json_is_object(c->arguments)) FAIL("call %d: arguments_not_object", i);
            break;
        case CHAT_CALL_UNCLOSED_TAG:
            if (count(c->raw, c->raw_len, "</tool_call>")) FAIL("call %d: unclosed with a close", i);
            break;
        default: FAIL("call %d: status %d", i, (int)c->status);
        }
        if (c->status != CHAT_CALL_UNCLOSED_TAG && count(c->raw, c->raw_len, "<tool_call>"))
            FAIL("call %d: body holds another <tool_call>", i);
    }
    chat_parsed_free(&p);
    return 0;
#undef FAIL
}
