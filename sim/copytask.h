// sim/copytask: short transcripts that teach a small policy to copy argument values (ids, dates,
// amounts, names) from the conversation into its tool calls. Built from the environments' own
// oracle transcripts (sim/oracle.h), the SFT data, so they hold nothing of the held-out tasks.
//
// Why: a policy trained from scratch learns the call format and the tool choice from the oracle
// transcripts long before it learns to copy a value it has never seen (an order id, a SKU from a
// tool result): that needs attention that finds the earlier occurrence (an induction circuit), and
// 800 long transcripts with a few loss tokens each teach it slowly. Many short transcripts whose
// values are fresh every time teach it quickly: memorizing a value never pays, copying it does.
//
// Three kinds, drawn with probability p_window / p_repeat / 1 - p_window - p_repeat:
//   window   a window of an oracle transcript: the first user message, then the messages from the
//            assistant's previous tool-call turn (or from the start) up to one assistant tool-call
//            turn k. Every string argument of the window's calls that holds a digit and is at least
//            4 characters long is replaced, everywhere in the window (user text, tool results,
//            calls), by a fresh value of the same shape (each digit redrawn; a run's first digit
//            stays non-zero when it was). The system prompt and the tool list are left out.
//   schema   a user message that states 1..3 of one tool's scalar arguments, in one of two
//            phrasings ("my order id is W4410982, ..." or the bare values), with up to 3 stated
//            values of other tools' parameters as distractors (named phrasing only), then asks
//            for the tool by name; the assistant answers with the call of exactly those values.
//            Values: an enum's member; else a shape-redrawn value seen for that parameter in the
//            oracle calls (a value with no digit: another value seen for it); else the shape of the
//            description's "e.g." example; else a letter and 4-7 digits.
//   repeat   a user message with a JSON object of 3..6 values, keys "1", "2", ... (values drawn as
//            the schema kind draws them, for random parameters of random tools; written as tool-call
//            arguments are, so with the same tokens) after "Repeat these back, in order: " or "Say
//            back exactly: "; the assistant says the object back verbatim (no tool call). Every assistant token is a
//            copy, so this is the kind that grows the induction circuit (find the earlier occurrence
//            of the current token, predict what followed it) in a new policy: trained alone at a
//            constant learning rate its loss falls abruptly after ~900 steps of 16 (train.c).
// Each conversation is {"messages": [...]} (no "tools"), for learner_sft_render (episode = 1).
#pragma once
#include <jansson.h>
#include <stdint.h>

// Fresh words (fresh_words = 1): digits alone leave names, file names, titles and cities as the
// oracle wrote them, so a small policy can recall them instead of copying (seen: a call asking for
// "draft_essay.docx", a file of the training data, when the user named "client_list.docx"). With
// fresh_words, every string value these transcripts copy (a schema / repeat value that is not an
// enum member; in a window, also a string of 4+ characters with no digit, when it is not an enum
// member) also has its words redrawn (copytask_redraw_words) from the pool of words in the oracle
// calls' string values, so "client_list.docx" may become "river_essay.docx".
//
// n conversations from the oracle conversations (a JSON array of {"messages", "tools"}), seeded:
// the same arguments give the same array. A new JSON array, or NULL + err_set (no oracle
// conversation with a tool call, n < 1, p_window outside [0, 1], p_repeat outside [0, 1 - p_window]).
json_t *copytask_make(const json_t *oracle, int n, double p_window, double p_repeat, int fresh_words, uint64_t seed);

// the value with each digit redrawn (a digit run's first digit stays non-zero when it was), the
// rest kept; draws come from sampler_uniform(seed, stream, *step++). A new string (malloc), or NULL
// when out of memory.
char *copytask_redraw_digits(const char *v, uint64_t seed, uint64_t stream, uint64_t *step);

// v with each replaceable letter run (3+ letters, all lower case or capitalized: an all-caps code
// like CHK is kept; the run after the last '.' is kept when it ends v: an extension, a top-level
// domain) replaced by a word drawn uniformly from pool (capitalized when the run was), the rest
// kept; n_pool = 0 keeps v. Draws come from sampler_uniform(seed, stream, *step++). A new string
// (malloc), or NULL when out of memory.
char *copytask_redraw_words(const char *v, const char *const *pool, int n_pool, uint64_t seed, uint64_t stream,
                            uint64_t *step);
