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
