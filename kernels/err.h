// Error reporting shared by every library module of trustee.
//
// Rule: a library function never prints and never exits. On failure it records one message with
// err_set() (thread-local) and returns -1 (or NULL). Callers may add context in front of the
// message with err_wrap() ("file.safetensors: " + "tensor x: expected ..."). Only main() prints
// err_msg() and exits.
#pragma once
#include <stdarg.h>

// records a message (printf format) and returns -1, so `return err_set(...)` reads naturally
int err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// prefixes the current message with a formatted context string; returns -1
int err_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// the current message ("" when none)
const char *err_msg(void);
void err_clear(void);
