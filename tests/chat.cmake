# Chat format (model/chat): Qwen3 template rendering to ids, the HF-style loader, tojson, the parser.
trustee_c_test(test_chat SOURCES test_chat.c)

# chat_tool: line-based driver for the Python cross-checks below
add_executable(chat_tool chat_tool.c)
target_link_libraries(chat_tool PRIVATE trustee_model)
# tojson == Python json.dumps(ensure_ascii=False) on tricky and random values (/usr/bin/python3)
trustee_sh_test(chat_json_python chat_json.sh $<TARGET_FILE:chat_tool>)
# random contexts: text == the official template run by jinja2, ids == HF tokenizers (skips
# without jinja2 in the venv)
trustee_sh_test(chat_template_jinja chat_template.sh $<TARGET_FILE:chat_tool>)

# 20,000 mutated / random inputs through the parser, invariants checked (regular build)
trustee_c_test(test_chat_fuzz SOURCES test_chat_fuzz.c chat_fuzz_check.c)

# optional libFuzzer + ASan target (not built by default): needs clang
find_program(TRUSTEE_CLANG NAMES clang clang-16 clang-15 clang-14)
if(TRUSTEE_CLANG)
  add_custom_target(fuzz_chat_parse
    COMMAND ${TRUSTEE_CLANG} -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined
            -I${CMAKE_SOURCE_DIR} -I${CMAKE_CURRENT_SOURCE_DIR}
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_chat_parse.c ${CMAKE_CURRENT_SOURCE_DIR}/chat_fuzz_check.c
            ${CMAKE_SOURCE_DIR}/model/chat.c ${CMAKE_SOURCE_DIR}/kernels/err.c
            $<TARGET_FILE:trustee_model> -ljansson -lutf8proc -lonig -lm
            -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_chat_parse
    DEPENDS trustee_model ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_chat_parse.c
            ${CMAKE_CURRENT_SOURCE_DIR}/chat_fuzz_check.c ${CMAKE_SOURCE_DIR}/model/chat.c
    COMMENT "libFuzzer target for chat_parse_assistant: ${CMAKE_CURRENT_BINARY_DIR}/fuzz_chat_parse"
    VERBATIM)
endif()
