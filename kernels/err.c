#include "err.h"

#include <stdio.h>
#include <string.h>

#define ERR_CAP 2048
static _Thread_local char err_buf[ERR_CAP];

int err_set(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, ERR_CAP, fmt, ap);
    va_end(ap);
    return -1;
}

int err_wrap(const char *fmt, ...) {
    char prefix[ERR_CAP], old[ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, ERR_CAP, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, ERR_CAP);
    size_t n = strlen(prefix); // prefix first, then as much of the old message as fits
    memcpy(err_buf, prefix, n + 1);
    if (n + 1 < ERR_CAP) {
        size_t m = strnlen(old, ERR_CAP - 1 - n);
        memcpy(err_buf + n, old, m);
        err_buf[n + m] = 0;
    }
    return -1;
}

const char *err_msg(void) { return err_buf; }
void err_clear(void) { err_buf[0] = 0; }
