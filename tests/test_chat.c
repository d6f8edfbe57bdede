// model/chat: the 5 reference renders (text and ids), append-only episodes, the assistant mask,
// the episode-layout JSON loader (== the incremental rollout build, id for id and mask for mask),
// parse round trips and parser cases, and a randomized check that per-message segments tokenize
// exactly like the whole rendered text.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/err.h"
#include "model/chat.h"
#include "model/embedded.h"
#include "test.h"

static tokenizer_t *tok;

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static char *decode(const int32_t *ids, int n) {
    char *text = NULL;
    size_t len = 0;
    if (tokenizer_decode(tok, ids, n, &text, &len)) return strdup("<decode failed>");
    return text;
}

// the ids with mask 1, decoded
static char *decode_masked(const chat_t *c) {
    ids_t m = {0};
    for (int i = 0; i < c->ids.n; i++)
        if (c->mask[i]) ids_push(&m, c->ids.ids[i]);
    char *s = decode(m.ids, m.n);
    ids_free(&m);
    return s;
}

static int ids_equal(const int32_t *a, int na, const int32_t *b, int nb, const char *what) {
    int n = na < nb ? na : nb;
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) {
            fprintf(stderr, "%s: first difference at token %d: %d vs %d (lengths %d, %d)\n", what,
                    i, a[i], b[i], na, nb);
            return 0;
        }
    if (na != nb) fprintf(stderr, "%s: lengths %d vs %d\n", what, na, nb);
    return na == nb;
}

// ---------------------------------------------------------------------------------------------
// the special tokens: looked up by text, checked against the Qwen3 ids

static void test_special_ids(void) {
    chat_t c;
    CHECK(chat_init(&c, tok) == 0, "chat_init: %s", err_msg());
    const char *names[8] = {"<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>",
                            "<tool_response>", "</tool_response>", "<think>", "</think>"};
    const int32_t want[8] = {151644, 151645, 151657, 151658, 151665, 151666, 151667, 151668};
    for (int i = 0; i < 8; i++) {
        CHECK(c.sp[i] == want[i], "%s: id %d, expected %d", names[i], c.sp[i], want[i]);
        CHECK(tokenizer_token_id(tok, names[i]) == want[i], "%s", names[i]);
    }
    chat_free(&c);
}

// ---------------------------------------------------------------------------------------------
// the 5 reference renders (official template + two tokenizer implementations)

// the text an assistant produced, taken from a rendered reference text independently of our
// renderer: for every "<|im_start|>assistant\n" that is closed by "<|im_end|>", what lies between
// (the header excluded, the <|im_end|> included)
static char *reference_assistant_text(const char *rendered) {
    const char *hdr = "<|im_start|>assistant\n", *end = "<|im_end|>";
    size_t cap = strlen(rendered) + 1, n = 0;
    char *out = calloc(cap, 1);
    for (const char *p = strstr(rendered, hdr); p; p = strstr(p, hdr)) {
        p += strlen(hdr);
        const char *e = strstr(p, end);
        if (!e) break;
        const char *next = strstr(p, hdr);
        if (next && next < e) continue;
        memcpy(out + n, p, (size_t)(e - p) + strlen(end));
        n += (size_t)(e - p) + strlen(end);
    }
    out[n] = 0;
    return out;
}

static void test_references(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/qwen3-tokenizer-tests/qwen3-chat-template-expected.jsonl",
             TEST_DATA_DIR);
    char *all = read_file(path);
    CHECK(all, "cannot read %s", path);
    if (!all) return;
    int n_cases = 0;
    for (char *line = all, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        json_error_t e;
        json_t *ref = json_loads(line, JSON_PRESERVE_ORDER, &e);
        CHECK(ref, "%s: %s", path, e.text);
        if (!ref) continue;
        n_cases++;
        const char *name = json_string_value(json_object_get(ref, "name"));
        const char *rendered = json_string_value(json_object_get(ref, "rendered"));
        const json_t *jids = json_object_get(ref, "ids");
        const json_t *ctx = json_object_get(ref, "context");
        ids_t want = {0};
        for (size_t i = 0; i < json_array_size(jids); i++)
            ids_push(&want, (int32_t)json_integer_value(json_array_get(jids, i)));

        // text only (no tokenizer)
        chat_t ct;
        chat_init(&ct, NULL);
        CHECK(chat_load_json(&ct, ctx, name) == 0, "%s: %s", name, err_msg());
        CHECK(ct.text && !strcmp(ct.text, rendered), "%s: text\n got: [%s]\nwant: [%s]", name,
              ct.text ? ct.text : "", rendered);
        chat_free(&ct);

        // ids
        chat_t c;
        CHECK(chat_init(&c, tok) == 0, "%s", err_msg());
        CHECK(chat_load_json(&c, ctx, name) == 0, "%s: %s", name, err_msg());
        CHECK(c.text && !strcmp(c.text, rendered), "%s: text (tokenizer chat)", name);
        CHECK(ids_equal(c.ids.ids, c.ids.n, want.ids, want.n, name), "%s: ids", name);
        CHECK(c.n_straddle == 0, "%s: %d straddling tokens", name, c.n_straddle);
        // per-segment ids equal tokenize(whole rendered text)
        ids_t whole = {0};
        CHECK(tokenizer_encode(tok, rendered, strlen(rendered), &whole) == 0, "%s", err_msg());
        CHECK(ids_equal(whole.ids, whole.n, want.ids, want.n, "tokenize(rendered)"), "%s", name);
        // mask: the masked ids decode to exactly what the assistant wrote (+ <|im_end|>)
        char *masked = decode_masked(&c), *ref_a = reference_assistant_text(rendered);
        CHECK(!strcmp(masked, ref_a), "%s: masked tokens\n got: [%s]\nwant: [%s]", name, masked,
              ref_a);
        printf("reference %-30s %3d ids ok, masked %zu bytes\n", name, c.ids.n, strlen(masked));
        free(masked);
        free(ref_a);
        ids_free(&whole);
        ids_free(&want);
        chat_free(&c);
        json_decref(ref);
    }
    CHECK(n_cases == 5, "expected 5 reference renders, found %d", n_cases);
    free(all);
}

// ---------------------------------------------------------------------------------------------
// an append-only multi-turn tool-using episode (thinking off, the episode default)

static const char *TOOLS =
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather "
    "now\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": "
    "\"string\"}}, \"required\": [\"city\"]}}}, {\"type\": \"function\", \"function\": {\"name\": "
    "\"get_time\", \"parameters\": {\"type\": \"object\", \"properties\": {\"tz\": {\"type\": "
    "\"string\"}}}}}]";

// the rendered text written out by hand from the template rules (not by our renderer)
static const char *EPISODE_TEXT =
    "<|im_start|>system\nYou are a travel agent.\n\n# Tools\n\nYou may call one or more functions "
    "to assist with the user query.\n\nYou are provided with function signatures within "
    "<tools></tools> XML tags:\n<tools>\n"
    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather "
    "now\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": "
    "\"string\"}}, \"required\": [\"city\"]}}}\n"
    "{\"type\": \"function\", \"function\": {\"name\": \"get_time\", \"parameters\": {\"type\": "
    "\"object\", \"properties\": {\"tz\": {\"type\": \"string\"}}}}}\n"
    "</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
    "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
    "<|im_start|>user\nWeather and time in Paris?<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
    "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": "
    "\"Europe/Paris\"}}\n</tool_call><|im_end|>\n"
    "<|im_start|>user\n<tool_response>\n{\"temp_c\": 21}\n</tool_response>\n<tool_response>\n"
    "{\"time\": \"14:05\"}\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    "It is 21 °C and 14:05 in Paris.<|im_end|>\n"
    "<|im_start|>user\nThanks!<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n";

static const char *A1 = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                        "{\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": "
                        "\"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\"}}\n</tool_call>";
static const char *A2 = "It is 21 °C and 14:05 in Paris.";

typedef struct {
    ids_t ids;
    char *text;
} snap_t;

static void snap(const chat_t *c, snap_t *s) {
    s->ids = (ids_t){0};
    ids_append(&s->ids, c->ids.ids, c->ids.n);
    s->text = strdup(c->text ? c->text : "");
}

static void test_episode(void) {
    chat_t c;
    if (chat_init(&c, tok)) { CHECK(0, "chat_init: %s", err_msg()); return; }
    CHECK(c.enable_thinking == 0, "thinking is off by default");
    snap_t s[12];
    int ns = 0;
    CHECK(chat_add_system(&c, "You are a travel agent.") == 0, "%s", err_msg());
    CHECK(chat_set_tools_json(&c, TOOLS) == 0, "%s", err_msg());
    CHECK(chat_flush(&c) == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    CHECK(chat_set_tools_json(&c, TOOLS) == -1, "tools after the header must be refused");
    CHECK(chat_add_user(&c, "Weather and time in Paris?") == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    ids_t prompt1 = {0};
    CHECK(chat_render_gen_prompt(&c, &prompt1) == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    CHECK(chat_add_user(&c, "x") == -1, "a user message while the prompt is open is refused");
    // the policy "samples" A1 and stops on <|im_end|>
    ids_t sampled = {0};
    tokenizer_encode(tok, A1, strlen(A1), &sampled);
    ids_push(&sampled, 151645);
    CHECK(chat_add_assistant_ids(&c, sampled.ids, sampled.n) == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    CHECK(chat_add_tool(&c, "{\"temp_c\": 21}") == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    CHECK(chat_add_tool(&c, "{\"time\": \"14:05\"}") == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    ids_t prompt2 = {0};
    CHECK(chat_render_gen_prompt(&c, &prompt2) == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    CHECK(chat_add_assistant(&c, A2, NULL, 0) == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    CHECK(chat_add_user(&c, "Thanks!") == 0, "%s", err_msg());
    snap(&c, &s[ns++]);
    CHECK(chat_begin_assistant(&c) == 0 && chat_begin_assistant(&c) == 0, "%s", err_msg());
    snap(&c, &s[ns++]);

    // append-only: every snapshot extends the previous one (ids and text)
    for (int i = 1; i < ns; i++) {
        CHECK(s[i].ids.n > s[i - 1].ids.n, "snapshot %d grows", i);
        CHECK(s[i].ids.n >= s[i - 1].ids.n &&
                  !memcmp(s[i].ids.ids, s[i - 1].ids.ids, sizeof(int32_t) * s[i - 1].ids.n),
              "snapshot %d does not extend snapshot %d", i, i - 1);
        CHECK(!strncmp(s[i].text, s[i - 1].text, strlen(s[i - 1].text)), "text %d", i);
    }
    CHECK(!strcmp(c.text, EPISODE_TEXT), "episode text\n got: [%s]\nwant: [%s]", c.text,
          EPISODE_TEXT);
    // per-segment ids = tokenize(whole text) for this episode
    ids_t whole = {0};
    tokenizer_encode(tok, EPISODE_TEXT, strlen(EPISODE_TEXT), &whole);
    CHECK(ids_equal(c.ids.ids, c.ids.n, whole.ids, whole.n, "episode"), "episode ids");
    // mask: exactly the two assistant replies and their <|im_end|>
    char want_mask[1024];
    snprintf(want_mask, sizeof want_mask, "%s<|im_end|>%s<|im_end|>", A1, A2);
    char *masked = decode_masked(&c);
    CHECK(!strcmp(masked, want_mask), "episode mask\n got: [%s]\nwant: [%s]", masked, want_mask);
    free(masked);

    // the first prompt is exactly HF's (same conversation, generation prompt, thinking off)
    json_error_t e;
    char ctx[4096];
    snprintf(ctx, sizeof ctx,
             "{\"messages\": [{\"role\": \"system\", \"content\": \"You are a travel agent.\"}, "
             "{\"role\": \"user\", \"content\": \"Weather and time in Paris?\"}], \"tools\": %s, "
             "\"add_generation_prompt\": true, \"enable_thinking\": false}", TOOLS);
    json_t *j = json_loads(ctx, JSON_PRESERVE_ORDER, &e);
    chat_t h;
    chat_init(&h, tok);
    CHECK(j && chat_load_json(&h, j, "hf1") == 0, "%s", err_msg());
    CHECK(ids_equal(h.ids.ids, h.ids.n, prompt1.ids, prompt1.n, "prompt 1 vs HF"), "prompt 1");
    chat_free(&h);
    json_decref(j);

    // the second prompt differs from HF's re-render only by the empty think block HF drops from
    // the first (non-last) assistant turn: the documented price of append-only episodes
    snprintf(ctx, sizeof ctx,
             "{\"messages\": [{\"role\": \"system\", \"content\": \"You are a travel agent.\"}, "
             "{\"role\": \"user\", \"content\": \"Weather and time in Paris?\"}, "
             "{\"role\": \"assistant\", \"content\": \"Let me check.\", \"tool_calls\": ["
             "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": "
             "{\"city\": \"Paris\"}}}, {\"type\": \"function\", \"function\": {\"name\": "
             "\"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"Europe/Paris\\\"}\"}}]}, "
             "{\"role\": \"tool\", \"content\": \"{\\\"temp_c\\\": 21}\"}, "
             "{\"role\": \"tool\", \"content\": \"{\\\"time\\\": \\\"14:05\\\"}\"}], \"tools\": %s, "
             "\"add_generation_prompt\": true, \"enable_thinking\": false}", TOOLS);
    j = json_loads(ctx, JSON_PRESERVE_ORDER, &e);
    CHECK(j, "%s", e.text);
    chat_init(&h, tok);
    CHECK(j && chat_load_json(&h, j, "hf2") == 0, "%s", err_msg());
    // drop the 4 ids of "<think>\n\n</think>\n\n" after the first assistant header from ours
    ids_t ours = {0};
    int at = s[2].ids.n - 4; // prompt 1 ends with exactly those 4 ids
    CHECK(prompt1.ids[at] == 151667 && prompt1.ids[at + 2] == 151668, "think block ids");
    ids_append(&ours, prompt2.ids, at);
    ids_append(&ours, prompt2.ids + at + 4, prompt2.n - at - 4);
    CHECK(ids_equal(h.ids.ids, h.ids.n, ours.ids, ours.n, "prompt 2 vs HF"), "prompt 2");
    ids_free(&ours);
    chat_free(&h);
    json_decref(j);

    // a truncated assistant turn (no <|im_end|> sampled): closed with <|im_end|> of mask 0
    chat_t t;
    chat_init(&t, tok);
    chat_add_user(&t, "hi");
    int32_t part[2] = {sampled.ids[0], sampled.ids[1]};
    CHECK(chat_add_assistant_ids(&t, part, 2) == 0, "%s", err_msg());
    CHECK(t.ids.n >= 4 && t.ids.ids[t.ids.n - 2] == 151645 && t.mask[t.ids.n - 2] == 0 &&
              t.mask[t.ids.n - 3] == 1 && t.mask[t.ids.n - 1] == 0,
          "truncated turn close");
    int32_t bad = 1 << 30;
    CHECK(chat_add_assistant_ids(&t, &bad, 1) == -1, "out-of-range id refused");
    chat_free(&t);

    for (int i = 0; i < ns; i++) { ids_free(&s[i].ids); free(s[i].text); }
    ids_free(&prompt1);
    ids_free(&prompt2);
    ids_free(&sampled);
    ids_free(&whole);
    chat_free(&c);
}

// ---------------------------------------------------------------------------------------------
// render calls -> decode -> parse -> the same calls

static void test_roundtrip(void) {
    const char *args_json[] = {
        "{\"city\": \"Paris\", \"units\": \"metric\"}",
        "{}",
        "{\"q\": \"naïve \\\"quoted\\\" \\\\ back\\nslash / ünïcödé 中文 😀\", \"n\": [1, 2.5, "
        "-0.0, 1e-05, 1e+16, true, false, null], \"nested\": {\"a\": {\"b\": []}}}",
        "{\"ctrl\": \"\\u0001\\u001f\\t\\r\\b\\f\", \"big\": 12345678901234, \"f\": 0.1}",
    };
    const char *contents[] = {"", "Sure, calling the tools now.", "\n", "Let me <b>check</b>."};
    for (int ci = 0; ci < 4; ci++) {
        for (int k = 1; k <= 4; k++) {
            json_t *args[4];
            chat_call_t calls[4];
            char names[4][32];
            for (int i = 0; i < k; i++) {
                json_error_t e;
                args[i] = json_loads(args_json[(i + ci) % 4], JSON_PRESERVE_ORDER, &e);
                snprintf(names[i], sizeof names[i], "tool_%d.v%d", i, ci);
                calls[i].name = names[i];
                calls[i].arguments = args[i];
            }
            // the last call passes its arguments as a string: inserted verbatim
            char *verbatim = chat_json_dumps(args[k - 1]);
            json_t *as_string = json_string(verbatim);
            if (k > 1) calls[k - 1].arguments = as_string;
            chat_t c;
            chat_init(&c, tok);
            chat_add_user(&c, "do it");
            CHECK(chat_add_assistant(&c, contents[ci], calls, k) == 0, "%s", err_msg());
            char *text = decode_masked(&c);
            size_t n = strlen(text);
            CHECK(n >= 10 && !strcmp(text + n - 10, "<|im_end|>"), "ends with <|im_end|>");
            chat_parsed_t p;
            CHECK(chat_parse_assistant(text, n - 10, &p) == 0, "parse");
            CHECK(p.n_calls == k, "content %d: %d calls, expected %d", ci, p.n_calls, k);
            char want_content[64];
            snprintf(want_content, sizeof want_content, "%s", contents[ci]);
            CHECK(!strcmp(p.content, ci == 2 ? "" : want_content), "content [%s]", p.content);
            CHECK(p.reasoning == NULL, "no reasoning");
            for (int i = 0; i < p.n_calls && i < k; i++) {
                CHECK(p.calls[i].status == CHAT_CALL_OK, "call %d: %s", i,
                      chat_call_status_name(p.calls[i].status));
                CHECK(p.calls[i].name && !strcmp(p.calls[i].name, names[i]), "call %d name", i);
                CHECK(json_equal(p.calls[i].arguments, args[i]), "call %d arguments", i);
            }
            chat_parsed_free(&p);
            free(text);
            chat_free(&c);
            free(verbatim);
            json_decref(as_string);
            for (int i = 0; i < k; i++) json_decref(args[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// parser cases

static void expect_parse(const char *text, const char *content, const char *reasoning, int n,
                         const chat_call_status_t *st, const char *const *names) {
    chat_parsed_t p;
    CHECK(chat_parse_assistant(text, strlen(text), &p) == 0, "parse");
    CHECK(!strcmp(p.content, content), "[%s]: content [%s], expected [%s]", text, p.content,
          content);
    CHECK((reasoning == NULL) == (p.reasoning == NULL) &&
              (!reasoning || !strcmp(reasoning, p.reasoning)),
          "[%s]: reasoning [%s]", text, p.reasoning ? p.reasoning : "(null)");
    CHECK(p.n_calls == n, "[%s]: %d calls, expected %d", text, p.n_calls, n);
    for (int i = 0; i < n && i < p.n_calls; i++) {
        CHECK(p.calls[i].status == st[i], "[%s] call %d: %s, expected %s", text, i,
              chat_call_status_name(p.calls[i].status), chat_call_status_name(st[i]));
        const char *nm = names[i];
        CHECK((nm == NULL) == (p.calls[i].name == NULL) && (!nm || !strcmp(nm, p.calls[i].name)),
              "[%s] call %d name %s", text, i, p.calls[i].name ? p.calls[i].name : "(null)");
    }
    chat_parsed_free(&p);
}

static void test_parser_cases(void) {
    const chat_call_status_t OK = CHAT_CALL_OK, BAD = CHAT_CALL_BAD_JSON,
                             NONAME = CHAT_CALL_MISSING_NAME, NOOBJ = CHAT_CALL_ARGUMENTS_NOT_OBJECT,
                             OPEN = CHAT_CALL_UNCLOSED_TAG;
    expect_parse("", "", NULL, 0, NULL, NULL);
    expect_parse("  Just text.\n", "Just text.", NULL, 0, NULL, NULL);
    expect_parse("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>", "",
                 NULL, 1, &OK, (const char *[]){"f"});
    expect_parse("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": ", "", NULL, 1, &OPEN,
                 (const char *[]){NULL});
    expect_parse("<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n", "", NULL, 1, &OPEN,
                 (const char *[]){"f"});
    expect_parse("<tool_call>{not json}</tool_call>", "", NULL, 1, &BAD, (const char *[]){NULL});
    expect_parse("<tool_call>{\"name\": \"f\", \"arguments\": {}}} extra</tool_call>", "", NULL, 1,
                 &BAD, (const char *[]){NULL});
    expect_parse("<tool_call>{\"arguments\": {}}</tool_call>", "", NULL, 1, &NONAME,
                 (const char *[]){NULL});
    expect_parse("<tool_call>[1, 2]</tool_call>", "", NULL, 1, &NONAME, (const char *[]){NULL});
    expect_parse("<tool_call>{\"name\": 7, \"arguments\": {}}</tool_call>", "", NULL, 1, &NONAME,
                 (const char *[]){NULL});
    expect_parse("<tool_call>{\"name\": \"f\", \"arguments\": \"{}\"}</tool_call>", "", NULL, 1,
                 &NOOBJ, (const char *[]){"f"});
    expect_parse("<tool_call>{\"name\": \"f\"}</tool_call>", "", NULL, 1, &NOOBJ,
                 (const char *[]){"f"});
    expect_parse("Hi <tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call> mid "
                 "<tool_call>{\"name\": \"b\", \"arguments\": {}}</tool_call> end",
                 "Hi  mid  end", NULL, 2, (chat_call_status_t[]){OK, OK},
                 (const char *[]){"a", "b"});
    expect_parse("<tool_call>{\"name\": \"a\"<tool_call>{\"name\": \"b\", \"arguments\": {}}"
                 "</tool_call>",
                 "", NULL, 2, (chat_call_status_t[]){OPEN, OK}, (const char *[]){NULL, "b"});
    expect_parse("<think>\nLet me think.\n</think>\n\nAnswer.", "Answer.", "Let me think.", 0,
                 NULL, NULL);
    expect_parse("<think>\nstill thinking", "", "still thinking", 0, NULL, NULL);
    expect_parse("reasoning only</think>\n\nthe answer", "the answer", "reasoning only", 0, NULL,
                 NULL);
    // calls inside the think block are not parsed; a </think> after a call is plain text
    expect_parse("<think>\n<tool_call>{\"name\": \"x\", \"arguments\": {}}</tool_call>\n</think>\n"
                 "<tool_call>{\"name\": \"y\", \"arguments\": {}}</tool_call>",
                 "", "<tool_call>{\"name\": \"x\", \"arguments\": {}}</tool_call>", 1, &OK,
                 (const char *[]){"y"});
    expect_parse("<tool_call>{\"name\": \"y\", \"arguments\": {}}</tool_call> then </think>",
                 "then </think>", NULL, 1, &OK, (const char *[]){"y"});
    expect_parse("stray </tool_call> tag", "stray </tool_call> tag", NULL, 0, NULL, NULL);

    chat_parsed_t p;
    CHECK(chat_parse_assistant(NULL, 0, &p) == 0 && p.n_calls == 0 && !strcmp(p.content, ""),
          "NULL text");
    chat_parsed_free(&p);
    // bytes with NULs and invalid UTF-8
    const char bin[] = "a\0b<tool_call>{\"name\": \"\xff\", \"arguments\": {}}</tool_call>\0";
    CHECK(chat_parse_assistant(bin, sizeof bin - 1, &p) == 0 && p.n_calls == 1 &&
              p.calls[0].status == CHAT_CALL_BAD_JSON && p.content_len == 4,
          "binary input");
    chat_parsed_free(&p);
}

// ---------------------------------------------------------------------------------------------
// randomized: incremental per-message ids == tokenize(full rendered text), via the C API

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static const char *PIECES[] = {
    "Hello", " world", "\n", "\n\n", "  ", "\t", " ", "é", "e\xcc\x81", "\xe2\x84\xab" /* Å sign */,
    "😀", "中文", "<think>", "</think>", "<tool_call>", "<|im_end|>", "123", "4.5", "!?", "\r\n",
    " \n ", "'s", "'LL", "ü", "{\"a\": 1}", "</tool_response>", "<tool_response>", "...", "\xcc\x81",
    "x", "\n\n\n", "      ", "don't", "URL: https://x.y/z?q=1",
};

static void random_text(char *out, size_t cap, int max_pieces) {
    size_t n = 0;
    int k = (int)(rnd() % (unsigned)(max_pieces + 1));
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        const char *p = PIECES[rnd() % (sizeof PIECES / sizeof *PIECES)];
        size_t l = strlen(p);
        if (n + l + 1 > cap) break;
        memcpy(out + n, p, l + 1);
        n += l;
    }
}

static void test_random(void) {
    int n_conv = 300, n_tok_checked = 0, mismatches = 0;
    for (int conv = 0; conv < n_conv; conv++) {
        chat_t c;
        chat_init(&c, tok);
        c.enable_thinking = (int)(rnd() % 2);
        char buf[512], buf2[512];
        if (rnd() % 2) { random_text(buf, sizeof buf, 4); chat_add_system(&c, buf); }
        if (rnd() % 2) chat_set_tools_json(&c, TOOLS);
        int n_msgs = 1 + (int)(rnd() % 8), rc = 0;
        for (int m = 0; m < n_msgs && !rc; m++) {
            int role = (int)(rnd() % 5);
            random_text(buf, sizeof buf, 6);
            if (role == 0) rc = chat_add_user(&c, buf);
            else if (role == 1) rc = chat_add_tool(&c, buf);
            else if (role == 2) rc = chat_add_system(&c, buf);
            else {
                json_t *args = json_pack("{s:s, s:i}", "q", buf, "n", (int)(rnd() % 100));
                random_text(buf2, sizeof buf2, 3);
                json_t *sargs = json_string(buf2); // arbitrary text as verbatim arguments
                chat_call_t calls[2] = {{"lookup", args}, {"echo", sargs}};
                int ncalls = (int)(rnd() % 3);
                random_text(buf2, sizeof buf2, 3);
                const char *reasoning = rnd() % 2 ? buf2 : NULL;
                rc = chat_add_assistant_ex(&c, buf, reasoning, calls, ncalls,
                                           (chat_think_t)(rnd() % 3));
                json_decref(args);
                json_decref(sargs);
            }
            CHECK(rc == 0, "conversation %d message %d: %s", conv, m, err_msg());
        }
        if (rnd() % 2) rc = rc || chat_begin_assistant(&c);
        else rc = rc || chat_flush(&c);
        ids_t whole = {0};
        CHECK(tokenizer_encode(tok, c.text, c.text_len, &whole) == 0, "%s", err_msg());
        if (!ids_equal(c.ids.ids, c.ids.n, whole.ids, whole.n, "random conversation")) {
            mismatches++;
            if (mismatches < 3) fprintf(stderr, "text: [%s]\n", c.text);
        }
        // text-only render of the same calls gives the same text
        n_tok_checked += whole.n;
        ids_free(&whole);
        chat_free(&c);
    }
    CHECK(mismatches == 0, "%d of %d random conversations: per-segment ids != tokenize(text)",
          mismatches, n_conv);
    printf("random: %d conversations, %d tokens, per-segment == whole-text tokenization\n", n_conv,
           n_tok_checked);
}

// where per-segment ids can differ from render-then-tokenize: text continuing the generation
// prompt that starts with a newline joins the prompt's "\n\n" in a whole-text tokenization
static void test_documented_divergence(void) {
    chat_t c;
    chat_init(&c, tok);
    chat_add_user(&c, "hi");
    chat_begin_assistant(&c);
    CHECK(chat_add_assistant(&c, "\nhello", NULL, 0) == 0, "%s", err_msg());
    ids_t whole = {0};
    tokenizer_encode(tok, c.text, c.text_len, &whole);
    CHECK(whole.n == c.ids.n - 1, "\"\\n\\n\" + \"\\nhello\" is one pre-token in a whole render "
                                  "(%d vs %d ids)", whole.n, c.ids.n);
    ids_free(&whole);
    chat_free(&c);
}

// ---------------------------------------------------------------------------------------------
// chat_load_json_episode: a JSON transcript laid out the way a rollout builds the episode

// the conversation of test_episode as JSON (get_time's arguments in the verbatim string form),
// plus `extra` messages appended
static json_t *episode_json(const char *extra, const char *flags) {
    char ctx[8192];
    snprintf(ctx, sizeof ctx,
             "{\"messages\": [{\"role\": \"system\", \"content\": \"You are a travel agent.\"}, "
             "{\"role\": \"user\", \"content\": \"Weather and time in Paris?\"}, "
             "{\"role\": \"assistant\", \"content\": \"Let me check.\", \"tool_calls\": ["
             "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": "
             "{\"city\": \"Paris\"}}}, {\"type\": \"function\", \"function\": {\"name\": "
             "\"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"Europe/Paris\\\"}\"}}]}, "
             "{\"role\": \"tool\", \"content\": \"{\\\"temp_c\\\": 21}\"}, "
             "{\"role\": \"tool\", \"content\": \"{\\\"time\\\": \\\"14:05\\\"}\"}, "
             "{\"role\": \"assistant\", \"content\": \"It is 21 °C and 14:05 in Paris.\"}, "
             "{\"role\": \"user\", \"content\": \"Thanks!\"}%s], \"tools\": %s%s}",
             extra, TOOLS, flags);
    json_error_t e;
    json_t *j = json_loads(ctx, JSON_PRESERVE_ORDER, &e);
    CHECK(j, "episode JSON: %s", e.text);
    return j;
}

// what a rollout appends for one reply: the canonical tokens of its text, then <|im_end|>
static int add_sampled(chat_t *c, const char *text) {
    ids_t s = {0};
    int rc = tokenizer_encode(tok, text, strlen(text), &s) || ids_push(&s, 151645) ||
             chat_add_assistant_ids(c, s.ids, s.n);
    ids_free(&s);
    return rc ? -1 : 0;
}

static int same_ids_mask(const chat_t *a, const chat_t *b, const char *what) {
    int ok = ids_equal(a->ids.ids, a->ids.n, b->ids.ids, b->ids.n, what);
    for (int i = 0; ok && i < a->ids.n; i++)
        if (a->mask[i] != b->mask[i]) {
            fprintf(stderr, "%s: masks differ at token %d (id %d): %d vs %d\n", what, i,
                    a->ids.ids[i], a->mask[i], b->mask[i]);
            ok = 0;
        }
    return ok;
}

static void test_load_episode(void) {
    const char *A3 = " You're welcome!"; // starts with a space: its own piece after the prompt
    // 1. default flags (thinking off, generation prompt): the hand-written EPISODE_TEXT, whose
    // whole-text tokenization is the episode's ids
    json_t *j = episode_json("", "");
    chat_t e, r;
    chat_init(&e, tok);
    CHECK(j && chat_load_json_episode(&e, j, "ep1") == 0, "%s", err_msg());
    CHECK(e.enable_thinking == 0 && e.assistant_open, "defaults: thinking off, prompt open");
    CHECK(!strcmp(e.text, EPISODE_TEXT), "episode render text\n got: [%s]\nwant: [%s]", e.text,
          EPISODE_TEXT);
    ids_t whole = {0};
    tokenizer_encode(tok, EPISODE_TEXT, strlen(EPISODE_TEXT), &whole);
    CHECK(ids_equal(e.ids.ids, e.ids.n, whole.ids, whole.n, "episode render vs tokenize(text)"),
          "episode render ids");
    char want_mask[1024];
    snprintf(want_mask, sizeof want_mask, "%s<|im_end|>%s<|im_end|>", A1, A2);
    char *masked = decode_masked(&e);
    CHECK(!strcmp(masked, want_mask), "episode render mask\n got: [%s]\nwant: [%s]", masked,
          want_mask);
    free(masked);
    ids_free(&whole);
    chat_free(&e);
    json_decref(j);

    // 2. a finished transcript (as trustee sft reads it) == the rollout's incremental build, id for
    // id and mask for mask
    j = episode_json(", {\"role\": \"assistant\", \"content\": \" You're welcome!\"}",
                     ", \"add_generation_prompt\": false, \"enable_thinking\": false");
    chat_init(&e, tok);
    CHECK(j && chat_load_json_episode(&e, j, "ep2") == 0, "%s", err_msg());
    chat_init(&r, tok);
    int rc = chat_add_system(&r, "You are a travel agent.") || chat_set_tools_json(&r, TOOLS) ||
             chat_add_user(&r, "Weather and time in Paris?") || chat_begin_assistant(&r) ||
             add_sampled(&r, A1) || chat_add_tool(&r, "{\"temp_c\": 21}") ||
             chat_add_tool(&r, "{\"time\": \"14:05\"}") || chat_begin_assistant(&r) ||
             add_sampled(&r, A2) || chat_add_user(&r, "Thanks!") || add_sampled(&r, A3) ||
             chat_flush(&r);
    CHECK(rc == 0, "incremental episode: %s", err_msg());
    CHECK(same_ids_mask(&e, &r, "episode render vs rollout"), "episode render == rollout ids+mask");
    CHECK(!strcmp(e.text, r.text), "episode render text vs rollout\n[%s]\n[%s]", e.text, r.text);
    CHECK(e.n_straddle == 0 && r.n_straddle == 0, "no straddling tokens");
    // the HF render of the same transcript lacks the empty think blocks of the 2 earlier assistant
    // turns (it keeps the last one's): the layout mismatch --render episode exists to avoid
    chat_t h;
    chat_init(&h, tok);
    CHECK(chat_load_json(&h, j, "hf") == 0, "%s", err_msg());
    CHECK(h.ids.n == e.ids.n - 2 * 4, "HF render: %d ids, episode render: %d (expected 8 more)",
          h.ids.n, e.ids.n);
    chat_free(&h);
    chat_free(&r);
    chat_free(&e);
    json_decref(j);

    // 3. thinking on: reasoning_content is generated text after "<|im_start|>assistant\n"
    json_error_t je;
    j = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": "
                   "\"assistant\", \"content\": \"4\", \"reasoning_content\": \"\\nadd them\\n\"}, "
                   "{\"role\": \"user\", \"content\": \"and 3+3?\"}, {\"role\": \"assistant\", "
                   "\"content\": \"6\"}], \"add_generation_prompt\": false, "
                   "\"enable_thinking\": true}", JSON_PRESERVE_ORDER, &je);
    chat_init(&e, tok);
    CHECK(j && chat_load_json_episode(&e, j, "think") == 0, "%s", err_msg());
    chat_init(&r, tok);
    r.enable_thinking = 1;
    rc = chat_add_user(&r, "2+2?") || add_sampled(&r, "<think>\nadd them\n</think>\n\n4") ||
         chat_add_user(&r, "and 3+3?") || add_sampled(&r, "6") || chat_flush(&r);
    CHECK(rc == 0, "%s", err_msg());
    CHECK(same_ids_mask(&e, &r, "thinking episode"), "thinking episode == rollout ids+mask");
    const char *want = "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd "
                       "them\n</think>\n\n4<|im_end|>\n<|im_start|>user\nand 3+3?<|im_end|>\n"
                       "<|im_start|>assistant\n6<|im_end|>\n";
    CHECK(!strcmp(e.text, want), "thinking episode text [%s]", e.text);
    chat_free(&r);
    chat_free(&e);
    // the same with thinking off (the default): reasoning would follow the empty block: refused
    json_object_del(j, "enable_thinking");
    chat_init(&e, tok);
    CHECK(chat_load_json_episode(&e, j, "nothink") == -1 && strstr(err_msg(), "nothink") &&
              strstr(err_msg(), "messages[1]") && strstr(err_msg(), "enable_thinking false"),
          "reasoning with thinking off: %s", err_msg());
    chat_free(&e);
    json_decref(j);
}

// ---------------------------------------------------------------------------------------------
// loader forms and errors

static void test_loader(void) {
    json_error_t e;
    // a bare list: generation prompt added, thinking on (HF's default)
    json_t *j = json_loads("[{\"role\": \"user\", \"content\": \"Hello!\"}]", 0, &e);
    chat_t c;
    chat_init(&c, NULL);
    CHECK(chat_load_json(&c, j, "bare") == 0, "%s", err_msg());
    CHECK(!strcmp(c.text, "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"), "[%s]",
          c.text);
    chat_free(&c);
    json_decref(j);

    // file loading, with an error naming the file
    char path[] = "/tmp/test_chat_XXXXXX";
    int fd = mkstemp(path);
    const char *doc = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
                      "\"add_generation_prompt\": false}";
    CHECK(fd >= 0 && write(fd, doc, strlen(doc)) == (ssize_t)strlen(doc), "temp file");
    close(fd);
    chat_init(&c, tok);
    CHECK(chat_load_file(&c, path) == 0, "%s", err_msg());
    CHECK(!strcmp(c.text, "<|im_start|>user\nHi<|im_end|>\n"), "[%s]", c.text);
    chat_free(&c);
    FILE *f = fopen(path, "w");
    fputs("{\"messages\": [{\"role\": \"robot\", \"content\": \"Hi\"}]}", f);
    fclose(f);
    chat_init(&c, NULL);
    CHECK(chat_load_file(&c, path) == -1 && strstr(err_msg(), path) &&
              strstr(err_msg(), "robot"),
          "unknown role error: %s", err_msg());
    chat_free(&c);
    f = fopen(path, "w");
    fputs("{\"messages\": [", f);
    fclose(f);
    chat_init(&c, NULL);
    CHECK(chat_load_file(&c, path) == -1 && strstr(err_msg(), path), "bad JSON: %s", err_msg());
    chat_free(&c);
    unlink(path);

    // system message after the first: its own turn; a second system first: header + turn
    j = json_loads("{\"messages\": [{\"role\": \"system\", \"content\": \"A\"}, {\"role\": "
                   "\"system\", \"content\": \"B\"}], \"add_generation_prompt\": false}", 0, &e);
    chat_init(&c, NULL);
    CHECK(chat_load_json(&c, j, "sys") == 0, "%s", err_msg());
    CHECK(!strcmp(c.text, "<|im_start|>system\nA<|im_end|>\n<|im_start|>system\nB<|im_end|>\n"),
          "[%s]", c.text);
    chat_free(&c);
    json_decref(j);
}

// invalid UTF-8 is replaced like Python's decode("utf-8", "replace"); a failed add leaves nothing
static void test_sanitize_rollback(void) {
    chat_t c;
    chat_init(&c, tok);
    CHECK(chat_add_user(&c, "a\xff" "b\xe2\x82" "c\xed\xa0\x80" "d\xf0\x9f\x98") == 0, "%s",
          err_msg());
    // Python: b"a\xffb\xe2\x82c\xed\xa0\x80d\xf0\x9f\x98".decode("utf-8", "replace")
    const char *want = "<|im_start|>user\na\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
                       "\xef\xbf\xbd" "d\xef\xbf\xbd<|im_end|>\n";
    CHECK(!strcmp(c.text, want), "replaced text [%s]", c.text);
    ids_t whole = {0};
    tokenizer_encode(tok, c.text, c.text_len, &whole);
    CHECK(ids_equal(c.ids.ids, c.ids.n, whole.ids, whole.n, "sanitized"), "sanitized ids");
    ids_free(&whole);

    int n0 = c.ids.n;
    size_t t0 = c.text_len;
    chat_call_t bad = {"f", NULL}; // no arguments: refused after the content was rendered
    CHECK(chat_add_assistant(&c, "some content", &bad, 1) == -1, "call without arguments");
    CHECK(c.ids.n == n0 && c.text_len == t0 && strlen(c.text) == t0, "rolled back");
    CHECK(chat_add_assistant(&c, "fine", NULL, 0) == 0, "%s", err_msg());
    CHECK(!strcmp(c.text + t0, "<|im_start|>assistant\nfine<|im_end|>\n"), "[%s]", c.text + t0);
    chat_free(&c);
}

int main(void) {
    size_t len;
    const char *js = embedded_file("qwen3-tokenizer/tokenizer.json", &len);
    REQUIRE(js, "no embedded tokenizer.json");
    tok = tokenizer_load_buffer(js, len, "embedded tokenizer.json");
    REQUIRE(tok, "%s", err_msg());
    test_special_ids();
    test_references();
    test_episode();
    test_roundtrip();
    test_parser_cases();
    test_random();
    test_documented_divergence();
    test_loader();
    test_load_episode();
    test_sanitize_rollback();
    tokenizer_free(tok);
    return test_exit("test_chat");
}
