"""Cross-check of the chat renderer (model/chat.c) against the official Qwen3 chat template run by
jinja2 the way HF transformers runs it, and of its ids against HF `tokenizers` on the rendered text.

  chat_template_check.py gen IN.jsonl N           writes N random HF chat contexts
  chat_template_check.py cmp SRC IN.jsonl GOT.jsonl
        GOT.jsonl: `chat_tool render IN.jsonl` ({"text", "ids", "mask"} per line). For every
        context: text == template render, ids == tokenizers.encode(text).ids.
"""
import json
import random
import sys

PIECES = ["Hello", " world", "\n", "\n\n", "  ", "\t", " ", "é", "e\u0301", "\u212b", "😀",
          "中文", "<think>", "</think>", "<tool_call>", "<|im_end|>", "123", "4.5", "!?", "\r\n",
          " \n ", "'s", "'LL", "ü", '{"a": 1}', "</tool_response>", "<tool_response>", "...",
          "\u0301", "x", "\n\n\n", "      ", "don't", "URL: https://x.y/z?q=1", "\u2028", "\x85"]


def text(r, n=6):
    return "".join(r.choice(PIECES) for _ in range(r.randrange(n + 1)))


def value(r, depth=0):
    k = r.randrange(8 if depth < 3 else 5)
    if k == 0:
        return text(r, 3)
    if k == 1:
        return r.randrange(-10 ** 12, 10 ** 12)
    if k == 2:
        return r.choice([0.1, 1.0, 1e-05, 2.5e+20, -0.0, 3.14159, 1e16, 123.456])
    if k == 3:
        return r.choice([None, True, False])
    if k == 4:
        return r.random() * 10 ** r.randrange(-6, 6)
    if k in (5, 6):
        return {text(r, 2) or "k": value(r, depth + 1) for _ in range(r.randrange(4))}
    return [value(r, depth + 1) for _ in range(r.randrange(4))]


def tool(r, i):
    return {"type": "function", "function": {
        "name": "tool_%d" % i, "description": text(r, 4),
        "parameters": {"type": "object", "properties": {
            "p%d" % j: {"type": r.choice(["string", "number"]), "default": value(r)}
            for j in range(r.randrange(3))}, "required": []}}}


def assistant(r):
    m = {"role": "assistant", "content": text(r)}
    k = r.randrange(4)
    if k == 1:
        m["content"] = "<think>\n" + text(r, 3) + "\n</think>\n\n" + m["content"]
    elif k == 2:
        m["reasoning_content"] = text(r, 3)
    calls = []
    for _ in range(r.choice([0, 0, 1, 2, 3])):
        args = value(r, 1) if r.random() < 0.7 else json.dumps(value(r, 1))
        if r.random() < 0.3:
            args = {"q": text(r, 3), "n": r.randrange(100)}
        f = {"name": "tool_%d" % r.randrange(3), "arguments": args}
        calls.append({"type": "function", "function": f} if r.random() < 0.8 else f)
    if calls:
        m["tool_calls"] = calls
    return m


def context(r):
    msgs = []
    if r.random() < 0.5:
        msgs.append({"role": "system", "content": text(r, 4)})
    for _ in range(1 + r.randrange(8)):
        k = r.randrange(10)
        if k < 3:
            c = text(r)
            if r.random() < 0.15:
                c = "<tool_response>" + c + "</tool_response>"
            msgs.append({"role": "user", "content": c})
        elif k < 6:
            msgs.append(assistant(r))
        elif k < 9:
            msgs.append({"role": "tool", "content": text(r)})
        else:
            msgs.append({"role": "system", "content": text(r, 3)})
    ctx = {"messages": msgs}
    k = r.randrange(4)
    if k == 1:
        ctx["tools"] = []
    elif k >= 2:
        ctx["tools"] = [tool(r, i) for i in range(1 + r.randrange(3))]
    for key in ("add_generation_prompt", "enable_thinking"):
        v = r.choice([True, False, None])
        if v is not None:
            ctx[key] = v
    return ctx


_compiled = {}


def render(template, ctx):
    if template not in _compiled:
        _compiled[template] = compile_template(template)
    kw = {"messages": ctx["messages"], "tools": ctx.get("tools"),
          # our loader's default is true (HF's is false): pass what the loader used
          "add_generation_prompt": ctx.get("add_generation_prompt", True)}
    if "enable_thinking" in ctx:
        kw["enable_thinking"] = ctx["enable_thinking"]
    return _compiled[template].render(**kw)


def compile_template(template):
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def main():
    if sys.argv[1] == "gen":
        r = random.Random(20260523)
        with open(sys.argv[2], "w", encoding="ascii") as f:
            for _ in range(int(sys.argv[3])):
                f.write(json.dumps(context(r)) + "\n")
        return 0
    from tokenizers import Tokenizer
    src = sys.argv[2]
    cfg = json.load(open(src + "/model/data/qwen3-tokenizer/tokenizer_config.json"))
    tok = Tokenizer.from_file(src + "/model/data/qwen3-tokenizer/tokenizer.json")
    ctxs = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
    got = [json.loads(l) for l in open(sys.argv[4], encoding="utf-8")]
    assert len(ctxs) == len(got), (len(ctxs), len(got))
    bad_text = bad_ids = n_ids = n_mask = 0
    for i, (ctx, g) in enumerate(zip(ctxs, got)):
        want = render(cfg["chat_template"], ctx)
        if g["text"] != want:
            bad_text += 1
            if bad_text <= 3:
                print("context %d: text differs\n ctx: %s\nwant: %r\n got: %r"
                      % (i, json.dumps(ctx), want, g["text"]))
            continue
        ids = tok.encode(want, add_special_tokens=False).ids
        n_ids += len(ids)
        n_mask += sum(g["mask"])
        if ids != g["ids"]:
            bad_ids += 1
            if bad_ids <= 3:
                print("context %d: ids differ\nwant: %s\n got: %s" % (i, ids, g["ids"]))
    print("chat_template_check: %d contexts, %d ids (%d masked), %d texts differ, %d id lists differ"
          % (len(ctxs), n_ids, n_mask, bad_text, bad_ids))
    return 1 if bad_text or bad_ids else 0


if __name__ == "__main__":
    sys.exit(main())
