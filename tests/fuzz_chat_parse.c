// libFuzzer target for chat_parse_assistant (model/chat.c). Optional: built by the
// `fuzz_chat_parse` target when clang is found (not part of `all`):
//   cmake --build BUILD --target fuzz_chat_parse && BUILD/tests/fuzz_chat_parse -max_total_time=60
// Checks the same invariants as the deterministic test tests/test_chat_fuzz.c.
#include <stdint.h>
#include <stdlib.h>

#include "model/chat.h"

int chat_fuzz_check(const char *text, size_t len); // tests/chat_fuzz_check.c

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (chat_fuzz_check((const char *)data, size)) abort();
    return 0;
}
